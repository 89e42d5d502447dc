"""`tokenhub keys usage` as a subprocess against the admin listener: the table and --json."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from keystore.usage import UsageRow

from tests.support.metering import ADMIN_TOKEN, Stack


async def tokenhub(metered_stack: Stack, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENHUB_")} | {
        "TOKENHUB_ADMIN_URL": str(metered_stack.admin.make_url("")).rstrip("/"), "TOKENHUB_ADMIN_TOKEN": ADMIN_TOKEN}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "proxy", "keys", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_keys_usage_table_and_json(metered_stack: Stack) -> None:
    _, kid = await metered_stack.issue()
    hour = datetime(2030, 3, 4, 5, tzinfo=UTC)
    await metered_stack.meter.db.write_batch(uuid.uuid4(), [
        UsageRow(kid, hour, "openai/gpt-4o-mini", 3, 1, 57, 6, 9, Decimal("0.0000145")),
        UsageRow(kid, hour, "openai/other", 1, 0, 10, 0, 2, Decimal(0))])
    span = ("--from", "2030-03-01T00:00:00Z", "--to", "2030-04-01T00:00:00Z")
    answer = json.loads(await tokenhub(metered_stack, "usage", kid, *span, "--by-model", "--json"))
    assert [(b["model"], b["input_tokens"]) for b in answer["data"]] == [("openai/gpt-4o-mini", 57), ("openai/other", 10)]
    table = (await tokenhub(metered_stack, "usage", kid, *span, "--granularity", "month")).splitlines()
    assert table[1].split() == ["START", "MODEL", "REQUESTS", "UNMETERED", "INPUT", "CACHED", "OUTPUT", "USD"]
    assert table[2].split() == ["2030-03-01T00:00:00Z", "-", "4", "1", "67", "6", "11", "0.000015"]
    assert table[3].split() == ["TOTAL", "4", "1", "67", "6", "11", "0.000015"]
