"""Azure OpenAI: the real `AzureOpenAI` client through the proxy's deployment paths, and any OpenAI
client through /v1, to a fake Azure upstream that checks the api-key header, the deployment path and
the api-version the way Azure does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient

from tests.support.styles import AZURE_KEY, AZURE_VERSION, FakeAzure, Issue

Clients = dict[str, Callable[..., Any]]
USER = [{"role": "user", "content": "hello azure"}]


def assert_clean(fake: FakeAzure, key: str, path: str) -> None:
    """Azure saw our api-key, our api-version and the deployment path, never the client's key."""
    got = fake.last
    assert (got.path, got.query) == (path, f"api-version={AZURE_VERSION}")
    assert got.headers.get("api-key") == AZURE_KEY
    assert "Authorization" not in got.headers and "x-api-key" not in got.headers
    assert key not in str(dict(got.headers)) and key.encode() not in got.body


@pytest.mark.parametrize("model", ["prod-gpt4o", "az/gpt-4o"])  # a deployment name or provider/model
async def test_azure_client_chat(clients: Clients, key: str, azure: FakeAzure, model: str) -> None:
    answer = await clients["azure"](key).chat.completions.create(model=model, messages=USER)
    assert answer.choices[0].message.content == "hello azure" and answer.model == "gpt-4o-2024-08-06"
    assert_clean(azure, key, "/openai/deployments/prod-gpt4o/chat/completions")
    assert azure.last.json()["model"] == "prod-gpt4o"


async def test_azure_client_with_a_fixed_deployment_streams(clients: Clients, key: str, azure: FakeAzure) -> None:
    client = clients["azure"](key, azure_deployment="prod-gpt4o")
    stream = await client.chat.completions.create(model="gpt-4o", messages=USER, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "hello azure"
    assert_clean(azure, key, "/openai/deployments/prod-gpt4o/chat/completions")


async def test_azure_client_embeddings(clients: Clients, key: str, azure: FakeAzure) -> None:
    result = await clients["azure"](key).embeddings.create(model="embed-small", input=["a", "b"],
                                                           encoding_format="float")
    assert [d.index for d in result.data] == [0, 1]
    assert_clean(azure, key, "/openai/deployments/embed-small/embeddings")


async def test_openai_client_reaches_an_azure_provider_through_v1(clients: Clients, key: str,
                                                                  azure: FakeAzure) -> None:
    answer = await clients["openai"](key).chat.completions.create(model="az/gpt-4o", messages=USER)
    assert answer.choices[0].message.content == "hello azure"
    assert_clean(azure, key, "/openai/deployments/prod-gpt4o/chat/completions")


async def test_azure_client_disallowed_deployment_is_403(clients: Clients, issue: Issue, azure: FakeAzure) -> None:
    narrow = (await issue(allowed_models=["az/text-embedding-3-small"])).secret
    with pytest.raises(openai.PermissionDeniedError):
        await clients["azure"](narrow).chat.completions.create(model="prod-gpt4o", messages=USER)
    assert azure.received == []


@pytest.mark.parametrize(("path", "body", "status"), [
    ("/openai/deployments/unknown/chat/completions", {"messages": USER}, 404),
    ("/openai/deployments/prod-gpt4o/chat/completions", {"model": "embed-small", "messages": USER}, 400),
    ("/openai/deployments/prod-gpt4o/chat/completions", {"messages": USER, "models": ["x"]}, 400),
    ("/openai/deployments/prod-gpt4o/images/generations", {"prompt": "x"}, 404),
])
async def test_azure_paths_refused_before_the_upstream(proxy: TestClient, key: str, azure: FakeAzure,
                                                       path: str, body: dict[str, Any], status: int) -> None:
    r = await proxy.post(f"{path}?api-version=2020-01-01", json=body, headers={"api-key": key})
    assert r.status == status and "error" in await r.json()
    assert azure.received == []


async def test_body_without_model_uses_the_path_and_our_api_version(proxy: TestClient, key: str,
                                                                    azure: FakeAzure) -> None:
    r = await proxy.post("/openai/deployments/prod-gpt4o/chat/completions?api-version=2020-01-01&x=1",
                         json={"messages": USER}, headers={"api-key": key})
    assert r.status == 200
    assert_clean(azure, key, "/openai/deployments/prod-gpt4o/chat/completions")
