"""`GET /v1/models` lists the models of every style the key may call, in the asking SDK's shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import pytest

from tests.support.styles import Issue

Clients = dict[str, Callable[..., Any]]


async def test_models_of_every_style(clients: Clients, issue: Issue) -> None:
    everything = (await issue()).secret
    ids = [m.id async for m in clients["openai"](everything).models.list()]
    assert ids == ["claude/claude-sonnet-4-5", "claude/claude-haiku-4-5", "oai/gpt-5", "oai/gpt-5-mini",
                   "az/gpt-4o", "az/text-embedding-3-small", "sonnet"]


async def test_models_of_a_restricted_key(clients: Clients, issue: Issue) -> None:
    narrow = (await issue(allowed_providers=["claude", "az"], allowed_models=["claude/claude-haiku-4-5"])).secret
    assert [m.id async for m in clients["openai"](narrow).models.list()] == ["claude/claude-haiku-4-5"]


async def test_the_anthropic_sdk_gets_its_own_page(clients: Clients, issue: Issue) -> None:
    narrow = (await issue(allowed_providers=["claude"])).secret
    client = clients["anthropic"](narrow)
    page = await client.models.list()
    assert [m.id for m in page.data] == ["claude/claude-sonnet-4-5", "claude/claude-haiku-4-5", "sonnet"]
    assert page.data[0].type == "model" and page.has_more is False and page.last_id == "sonnet"
    assert (await client.models.retrieve("claude/claude-haiku-4-5")).display_name == "claude/claude-haiku-4-5"
    with pytest.raises(anthropic.PermissionDeniedError) as info:
        await client.models.retrieve("oai/gpt-5")
    assert info.value.body["error"]["type"] == "permission_error"  # type: ignore[index]
