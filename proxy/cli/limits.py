"""The `--rpm --tpm --max-concurrent --tokens-per-month --usd-per-month --max-tokens` flags (and
`--clear-limit NAME` on update) of `tokenhub keys create|update`, and how a key's limits are printed."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from keystore import LIMIT_NAMES

# flag → (limit name, type, help)
FLAGS: tuple[tuple[str, str, type, str], ...] = (
    ("--rpm", "requests_per_minute", int, "requests per minute"),
    ("--tpm", "tokens_per_minute", int, "tokens per minute (input + output)"),
    ("--max-concurrent", "max_concurrent_requests", int, "requests in flight at once"),
    ("--tokens-per-month", "tokens_per_month", int, "tokens per UTC calendar month"),
    ("--usd-per-month", "usd_per_month", float, "USD per UTC calendar month (at the providers' prices)"),
    ("--max-tokens", "max_tokens_per_request", int, "max_tokens a request may ask for"),
)
_SHORT = {"requests_per_minute": "rpm", "tokens_per_minute": "tpm", "max_concurrent_requests": "concurrent",
          "tokens_per_month": "tokens/month", "usd_per_month": "USD/month", "max_tokens_per_request": "max tokens"}


def add_flags(parser: argparse.ArgumentParser, *, clearing: bool = False) -> None:
    group = parser.add_argument_group("limits (enforced across every instance; README \"Limits and budgets\")")
    for flag, name, kind, help_ in FLAGS:
        group.add_argument(flag, dest=f"limit_{name}", type=kind, metavar="N" if kind is int else "X", help=help_)
    if clearing:
        group.add_argument("--clear-limit", action="append", default=[], type=_limit_name,
                           choices=LIMIT_NAMES, metavar="NAME",
                           help=f"remove one limit (repeat): {', '.join(LIMIT_NAMES)}, or the flag's own "
                                "name (rpm, tpm, max-concurrent, tokens-per-month, usd-per-month, max-tokens)")


# --clear-limit also takes the name of the flag that sets the limit: `--clear-limit rpm` as `--rpm` sets it.
_BY_FLAG = {flag.removeprefix("--"): name for flag, name, _, _ in FLAGS}


def _limit_name(value: str) -> str:
    return _BY_FLAG.get(value.strip().lower(), value)


def body(args: argparse.Namespace) -> dict[str, Any] | None:
    """The `limits` object of the request (None when no limit flag was given)."""
    given: dict[str, Any] = {name: getattr(args, f"limit_{name}") for _, name, _, _ in FLAGS
                             if getattr(args, f"limit_{name}") is not None}
    for name in getattr(args, "clear_limit", []):
        if name in given:
            raise ValueError(f"--clear-limit {name} contradicts the flag that sets it")
        given[name] = None
    return given or None


def describe(key: Mapping[str, Any]) -> str:
    """`rpm 60, tpm 10000` or `none`."""
    limits = key.get("limits") or {}
    parts = [f"{_SHORT[n]} {limits[n]:g}" if isinstance(limits[n], float) else f"{_SHORT[n]} {limits[n]}"
             for n in LIMIT_NAMES if limits.get(n) is not None]
    return ", ".join(parts) or "none"
