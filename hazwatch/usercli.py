"""``hazwatch user add|passwd|remove|list`` and ``hazwatch audit verify``.

Passwords come from a prompt (asked twice) or, with ``--password-stdin``, from the first
line of stdin; never from the command line, where ``ps`` and shell history would keep
them. Every change is appended to the audit log as ``cli:<login name>``.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from typing import Any

from dashboards.audit import AuditLog
from dashboards.users import ConsoleDb, UserError
from hazwatch.errors import ConfigError, HazwatchError
from hazwatch.registry import load_registry
from hazwatch.settings import Settings, load_settings

EXIT_BROKEN = 1


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config) if args.config else load_settings(None)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid{os.getuid()}"


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise HazwatchError("the two passwords differ")
    return first


def _check_grants(settings: Settings, args: argparse.Namespace) -> None:
    """Grants name grids and enterprises of the registry (when it can be read)."""
    if not settings.registry.is_dir():
        return
    registry = load_registry(settings.registry)
    for grid in args.grid:
        if grid not in registry.grids and all(
            e.grid != grid for e in registry.enterprises.values()
        ):
            raise ConfigError(f"--grid {grid!r}: no such grid in {settings.registry}")
    for eid in args.enterprise:
        if eid not in registry.enterprises:
            raise ConfigError(f"--enterprise {eid!r}: no such enterprise in {settings.registry}")


def user_command(args: argparse.Namespace) -> int:
    settings = _settings(args)
    db = ConsoleDb(settings.console.db)
    audit = AuditLog(db)
    now_ms = time.time_ns() // 1_000_000
    out = sys.stdout

    def audited(action: str, target: str, detail: dict[str, Any] | None = None) -> None:
        audit.append(
            actor=_actor(),
            action=action,
            target=target,
            detail=detail,
            address="local",
            now_ms=now_ms,
        )

    try:
        if args.user_command == "list":
            for u in db.users():
                grants = ", ".join(
                    [f"grid {g}" for g in u.grids] + [f"enterprise {e}" for e in u.enterprises]
                )
                out.write(f"{u.username}\t{u.role}\t{u.lang}\t{grants or 'all'}\n")
            return 0
        if args.user_command == "add":
            _check_grants(settings, args)
            user = db.add(
                args.username,
                _password(args),
                args.role,
                grids=tuple(args.grid),
                enterprises=tuple(args.enterprise),
                lang=args.lang,
                now_ms=now_ms,
            )
            detail = {"role": user.role, "grids": user.grids, "enterprises": user.enterprises}
            audited("user_add", user.username, detail)
            out.write(f"added {user.username} ({user.role}) to {settings.console.db}\n")
        elif args.user_command == "passwd":
            db.passwd(args.username, _password(args))
            audited("user_passwd", args.username)
            out.write(f"new password for {args.username}; its sessions ended\n")
        elif args.user_command == "remove":
            if not db.remove(args.username):
                raise HazwatchError(f"no user {args.username!r} in {settings.console.db}")
            audited("user_remove", args.username)
            out.write(f"removed {args.username}\n")
    except UserError as exc:
        raise HazwatchError(str(exc)) from exc
    finally:
        db.close()
    return 0


def audit_command(args: argparse.Namespace) -> int:
    settings = _settings(args)
    db = ConsoleDb(settings.console.db)
    try:
        checked, broken = AuditLog(db).verify()
    finally:
        db.close()
    if broken is not None:
        sys.stdout.write(
            f"audit log {settings.console.db}: BROKEN at row {broken.id}: {broken.reason} "
            f"({checked} rows before it are intact)\n"
        )
        return EXIT_BROKEN
    sys.stdout.write(f"audit log {settings.console.db}: {checked} rows, chain intact\n")
    return 0
