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


def audit_rows(config: Path, count: int) -> list[dict[str, object]]:
    """``count`` audit rows in the config's console.db; returns them, oldest first."""
    db = ConsoleDb(config.parent / "console.db")
    log = AuditLog(db)
    for n in range(1, count + 1):
        log.append(actor="op", action="ack", target=f"A{n}", detail={"n": n}, now_ms=n)
    rows = list(reversed(log.rows(count)))
    db.close()
    return rows


def tamper(config: Path, sql: str, *params: object) -> tuple[int, str]:
    """Change console.db behind the console's back; then ``hazwatch audit verify``."""
    with sqlite3.connect(config.parent / "console.db") as conn:
        conn.execute(sql, params)
    code, out, _ = main_verify(config)
    return code, out


def main_verify(config: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("sys.stdout", out)
        mp.setattr("sys.stderr", err)
        code = main(["audit", "verify", "--config", str(config)])
    return code, out.getvalue(), err.getvalue()


def test_audit_verify_names_the_first_tampered_row(config: Path) -> None:
    audit_rows(config, 5)
    code, out, _ = main_verify(config)
    assert code == 0
    assert out.endswith(": 5 rows, chain intact\n")
    code, out = tamper(config, "UPDATE audit SET actor = 'nobody' WHERE id = 3")
    assert code == 1
    assert "BROKEN at row 3: its content does not match its hash (2 rows before it" in out


def test_audit_verify_finds_a_deleted_row(config: Path) -> None:
    audit_rows(config, 4)
    code, out = tamper(config, "DELETE FROM audit WHERE id = 2")
    assert code == 1
    assert "BROKEN at row 3: expected row 2: rows missing" in out


def test_audit_verify_finds_a_rehashed_row(config: Path) -> None:
    """Rewriting a row and its own hash still breaks the link from the next row."""
    row = audit_rows(config, 3)[1]
    assert row["id"] == 2
    forged = row_hash({**row, "actor": "nobody"})
    code, out = tamper(config, "UPDATE audit SET actor = 'nobody', hash = ? WHERE id = 2", forged)
    assert code == 1
    assert "BROKEN at row 3: prev_hash is not the previous row's hash" in out
