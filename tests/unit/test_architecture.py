"""The architecture rules hold themselves: import-linter checks the contracts written in
pyproject.toml ([tool.importlinter]) on every `make test`.

- the kit never imports a domain module, nor app/cli/worker;
- domains import each other only through the other's `service` (and `llm.schemas`);
- no import cycles between sibling packages, at any depth.

The second test plants one violation of each kind in a copy of the source and shows the
contract that catches it, so a contract that silently stopped matching would be seen.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(project / "src"), "COLUMNS": "200"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_contracts_are_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


PLANTED = [
    (
        "kit/context.py",
        "from rampart.accounts import repository as _planted  # noqa: F401\n",
        "The kit never imports a domain module",
    ),
    (
        "evidence/service.py",
        "from rampart.assessments import repository as _planted  # noqa: F401\n",
        "Other domains import assessments only through assessments.service",
    ),
    (
        "llm/base.py",
        "import rampart.evidence.service as _planted  # noqa: F401\n",
        "No import cycles between sibling packages",
    ),
]


@pytest.mark.parametrize(("module", "line", "contract"), PLANTED, ids=["kit", "boundary", "cycle"])
def test_a_planted_violation_breaks_its_contract(tmp_path, module, line, contract):
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(
        ROOT / "src" / "rampart",
        tmp_path / "src" / "rampart",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    planted = tmp_path / "src" / "rampart" / module
    planted.write_text(planted.read_text() + line)

    result = lint_imports(tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert contract in result.stdout.split("Broken contracts")[-1], result.stdout
