"""``hazwatch user ...`` and ``hazwatch audit verify`` on a real console.db."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest

from dashboards.audit import AuditLog, row_hash
from dashboards.users import ConsoleDb
from hazwatch.cli import main

EXAMPLE_REGISTRY = Path(__file__).resolve().parents[2] / "simulators" / "examples" / "registry"
PASSWORD = "a long enough password"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "hazwatch.toml"
    path.write_text(
        f'registry = "{EXAMPLE_REGISTRY}"\n[console]\ndb = "{tmp_path / "console.db"}"\n',
        encoding="utf-8",
    )
    return path


def hazwatch(monkeypatch: pytest.MonkeyPatch, *args: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_add_list_passwd_remove(monkeypatch: pytest.MonkeyPatch, config: Path) -> None:
    c = str(config)
    code, out, _ = hazwatch(
        monkeypatch,
        *("user", "add", "zhang", "--role", "grid_officer", "--grid", "KS-03"),
        *("--config", c, "--password-stdin"),
        stdin=PASSWORD + "\n",
    )
    assert code == 0
    assert "added zhang (grid_officer)" in out
    assert PASSWORD not in out
    code, out, _ = hazwatch(monkeypatch, "user", "list", "--config", c)
    assert out == "zhang\tgrid_officer\tzh-CN\tgrid KS-03\n"
    db = ConsoleDb(config.parent / "console.db")
    assert db.check_password("zhang", PASSWORD) is not None
    raw = (config.parent / "console.db").read_bytes()
    assert PASSWORD.encode() not in raw  # only the argon2 hash is kept
    code, _, _ = hazwatch(
        monkeypatch,
        *("user", "passwd", "zhang", "--config", c, "--password-stdin"),
        stdin="another long password\n",
    )
    assert code == 0
    assert db.check_password("zhang", PASSWORD) is None
    assert db.check_password("zhang", "another long password") is not None
    code, out, _ = hazwatch(monkeypatch, "user", "remove", "zhang", "--config", c)
    assert (code, out) == (0, "removed zhang\n")
    assert db.users() == []
    actions = [row["action"] for row in AuditLog(db).rows()]
    assert actions == ["user_remove", "user_passwd", "user_add"]
    db.close()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--role", "enterprise", "--enterprise", "E999"), "--enterprise 'E999': no such"),
        (("--role", "grid_officer", "--grid", "KS-99"), "--grid 'KS-99': no such grid"),
        (
            (
                "--role",
                "grid_officer",
            ),
            "a grid_officer needs --grid",
        ),
        (
            (
                "--role",
                "enterprise",
            ),
            "an enterprise user needs --enterprise",
        ),
    ],
)
def test_bad_grants_are_one_error_line(
    monkeypatch: pytest.MonkeyPatch, config: Path, args: tuple[str, ...], says: str
) -> None:
    code, _, err = hazwatch(
        monkeypatch,
        *("user", "add", "someone", *args, "--config", str(config), "--password-stdin"),
        stdin=PASSWORD + "\n",
    )
    assert code == 2
    assert err.startswith("error: ")
    assert says in err
    assert err.count("\n") == 1


def test_a_short_password_is_refused(monkeypatch: pytest.MonkeyPatch, config: Path) -> None:
    code, _, err = hazwatch(
        monkeypatch,
        *("user", "add", "a", "--role", "admin", "--config", str(config), "--password-stdin"),
        stdin="short\n",
    )
    assert code == 2
    assert "password: 10 to 1024 characters" in err


def test_audit_verify_names_the_first_tampered_row(
    monkeypatch: pytest.MonkeyPatch, config: Path
) -> None:
    db_path = config.parent / "console.db"
    db = ConsoleDb(db_path)
    log = AuditLog(db)
    for n in range(1, 6):
        log.append(actor="op", action="ack", target=f"A{n}", detail={"n": n}, now_ms=n)
    db.close()
    code, out, _ = hazwatch(monkeypatch, "audit", "verify", "--config", str(config))
    assert code == 0
    assert out.endswith(": 5 rows, chain intact\n")
    with sqlite3.connect(db_path) as conn:  # someone edits row 3 behind the console's back
        conn.execute("UPDATE audit SET actor = 'nobody' WHERE id = 3")
    code, out, _ = hazwatch(monkeypatch, "audit", "verify", "--config", str(config))
    assert code == 1
    assert "BROKEN at row 3: its content does not match its hash (2 rows before it" in out


def test_audit_verify_finds_a_deleted_row(monkeypatch: pytest.MonkeyPatch, config: Path) -> None:
    db_path = config.parent / "console.db"
    db = ConsoleDb(db_path)
    log = AuditLog(db)
    for n in range(1, 5):
        log.append(actor="op", action="login", now_ms=n)
    db.close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("DELETE FROM audit WHERE id = 2")
    code, out, _ = hazwatch(monkeypatch, "audit", "verify", "--config", str(config))
    assert code == 1
    assert "BROKEN at row 3: expected row 2: rows missing" in out


def test_audit_verify_finds_a_rehashed_row(monkeypatch: pytest.MonkeyPatch, config: Path) -> None:
    """Rewriting a row and its own hash still breaks the link from the next row."""
    db_path = config.parent / "console.db"
    db = ConsoleDb(db_path)
    log = AuditLog(db)
    for n in range(1, 4):
        log.append(actor="op", action="ack", target=f"A{n}", now_ms=n)
    row = log.rows(10)[-2]  # id 2
    assert row["id"] == 2
    forged = {**row, "actor": "nobody"}
    db.close()
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "UPDATE audit SET actor = 'nobody', hash = ? WHERE id = 2", (row_hash(forged),)
        )
    code, out, _ = hazwatch(monkeypatch, "audit", "verify", "--config", str(config))
    assert code == 1
    assert "BROKEN at row 3: prev_hash is not the previous row's hash" in out
