"""GitHub Actions: valid workflow files, CI runs the project's own script, previews cover every preset."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.spec import available_presets
from tests.harness import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
PREVIEW_ACTION = ROOT / ".github" / "actions" / "pulumi-preview" / "action.yml"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_each_workflow_is_valid_against_githubs_schema(path):
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_preview_action_is_valid_against_githubs_schema():
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-actions", str(PREVIEW_ACTION)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_pull_requests_run_the_same_ci_script_as_everywhere_else():
    ci = load(ROOT / ".github" / "workflows" / "ci.yml")
    assert "pull_request" in ci[True]  # YAML 1.1 reads the key `on` as True
    assert any(step.get("run") == "bash .ci/run" for step in ci["jobs"]["test"]["steps"])


def test_every_preset_stack_gets_a_preview_on_pull_requests():
    jobs = load(ROOT / ".github" / "workflows" / "preview.yml")["jobs"]
    previewed = {stack for job in jobs.values() for stack in job["strategy"]["matrix"]["stack"]}
    assert previewed == set(available_presets())


def test_previews_post_a_diff_on_the_pull_request_from_a_self_managed_backend():
    steps = load(PREVIEW_ACTION)["runs"]["steps"]
    pulumi = next(step for step in steps if step.get("uses", "").startswith("pulumi/actions@"))
    options = pulumi["with"]
    assert options["command"] == "preview"
    assert options["diff"] is True and options["comment-on-pr"] is True
    assert options["cloud-url"] == "${{ inputs.backend-url }}"


def test_preview_jobs_run_only_where_the_repository_has_credentials():
    jobs = load(ROOT / ".github" / "workflows" / "preview.yml")["jobs"]
    assert all("vars.PULUMI_BACKEND_URL != ''" in job["if"] for job in jobs.values())
