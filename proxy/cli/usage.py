"""`tokenhub keys usage ID`: a key's metered usage from `GET /admin/keys/{id}/usage`, as a table or JSON."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any

from proxy.cli import table as fmt
from proxy.cli.client import AdminClient, key_path

Command = Callable[[AdminClient, argparse.Namespace], Any]
_HEADERS = ["START", "MODEL", "REQUESTS", "UNMETERED", "INPUT", "CACHED", "OUTPUT", "USD"]


def register(ksub: Any, add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `usage` to the `keys` group; `add(name, help, fn)` makes a subcommand with the common flags."""
    p = add("usage", "show a key's metered usage (tokens, requests, cost)", _usage)
    p.add_argument("id", help="key id")
    p.add_argument("--from", dest="start", metavar="RFC3339", help="start (default: the start of this UTC month)")
    p.add_argument("--to", dest="end", metavar="RFC3339", help="end (default: now)")
    p.add_argument("--granularity", choices=["hour", "day", "month"], help="bucket size (default day)")
    p.add_argument("--by-model", action="store_true", help="one row per model in each bucket")


def _usage(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.call("GET", key_path(args.id, "usage"), query={
        "from": args.start, "to": args.end, "granularity": args.granularity,
        "group_by": "model" if args.by_model else None})


def _row(label: str, model: str, b: Mapping[str, Any]) -> list[Any]:
    return [label, model, b["requests"], b["unmetered_requests"], b["input_tokens"], b["cached_input_tokens"],
            b["output_tokens"], f"{b['usd']:.6f}"]


def readable(answer: Mapping[str, Any]) -> str:
    head = (f"Usage of {fmt.clean(answer['key_id'])} from {fmt.clean(answer['from'])} to {fmt.clean(answer['to'])}"
            f" by {fmt.clean(answer['granularity'])}:")
    rows = [_row(b["start"], b.get("model", "-"), b) for b in answer["data"]]
    rows.append(_row("TOTAL", "", answer["total"]))
    return f"{head}\n{fmt.table(_HEADERS, rows)}"
