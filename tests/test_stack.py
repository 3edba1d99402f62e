"""tools/stack.py: how every tool reads a deployed stack, below the tools that use it (with tools/table.py
and tools/endpoint.py)."""

import ast

import pytest

from components import platforms
from components.observe import ListError
from tools import stack
from tools.mockrun import ROOT


def _imported_modules(path: str) -> set[str]:
    tree = ast.parse((ROOT / path).read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return found


@pytest.mark.parametrize("path", ["tools/stack.py", "tools/table.py", "tools/endpoint.py"])
def test_the_shared_tool_modules_import_no_tool(path):
    assert not {module for module in _imported_modules(path) if module.startswith("tools")}


@pytest.mark.parametrize("tool", ["tools/logs.py", "tools/bench.py", "tools/plan.py"])
def test_a_tool_reads_stacks_and_prints_tables_through_the_shared_modules_not_through_status(tool):
    assert not {module for module in _imported_modules(tool) if module.startswith("tools.status")}


def test_an_unknown_platform_is_one_line_naming_the_known_ones():
    with pytest.raises(ListError, match="platform 'nimbus' is not one of") as error:
        stack.platform_module("nimbus", "status")
    assert all(name in str(error.value) for name in platforms.names())


def test_every_platform_has_a_status_module_the_tools_can_find():
    for name in platforms.names():
        assert callable(stack.platform_module(name, "status").list_replicas)
