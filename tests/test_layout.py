"""The layout holds: the import contracts of `make lint` (docs/architecture.md), and modules stay readable."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_the_import_contracts_are_kept():
    lint = ROOT / ".venv" / "bin" / "lint-imports"
    command = [str(lint)] if lint.exists() else [sys.executable, "-m", "importlinter.cli"]
    result = subprocess.run([*command, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout
