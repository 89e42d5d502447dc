"""`GET /v1/models` and `/v1/models/{model}` in the shape of the SDK asking: OpenAI's list and model
objects, or, for the Anthropic SDK (which always sends `anthropic-version`), Anthropic's page of
`ModelInfo` objects and its error shape. Every style's models are listed either way."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from multidict import CIMultiDictProxy

from proxy.errors import OPENAI_ERRORS, ErrorShape
from proxy.gateway.styles.anthropic import ANTHROPIC_ERRORS

_EPOCH = "1970-01-01T00:00:00Z"  # Anthropic's documented value for an unknown release date


def _anthropic_client(headers: CIMultiDictProxy[str]) -> bool:
    return "anthropic-version" in headers


def listing_errors(headers: CIMultiDictProxy[str]) -> ErrorShape:
    return ANTHROPIC_ERRORS if _anthropic_client(headers) else OPENAI_ERRORS


def model_object(headers: CIMultiDictProxy[str], name: str, owner: str) -> dict[str, Any]:
    if _anthropic_client(headers):
        return {"type": "model", "id": name, "display_name": name, "created_at": _EPOCH}
    return {"id": name, "object": "model", "created": 0, "owned_by": owner}


def models_page(headers: CIMultiDictProxy[str], models: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """`models`: (name, provider) pairs, all of them (no paging: the list is the config's)."""
    data = [model_object(headers, name, owner) for name, owner in models]
    if _anthropic_client(headers):
        return {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None}
    return {"object": "list", "data": data}
