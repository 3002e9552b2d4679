"""`verbatim users …`: add users, change their role, disable them, issue API tokens.

Passwords are read with getpass or from stdin (`--password-stdin`), never from the command line,
where every local user could read them in the process list. A token is printed once, on
stdout alone (so `TOKEN=$(verbatim users token NAME)` works), and only its hash is stored.
"""

from __future__ import annotations

import argparse
import difflib
import getpass
import sys
from typing import Any

import asyncpg

from recorder.config import Config

ROLE_NAMES = ("admin", "auditor", "manager", "staff")


def add_users_parser(sub: Any, default_config: str) -> None:
    """The `users` command and its subcommands, on the main parser's subparsers `sub`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", "-c", default=default_config, help="YAML configuration file")
    users = sub.add_parser("users", help="manage who may search and hear calls")
    actions = users.add_subparsers(dest="users_command", required=True)

    def scope_options(p: argparse.ArgumentParser, required: bool) -> None:
        p.add_argument("--role", choices=ROLE_NAMES, required=required)
        p.add_argument("--departments", nargs="+", default=[], metavar="DEPT",
                       help="a manager's departments (comma- or space-separated)")  # fmt: skip
        p.add_argument("--extension", help="a staff member's extension")

    add = actions.add_parser("add", parents=[common], help="add a user")
    add.add_argument("name")
    scope_options(add, required=True)
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.add_argument("--no-password", action="store_true", help="no login: API tokens only")
    roles = actions.add_parser(
        "roles", parents=[common], help="list roles and users; with NAME --role, change a role"
    )
    roles.add_argument("name", nargs="?")
    scope_options(roles, required=False)
    disable = actions.add_parser("disable", parents=[common], help="disable a user at once")
    disable.add_argument("name")
    token = actions.add_parser("token", parents=[common], help="issue an API token (shown once)")
    token.add_argument("name")
    token.add_argument("--label", help="what the token is for")
    password = actions.add_parser("password", parents=[common], help="set a user's password")
    password.add_argument("name")
    password.add_argument("--password-stdin", action="store_true")


def _departments(args: argparse.Namespace, config: Config) -> list[str]:
    found = [d.strip() for item in args.departments for d in item.split(",") if d.strip()]
    known = list(config.calls.departments)
    for dept in found:
        if known and dept not in known:
            close = difflib.get_close_matches(dept, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(known)}"
            raise SystemExit(f"verbatim: department '{dept}' is not in calls.departments{hint}")
    return found


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise SystemExit("verbatim: no terminal to ask for a password: use --password-stdin")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Again: "):
        raise SystemExit("verbatim: the passwords differ")
    return first


def _show(user: Any) -> str:
    scope = ""
    if user.role == "manager":
        scope = f" departments={','.join(user.departments)}"
    elif user.role == "staff":
        scope = f" extension={user.extension}"
    state = " DISABLED" if user.disabled else ""
    login = "" if user.has_password else " (token only)"
    return f"{user.name}: {user.role}{scope}{login}{state}"


async def run_users(config: Config, args: argparse.Namespace) -> int:
    from recorder.api.auth import ROLE_SCOPES, ROLES
    from recorder.api.server import create_pool
    from recorder.api.users import UserError, UserStore

    try:
        pool = await create_pool(config.database.dsn.reveal(), 1, 1)
    except (OSError, asyncpg.PostgresError) as exc:  # the message names host/port, no password
        print(f"verbatim: cannot reach the database: {exc}", file=sys.stderr)
        return 1
    store = UserStore(pool)
    command = args.users_command
    try:
        if command == "add":
            departments = _departments(args, config)
            password = None if args.no_password else _password(args)
            user = await store.add(args.name, args.role, departments, args.extension, password)
            print(f"added {_show(user)}")
        elif command == "roles" and args.name is None:
            for role, permissions in ROLES.items():
                names = ", ".join(sorted(p.value for p in permissions))
                print(f"{role}: sees {ROLE_SCOPES[role]}; may {names}")
            for user in await store.all():
                print(f"  {_show(user)}")
        elif command == "roles":
            if args.role is None:
                raise SystemExit("verbatim: give --role (and --departments or --extension)")
            user = await store.set_role(
                args.name, args.role, _departments(args, config), args.extension
            )
            print(f"changed {_show(user)}")
        elif command == "disable":
            user = await store.disable(args.name)
            print(f"disabled {_show(user)}; sessions ended, tokens revoked")
        elif command == "token":
            token = await store.issue_token(args.name, args.label)
            print("Store this token now: it is shown only once.", file=sys.stderr)
            print(token)
        elif command == "password":
            print(f"password set for {_show(await store.set_password(args.name, _password(args)))}")
    except (UserError, ValueError) as exc:
        print(f"verbatim: {exc}", file=sys.stderr)
        return 2
    finally:
        await pool.close()
    return 0
