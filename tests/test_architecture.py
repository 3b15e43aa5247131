"""
The apps' imports follow the data: accounts -> customers -> opportunities -> reflections ->
surveys -> insights, with imports beside insights (neither reads the other). The contract is in
.importlinter at the project root; import-linter (grimp) reads every module's imports.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = [
    sys.executable,
    "-c",
    "import sys, importlinter.cli as c; sys.exit(c.lint_imports_command())",
]


def _lint(config: Path) -> subprocess.CompletedProcess:
    # A process of its own: grimp imports nothing, but it must see the tree as it is on disk.
    return subprocess.run(
        [*LINT, "--config", str(config), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_apps_import_one_way_only():
    result = _lint(ROOT / ".importlinter")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_contract_catches_an_import_against_the_flow(tmp_path):
    # The same contract with two layers swapped must break: proof that the check reads the
    # real imports rather than passing whatever it is given.
    swapped = (
        (ROOT / ".importlinter")
        .read_text()
        .replace("    opportunities\n    customers\n", "    customers\n    opportunities\n")
    )
    assert swapped != (ROOT / ".importlinter").read_text()
    config = tmp_path / "swapped.ini"
    config.write_text(swapped)
    result = _lint(config)
    assert result.returncode != 0
    assert "opportunities" in result.stdout and "customers" in result.stdout
