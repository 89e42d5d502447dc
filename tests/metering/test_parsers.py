"""The usage parsers against real byte streams, split every way a network can split them."""

from __future__ import annotations

import orjson
import pytest

from proxy.metering.parsers import OPENAI, JsonParser, SseParser
from proxy.metering.usage import Usage
from tests.metering.streams import chat_body, chat_events, completion_events, embeddings_body

EXPECTED = Usage(input_tokens=19, output_tokens=3, cached_input_tokens=6)


def splits(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def feed_all(parser: SseParser | JsonParser, chunks: list[bytes]) -> bytes:
    out = b"".join(parser.feed(c) for c in chunks)
    parser.finish()
    return out


@pytest.mark.parametrize("size", [1, 2, 7, 64, 333, 100_000])
def test_injected_usage_event_is_cut_however_the_stream_is_split(size: int) -> None:
    events = chat_events("gpt-4o-mini", with_usage=True)
    parser = SseParser(OPENAI, strip=True)
    out = feed_all(parser, splits(b"".join(events), size))
    assert out == b"".join(e for e in events if b'"choices":[]' not in e)
    assert parser.state.usage == EXPECTED


@pytest.mark.parametrize("size", [1, 5, 97, 100_000])
def test_asked_for_usage_passes_every_chunk_untouched(size: int) -> None:
    chunks = splits(b"".join(chat_events("gpt-4o-mini", with_usage=True)), size)
    parser = SseParser(OPENAI, strip=False)
    assert all(parser.feed(c) is c for c in chunks)
    parser.finish()
    assert parser.state.usage == EXPECTED


def test_event_per_chunk_is_passed_as_the_same_object() -> None:
    events = chat_events("gpt-4o-mini", with_usage=True)
    parser = SseParser(OPENAI, strip=True)
    passed = [parser.feed(e) for e in events]
    assert all(p is e for p, e in zip(passed, events, strict=True) if b'"choices":[]' not in e)
    assert passed[-2] == b""  # the injected usage event


def test_completions_stream_and_crlf_events() -> None:
    events = [e.replace(b"\n", b"\r\n") for e in completion_events("gpt-3.5-turbo-instruct", with_usage=True)]
    parser = SseParser(OPENAI, strip=True)
    out = feed_all(parser, splits(b"".join(events), 11))
    assert out == b"".join(e for e in events if b'"choices":[]' not in e)
    assert parser.state.usage == EXPECTED


def test_stream_without_usage_reports_none() -> None:
    parser = SseParser(OPENAI, strip=False)
    feed_all(parser, chat_events("m", with_usage=False))
    assert parser.state.usage is None and not parser.state.unreadable


def test_usage_with_choices_is_read_but_never_cut() -> None:
    """Some servers put usage on a content chunk: the client asked for nothing, but it is real content."""
    event = b'data: {"choices":[{"index":0,"delta":{"content":"x"}}],"usage":{"prompt_tokens":2,"completion_tokens":1}}\n\n'
    parser = SseParser(OPENAI, strip=True)
    assert parser.feed(event) == event
    assert parser.state.usage == Usage(input_tokens=2, output_tokens=1)


def test_unreadable_usage_event_is_flagged_and_passed_on() -> None:
    event = b'data: {"choices":[],"usage":{"prompt_tokens":"many"}}\n\n'
    parser = SseParser(OPENAI, strip=True)
    assert parser.feed(event) == event
    assert parser.state.unreadable and parser.state.usage is None


@pytest.mark.parametrize("size", [3, 50, 1_000_000])
def test_non_streamed_answer_chunked_or_whole(size: int) -> None:
    body = chat_body("gpt-4o", text='He wrote "usage": {"prompt_tokens": 999} in a message')
    parser = JsonParser(OPENAI)
    assert feed_all(parser, splits(body, size)) == body
    assert parser.state.usage == EXPECTED


def test_large_embeddings_answer_is_read_from_its_end() -> None:
    body = embeddings_body("text-embedding-3-small", n=200, dims=256)
    assert len(body) > 256 * 1024
    parser = JsonParser(OPENAI)
    feed_all(parser, splits(body, 16 * 1024))
    assert parser.state.usage == Usage(input_tokens=8, output_tokens=0)


def test_whole_answer_without_usage() -> None:
    parser = JsonParser(OPENAI)
    body = orjson.dumps({"object": "list", "data": [], "usage": None})
    assert parser.whole(body) is body
    assert parser.state.usage is None and not parser.state.unreadable
