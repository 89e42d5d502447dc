"""`tokenhub keys …` run as a real subprocess against a live admin listener."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.admin import ADMIN_TOKEN, AdminStack
from tests.support.procs import free_port


@dataclass
class Done:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


async def tokenhub(*args: str, url: str, token: str | None = ADMIN_TOKEN) -> Done:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENHUB_")} | {"TOKENHUB_ADMIN_URL": url}
    if token is not None:
        env["TOKENHUB_ADMIN_TOKEN"] = token
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "proxy", "keys", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert "Traceback" not in out.decode() + err.decode(), err.decode()
    return Done(int(proc.returncode or 0), out.decode(), err.decode())


@pytest.fixture
def url(admin_stack: AdminStack) -> str:
    return str(admin_stack.admin.make_url("")).rstrip("/")


async def test_create_prints_the_key_once_with_a_warning(url: str) -> None:
    done = await tokenhub("create", "--name", "production", "--account", "acme", "--model", "openai/gpt-4o",
                          "--expires", "2099-01-01T00:00:00Z", url=url)
    assert done.code == 0, done.err
    key = next(w for w in done.out.split() if w.startswith("th-") and "…" not in w)
    assert done.out.count(key) == 1 and "shown only once" in done.out
    assert "production" in done.out and "acme" in done.out and "openai/gpt-4o" in done.out
    key_id = key[3:15]
    shown = await tokenhub("show", key_id, url=url)
    assert shown.code == 0 and key_id in shown.out and key not in shown.out


async def test_json_output_is_the_api_answer(url: str) -> None:
    created = (await tokenhub("create", "--name", "ci", "--provider", "local", "--json", url=url)).json()
    assert created["key"].startswith("th-") and created["allowed_providers"] == ["local"]
    listed = (await tokenhub("list", "--json", url=url)).json()
    assert [k["id"] for k in listed["data"]] == [created["id"]] and listed["next_cursor"] is None
    shown = (await tokenhub("show", created["id"], "--json", url=url)).json()
    assert shown == {k: v for k, v in created.items() if k != "key"}


async def test_list_prints_a_table_and_filters(url: str) -> None:
    a = (await tokenhub("create", "--name", "alpha", "--account", "acme", "--json", url=url)).json()
    b = (await tokenhub("create", "--name", "beta", "--account", "globex", "--json", url=url)).json()
    done = await tokenhub("list", "--account", "acme", url=url)
    assert done.code == 0 and done.out.splitlines()[0].split()[:4] == ["ID", "NAME", "ACCOUNT", "STATUS"]
    assert a["id"] in done.out and b["id"] not in done.out and "alpha" in done.out
    await tokenhub("revoke", b["id"], url=url)
    revoked = (await tokenhub("list", "--status", "revoked", "--json", url=url)).json()
    assert [k["id"] for k in revoked["data"]] == [b["id"]]


async def test_update_changes_and_clears(url: str) -> None:
    key = (await tokenhub("create", "--name", "dev", "--expires", "2099-01-01T00:00:00Z", "--json", url=url)).json()
    done = await tokenhub("update", key["id"], "--name", "dev2", "--model", "local/llama-3.1-8b", url=url)
    assert done.code == 0 and "dev2" in done.out and "Confirmed by 1 of 1" in done.out
    cleared = (await tokenhub("update", key["id"], "--clear-expiry", "--clear-models", "--json", url=url)).json()
    assert cleared["expires_at"] is None and cleared["allowed_models"] == [] and cleared["name"] == "dev2"
    nothing = await tokenhub("update", key["id"], url=url)
    assert nothing.code == 2 and "nothing to update" in nothing.err


async def test_revoke_reports_confirmation_and_is_idempotent(url: str) -> None:
    key = (await tokenhub("create", "--name", "gone", "--json", url=url)).json()
    done = await tokenhub("revoke", key["id"], url=url)
    assert done.code == 0 and "revoked" in done.out and "Confirmed by 1 of 1 live proxy instance" in done.out
    again = (await tokenhub("revoke", key["id"], "--json", url=url)).json()
    assert again["status"] == "revoked" and again["propagation"]["published"] is True


async def test_rotate_prints_the_new_key_and_the_grace(url: str) -> None:
    old = (await tokenhub("create", "--name", "prod", "--model", "openai/gpt-4o", "--json", url=url)).json()
    done = await tokenhub("rotate", old["id"], "--grace", "600", url=url)
    assert done.code == 0 and f"Rotated {old['id']} to" in done.out and "stops working at" in done.out
    assert "shown only once" in done.out and "openai/gpt-4o" in done.out
    new = (await tokenhub("list", "--status", "active", "--json", url=url)).json()["data"]
    assert {k["id"] for k in new} >= {old["id"]} and len(new) == 2


async def test_audit_and_providers(url: str) -> None:
    key = (await tokenhub("create", "--name", "audited", "--json", url=url)).json()
    audit = await tokenhub("audit", "--key", key["id"], url=url)
    assert audit.code == 0 and "key.create" in audit.out and "admin" in audit.out
    providers = await tokenhub("providers", url=url)
    assert providers.code == 0 and "openai/gpt-4o-mini" in providers.out and "local/llama-3.1-8b" in providers.out


@pytest.mark.parametrize(("args", "needle"), [
    (["create", "--name", "x", "--expires", "2001-01-01T00:00:00Z"], "(field: expires_at) [HTTP 400"),
    (["create", "--name", "x", "--model", "openai/gpt-5"], "unknown model 'openai/gpt-5'"),
    (["create", "--name", "x", "--expires", "next week"], "RFC 3339"),
    (["show", "AAAAAAAAAAAA"], "[HTTP 404"),
    (["rotate", "AAAAAAAAAAAA", "--grace", "-5"], "grace_seconds"),
])
async def test_server_errors_are_printed_clearly(url: str, args: list[str], needle: str) -> None:
    done = await tokenhub(*args, url=url)
    assert done.code == 1 and done.out == ""
    assert done.err.startswith("tokenhub: the admin endpoint refused:") and needle in done.err


async def test_a_wrong_token_is_a_clear_401(url: str) -> None:
    done = await tokenhub("list", url=url, token="wrong-token-0123456789")
    assert done.code == 1 and "Invalid admin token" in done.err and "HTTP 401" in done.err


async def test_no_token_is_a_usage_error(url: str) -> None:
    done = await tokenhub("list", url=url, token=None)
    assert done.code == 2 and "TOKENHUB_ADMIN_TOKEN is not set" in done.err


async def test_nothing_listening_is_a_clear_message() -> None:
    done = await tokenhub("list", url=f"http://127.0.0.1:{free_port()}")
    assert done.code == 3 and "cannot reach the admin endpoint" in done.err and "refused" in done.err


async def test_a_bad_url_is_a_usage_error() -> None:
    done = await tokenhub("list", url="ftp://example")
    assert done.code == 2 and "TOKENHUB_ADMIN_URL" in done.err
