"""error_mw: what becomes an error body, and what is not an error at all."""

import asyncio
import logging

import pytest
from aiohttp.test_utils import make_mocked_request

from proxy.errors import error_mw


async def test_a_client_gone_before_the_answer_is_a_cancellation_not_a_500(caplog) -> None:
    async def handler(request):
        raise ConnectionResetError("Cannot write to closing transport")

    with caplog.at_level(logging.INFO), pytest.raises(asyncio.CancelledError):
        await error_mw(make_mocked_request("POST", "/v1/chat/completions"), handler)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_surprise_is_a_500_with_the_request_id(caplog) -> None:
    async def handler(request):
        raise RuntimeError("boom")

    resp = await error_mw(make_mocked_request("GET", "/x"), handler)
    assert resp.status == 500 and b"Internal error (request id" in resp.body
    assert any(r.levelno == logging.ERROR for r in caplog.records)
