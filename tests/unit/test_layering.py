"""The layering the code promises: `rules/` is the pure engine under the I/O layer.

No module under rules/ imports conf or bridge, and none reads a clock, opens a
socket or logs; the only file access in rules/ is the rule loader reading the
rule and classification files it is handed (load time, never the engine path).
conf/ may import rules; bridge/ may import both.  Checked on the source with
ast, so a new import shows up here before it shows up in a review.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RULES = sorted((REPO / "rules").rglob("*.py"))
# module-level names that would mean I/O, time or global state in the engine path
FORBIDDEN_MODULES = {"socket", "time", "datetime", "logging", "structlog", "select", "subprocess", "threading",
                     "multiprocessing", "random", "os"}
LOAD_TIME_IO = {"loader.py", "classification.py"}      # read the files they are given, at load


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("path", RULES, ids=lambda p: str(p.relative_to(REPO)))
def test_rules_is_pure(path):
    mods = imports(path)
    assert not mods & {"conf", "bridge"}, f"{path.name} imports the layer above it"
    assert not mods & FORBIDDEN_MODULES, f"{path.name} imports {sorted(mods & FORBIDDEN_MODULES)}"
    if path.name not in LOAD_TIME_IO:
        text = path.read_text()
        assert "open(" not in text.replace("reopen(", "") and "read_text(" not in text, \
            f"{path.name} reads files"


def test_conf_builds_on_rules_and_never_on_bridge():
    for path in sorted((REPO / "conf").glob("*.py")):
        assert "bridge" not in imports(path), f"conf/{path.name} imports bridge"
