"""The validation table (`proxy/admin/rules.py`) is what the API, the keystore, the OpenAPI document,
the CLI and the page all use: each bound is accepted at its edge and refused one step past it."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from proxy.admin import openapi, page, rules, wire
from proxy.cli import keys as cli_keys
from tests.support.admin import Client, create, error_of, expect

EDGES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    # (rule, a body at the edge: 201, a body one step past it: 400 naming the rule's field)
    ("name", {"name": "n" * rules.NAME_MAX}, {"name": "n" * (rules.NAME_MAX + 1)}),
    ("account", {"name": "x", "account": "a" * rules.ACCOUNT_MAX},
     {"name": "x", "account": "a" * (rules.ACCOUNT_MAX + 1)}),
    ("allowed_models", {"name": "x", "allowed_models": ["openai/gpt-4o"] * rules.MAX_LIST},
     {"name": "x", "allowed_models": ["openai/gpt-4o"] * (rules.MAX_LIST + 1)}),
]


@pytest.mark.parametrize(("field", "edge", "past"), EDGES, ids=[e[0] for e in EDGES])
async def test_create_bounds_are_the_tables(api: Client, field: str, edge: dict[str, Any],
                                            past: dict[str, Any]) -> None:
    await expect(await api.post("/admin/keys", json=edge), 201)
    assert error_of(await expect(await api.post("/admin/keys", json=past), 400))["param"] == field


@pytest.mark.parametrize("value", [rules.PAGE.low, rules.PAGE.high])
async def test_page_limit_edges_are_accepted(api: Client, value: int) -> None:
    for path in ("/admin/keys", "/admin/audit"):
        await expect(await api.get(path, params={"limit": str(value)}), 200)


@pytest.mark.parametrize("value", [rules.PAGE.low - 1, rules.PAGE.high + 1])
async def test_page_limit_past_the_edges_is_refused(api: Client, value: int) -> None:
    for path in ("/admin/keys", "/admin/audit"):
        body = await expect(await api.get(path, params={"limit": str(value)}), 400)
        assert error_of(body)["param"] == "limit"


async def test_grace_edges(api: Client) -> None:
    key = await create(api)
    past = {"grace_seconds": rules.GRACE_SECONDS.high + 1}
    assert error_of(await expect(await api.post(f"/admin/keys/{key['id']}/rotate", json=past), 400))["param"] \
        == "grace_seconds"
    await expect(await api.post(f"/admin/keys/{key['id']}/rotate",
                                json={"grace_seconds": rules.GRACE_SECONDS.high}), 201)


async def test_every_status_filters_and_no_other(api: Client) -> None:
    for status in rules.STATUSES:
        await expect(await api.get("/admin/keys", params={"status": status}), 200)
    body = await expect(await api.get("/admin/keys", params={"status": "paused"}), 400)
    assert error_of(body)["param"] == "status"


async def test_a_key_object_has_exactly_the_wire_tables_fields(api: Client) -> None:
    key = await create(api)
    listed = (await expect(await api.get("/admin/keys"), 200))["data"][0]
    assert list(listed) == list(wire.KEY_FIELDS)
    assert list(key) == [*wire.KEY_FIELDS, "key"]


def test_openapi_is_written_from_the_tables() -> None:
    schemas = openapi.document()["components"]["schemas"]
    assert list(schemas["Key"]["properties"]) == list(wire.KEY_FIELDS)
    assert schemas["CreateKey"]["properties"]["name"]["maxLength"] == rules.NAME_MAX
    assert schemas["RotateKey"]["properties"]["grace_seconds"]["maximum"] == rules.GRACE_SECONDS.high
    assert schemas["Key"]["properties"]["status"]["enum"] == list(rules.STATUSES)
    assert set(schemas["CreateKey"]["properties"]) == wire.CREATE_FIELDS
    assert set(schemas["UpdateKey"]["properties"]) == wire.UPDATE_FIELDS


def test_the_cli_offers_the_tables_statuses() -> None:
    parser = argparse.ArgumentParser()
    cli_keys.register(parser.add_subparsers())
    for status in rules.STATUSES:
        assert parser.parse_args(["keys", "list", "--status", status]).status == status
    with pytest.raises(SystemExit):
        parser.parse_args(["keys", "list", "--status", "paused"])


def test_the_page_form_takes_its_limits_from_the_table() -> None:
    html = page.render_page()
    assert f'id="key-name" name="name" required autofocus maxlength="{rules.NAME_MAX}"' in html
    assert f'id="key-account" name="account" maxlength="{rules.ACCOUNT_MAX}"' in html
    assert all(f'<option value="{s}">' in html for s in rules.STATUSES)
    assert "{{" not in html
