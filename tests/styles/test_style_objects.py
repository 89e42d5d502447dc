"""The style objects on their own: URLs, credential headers, config checks, usage formats, the README
example configs loading."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.config import ConfigError, ProviderConfig
from proxy.config_loader import load_config
from proxy.gateway.styles import ENDPOINTS, STYLES, Endpoint
from proxy.gateway.styles.owners import IdTap
from proxy.gateway.styles.usage import ANTHROPIC_USAGE, RESPONSES_USAGE
from proxy.gateway.tap import Outcome
from proxy.metering.parsers import SseParser
from proxy.metering.usage import Usage

README = Path(__file__).resolve().parents[2] / "README.md"
AZ = ProviderConfig(name="az", base_url="https://r.openai.azure.com", models=("gpt-4o", "o4"), api="azure",
                    api_key="k", api_version="2024-10-21", deployments={"gpt-4o": "prod"})


def endpoint(method: str, path: str) -> Endpoint:
    return next(e for e in ENDPOINTS if (e.method, e.path) == (method, path))


def headers(**values: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in values.items()}))


@pytest.mark.parametrize(("method", "path", "model", "params", "query", "url"), [
    ("POST", "/v1/chat/completions", "prod", {}, "",
     "https://r.openai.azure.com/openai/deployments/prod/chat/completions?api-version=2024-10-21"),
    ("POST", "/v1/responses", "prod", {}, "", "https://r.openai.azure.com/openai/responses?api-version=2024-10-21"),
    ("GET", "/v1/responses/{id}", "prod", {"id": "resp_1"}, "api-version=evil&include[]=x",
     "https://r.openai.azure.com/openai/responses/resp_1?api-version=2024-10-21&include[]=x"),
])
def test_azure_urls(method: str, path: str, model: str, params: dict[str, str], query: str, url: str) -> None:
    assert STYLES["azure"].url(AZ, endpoint(method, path), model, params, query) == url


def test_azure_models_map_to_deployments() -> None:
    style = STYLES["azure"]
    assert (style.upstream_model(AZ, "gpt-4o"), style.upstream_model(AZ, "o4")) == ("prod", "o4")
    assert style.headers(AZ, headers(authorization="Bearer th-x")) == {"api-key": "k", "Authorization": None}


@pytest.mark.parametrize("base", ["https://api.anthropic.com", "https://api.anthropic.com/v1"])
def test_anthropic_url_with_or_without_v1(base: str) -> None:
    p = ProviderConfig(name="c", base_url=base, models=("m",), api="anthropic")
    assert STYLES["anthropic"].url(p, endpoint("POST", "/v1/messages"), "m", {}, "") == \
        "https://api.anthropic.com/v1/messages"


def test_anthropic_headers_from_config_and_allow_list() -> None:
    p = ProviderConfig(name="c", base_url="https://a", models=("m",), api="anthropic", api_key="sk",
                       anthropic_betas=("my-beta-2025-01-01",))
    got = STYLES["anthropic"].headers(p, headers(anthropic_beta="files-api-2025-04-14, my-beta-2025-01-01"))
    assert got == {"x-api-key": "sk", "Authorization": None, "anthropic-version": "2023-06-01",
                   "anthropic-beta": "my-beta-2025-01-01"}


def test_openai_without_credential_sends_none() -> None:
    p = ProviderConfig(name="o", base_url="http://x/v1", models=("m",))
    assert STYLES["openai"].headers(p, headers()) == {"Authorization": None}


def test_endpoints_the_style_cannot_serve_are_config_errors() -> None:
    bad = ProviderConfig(name="c", base_url="https://a", models=("m",), api="anthropic", endpoints=("embeddings",))
    assert any("endpoints: 'embeddings'" in p for p in bad.problems())
    ok = ProviderConfig(name="o", base_url="https://a/v1", models=("m",), endpoints=("rerank", "responses"))
    assert ok.problems() == []


def test_anthropic_usage_from_its_event_sequence() -> None:
    parser = SseParser(ANTHROPIC_USAGE, strip=False)
    stream = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","usage":{"input_tokens":7,'
              b'"cache_creation_input_tokens":2,"cache_read_input_tokens":3,"output_tokens":1}}}\n\n'
              b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
              b'"usage":{"output_tokens":42}}\n\n')
    for i in range(0, len(stream), 17):  # split everywhere, as the network may
        assert parser.feed(stream[i:i + 17]) == stream[i:i + 17]
    parser.finish()
    assert parser.state.usage == Usage(input_tokens=12, output_tokens=42, cached_input_tokens=3)


def test_responses_usage_from_the_completed_event_only() -> None:
    parser = SseParser(RESPONSES_USAGE, strip=False)
    parser.feed(b'data: {"type":"response.created","response":{"id":"r","usage":null}}\n\n'
                b'data: {"type":"response.completed","response":{"id":"r","usage":{"input_tokens":9,'
                b'"input_tokens_details":{"cached_tokens":4},"output_tokens":5}}}\n\n')
    parser.finish()
    assert parser.state.usage == Usage(input_tokens=9, output_tokens=5, cached_input_tokens=4)


def _readme_configs() -> list[str]:
    text = README.read_text()
    return [block for block in re.findall(r"```toml\n(.*?)```", text, re.DOTALL) if "api = " in block]


def test_readme_style_configs_load(tmp_path: Path) -> None:
    blocks = _readme_configs()
    assert len(blocks) >= 3
    for i, block in enumerate(blocks):
        path = tmp_path / f"c{i}.toml"
        path.write_text(block)
        config = load_config(path, {"ANTHROPIC_API_KEY": "a", "OPENAI_API_KEY": "o", "AZURE_OPENAI_API_KEY": "z"})
        assert config.providers


def test_unknown_endpoint_family_fails_at_start(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[providers]]\nname = "o"\nbase_url = "http://x/v1"\nmodels = ["m"]\nendpoints = ["batches"]\n')
    with pytest.raises(ConfigError, match="endpoints: 'batches'"):
        load_config(path, {})


@pytest.mark.parametrize(("chunks", "sse", "expected"), [
    ([b'{"id": "resp_1", "object": "response"}'], False, "resp_1"),
    ([b'{"object": "response", "output": [], "id": "resp_2"}'], False, "resp_2"),  # id not first
    ([b'event: response.created\ndata: {"type":"response.created","respo', b'nse":{"id":"resp_3"}}\n\nevent: x\n'],
     True, "resp_3"),
    ([b'data: {"type":"error","error":{}}\n\n'], True, None),
    ([b'{"id": "../../admin"}'], False, None),  # not an id the proxy would ever put in a path
])
def test_id_tap_finds_the_created_id(chunks: list[bytes], sse: bool, expected: str | None) -> None:
    found: list[str] = []
    tap = IdTap(found.append)
    tap.on_start(200, headers(content_type="text/event-stream" if sse else "application/json"))
    for chunk in chunks:
        assert tap.on_chunk(chunk) is chunk
    tap.on_end(Outcome.COMPLETED)
    assert found == ([expected] if expected else [])


@pytest.mark.parametrize(("fields", "problem"), [
    ({"api": "bedrock"}, "api must be one of openai, anthropic, azure"),
    ({"api": "azure"}, "api_version is required"),
    ({"deployments": {"m": "d"}}, "only api = \"azure\" addresses models by deployment"),
    ({"api": "anthropic", "anthropic_version": "latest"}, "anthropic_version must be a dated version"),
])
def test_each_style_checks_its_own_config(fields: dict[str, object], problem: str) -> None:
    provider = ProviderConfig(name="p", base_url="https://x", models=("m",), **fields)  # type: ignore[arg-type]
    assert any(problem in p for p in provider.problems()), provider.problems()
