"""What the proxies themselves logged during the run: answers by status, and unexpected errors."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from .report import Table

ACCESS_LOGGER = "tokenhub.access"


def summarize_log(path: Path) -> tuple[Counter[str], Counter[str]]:
    """(access-log answers by status code, ERROR records by message) of one proxy's JSON log."""
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict):
            continue
        if record.get("logger") == ACCESS_LOGGER:
            parts = str(record.get("message", "")).split()
            statuses[parts[2] if len(parts) > 2 else "?"] += 1
        elif record.get("level") in ("ERROR", "CRITICAL"):
            errors[_error_name(record)] += 1
    return statuses, errors


def _error_name(record: dict[str, object]) -> str:
    """The message, plus the exception's last line when there is one."""
    exception = str(record.get("exception") or "").strip().splitlines()
    return f"{record.get('message')}" + (f": {exception[-1][:120]}" if exception else "")


def proxy_logs(run_dir: Path) -> Table:
    table = Table(
        "What the proxies logged during the run",
        ["log", "answers by status", "ERROR records"],
    )
    for path in sorted(run_dir.glob("proxy*.log")):
        statuses, errors = summarize_log(path)
        answers = ", ".join(f"{code}×{n:,}" for code, n in sorted(statuses.items()))
        problems = "; ".join(f"{n}× {name}" for name, n in errors.most_common(3)) or "none"
        table.add(path.name, answers or "none", problems)
    table.notes.append(
        "401/429 answers are expected (cold-key, flood, revocation scenarios). ERROR records are not."
    )
    return table
