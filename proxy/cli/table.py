"""Readable terminal output for `tokenhub keys`: key blocks, tables, propagation reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from proxy.cli.limits import describe as describe_limits

STORE_WARNING = ("Store this key now: it is shown only once and cannot be retrieved again "
                 "(TokenHub keeps only a hash).")
_MAX_CELL = 40


def clean(value: Any) -> str:
    """Printable text only, so a stored value can never drive the terminal."""
    text = "" if value is None else str(value)
    return "".join(c if c.isprintable() else "?" for c in text)


def when(value: str | None, empty: str = "-") -> str:
    return clean(value) if value else empty


def restrictions(key: Mapping[str, Any]) -> str:
    parts = [*(f"provider:{p}" for p in key["allowed_providers"]), *key["allowed_models"]]
    return ", ".join(parts) if parts else "all models"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    text = clean(value)
    return text if len(text) <= _MAX_CELL else text[:_MAX_CELL - 1] + "…"


def key_block(key: Mapping[str, Any]) -> str:
    rows = [("id", key["id"]), ("name", key["name"]), ("account", key["account"]), ("hint", key["hint"]),
            ("status", key["status"]), ("created", key["created_at"]), ("expires", when(key["expires_at"], "never")),
            ("last used", when(key["last_used_at"], "never")), ("revoked", when(key["revoked_at"])),
            ("restricted to", restrictions(key)), ("limits", describe_limits(key)),
            ("rotated from", when(key["rotated_from"]))]
    return "\n".join(f"  {label:<14}{clean(value)}" for label, value in rows)


def age(key: Mapping[str, Any], reminder_days: int | None, now: datetime | None = None) -> str:
    """`12d`, or `120d ROTATE` for a key still in use that is older than the rotation reminder."""
    created = datetime.fromisoformat(str(key["created_at"]))
    days = max(0, ((now or datetime.now(UTC)) - created).days)
    # A key already rotated out (active until its grace period ends) is being taken care of.
    due = (reminder_days is not None and days > reminder_days and key["status"] == "active"
           and not key.get("revoked_at"))
    return f"{days}d ROTATE" if due else f"{days}d"


def key_table(keys: Sequence[Mapping[str, Any]], reminder_days: int | None = None) -> str:
    if not keys:
        return "No keys."
    return table(["ID", "NAME", "ACCOUNT", "STATUS", "HINT", "CREATED", "AGE", "EXPIRES", "LAST USED", "RESTRICTED TO"],
                 [[k["id"], k["name"], k["account"], k["status"], k["hint"], k["created_at"], age(k, reminder_days),
                   when(k["expires_at"], "never"), when(k["last_used_at"], "never"), restrictions(k)] for k in keys])


def secret_block(secret: str) -> str:
    return f"\n  {secret}\n\n{STORE_WARNING}"


def propagation_line(p: Mapping[str, Any]) -> str:
    if not p["published"]:
        return ("Warning: Redis was unreachable, so the change was not broadcast; every instance picks it "
                "up from Postgres within its poll interval.")
    return f"Confirmed by {p['confirmed']} of {p['instances']} live proxy instance(s)."


def audit_table(events: Sequence[Mapping[str, Any]]) -> str:
    if not events:
        return "No audit events."
    return table(["AT", "ACTOR", "ACTION", "KEY", "REQUEST ID", "DETAILS"],
                 [[e["at"], e["actor"], e["action"], when(e["key_id"]), when(e["request_id"]),
                   ", ".join(f"{k}={v}" for k, v in e["details"].items())] for e in events])


def providers_table(providers: Sequence[Mapping[str, Any]]) -> str:
    if not providers:
        return "No providers are configured."
    return "\n".join(f"{clean(p['name'])}\n" + "\n".join(f"  {clean(m)}" for m in p["models"]) for p in providers)
