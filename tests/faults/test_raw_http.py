"""Raw bytes against a real `tokenhub serve`: request-smuggling shapes, control characters and keys in
broken header lines, `Connection:` naming the headers the proxy sets itself. aiohttp's C parser refuses
the smuggling shapes; proxy/runtime/protocol.py makes that 400 the error shape and keeps the raw line (and any
key in it) out of the body and the log."""

from __future__ import annotations

import orjson
import pytest

from tests.support.fakes import FakeProvider
from tests.support.faults import PROVIDER_ENV, Client, Cluster, body_of, raw_request, status_of

BODY = b'{"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]}'


def head(*lines: str) -> bytes:
    return ("POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\n" + "".join(f"{x}\r\n" for x in lines)
            + "\r\n").encode("latin-1")


MALFORMED = {  # name -> make(key) -> raw request
    "content-length and transfer-encoding": lambda k: head(
        f"Authorization: Bearer {k}", f"Content-Length: {len(BODY)}", "Transfer-Encoding: chunked") + BODY,
    "duplicate content-length": lambda k: head(
        f"Authorization: Bearer {k}", f"Content-Length: {len(BODY)}", "Content-Length: 5") + BODY,
    "transfer-encoding not chunked last": lambda k: head(
        f"Authorization: Bearer {k}", "Transfer-Encoding: chunked, identity") + b"0\r\n\r\n",
    "obs-fold": lambda k: head(f"Authorization: Bearer {k}", " continued", "Content-Length: 0"),
    "bare LF": lambda k: f"POST /v1/chat/completions HTTP/1.1\nHost: x\nAuthorization: Bearer {k}\n\n".encode(),
    "control character in the key": lambda k: head(f"Authorization: Bearer {k}\x01", "Content-Length: 0"),
    "NUL in the key": lambda k: head(f"Authorization: Bearer {k[:20]}\x00{k[20:]}", "Content-Length: 0"),
    "key in a header line without colon": lambda k: head(f"Authorization Bearer {k}", "Content-Length: 0"),
    "key in the request line": lambda k: f"POST /v1/{k} HTTP/1.1 {k}\r\nHost: x\r\n\r\n".encode(),
    "over-long header": lambda k: head(f"Authorization: Bearer {k}{'x' * 20000}", "Content-Length: 0"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_malformed_requests_are_400_without_echo(case: str, cluster: Cluster, client: Client,
                                                       fake: FakeProvider) -> None:
    proc = await cluster.start()
    key, _ = await client.issue(proc)
    answer = await raw_request(proc.port, MALFORMED[case](key))
    client.record(f"raw {case}", answer)
    assert status_of(answer) == 400, answer[:300]
    error = orjson.loads(body_of(answer))["error"]
    assert error["type"] == "invalid_request_error"
    assert key not in answer.decode("latin-1") and key[3:15] not in answer.decode("latin-1")
    assert fake.received == []
    await proc.stop()
    assert key not in proc.log() and "Traceback" not in proc.log()


async def test_connection_cannot_strip_the_headers_the_proxy_sets(cluster: Cluster, client: Client,
                                                                  fake: FakeProvider) -> None:
    proc = await cluster.start()
    key, _ = await client.issue(proc)
    named = "Connection: close, Authorization, X-Request-ID, Content-Type, Content-Length, Host"
    request = head(f"Authorization: Bearer {key}", "Content-Type: application/json", "X-Request-ID: mine-1",
                   f"Content-Length: {len(BODY)}", named, "User-Agent: kept/1", "X-Custom: dropped") + BODY
    answer = await raw_request(proc.port, request)
    assert status_of(answer) == 200, answer[:300]
    sent = fake.last.headers
    assert sent["Authorization"] == f"Bearer {PROVIDER_ENV['DEMO_KEY']}"  # the provider's credential
    assert sent["Content-Type"] == "application/json" and sent["X-Request-ID"] == "mine-1"
    assert "Connection" not in sent or sent["Connection"].lower() in ("keep-alive", "close")
    assert sent.get("User-Agent") == "kept/1" and fake.last.json()["model"] == "echo"
    assert "X-Custom" not in sent  # client headers go upstream by allow-list only
    assert key not in str(dict(sent))


async def test_hop_by_hop_names_in_connection_are_dropped_towards_the_provider(
        cluster: Cluster, client: Client, fake: FakeProvider) -> None:
    proc = await cluster.start()
    key, _ = await client.issue(proc)
    request = head(f"Authorization: Bearer {key}", "Content-Type: application/json", "X-Secret-Hop: 1",
                   "Connection: X-Secret-Hop", f"Content-Length: {len(BODY)}", "Keep-Alive: timeout=5") + BODY
    reader_answer = await raw_request(proc.port, request.replace(b"Connection: X-Secret-Hop",
                                                                 b"Connection: close, X-Secret-Hop"))
    assert status_of(reader_answer) == 200
    assert "X-Secret-Hop" not in fake.last.headers and "Keep-Alive" not in fake.last.headers
