"""The examples in the rewards' docstrings run, and say what they print."""

import doctest
import importlib

import pytest

from tests.conftest import ROOT

MODULES = sorted(".".join(path.relative_to(ROOT).parent.parts if path.name == "__init__.py"
                          else path.relative_to(ROOT).with_suffix("").parts)
                 for path in (ROOT / "rewards").rglob("*.py")
                 if path.name not in ("__main__.py", "zygote.py"))  # scripts: importing runs them


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"


def test_the_examples_exist():
    finder = doctest.DocTestFinder()
    examples = sum(len(test.examples) for name in MODULES for test in finder.find(importlib.import_module(name)))
    assert examples >= 20
