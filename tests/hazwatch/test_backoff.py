"""The shared retry pacing: its documented example runs."""

from __future__ import annotations

import doctest

import hazwatch.backoff


def test_docstring_example_runs() -> None:
    result = doctest.testmod(hazwatch.backoff)
    assert result.attempted > 0
    assert result.failed == 0
