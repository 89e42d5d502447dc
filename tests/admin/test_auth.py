"""The admin token: required on every `/admin/` call, compared against every named token, never open."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict

from proxy.admin.api import _digest, match_token
from tests.support.admin import ADMIN_TOKEN, CI_TOKEN, Client, error_of, expect
from tests.support.procs import write_config

ROUTES = [("POST", "/admin/keys"), ("GET", "/admin/keys"), ("GET", "/admin/keys/AAAAAAAAAAAA"),
          ("PATCH", "/admin/keys/AAAAAAAAAAAA"), ("POST", "/admin/keys/AAAAAAAAAAAA/revoke"),
          ("POST", "/admin/keys/AAAAAAAAAAAA/rotate"), ("GET", "/admin/audit"), ("GET", "/admin/providers"),
          ("GET", "/admin/openapi.json"), ("GET", "/admin/no-such-path"), ("DELETE", "/admin/keys")]
BAD_HEADERS: list[tuple[str, list[tuple[str, str]]]] = [
    ("none", []),
    ("wrong token", [("Authorization", "Bearer not-the-admin-token-at-all")]),
    ("token prefix", [("Authorization", f"Bearer {ADMIN_TOKEN[:-1]}")]),
    ("token plus a character", [("Authorization", f"Bearer {ADMIN_TOKEN}x")]),
    ("basic scheme", [("Authorization", f"Basic {ADMIN_TOKEN}")]),
    ("no scheme", [("Authorization", ADMIN_TOKEN)]),
    ("empty bearer", [("Authorization", "Bearer ")]),
    ("two headers", [("Authorization", f"Bearer {ADMIN_TOKEN}"), ("Authorization", f"Bearer {CI_TOKEN}")]),
    ("a TokenHub key", [("Authorization", "Bearer th-AAAAAAAAAAAA_" + "a" * 38)]),
    ("token in x-api-key", [("x-api-key", ADMIN_TOKEN)]),
    ("non-ASCII", [("Authorization", "Bearer jéton-secret-0123456789")]),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(("headers",), [(h,) for _, h in BAD_HEADERS], ids=[n for n, _ in BAD_HEADERS])
async def test_every_admin_call_needs_the_token(anon: Client, method: str, path: str,
                                                headers: list[tuple[str, str]]) -> None:
    resp = await anon.request(method, path, headers=CIMultiDict(headers), json={"name": "x"})
    err = error_of(await expect(resp, 401))
    assert err["type"] == "authentication_error" and err["code"] == "invalid_admin_token"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert ADMIN_TOKEN not in await resp.text()


async def test_nothing_is_created_without_the_token(anon: Client, api: Client) -> None:
    await expect(await anon.post("/admin/keys", json={"name": "x"}), 401)
    assert (await expect(await api.get("/admin/keys"), 200))["data"] == []


async def test_each_named_token_acts_under_its_name(anon: Client, api: Client) -> None:
    ci = {"Authorization": f"Bearer {CI_TOKEN}"}
    key = await expect(await anon.post("/admin/keys", json={"name": "from-ci"}, headers=ci), 201)
    await expect(await api.post(f"/admin/keys/{key['id']}/revoke"), 200)
    events = (await expect(await api.get("/admin/audit", params={"key_id": key["id"]}), 200))["data"]
    assert [(e["action"], e["actor"]) for e in events] == [("key.revoke", "admin"), ("key.create", "ci")]


@pytest.mark.parametrize(("presented", "expected"), [
    ("alpha-token-0000000000", "alpha"), ("beta-token-11111111111", "beta"), ("gamma", None),
    ("alpha-token-000000000", None), ("", None), ("alpha-token-0000000000 ", None)])
def test_match_token_names_the_matching_token(presented: str, expected: str | None) -> None:
    digests = {"alpha": _digest("alpha-token-0000000000"), "beta": _digest("beta-token-11111111111")}
    assert match_token(presented, digests) == expected


def _env_without_tokens() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TOKENHUB_")}


def test_serve_refuses_to_start_without_an_admin_token(tmp_path: Path, database_url: str, redis_url: str,
                                                        namespace: str) -> None:
    config = write_config(tmp_path, database_url=database_url, redis_url=redis_url, namespace=namespace)
    done = subprocess.run([sys.executable, "-m", "proxy", "serve", "--config", str(config)],
                          env=_env_without_tokens(), capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert "no admin token" in done.stderr and "TOKENHUB_ADMIN_TOKEN" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_serve_refuses_a_short_admin_token(tmp_path: Path, database_url: str, redis_url: str,
                                           namespace: str) -> None:
    config = write_config(tmp_path, database_url=database_url, redis_url=redis_url, namespace=namespace)
    env = _env_without_tokens() | {"TOKENHUB_ADMIN_TOKEN": "short"}
    done = subprocess.run([sys.executable, "-m", "proxy", "serve", "--config", str(config)],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "at least 16 characters" in done.stderr
    assert "Traceback" not in done.stderr


async def test_the_token_never_appears_in_an_answer(api: Client, key_object: dict[str, Any]) -> None:
    for path in ("/admin/keys", f"/admin/keys/{key_object['id']}", "/admin/audit", "/admin/openapi.json"):
        resp = await api.get(path)
        assert ADMIN_TOKEN not in await resp.text() and CI_TOKEN not in await resp.text()
