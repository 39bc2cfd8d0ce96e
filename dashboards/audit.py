"""The console's audit log: a hash chain in ``console.db``.

Every login (and failed login), logout, alarm action (ack, shelve, unshelve, feedback,
verify), suppression and admin action (users, notification retry) appends one row. Each
row carries the hash of the row before it (``prev_hash``; the first row's is 64 zeros)
and its own ``hash``: SHA-256 over the canonical JSON (sorted keys, no spaces, UTF-8) of
``{id, at_ms, actor, action, target, detail, address, prev_hash}``. Editing, deleting or
inserting a row breaks the chain at that row; ``hazwatch audit verify`` names it.

>>> row = {"id": 1, "at_ms": 0, "actor": "a", "action": "login", "target": "",
...        "detail": {}, "address": "127.0.0.1", "prev_hash": GENESIS}
>>> len(row_hash(row))
64
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from dashboards.users import ConsoleDb

GENESIS = "0" * 64


def row_hash(row: dict[str, Any]) -> str:
    fields = {
        key: row[key]
        for key in ("id", "at_ms", "actor", "action", "target", "detail", "address", "prev_hash")
    }
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Broken:
    """The first row where the chain does not hold, and why."""

    id: int
    reason: str


class AuditLog:
    def __init__(self, db: ConsoleDb) -> None:
        self._db = db

    def append(
        self,
        *,
        actor: str,
        action: str,
        target: str = "",
        detail: dict[str, Any] | None = None,
        address: str = "",
        now_ms: int,
    ) -> int:
        """Append one row; returns its id."""
        with self._db.transaction() as conn:
            last = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
            row: dict[str, Any] = {
                "id": (last["id"] + 1) if last else 1,
                "at_ms": now_ms,
                "actor": actor,
                "action": action,
                "target": target,
                "detail": detail or {},
                "address": address,
                "prev_hash": last["hash"] if last else GENESIS,
            }
            conn.execute(
                "INSERT INTO audit (id, at_ms, actor, action, target, detail, address, "
                "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row["id"],
                    now_ms,
                    actor,
                    action,
                    target,
                    json.dumps(row["detail"], sort_keys=True, ensure_ascii=False),
                    address,
                    row["prev_hash"],
                    row_hash(row),
                ),
            )
        return int(row["id"])

    def rows(self, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first."""
        return [
            _as_dict(r)
            for r in self._db.read("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,))
        ]

    def verify(self) -> tuple[int, Broken | None]:
        """``(rows checked, first broken row or None)``."""
        expected_id = 1
        prev = GENESIS
        checked = 0
        for raw in self._db.read("SELECT * FROM audit ORDER BY id"):
            row = _as_dict(raw)
            if row["id"] != expected_id:
                return checked, Broken(row["id"], f"expected row {expected_id}: rows missing")
            if row["prev_hash"] != prev:
                return checked, Broken(row["id"], "prev_hash is not the previous row's hash")
            if row_hash(row) != raw["hash"]:
                return checked, Broken(row["id"], "its content does not match its hash")
            prev = raw["hash"]
            expected_id += 1
            checked += 1
        return checked, None


def _as_dict(raw: Any) -> dict[str, Any]:
    try:
        detail = json.loads(raw["detail"])
    except (TypeError, ValueError):
        detail = raw["detail"]
    return {
        "id": raw["id"],
        "at_ms": raw["at_ms"],
        "actor": raw["actor"],
        "action": raw["action"],
        "target": raw["target"],
        "detail": detail,
        "address": raw["address"],
        "prev_hash": raw["prev_hash"],
        "hash": raw["hash"],
    }
