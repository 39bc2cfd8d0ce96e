"""The pages' texts: static/i18n/<lang>.json. Both languages have the same keys (sorted,
so helpers adding keys merge cleanly), the same placeholders, no empty text, and every
key a page names literally exists."""

from __future__ import annotations

import json
import re

import pytest

from dashboards.app import STATIC_DIR

I18N = STATIC_DIR / "i18n"
LANGS = ("en", "zh-CN")
PLACEHOLDER = re.compile(r"\{(\w+)\}")
# t("key") and t("key", {...}) in scripts; data-i18n="key" (and -title...) in pages.
USED = re.compile(r"""\bt\(\s*["']([\w.\-]+)["']|data-i18n(?:-[\w-]+)?=["']([\w.\-]+)["']""")


def texts(lang: str) -> dict[str, str]:
    raw = (I18N / f"{lang}.json").read_text(encoding="utf-8")
    data: dict[str, str] = json.loads(raw)
    return data


@pytest.mark.parametrize("lang", LANGS)
def test_keys_are_sorted_and_texts_present(lang: str) -> None:
    data = texts(lang)
    assert list(data) == sorted(data), f"{lang}.json: keep the keys sorted"
    assert all(isinstance(v, str) and v.strip() for v in data.values())


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    en, zh = texts("en"), texts("zh-CN")
    assert set(en) ^ set(zh) == set()
    for key in en:
        assert set(PLACEHOLDER.findall(en[key])) == set(PLACEHOLDER.findall(zh[key])), key


def test_every_key_a_page_names_exists() -> None:
    en = texts("en")
    pages = [
        p
        for p in STATIC_DIR.rglob("*")
        if p.suffix in {".js", ".html"} and "vendor" not in p.relative_to(STATIC_DIR).parts
    ]
    missing = {
        f"{page.name}: {key}"
        for page in pages
        for match in USED.finditer(page.read_text(encoding="utf-8"))
        for key in match.groups()
        if key and key not in en
    }
    assert missing == set()
