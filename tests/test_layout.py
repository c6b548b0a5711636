"""The layout holds: the import contracts of `make lint` (docs/architecture.md), and modules stay readable."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.conftest import ROOT

PRODUCT = ("voiceagent", "assistants", "calls", "tools", "insights", "dashboard", "knowledge", "campaigns", "scenarios")
LONGEST = 500


def test_the_import_contracts_are_kept():
    lint = ROOT / ".venv" / "bin" / "lint-imports"
    command = [str(lint)] if lint.exists() else [sys.executable, "-m", "importlinter.cli"]
    result = subprocess.run([*command, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_no_product_module_is_longer_than_500_lines_unless_its_docstring_says_why():
    """A long module must be one cohesive thing, and say so ("cohesive") in its docstring."""
    too_long = []
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            text = path.read_text(encoding="utf-8")
            if text.count("\n") > LONGEST and "cohesive" not in (ast.get_docstring(ast.parse(text)) or ""):
                too_long.append(f"{path.relative_to(ROOT)} ({text.count(chr(10))} lines)")
    assert too_long == []
