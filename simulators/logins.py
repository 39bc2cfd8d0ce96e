"""Simulated gateways log in as gateways: ``--logins FILE`` for simulate, scenario, replay.

A broker running the ACL that ``hazwatch gateway add`` generates lets each login
publish only its own topics (docs/gateways.md, "Logins and the broker ACL"). The
simulators then connect every gateway with the login allowed to write its topics,
from the file ``hazwatch gateway add ... --save-login FILE`` writes::

    ["E001.MH01-gw"]
    password = "..."
    writes = ["hz/v1/E001/MH01-gw/data", "hz/v1/E001/MH01-gw/status", ...]

A gateway's own login (``E001.MH01-gw``) is preferred to its enterprise's (``E001``):
on a listener with ``use_username_as_clientid`` every connection of one login has the
same client id, so gateways sharing an enterprise login would take over each other's
session.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path

from hazwatch.errors import ConfigError
from ingest.routes import topic_matches
from simulators.broker import Broker


@dataclass(frozen=True)
class SavedLogin:
    username: str
    password: str = dataclasses.field(repr=False)
    writes: tuple[str, ...]

    def may_write(self, topic: str) -> bool:
        return any(topic_matches(allowed, topic) for allowed in self.writes)


class GatewayLogins:
    """The logins of a ``--logins`` file; :meth:`broker_for` picks one per topic."""

    def __init__(self, logins: list[SavedLogin], source: str = "") -> None:
        # a gateway's own login before an enterprise's (see the module docstring)
        self.logins = sorted(logins, key=lambda login: "." not in login.username)
        self.source = source

    @classmethod
    def load(cls, path: Path) -> GatewayLogins:
        """Read the file; one ``ConfigError`` line naming the file and key if it is bad."""
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"{path}: no such file (write it with `hazwatch gateway add ... --save-login "
                f"{path}`)"
            ) from None
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read: {exc}") from exc
        logins = []
        for username, entry in doc.items():
            password = entry.get("password") if isinstance(entry, dict) else None
            writes = entry.get("writes") if isinstance(entry, dict) else None
            if not isinstance(password, str) or not (
                isinstance(writes, list) and all(isinstance(t, str) for t in writes)
            ):
                raise ConfigError(
                    f'{path}: [{username}]: expected password = "..." and writes = [topics]'
                )
            logins.append(SavedLogin(username, password, tuple(writes)))
        if not logins:
            raise ConfigError(f"{path}: no logins")
        return cls(logins, str(path))

    def for_topic(self, topic: str) -> SavedLogin | None:
        return next((login for login in self.logins if login.may_write(topic)), None)

    def broker_for(self, broker: Broker, topic: str, who: str) -> Broker:
        """``broker`` with the credentials of the login that may write ``topic``."""
        login = self.for_topic(topic)
        if login is None:
            raise ConfigError(
                f"{self.source}: no login may publish {topic} ({who}); add one with "
                f"`hazwatch gateway add ... --save-login {self.source}`"
            )
        return dataclasses.replace(broker, username=login.username, password=login.password)
