"""The examples in alerting's docstrings run."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from alerting import escalation, flood, messages, notifiers, robots, sms, targets


@pytest.mark.parametrize(
    "module",
    [escalation, flood, messages, notifiers, robots, sms, targets],
    ids=lambda m: m.__name__,
)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
