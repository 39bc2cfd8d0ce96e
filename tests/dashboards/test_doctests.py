"""The examples in the console modules' docstrings run."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from dashboards import status, timerange


@pytest.mark.parametrize("module", [status, timerange], ids=lambda m: m.__name__)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
