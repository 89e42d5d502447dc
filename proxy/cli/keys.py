"""`tokenhub keys …`: the admin REST calls from a terminal (TOKENHUB_ADMIN_URL, TOKENHUB_ADMIN_TOKEN).

Bounds and choices come from `proxy.admin.rules` (the server's table); the server checks them, so a
value out of range is its 400, printed like any refusal.

Exit codes: 0 done; 1 the admin endpoint refused (its message and HTTP status are printed); 2 usage
or environment problem (no token, bad URL); 3 the admin endpoint could not be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from proxy.admin import rules
from proxy.cli import limits as cli_limits
from proxy.cli import table as fmt
from proxy.cli import usage
from proxy.cli.client import DEFAULT_URL, AdminClient, AdminError, Unreachable, check_url, key_path

Command = Callable[[AdminClient, argparse.Namespace], Any]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `keys` command group."""
    keys = sub.add_parser("keys", help="issue, list, change, rotate and revoke keys (admin API)",
                          description="Talks to the admin endpoint at $TOKENHUB_ADMIN_URL (default "
                                      f"{DEFAULT_URL}) with the token in $TOKENHUB_ADMIN_TOKEN.")
    ksub = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the API's JSON answer (for scripts)")
    _add_create(ksub, common)
    _add_list(ksub, common)
    _command(ksub, common, "show", "show one key", _show).add_argument("id", help="key id")
    _add_update(ksub, common)
    _command(ksub, common, "revoke", "revoke a key now (idempotent)", _revoke).add_argument("id", help="key id")
    rotate = _command(ksub, common, "rotate", "replace a key; the old one works for --grace seconds", _rotate)
    rotate.add_argument("id", help="key id")
    rotate.add_argument("--grace", type=float, default=float(rules.GRACE_SECONDS.default), metavar="SECONDS",
                        help="how long the old key keeps working (default 0: it stops now; "
                             f"at most {rules.GRACE_SECONDS.high})")
    audit = _command(ksub, common, "audit", "show the audit log, newest first", _audit)
    audit.add_argument("--key", dest="key_id", help="only events of this key id")
    audit.add_argument("--limit", type=int, help=f"at most this many events (default {rules.PAGE.default}, "
                                                  f"at most {rules.PAGE.high})")
    _command(ksub, common, "providers", "list configured providers and models (for restrictions)", _providers)
    usage.register(ksub, lambda name, help_, fn: _command(ksub, common, name, help_, fn))


def _command(ksub: Any, common: argparse.ArgumentParser, name: str, help_: str, fn: Command) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = ksub.add_parser(name, help=help_, description=help_, parents=[common])
    parser.set_defaults(func=lambda args: run(fn, args))
    return parser


def _add_create(ksub: Any, common: argparse.ArgumentParser) -> None:
    p = _command(ksub, common, "create", "create a key (shown once)", _create)
    p.add_argument("--name", required=True, help="e.g. production, dev, staging-team-a")
    p.add_argument("--account", help=f"the tenant the key belongs to (default: {rules.ACCOUNT_DEFAULT})")
    p.add_argument("--expires", metavar="RFC3339", help="expiry, e.g. 2030-01-31T00:00:00Z")
    p.add_argument("--model", action="append", default=[], metavar="PROVIDER/MODEL", help="allow this model (repeat)")
    p.add_argument("--provider", action="append", default=[], metavar="PROVIDER", help="allow this provider (repeat)")
    cli_limits.add_flags(p)


def _add_list(ksub: Any, common: argparse.ArgumentParser) -> None:
    p = _command(ksub, common, "list", "list keys, newest first", _list)
    p.add_argument("--account", help="only this account")
    p.add_argument("--status", choices=rules.STATUSES, help="only keys in this status")
    p.add_argument("--limit", type=int, help=f"page size (default {rules.PAGE.default}, at most {rules.PAGE.high})")
    p.add_argument("--cursor", help="continue after a previous page")


def _add_update(ksub: Any, common: argparse.ArgumentParser) -> None:
    p = _command(ksub, common, "update", "change a key's name, expiry or restrictions", _update)
    p.add_argument("id", help="key id")
    p.add_argument("--name", help="new name")
    expiry = p.add_mutually_exclusive_group()
    expiry.add_argument("--expires", metavar="RFC3339", help="new expiry")
    expiry.add_argument("--clear-expiry", action="store_true", help="remove the expiry")
    models = p.add_mutually_exclusive_group()
    models.add_argument("--model", action="append", metavar="PROVIDER/MODEL", help="allowed models (replaces; repeat)")
    models.add_argument("--clear-models", action="store_true", help="allow every model")
    providers = p.add_mutually_exclusive_group()
    providers.add_argument("--provider", action="append", metavar="PROVIDER", help="allowed providers (replaces)")
    providers.add_argument("--clear-providers", action="store_true", help="allow every provider")
    cli_limits.add_flags(p, clearing=True)


def run(fn: Command, args: argparse.Namespace) -> int:
    """Call, print, and map failures to exit codes with a one-line message (never a traceback)."""
    token = os.environ.get("TOKENHUB_ADMIN_TOKEN", "")
    if not token:
        return _fail("TOKENHUB_ADMIN_TOKEN is not set: export the admin token of the server you call", 2)
    try:
        client = AdminClient(check_url(os.environ.get("TOKENHUB_ADMIN_URL") or DEFAULT_URL), token)
        answer = fn(client, args)
    except ValueError as exc:
        return _fail(str(exc), 2)
    except AdminError as exc:
        return _fail(f"the admin endpoint refused: {exc}", 1)
    except Unreachable as exc:
        return _fail(f"{exc} (is `tokenhub serve` running there? set TOKENHUB_ADMIN_URL)", 3)
    if args.json:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
    else:
        print(_readable(args.keys_command, answer))
    return 0


def _fail(message: str, code: int) -> int:
    print(f"tokenhub: {message}", file=sys.stderr)
    return code


def _readable(command: str, answer: Any) -> str:
    if command == "create":
        return f"Created key {fmt.clean(answer['id'])}:\n{fmt.key_block(answer)}\n{fmt.secret_block(answer['key'])}"
    if command == "rotate":
        old = answer["previous"]
        return (f"Rotated {fmt.clean(old['id'])} to {fmt.clean(answer['id'])}:\n{fmt.key_block(answer)}\n"
                f"The old key stops working at {fmt.when(old['revoked_at'])}. "
                f"{fmt.propagation_line(answer['propagation'])}\n{fmt.secret_block(answer['key'])}")
    if command == "list":
        more = answer["next_cursor"]
        reminder = answer.get("rotation_reminder_days")
        due = f"\n\nROTATE: older than {reminder} days ([keystore] rotation_reminder_days): rotate these keys."
        flagged = any("ROTATE" in fmt.age(k, reminder) for k in answer["data"])
        return (fmt.key_table(answer["data"], reminder) + (due if flagged else "")
                + (f"\n\nMore keys: --cursor {more}" if more else ""))
    if command in ("update", "revoke"):
        return f"{fmt.key_block(answer)}\n{fmt.propagation_line(answer['propagation'])}"
    if command == "audit":
        return fmt.audit_table(answer["data"])
    if command == "providers":
        return fmt.providers_table(answer["data"])
    if command == "usage":
        return usage.readable(answer)
    return fmt.key_block(answer)


def _create(client: AdminClient, args: argparse.Namespace) -> Any:
    body: dict[str, Any] = {"name": args.name, "allowed_models": args.model, "allowed_providers": args.provider}
    if args.account is not None:
        body["account"] = args.account
    if args.expires is not None:
        body["expires_at"] = args.expires
    if (limits := cli_limits.body(args)) is not None:
        body["limits"] = limits
    return client.call("POST", "/admin/keys", body=body)


def _list(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.call("GET", "/admin/keys", query={"account": args.account, "status": args.status,
                                                    "limit": args.limit, "cursor": args.cursor})


def _show(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.call("GET", key_path(args.id))


def _update(client: AdminClient, args: argparse.Namespace) -> Any:
    body: dict[str, Any] = {}
    if args.name is not None:
        body["name"] = args.name
    if args.expires is not None or args.clear_expiry:
        body["expires_at"] = args.expires
    if args.model is not None or args.clear_models:
        body["allowed_models"] = args.model or []
    if args.provider is not None or args.clear_providers:
        body["allowed_providers"] = args.provider or []
    if (limits := cli_limits.body(args)) is not None:
        body["limits"] = limits  # merged into the key's by the server
    if not body:
        raise ValueError("nothing to update: give --name, --expires/--clear-expiry, --model/--clear-models, "
                         "--provider/--clear-providers or a limit flag (--rpm … / --clear-limit)")
    return client.call("PATCH", key_path(args.id), body=body)


def _revoke(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.call("POST", key_path(args.id, "revoke"))


def _rotate(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.call("POST", key_path(args.id, "rotate"), body={"grace_seconds": args.grace})


def _audit(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.call("GET", "/admin/audit", query={"key_id": args.key_id, "limit": args.limit})


def _providers(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.call("GET", "/admin/providers")
