"""What one request asks of its key's limits before it is forwarded: the tokens and money reserved.

Tokens reserved = the input estimated from the body's size + the output the request allows itself (the
endpoint's cap fields, e.g. `max_tokens`, `max_completion_tokens`, `max_output_tokens`, which the provider
style lists; a configured estimate when the request names none; nothing for an endpoint without output).
Money reserved = those tokens at the model's price. Both are corrected to the metered figure after the
answer (limiter.py `finish`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from keystore import KeyLimits

from proxy.limits.answers import MaxTokensExceeded
from proxy.limits.settings import LimitsConfig

# Where a request names its output cap: chat (old and new name), completions, the Responses API.
MAX_TOKEN_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


class PriceLike(Protocol):
    @property
    def input(self) -> float: ...

    @property
    def output(self) -> float: ...


class Metered(Protocol):
    """The metered figure of one answer (proxy.metering's `Usage`)."""

    @property
    def input_tokens(self) -> int: ...

    @property
    def output_tokens(self) -> int: ...


@dataclass(slots=True)  # not frozen: one per limited request, and a frozen init costs twice as much
class Demand:
    tokens: int  # reserved
    micro_usd: int  # reserved, millionths of a USD
    price: PriceLike | None  # USD per million tokens; None: the model is metered in tokens only

    def cost(self, used: Metered) -> int:
        """The metered answer's cost in micro-USD (USD per million tokens = micro-USD per token)."""
        if self.price is None:
            return 0
        return round(used.input_tokens * self.price.input + used.output_tokens * self.price.output)


def max_tokens_asked(body: Mapping[str, Any], limits: KeyLimits, caps: Sequence[str]) -> int | None:
    """The output cap the request names in one of `caps`; MaxTokensExceeded (naming the field) above the
    key's cap."""
    for name in caps:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            cap = limits.max_tokens_per_request
            if cap is not None and value > cap:
                raise MaxTokensExceeded(f"{name} is {value}, above this API key's limit of {cap} tokens per "
                                        "request.", param=name)
            return value
    return None


def demand_of(body: Mapping[str, Any], size: int, limits: KeyLimits, price: PriceLike | None,
              config: LimitsConfig, caps: Sequence[str] = MAX_TOKEN_FIELDS) -> Demand:
    """`caps`: the body fields where this endpoint takes an output cap; none: it generates no output."""
    asked = max_tokens_asked(body, limits, caps)
    output = asked if asked is not None else config.default_output_tokens if caps else 0
    if limits.max_tokens_per_request is not None:
        output = min(output, limits.max_tokens_per_request)
    input_tokens = -(-size // config.bytes_per_input_token)
    micro = 0 if price is None else round(input_tokens * price.input + output * price.output)
    return Demand(tokens=input_tokens + output, micro_usd=micro, price=price)
