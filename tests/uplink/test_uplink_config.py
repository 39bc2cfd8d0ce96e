"""``[[uplink]]`` in the config file: accepted, listed by check-config, or refused with
one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from hazwatch.errors import ConfigError
from tests.conftest import EXAMPLE_REGISTRY
from tests.hazwatch.test_cli import hazwatch

GOOD = f"""
registry = "{EXAMPLE_REGISTRY}"

[[uplink]]
name = "province"
url = "https://platform.example/api/v1"
enterprises = ["E001"]

[uplink.readings]
path = "/realtime"
period_s = 30
record = {{ quotaId = "{{tag}}", value = "{{value}}", collectTime = "{{local_time}}" }}
body = {{ enterpriseCode = "{{enterprise}}", datas = "{{records}}" }}

[uplink.signature]
kind = "hmac-sm3"
appid = "app"
secret = "do-not-print-me"

[uplink.encryption]
kind = "sm4-ecb"
key = "0123456789abcdeffedcba9876543210"
"""


def check(tmp_path: Path, text: str) -> tuple[int, str, str]:
    config = tmp_path / "hazwatch.toml"
    config.write_text(text)
    result = hazwatch("check-config", "--config", str(config))
    return result.returncode, result.stdout, result.stderr


def test_a_configured_uplink_is_listed_and_its_secrets_are_not(tmp_path: Path) -> None:
    code, out, err = check(tmp_path, GOOD)
    assert code == 0, err
    queue = tmp_path / "var" / "uplink-province.db"
    assert f"uplink:        province → https://platform.example, queue {queue}" in out
    assert "do-not-print-me" not in out + err
    assert "0123456789abcdef" not in out + err


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('"{tag}"', '"{tga}"'), "uplink 'province': readings.record.quotaId: unknown field {tga}"),
        (
            ('key = "0123456789abcdeffedcba9876543210"', 'key = "short"'),
            "uplink.0.encryption: the SM4 key must be 32 hex digits or 16 characters",
        ),
        (("period_s = 30", "period_s = 30\nperiode = 1"), "uplink.0.readings.periode: unknown key"),
        (('url = "https://', 'url = "ftp://'), "uplink.0.url: expected http(s)://"),
        (('secret = "do-not-print-me"', 'secret = ""'), "secret: a hmac-sm3 signature needs"),
    ],
)
def test_a_bad_uplink_entry_is_one_line_naming_the_key(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    code, _, err = check(tmp_path, GOOD.replace(*change))
    assert code == 2
    assert err.startswith("error: ")
    assert "Traceback" not in err
    assert expected in err


def test_two_uplinks_with_one_name_are_refused(tmp_path: Path) -> None:
    second = '\n[[uplink]]\nname = "province"\nurl = "mqtt://127.0.0.1:1883"\n'
    code, _, err = check(tmp_path, GOOD + second)
    assert code == 2
    assert "two [[uplink]] entries are named 'province'" in err


def test_a_secret_comes_from_the_environment_by_entry_number(tmp_path: Path) -> None:
    from hazwatch.settings import load_settings  # noqa: PLC0415

    config = tmp_path / "hazwatch.toml"
    config.write_text(GOOD.replace('secret = "do-not-print-me"', 'secret = "placeholder"'))
    settings = load_settings(
        config, environ={"HAZWATCH_UPLINK__0__SIGNATURE__SECRET": "from-the-environment"}
    )
    assert settings.uplink[0].signature.secret.get_secret_value() == "from-the-environment"
    with pytest.raises(ConfigError, match="HAZWATCH_UPLINK__1__URL: '1' is not an entry number"):
        load_settings(config, environ={"HAZWATCH_UPLINK__1__URL": "http://h/"})
