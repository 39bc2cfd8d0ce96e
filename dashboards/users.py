"""The console's users and sessions, in SQLite (``[console] db``, default ``var/console.db``).

A user has a role (``admin``, ``operator``, ``grid_officer``, ``enterprise``), grants
(grids and/or enterprises; what the role may see, docs/contract.md "Console login"), a
language and an argon2id password hash. A session is a random token in the
``hz_session`` cookie; the database keeps only its SHA-256, so a copy of ``console.db``
logs nobody in. Each session carries its own CSRF token.

The same file holds the audit log (:mod:`dashboards.audit`). The connection is shared by
the event loop and, in ``hazwatch user ...``, by the command line; every write is one
short transaction, and SQLite's own locking (WAL, busy timeout) serialises the two.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

Role = Literal["admin", "operator", "grid_officer", "enterprise"]
Lang = Literal["zh-CN", "en"]
ROLES: tuple[Role, ...] = get_args(Role)
LANGS: tuple[Lang, ...] = get_args(Lang)
USERNAME_PATTERN = r"^[A-Za-z0-9_.@-]{1,64}$"
_USERNAME = re.compile(USERNAME_PATTERN)
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
SESSION_HOURS = 12
"""A session lasts one shift and a half; then the user logs in again."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    grids TEXT NOT NULL DEFAULT '',
    enterprises TEXT NOT NULL DEFAULT '',
    lang TEXT NOT NULL DEFAULT 'zh-CN',
    hash TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_sha256 TEXT PRIMARY KEY,
    username TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(username);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    address TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
"""


class UserError(ValueError):
    """A user command that cannot be done; the message says why (one line)."""


@dataclass(frozen=True)
class User:
    username: str
    role: Role
    grids: tuple[str, ...]
    enterprises: tuple[str, ...]
    lang: Lang


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str
    expires_ms: int


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _split(text: str) -> tuple[str, ...]:
    return tuple(part for part in text.split(",") if part)


class ConsoleDb:
    """``console.db``: users, sessions and the audit table."""

    def __init__(self, path: Path, hasher: PasswordHasher | None = None) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=10.0
        )
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.executescript(_SCHEMA)
        # Password hashes: owner-only, like the journal.
        path.chmod(0o600)
        self._hasher = hasher or PasswordHasher()  # argon2id, RFC 9106 low-memory
        self._dummy: str | None = None
        """A hash of nothing, for unknown users: made on first need (it costs as much
        CPU as a login, which start-up should not pay)."""

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (``BEGIN IMMEDIATE``): the audit chain
        reads its last hash and appends under the same lock."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def read(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, params))

    # --- users ---------------------------------------------------------------------

    def add(
        self,
        username: str,
        password: str,
        role: str,
        *,
        grids: tuple[str, ...] = (),
        enterprises: tuple[str, ...] = (),
        lang: str = "zh-CN",
        now_ms: int,
    ) -> User:
        _check_username(username)
        _check_password(password)
        if role not in ROLES:
            raise UserError(f"role: one of {', '.join(ROLES)}, got {role!r}")
        if lang not in LANGS:
            raise UserError(f"lang: one of {', '.join(LANGS)}, got {lang!r}")
        if role == "grid_officer" and not grids:
            raise UserError("a grid_officer needs --grid (the grids it looks after)")
        if role == "enterprise" and not enterprises:
            raise UserError("an enterprise user needs --enterprise (its own enterprise)")
        for name in (*grids, *enterprises):
            if not _USERNAME.fullmatch(name) or "," in name:
                raise UserError(f"grant {name!r}: expected an id of A-Z a-z 0-9 _ -")
        digest = self._hasher.hash(password)
        try:
            with self.transaction() as conn:
                conn.execute(
                    "INSERT INTO users (username, role, grids, enterprises, lang, hash, "
                    "created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (username, role, ",".join(grids), ",".join(enterprises), lang, digest, now_ms),
                )
        except sqlite3.IntegrityError as exc:
            raise UserError(f"user {username!r} exists already") from exc
        user = self.get(username)
        assert user is not None
        return user

    def remove(self, username: str) -> bool:
        with self.transaction() as conn:
            return conn.execute("DELETE FROM users WHERE username = ?", (username,)).rowcount == 1

    def passwd(self, username: str, password: str) -> None:
        """New password; every session of the user ends."""
        _check_password(password)
        digest = self._hasher.hash(password)
        with self.transaction() as conn:
            changed = conn.execute(
                "UPDATE users SET hash = ? WHERE username = ?", (digest, username)
            ).rowcount
            if not changed:
                raise UserError(f"no user {username!r}")
            conn.execute("DELETE FROM sessions WHERE username = ?", (username,))

    def set_lang(self, username: str, lang: Lang) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE users SET lang = ? WHERE username = ?", (lang, username))

    def get(self, username: str) -> User | None:
        rows = self.read(
            "SELECT username, role, grids, enterprises, lang FROM users WHERE username = ?",
            (username,),
        )
        return _user(rows[0]) if rows else None

    def users(self) -> list[User]:
        rows = self.read(
            "SELECT username, role, grids, enterprises, lang FROM users ORDER BY username"
        )
        return [_user(row) for row in rows]

    def user_count(self) -> int:
        return int(self.read("SELECT count(*) FROM users")[0][0])

    def check_password(self, username: str, password: str) -> User | None:
        """The user if ``password`` is theirs; the same argon2 work when there is no such
        user, so the answer's timing does not tell which names exist."""
        rows = self.read("SELECT hash FROM users WHERE username = ?", (username,))
        digest: str
        if rows:
            digest = rows[0]["hash"]
        else:
            if self._dummy is None:
                self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
            digest = self._dummy
        try:
            self._hasher.verify(digest, password)
        except (VerificationError, InvalidHashError):
            return None
        if not rows:
            return None
        if self._hasher.check_needs_rehash(digest):
            with self.transaction() as conn:
                conn.execute(
                    "UPDATE users SET hash = ? WHERE username = ?",
                    (self._hasher.hash(password), username),
                )
        return self.get(username)

    # --- sessions ------------------------------------------------------------------

    def open_session(self, username: str, now_ms: int) -> tuple[str, Session]:
        """A new session: ``(token for the cookie, session)``; old expired ones go."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        expires_ms = now_ms + SESSION_HOURS * 3_600_000
        with self.transaction() as conn:
            conn.execute("DELETE FROM sessions WHERE expires_ms <= ?", (now_ms,))
            conn.execute(
                "INSERT INTO sessions (token_sha256, username, csrf, created_ms, expires_ms) "
                "VALUES (?, ?, ?, ?, ?)",
                (_token_hash(token), username, csrf, now_ms, expires_ms),
            )
        user = self.get(username)
        assert user is not None
        return token, Session(user=user, csrf=csrf, expires_ms=expires_ms)

    def session(self, token: str, now_ms: int) -> Session | None:
        """The live session of ``token``; None when unknown or expired."""
        rows = self.read(
            "SELECT s.csrf, s.expires_ms, u.username, u.role, u.grids, u.enterprises, u.lang "
            "FROM sessions s JOIN users u ON u.username = s.username "
            "WHERE s.token_sha256 = ? AND s.expires_ms > ?",
            (_token_hash(token), now_ms),
        )
        if not rows:
            return None
        row = rows[0]
        return Session(user=_user(row), csrf=row["csrf"], expires_ms=row["expires_ms"])

    def close_session(self, token: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM sessions WHERE token_sha256 = ?", (_token_hash(token),))


def _user(row: sqlite3.Row) -> User:
    return User(
        username=row["username"],
        role=row["role"],
        grids=_split(row["grids"]),
        enterprises=_split(row["enterprises"]),
        lang=row["lang"],
    )


def _check_username(username: str) -> None:
    if not _USERNAME.fullmatch(username):
        raise UserError(f"username: 1-64 characters of A-Z a-z 0-9 _ . @ -, got {username!r}")


def _check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UserError(f"password: {MIN_PASSWORD} to {MAX_PASSWORD} characters")
