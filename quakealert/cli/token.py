"""`quakealert token create|revoke|list`: duty-staff API tokens (only their hashes are stored)."""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime
from pathlib import Path

from quakealert.config import load_settings
from quakealert.errors import QuakealertError
from quakealert.store import open_store
from quakealert.store.auth import ROLES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="TOML config (default: the embedded offline setup)")
    sub = parser.add_subparsers(dest="token_command", required=True)
    create = sub.add_parser("create", help="create a token and print it once, alone on stdout")
    create.add_argument("--role", required=True, choices=ROLES, help="read < duty < admin")
    create.add_argument("--name", default=None, help="who or what holds it (default: the role)")
    create.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    revoke = sub.add_parser("revoke", help="revoke a token by id or unique id prefix")
    revoke.add_argument("id", metavar="ID_OR_PREFIX")
    revoke.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    listing = sub.add_parser("list", help="list tokens (never their secrets)")
    listing.add_argument("--config", type=Path, default=argparse.SUPPRESS)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry, e.g. an arbitrary uid in a container
        return "cli"


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    store = open_store(settings)
    now = datetime.now(UTC)
    try:
        tokens = store.auth
        if args.token_command == "create":
            info, secret = tokens.create_token(args.role, args.name or args.role, now=now)
            tokens.audit(_actor(), "token.create", target=info.id,
                         detail=f"role={info.role} name={info.name}", now=now)
            print(f"created token {info.id} ({info.role}, {info.name}); it is shown only once",
                  file=sys.stderr)
            print(secret)
        elif args.token_command == "revoke":
            info = tokens.revoke_token(tokens.find_token_id(args.id).id, now=now)
            tokens.audit(_actor(), "token.revoke", target=info.id, detail="via cli", now=now)
            print(f"revoked token {info.id} ({info.role}, {info.name})", file=sys.stderr)
        else:
            print(f"{'ID':<8}  {'ROLE':<5}  {'STATE':<7}  {'CREATED':<20}  {'LAST USED':<20}  NAME")
            for t in tokens.list_tokens():
                state = "revoked" if t.revoked_at else "active"
                used = t.last_used_at.strftime("%Y-%m-%dT%H:%M:%SZ") if t.last_used_at else "-"
                print(f"{t.id:<8}  {t.role:<5}  {state:<7}  "
                      f"{t.created_at.strftime('%Y-%m-%dT%H:%M:%SZ'):<20}  {used:<20}  {t.name}")
    except QuakealertError as err:
        print(f"quakealert token: {err}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0
