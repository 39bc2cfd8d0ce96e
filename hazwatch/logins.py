"""Gateway logins on the broker: Mosquitto's password file and the ACL that goes with it.

``hazwatch gateway add|remove|list`` keeps three files (deploy/mosquitto/; Mosquitto
reads the first two as ``password_file`` and ``acl_file``):

- ``passwd`` — ``user:hash`` lines in Mosquitto's own format (``$7$``: PBKDF2-SHA512,
  101 iterations, a 12-byte salt, as ``mosquitto_passwd`` writes them). Lines this
  command did not write (hazwatch's own user, made with ``mosquitto_passwd``) are kept.
- ``logins.toml`` — each login's gateway format and the ids the format's topics need
  (a Sparkplug group, a Neuron app...), and hazwatch's Sparkplug host ids. A login it
  does not list is an hz-json login.
- ``acl`` — generated whole from the other two, so it cannot drift from them.

A login is one gateway's, ``E001.MH01-gw`` (it may publish only as that gateway of
that enterprise) or a whole enterprise's, ``E001`` (as any gateway of E001), in one
format; its topics come from :mod:`hazwatch.gatewaytopics`. A gateway reads nothing
but its own commands (and, in Sparkplug, the hosts' STATE). hazwatch's own user reads
what gateways publish and writes ``hz/v1/+/alarms``, Sparkplug rebirth requests and
its STATE. A login whose topics overlap another enterprise's is refused, naming both.

Ids must match ``ID_PATTERN``, so no login holds ``+ # / .`` of its own.

>>> login = Login.parse("E001.MH01-gw")
>>> (login.enterprise, login.gateway, login.format)
('E001', 'MH01-gw', 'hz-json')
>>> Login("E001", "node1", "sparkplug-b", (("group", "PlantA"),)).writes()[1]
'spBv1.0/PlantA/NDATA/node1'
>>> verify_password("s3cret", mosquitto_hash("s3cret"))
True
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from hazwatch.errors import ConfigError
from hazwatch.gatewaytopics import (
    DEFAULT_HOST_ID,
    FAMILIES,
    HZ_JSON,
    LoginTopics,
    TopicFamily,
    check_apart,
    family,
)
from hazwatch.models import ID_PATTERN

ITERATIONS = 101
"""What ``mosquitto_passwd`` (2.0) uses for ``$7$`` hashes."""
SALT_BYTES = 12
SEPARATOR = "."
SERVICE_USER = "hazwatch"
_ID = re.compile(ID_PATTERN)


@dataclass(frozen=True)
class Login:
    """A gateway's (``E001.gw1``) or an enterprise's (``E001``) login, in one format.

    ``params``: the format's ids as given (``(("group", "PlantA"),)``); those left out
    take the format's defaults (:attr:`TopicFamily.params`).
    """

    enterprise: str
    gateway: str | None = None
    format: str = HZ_JSON.format
    params: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for what, value in (("enterprise", self.enterprise), ("gateway", self.gateway)):
            if value is not None and not _ID.fullmatch(value):
                raise ConfigError(
                    f"{what} id: expected 1-64 characters of A-Z a-z 0-9 _ -, got {value!r}"
                )
        self.ids()  # the format exists and its ids are valid

    @property
    def username(self) -> str:
        return self.enterprise if self.gateway is None else f"{self.enterprise}.{self.gateway}"

    @property
    def family(self) -> TopicFamily:
        return family(self.format)

    @classmethod
    def parse(
        cls, username: str, fmt: str = HZ_JSON.format, params: Mapping[str, str] | None = None
    ) -> Login:
        enterprise, sep, gateway = username.partition(SEPARATOR)
        return cls(enterprise, gateway if sep else None, fmt, tuple(sorted((params or {}).items())))

    def ids(self) -> dict[str, str]:
        return family(self.format).ids(self.enterprise, self.gateway, dict(self.params))

    def writes(self) -> list[str]:
        return self.family.topics(self.family.gateway_writes, self.ids())

    def reads(self) -> list[str]:
        return self.family.topics(self.family.gateway_reads, self.ids())

    def acl(self) -> list[str]:
        lines = [f"user {self.username}"]
        lines += [f"topic write {t}" for t in self.writes()]
        lines += [f"topic read {t}" for t in self.reads()]
        return lines

    def topics(self) -> LoginTopics:
        return LoginTopics(
            self.username, self.enterprise, self.format, self.ids(), tuple(self.writes())
        )

    def described(self) -> str:
        """``E001/MH01-gw``, ``E001/(any gateway)``, with the format's ids."""
        ids = self.ids()
        own = " ".join(f"{name}={ids[name]}" for name, _ in self.family.params)
        return f"{self.enterprise}/{self.gateway or '(any gateway)'}" + (f" {own}" if own else "")


def service_acl(
    user: str, logins: Iterable[Login] = (), host_ids: Iterable[str] = (DEFAULT_HOST_ID,)
) -> list[str]:
    """hazwatch's own user: every format's topics it reads and writes, and those the
    logins' ids decide (a ThingsBoard prefix, a field-map topic)."""
    reads: dict[str, None] = {}
    writes: dict[str, None] = {}
    for fam in FAMILIES.values():
        for host_id in host_ids:
            shared_reads, shared_writes = fam.service_topics(host_id)
            reads.update(dict.fromkeys(shared_reads))
            writes.update(dict.fromkeys(shared_writes))
    for login in logins:
        reads.update(dict.fromkeys(login.family.service_reads_of(login.ids())))
    return (
        [f"user {user}"] + [f"topic read {t}" for t in reads] + [f"topic write {t}" for t in writes]
    )


# --- Mosquitto's password hashes ----------------------------------------------------------


def mosquitto_hash(password: str, salt: bytes | None = None) -> str:
    """``$7$101$<salt>$<hash>``: PBKDF2-HMAC-SHA512, base64, as ``mosquitto_passwd``."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS)
    return f"$7${ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    """Does ``password`` match a ``$7$`` (PBKDF2-SHA512) or ``$6$`` (SHA512) hash?"""
    parts = hashed.split("$")
    if len(parts) == 5 and parts[1] == "7":
        _, _, iterations, salt, digest = parts
        computed = hashlib.pbkdf2_hmac(
            "sha512", password.encode(), base64.b64decode(salt), int(iterations)
        )
    elif len(parts) == 4 and parts[1] == "6":
        _, _, salt, digest = parts
        computed = hashlib.sha512(password.encode() + base64.b64decode(salt)).digest()
    else:
        return False
    return hmac.compare_digest(computed, base64.b64decode(digest))


# --- the files ------------------------------------------------------------------------


class LoginFiles:
    """``passwd``, ``logins.toml`` and ``acl`` in ``directory`` (deploy/mosquitto/)."""

    def __init__(self, directory: Path, service_user: str = SERVICE_USER) -> None:
        self.passwd = directory / "passwd"
        self.acl = directory / "acl"
        self.formats = directory / "logins.toml"
        self.service_user = service_user

    def entries(self) -> dict[str, str]:
        """username → hash, in file order."""
        try:
            text = self.passwd.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError(f"{self.passwd}: cannot read: {exc.strerror}") from exc
        entries: dict[str, str] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not user:
                raise ConfigError(f"{self.passwd}:{number}: expected user:hash, got {line!r}")
            entries[user] = hashed
        return entries

    def state(self) -> tuple[dict[str, dict[str, str]], list[str]]:
        """``logins.toml``: username → {"format": ..., ids...}, and the Sparkplug host ids."""
        try:
            doc = tomllib.loads(self.formats.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}, [DEFAULT_HOST_ID]
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{self.formats}: cannot read: {exc}") from exc
        logins = doc.get("logins", {})
        host_ids = doc.get("service", {}).get("sparkplug_host_ids", [DEFAULT_HOST_ID])
        if not isinstance(logins, dict) or not all(
            isinstance(v, dict) and all(isinstance(x, str) for x in v.values())
            for v in logins.values()
        ):
            raise ConfigError(f"{self.formats}: [logins] expected tables of strings")
        if not isinstance(host_ids, list) or not all(isinstance(h, str) for h in host_ids):
            raise ConfigError(f"{self.formats}: service.sparkplug_host_ids: expected strings")
        return logins, host_ids

    def logins(self) -> list[Login]:
        """The gateway and enterprise logins (not hazwatch's own user), sorted."""
        formats, _ = self.state()
        found = []
        for user in self.entries():
            if user == self.service_user:
                continue
            entry = dict(formats.get(user, {}))
            fmt = entry.pop("format", HZ_JSON.format)
            try:
                found.append(Login.parse(user, fmt, entry))
            except ConfigError as exc:
                if user in formats:
                    raise ConfigError(f"{self.formats}: {user}: {exc}") from exc
                continue  # someone else's user: kept in passwd, no rights in the ACL
        return sorted(found, key=lambda login: login.username)

    def add(self, login: Login, password: str, host_ids: list[str] | None = None) -> bool:
        """Add the login (or give it a new password); ``True`` if it is new. Refused if
        it could publish as another enterprise (:func:`check_apart`)."""
        entries = self.entries()
        others = [other for other in self.logins() if other.username != login.username]
        check_apart(login.topics(), [other.topics() for other in others])
        new = login.username not in entries
        entries[login.username] = mosquitto_hash(password)
        formats, known_hosts = self.state()
        formats[login.username] = {"format": login.format, **dict(login.params)}
        self._write(entries, formats, host_ids or known_hosts)
        return new

    def remove(self, login: Login) -> None:
        entries = self.entries()
        if login.username not in entries:
            raise ConfigError(f"{self.passwd}: no login {login.username!r}")
        del entries[login.username]
        formats, host_ids = self.state()
        formats.pop(login.username, None)
        self._write(entries, formats, host_ids)

    def write_acl(self) -> None:
        """The ACL for the logins in ``passwd`` (whole: edits by hand are overwritten)."""
        logins = self.logins()
        _, host_ids = self.state()
        blocks = [service_acl(self.service_user, logins, host_ids)]
        blocks += [login.acl() for login in logins]
        text = (
            "# Generated by `hazwatch gateway` from the logins in passwd and logins.toml: do\n"
            "# not edit. hazwatch reads what gateways publish and writes alarm events and\n"
            "# Sparkplug commands; a gateway publishes only as itself (or, with an enterprise\n"
            "# login, as its enterprise) and reads only its own commands.\n\n"
            + "\n\n".join("\n".join(block) for block in blocks)
            + "\n"
        )
        _write_private(self.acl, text)

    def _write(
        self, entries: dict[str, str], formats: dict[str, dict[str, str]], host_ids: list[str]
    ) -> None:
        _write_private(self.passwd, "".join(f"{u}:{h}\n" for u, h in entries.items()))
        kept = {user: formats[user] for user in entries if user in formats}
        lines = [
            "# Written by `hazwatch gateway add|remove`: each login's gateway format and ids",
            "# (passwd holds their password hashes; acl is generated from both).",
            "",
            "[service]",
            f"sparkplug_host_ids = {_toml_list(host_ids)}",
        ]
        for user, entry in kept.items():
            lines += ["", f"[logins.{_toml_str(user)}]"]
            lines += [f"{key} = {_toml_str(value)}" for key, value in entry.items()]
        _write_private(self.formats, "\n".join(lines) + "\n")
        self.write_acl()


class SavedLogins:
    """Logins with their passwords for simulators (``--save-login FILE``; read by
    :mod:`simulators.logins`): secrets, written 0600."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def save(self, login: Login, password: str) -> None:
        try:
            doc = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            doc = {}
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{self.path}: cannot read: {exc}") from exc
        doc[login.username] = {"password": password, "writes": login.writes()}
        lines = [
            "# Gateway logins and their passwords, written by `hazwatch gateway add",
            "# --save-login`, for `simulate`, `scenario run --external` and `replay`",
            "# (--logins). Secrets: keep this file private and out of version control.",
        ]
        for user, entry in doc.items():
            lines += ["", f"[{_toml_str(user)}]"]
            lines.append(f"password = {_toml_str(entry['password'])}")
            lines.append(f"writes = {_toml_list(entry['writes'])}")
        _write_private(self.path, "\n".join(lines) + "\n")


def _toml_str(value: str) -> str:
    """A TOML basic string (ids and topics: printable, so JSON's escaping is TOML's)."""
    return json.dumps(value, ensure_ascii=False)


def _toml_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(_toml_str(v) for v in values) + "]"


def generate_password() -> str:
    return secrets.token_urlsafe(18)


def _write_private(path: Path, text: str) -> None:
    """Write atomically (a broker reloading meanwhile sees the old file or the new)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    temporary.replace(path)


# --- the command --------------------------------------------------------------------------

DEFAULT_DIR = Path("deploy/mosquitto")
RELOAD_HINT = (
    "the broker reads the files again on SIGHUP: `docker compose kill -s HUP mosquitto` "
    "(or `kill -HUP <mosquitto pid>`)"
)


@dataclass(frozen=True)
class GatewayCommand:
    """``hazwatch gateway add|remove|list`` as parsed (see :func:`command`)."""

    action: str
    enterprise: str | None
    gateway: str | None
    directory: Path
    format: str = HZ_JSON.format
    params: Mapping[str, str] | None = None
    service_user: str = SERVICE_USER
    password: str | None = None
    known_enterprises: Iterable[str] | None = None
    host_ids: list[str] | None = None
    """hazwatch's Sparkplug host ids (from ``--config``): kept in logins.toml."""
    save_login: Path | None = None


def command(cmd: GatewayCommand) -> str:
    """``hazwatch gateway add|remove|list``: what to print (the new password, once)."""
    files = LoginFiles(cmd.directory, cmd.service_user)
    if cmd.action == "list":
        rows = [f"{'login':<32} {'format':<12} may publish as"]
        rows += [
            f"{login.username:<32} {login.format:<12} {login.described()}"
            for login in files.logins()
        ]
        return "\n".join(rows) + f"\n{len(rows) - 1} login(s) in {files.passwd}\n"
    if cmd.enterprise is None:
        raise ConfigError(f"gateway {cmd.action}: expected ENTERPRISE [GATEWAY]")
    if cmd.action == "remove":
        login = Login(cmd.enterprise, cmd.gateway)
        files.remove(login)
        return f"removed {login.username} from {files.passwd} and {files.acl}; {RELOAD_HINT}\n"
    login = Login(
        cmd.enterprise, cmd.gateway, cmd.format, tuple(sorted((cmd.params or {}).items()))
    )
    if login.username == cmd.service_user:
        raise ConfigError(f"{login.username!r} is hazwatch's own user, not a gateway login")
    if cmd.gateway == "alarms":
        raise ConfigError("gateway id 'alarms' is reserved (hz/v1/{enterprise}/alarms)")
    known = set(cmd.known_enterprises) if cmd.known_enterprises is not None else None
    if known is not None and cmd.enterprise not in known:
        raise ConfigError(f"enterprise {cmd.enterprise!r} is not in the registry")
    secret = cmd.password if cmd.password is not None else generate_password()
    new = files.add(login, secret, cmd.host_ids)
    if cmd.save_login is not None:
        SavedLogins(cmd.save_login).save(login, secret)
        shown = f"password: saved to {cmd.save_login} (keep it private)\n"
    elif cmd.password is None:
        shown = f"password: {secret}   (shown once; not stored)\n"
    else:
        shown = ""
    return (
        f"{'added' if new else 'new password for'} {login.username} ({login.format}): "
        f"may publish {', '.join(login.writes())}\n"
        f"{shown}"
        f"written: {files.passwd}, {files.formats}, {files.acl}; {RELOAD_HINT}\n"
    )
