"""Imports run one way: rewards/ is pure Python usable alone, and never imports rlreason/."""

import ast
from pathlib import Path

from tests.conftest import ROOT


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_rewards_import_nothing_from_rlreason():
    offenders = {str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path)
                                                       if m == "rlreason" or m.startswith("rlreason."))
                 for path in sorted((ROOT / "rewards").rglob("*.py"))}
    assert {path: modules for path, modules in offenders.items() if modules} == {}
    assert len(offenders) > 10  # the walk found the package
