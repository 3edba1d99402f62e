"""tools.plan: a credential-free plan of any stack, and committed plans of every preset."""

import json
import subprocess
import sys

import pytest

from components.spec import available_presets
from tools import plan as plan_tool
from tools.mockrun import ROOT


@pytest.mark.parametrize("preset", available_presets())
def test_the_plan_of_each_preset_matches_its_committed_snapshot(preset):
    path = plan_tool.snapshot_path(preset)
    assert path.exists(), f"no plan snapshot for {preset}: run {plan_tool.REFRESH_COMMAND}"
    current = plan_tool.render_text(plan_tool.plan(preset))
    assert current == path.read_text(), (
        f"the plan of {preset} changed; review the diff and refresh the snapshots with:\n"
        f"    {plan_tool.REFRESH_COMMAND}"
    )


def test_every_snapshot_belongs_to_a_preset():
    snapshots = {p.stem for p in plan_tool.SNAPSHOT_DIR.glob("*.txt")}
    assert snapshots == set(available_presets())


def run_plan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tools.plan", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_the_cost_table_marks_the_cheapest_machine_and_totals_every_replica():
    data = plan_tool.plan("gcp-h100", {"vllm:replicas": "3"})
    chosen = [c for c in data["cost"]["candidates"] if c["chosen"]]
    assert [c["machineType"] for c in chosen] == ["a3-highgpu-8g"]
    assert data["cost"]["totalHourly"] == data["outputs"]["costPerHour"]
    assert data["cost"]["totalHourly"] == round(chosen[0]["onDemandHourly"] * 3, 2)


def test_overrides_change_the_plan_like_stack_config_does():
    data = plan_tool.plan("k8s-l4", {"vllm:replicas": "4"})
    assert data["spec"]["replicas"] == 4


def test_json_output_is_machine_readable():
    result = run_plan("--stack", "k8s-l4", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {"stack", "spec", "cost", "outputs", "resources"} <= data.keys()
    assert all({"type", "name", "depth", "properties"} <= row.keys() for row in data["resources"])


def test_a_bad_value_exits_2_with_one_message_and_no_traceback():
    result = run_plan("--stack", "k8s-l4", "--config", "vllm:replicas=two")
    assert result.returncode == 2
    assert "vllm:replicas" in result.stderr and "two" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_kubernetes_plan_loads_no_cloud_sdk():
    probe = (
        "import sys; from tools.plan import plan; plan('k8s-l4'); "
        "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith(('pulumi_gcp', 'pulumi_aws'))}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_api_key_shows_as_a_secret_never_as_its_value():
    data = plan_tool.plan("k8s-l4", {"vllm:apiKey": "sk-plan-test"})
    assert "sk-plan-test" not in json.dumps(data)
