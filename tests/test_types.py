"""The type gate of ``.ci/run``: pyright, configured in pyproject.toml, refuses a misspelt key in a
resource's nested input dict, because the dicts the program builds are annotated with the SDKs' ArgsDicts."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import ROOT

#: Pyright reads the cloud SDKs' type information: seconds here, generous on a loaded machine.
PYRIGHT_TIMEOUT_SECONDS = 600


def _pyright() -> str:
    """The pinned wrapper next to this interpreter (CI's venv), else one on PATH; skips when it cannot run
    (not installed, or no Node.js for it)."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which("pyright", path=search)
    if found is None:
        pytest.skip("pyright is not installed (requirements-dev.txt pins it)")
    version = subprocess.run(
        [found, "--version"], capture_output=True, text=True, timeout=PYRIGHT_TIMEOUT_SECONDS, check=False
    )
    if version.returncode != 0:
        pytest.skip(f"pyright cannot run here: {version.stderr}")
    return found


def _check(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    """pyright with the project's configuration on one module."""
    module = tmp_path / "module.py"
    module.write_text(source)
    return subprocess.run(
        [_pyright(), "--project", str(ROOT / "pyproject.toml"), str(module)],
        capture_output=True,
        text=True,
        timeout=PYRIGHT_TIMEOUT_SECONDS,
        cwd=ROOT,
        check=False,
    )


REFRESH = """
import pulumi_aws.autoscaling as autoscaling

refresh: autoscaling.GroupInstanceRefreshArgsDict = {{
    "strategy": "Rolling",
    "preferences": {{"{key}": 100, "skip_matching": True}},
}}
"""


def test_a_misspelt_key_in_a_nested_input_dict_fails_the_type_gate(tmp_path: Path) -> None:
    result = _check(tmp_path, REFRESH.format(key="min_healthy_percentag"))
    assert result.returncode == 1, result.stdout
    # Pyright names the nested TypedDict the dict on the misspelt key's line (line 6) does not match.
    assert "module.py:6:" in result.stdout
    assert '"GroupInstanceRefreshPreferencesArgsDict"' in result.stdout


def test_the_same_dict_spelt_right_passes_the_type_gate(tmp_path: Path) -> None:
    result = _check(tmp_path, REFRESH.format(key="min_healthy_percentage"))
    assert result.returncode == 0, result.stdout
