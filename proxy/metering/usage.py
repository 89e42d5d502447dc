"""What one request used (`Usage`), why a request could not be metered (`Unmetered`), and its cost."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

_MILLION = Decimal(1_000_000)


class Unmetered(StrEnum):
    """Why a forwarded request has no (complete) usage figure. Never counted silently as zero."""

    NO_USAGE = "no_usage_reported"  # the provider answered but reported no usage
    CLIENT_GONE = "client_gone"  # the client left before the provider's figure arrived
    UPSTREAM_FAILED = "upstream_failed"  # the provider failed, timed out or broke the stream
    PROVIDER_ERROR = "provider_error"  # the provider answered with an error status (4xx/5xx)
    UNREADABLE = "unreadable_usage"  # a usage figure was there but could not be read


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens as the provider reported them. `cached_input_tokens` is part of `input_tokens`."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    requests: int = 1

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens."""

    input: Decimal
    output: Decimal

    def cost(self, usage: Usage) -> Decimal:
        return (usage.input_tokens * self.input + usage.output_tokens * self.output) / _MILLION


def price_of(raw: Mapping[str, Any] | None) -> Price | None:
    """A config entry `{input = 2.50, output = 10.00}` as a Price (None: the model is metered in tokens)."""
    if not raw:
        return None
    return Price(Decimal(str(raw.get("input", 0))), Decimal(str(raw.get("output", 0))))


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"not a token count: {value!r}")
    return value


def _nested(obj: Mapping[str, Any], outer: str, inner: str) -> int:
    details = obj.get(outer)
    return _count(details.get(inner, 0) or 0) if isinstance(details, Mapping) else 0


def openai_usage(obj: Any) -> Usage:
    """Read an OpenAI `usage` object: chat and completions (`prompt_tokens`, `completion_tokens`,
    `prompt_tokens_details.cached_tokens`), embeddings (no completion tokens) and the Responses API
    (`input_tokens`, `output_tokens`, `input_tokens_details.cached_tokens`).

    Raises TypeError or ValueError when `obj` is not a usage object with sane counts."""
    if not isinstance(obj, Mapping):
        raise TypeError("usage is not an object")
    if "prompt_tokens" in obj:
        return Usage(input_tokens=_count(obj["prompt_tokens"]),
                     output_tokens=_count(obj.get("completion_tokens", 0) or 0),
                     cached_input_tokens=_nested(obj, "prompt_tokens_details", "cached_tokens"))
    if "input_tokens" in obj:
        return Usage(input_tokens=_count(obj["input_tokens"]), output_tokens=_count(obj.get("output_tokens", 0) or 0),
                     cached_input_tokens=_nested(obj, "input_tokens_details", "cached_tokens"))
    raise ValueError("usage object without token counts")
