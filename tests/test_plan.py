"""tools.plan: a credential-free plan of any stack, and committed plans of every preset."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components import cost
from components.config import SpecError
from components.presets import available_presets
from tools import plan as plan_tool
from tools.mockrun import ROOT, run_program


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
    assert data["cost"]["totalHourly"] == round(chosen[0]["onDemandHourly"] * 3, 2)


# --- the cost: the program's costBreakdown output, printed as it is ---------------------------------------

#: A breakdown no catalog row gives: the plan can only print it by reading the program's output.
EXPORTED = {
    "candidates": [
        {
            "cloud": "gcp",
            "region": "test-north1",
            "machineType": "x9-test-8g",
            "vcpus": 96,
            "memoryGb": 680.5,
            "gpus": "H100:8",
            "onDemandHourly": 12.375,
            "onDemandFrom": "test-south2",
            "spotHourly": 4.5,
            "blendedHourly": 8.4375,
            "chosen": True,
        },
        {
            "cloud": "gcp",
            "region": "test-east3",
            "machineType": "x9-test-8g",
            "gpus": "H100:8",
            "blendedHourly": 9.0,
            "chosen": False,
        },
    ],
    "nodesPerReplica": 2,
    "replicas": 3,
    "scaleOutSurge": 0,
    "pricing": "spot, 1 of 3 on-demand",
    "shares": [
        {
            "region": "test-north1",
            "market": "on-demand",
            "replicas": 1,
            "perReplicaHourly": 24.75,
            "hourly": 24.75,
            "source": "the test's own sheet",
        },
        {"region": "test-north1", "market": "spot", "replicas": 2, "source": "the test's spot sheet"},
    ],
}


@pytest.fixture
def exported_breakdown(monkeypatch) -> dict:
    """The program exports EXPORTED as its costBreakdown (without a total: the catalog knows no price)."""
    monkeypatch.setattr(cost, "breakdown", lambda spec: EXPORTED)
    return EXPORTED


def test_the_plan_s_cost_is_the_exported_breakdown(exported_breakdown):
    data = plan_tool.plan("gcp-h100")
    assert data["cost"] == exported_breakdown
    assert "costBreakdown" not in data["outputs"]  # a section of its own, never in the list of outputs


def test_the_plan_prints_each_exported_machine_in_its_order_a_missing_price_as_a_dash(exported_breakdown):
    lines = plan_tool.render_text(plan_tool.plan("gcp-h100")).splitlines()
    start = lines.index("Considered resources (2 node(s) per replica, spot, 1 of 3 on-demand)")
    assert lines[start + 1].split() == [
        "INFRA", "INSTANCE", "vCPUs", "Mem(GB)", "GPUS", "$/h", "ON-DEMAND", "$/h", "SPOT", "CHOSEN"
    ]  # fmt: skip
    assert lines[start + 2].split() == [
        "gcp", "(test-north1)", "x9-test-8g", "96", "680.5", "H100:8", "12.375", "(test-south2's)", "4.5", "*"
    ]  # fmt: skip
    assert lines[start + 3].split() == ["gcp", "(test-east3)", "x9-test-8g", "-", "-", "H100:8", "-", "-"]


def test_the_plan_prints_each_exported_share_its_total_and_its_sources(exported_breakdown):
    text = plan_tool.render_text(plan_tool.plan("gcp-h100"))
    assert (
        "  test-north1 on-demand: 1 replica(s) x $24.75/h = $24.75/h\n"
        "  test-north1 spot: 2 replica(s) x $-/h = $-/h\n"
        "  total $-/h (spot prices are estimates)\n"
        "  prices: the test's own sheet\n"
        "  prices: the test's spot sheet\n"
    ) in text
    assert "Outputs\n" in text and "costBreakdown" not in text


def test_a_stack_without_machines_of_its_own_exports_a_note_the_plan_prints():
    data = plan_tool.plan("k8s-l4")
    assert data["cost"] == {"candidates": [], "note": cost.CLUSTER_PRICED}
    assert f"\nCost: {cost.CLUSTER_PRICED}\n" in plan_tool.render_text(data)


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
    data = plan_tool.plan("k8s-l4", secrets={"vllm:apiKey": "sk-plan-test-0123456789"})
    assert "sk-plan-test-0123456789" not in json.dumps(data)


# --- plan equals up -------------------------------------------------------------------------------------

GOOD_KEY = "sk-plan-equals-up-0123456789"
CPU_POD = {"vllm:cloud": "kubernetes", "vllm:model": "Qwen/Qwen3-0.6B"}
#: Bad configurations as a stack holds them: (stack, plain config, secret config).
BAD_CONFIGS = {
    "plaintext HF token": ("k8s-l4", {"vllm:hfToken": "hf_plaintext_token"}, {}),
    "plaintext API key": ("k8s-l4", {"vllm:apiKey": GOOD_KEY}, {}),
    "short API key": ("k8s-l4", {}, {"vllm:apiKey": "sk-short"}),
    "unknown vllm key": ("k8s-l4", {"vllm:replica": "2"}, {}),
    "provider key typo": ("gcp-h100", {"gcp:regoin": "us-east4"}, {}),
    "CPU image on GPUs": ("gcp-h100", {"vllm:image": "vllm/vllm-openai-cpu:v0.33.0"}, {}),
    "GPU image on a CPU pod": ("dev-test", {**CPU_POD, "vllm:image": "vllm/vllm-openai:v0.33.0"}, {}),
    "AWS region without the GPU": ("aws-h100", {"aws:region": "eu-west-1"}, {}),
    "AWS region that does not exist": ("aws-h100", {"aws:region": "us-central-1"}, {}),
    "GPU pod memory": ("k8s-h100", {"vllm:memoryGb": "16"}, {}),
    "not a number": ("k8s-l4", {"vllm:replicas": "two"}, {}),
}


def up_outcome(stack: str, config: dict, secrets: dict) -> str:
    """What ``pulumi up`` does with the config: the program as the engine runs it, secrets as secrets."""
    try:
        run_program(stack, config, secrets)
    except SpecError as error:
        return str(error)
    return "ok"


def plan_outcome(stack: str, stack_file: Path, secrets: dict) -> str:
    try:
        plan_tool.plan(stack, secrets=secrets, stack_file=stack_file)
    except SpecError as error:
        return str(error)
    return "ok"


@pytest.mark.parametrize("case", [*BAD_CONFIGS, "a good config"])
def test_the_plan_refuses_exactly_what_up_refuses(case, tmp_path):
    stack, config, secrets = BAD_CONFIGS.get(
        case, ("k8s-l4", {"vllm:replicas": "2"}, {"vllm:apiKey": GOOD_KEY})
    )
    stack_file = tmp_path / f"Pulumi.{stack}.yaml"
    stack_file.write_text(yaml.safe_dump({"config": config}))
    up, planned = up_outcome(stack, config, secrets), plan_outcome(stack, stack_file, secrets)
    assert planned == up
    assert (up == "ok") == (case == "a good config"), up


def test_a_plaintext_hf_token_in_a_stack_file_fails_the_plan_command(tmp_path):
    stack_file = tmp_path / "Pulumi.k8s-l4.yaml"
    stack_file.write_text(yaml.safe_dump({"config": {"vllm:hfToken": "hf_plaintext_token"}}))
    result = run_plan("--stack", "k8s-l4", "--stack-file", str(stack_file))
    assert result.returncode == 2
    assert "vllm:hfToken" in result.stderr and "--secret" in result.stderr
    assert "hf_plaintext_token" not in result.stderr + result.stdout


def test_a_secure_value_in_a_stack_file_is_a_secret_of_the_plan(tmp_path):
    stack_file = tmp_path / "Pulumi.k8s-l4.yaml"
    stack_file.write_text(yaml.safe_dump({"config": {"vllm:hfToken": {"secure": "v1:AAAA:BBBB"}}}))
    data = plan_tool.plan("k8s-l4", stack_file=stack_file)
    assert data["spec"]["cloud"] == "kubernetes"
    assert "v1:AAAA:BBBB" not in json.dumps(data)


# --- local stack files ----------------------------------------------------------------------------------


@pytest.fixture
def local_stack_file(tmp_path, monkeypatch):
    """A user's own ``Pulumi.k8s-l4.yaml`` next to Pulumi.yaml, as the quickstart creates one."""
    monkeypatch.setattr(plan_tool, "ROOT", tmp_path)
    path = tmp_path / "Pulumi.k8s-l4.yaml"
    path.write_text(yaml.safe_dump({"config": {"vllm:replicas": "5"}}))
    return path


def test_a_local_stack_file_does_not_change_the_plan_unless_asked(local_stack_file):
    assert plan_tool.plan("k8s-l4")["spec"]["replicas"] == 1


def test_the_stack_file_is_read_when_asked(local_stack_file):
    assert plan_tool.default_stack_file("k8s-l4") == local_stack_file
    assert plan_tool.plan("k8s-l4", stack_file=local_stack_file)["spec"]["replicas"] == 5


def test_a_missing_stack_file_is_one_clear_error(tmp_path):
    result = run_plan("--stack", "k8s-l4", "--stack-file", str(tmp_path / "Pulumi.nope.yaml"))
    assert result.returncode != 0
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_a_list_key_set_by_path_reaches_the_program_as_a_list(tmp_path):
    # `pulumi config set --path 'vllm:extraArgs[0]' -- --enable-prefix-caching` writes a YAML list.
    stack_file = tmp_path / "Pulumi.k8s-l4.yaml"
    stack_file.write_text(yaml.safe_dump({"config": {"vllm:extraArgs": ["--enable-prefix-caching"]}}))
    data = plan_tool.plan("k8s-l4", stack_file=stack_file)
    assert data["spec"]["extraArgs"] == ["--enable-prefix-caching"]


def test_the_docs_run_the_tools_with_the_venvs_python():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    text = "\n".join(page.read_text() for page in pages)
    # A venv's own python (``.venv/bin/python``, or vLLM's venv for regenerating its flags), never a bare one.
    bare = re.findall(r"(?<!/bin/)\bpython3? -m (?:tools|pytest)\b", text)
    assert bare == [], "the docs' commands run the project's tools as .venv/bin/python -m ..."


# --- what the Pulumi CLI checks before the program runs -------------------------------------------------


def test_a_list_key_holding_text_is_refused_as_the_pulumi_cli_refuses_it(tmp_path):
    # `pulumi config set vllm:extraArgs '["--enable-prefix-caching"]'` stores a string, not a list.
    stack_file = tmp_path / "Pulumi.k8s-l4.yaml"
    stack_file.write_text(yaml.safe_dump({"config": {"vllm:extraArgs": '["--enable-prefix-caching"]'}}))
    with pytest.raises(plan_tool.StackConfigError) as caught:
        plan_tool.plan("k8s-l4", stack_file=stack_file)
    assert str(caught.value) == (
        "Stack 'k8s-l4' with configuration key 'vllm:extraArgs' must be of type 'array<string>'"
    )


def test_a_text_key_holding_a_list_is_refused_as_the_pulumi_cli_refuses_it():
    with pytest.raises(plan_tool.StackConfigError, match="'vllm:gpu' must be of type 'string'"):
        plan_tool.plan("k8s-l4", {"vllm:gpu": ["L4:1"]})


def test_the_plan_command_takes_a_list_in_brackets():
    result = run_plan("--stack", "k8s-l4", "--config", 'vllm:extraArgs=["--enable-prefix-caching"]', "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["spec"]["extraArgs"] == ["--enable-prefix-caching"]


def test_the_plan_command_reports_a_stack_config_type_error_in_one_line():
    result = run_plan("--stack", "k8s-l4", "--config", "vllm:extraArgs=--enable-prefix-caching")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: validating stack config: Stack 'k8s-l4' with configuration key 'vllm:extraArgs' must be of "
        "type 'array<string>'"
    ]


def test_the_program_sees_pulumi_yamls_defaults_as_in_a_real_run():
    defaults = plan_tool.project_defaults(plan_tool.project_config())
    assert defaults["vllm:extraArgs"] == [] and defaults["vllm:replicas"] == ""
    assert defaults["pulumi:disable-default-providers"] == ["*"]


# --- stack files read as the Pulumi CLI reads them (components/config_yaml.py) -------------------------

#: Stack file lines and the config the Pulumi CLI hands the program for them (tests/test_config_yaml.py
#: pins each rule to yaml.v3's and Pulumi's sources).
CLI_READINGS = {
    "no is a string": ("  vllm:servedModelName: no\n", {"vllm:servedModelName": "no"}),
    "~ is unset": ("  vllm:model: ~\n", {"vllm:model": ""}),
    "yes is not true": ("  vllm:spot: yes\n", {"vllm:spot": "yes"}),
    "010 as written": ("  vllm:replicas: 010\n", {"vllm:replicas": "010"}),
    "5:00 as written": ("  vllm:upscaleDelaySeconds: 5:00\n", {"vllm:upscaleDelaySeconds": "5:00"}),
}


@pytest.mark.parametrize("case", CLI_READINGS)
def test_a_stack_file_plans_as_up_runs_the_config_the_cli_reads_from_it(case, tmp_path):
    lines, handed_over = CLI_READINGS[case]
    path = tmp_path / "Pulumi.k8s-l4.yaml"
    path.write_text("config:\n" + lines)
    assert plan_outcome("k8s-l4", path, {}) == up_outcome("k8s-l4", handed_over, {})


def test_a_key_set_twice_in_a_stack_file_fails_the_plan_as_it_fails_the_cli(tmp_path):
    path = tmp_path / "Pulumi.k8s-l4.yaml"
    path.write_text("config:\n  vllm:replicas: '2'\n  vllm:replicas: '3'\n")
    with pytest.raises(plan_tool.StackFileError, match="already defined at line 2"):
        plan_tool.plan("k8s-l4", stack_file=path)


@pytest.mark.parametrize(
    "text",
    [
        "config:\n\tvllm:replicas: '2'\n",  # tab-indented
        "config: [\n",  # not YAML
        "config: vllm:replicas=2\n",  # config not a mapping
        "vllm:replicas: '2'\n",  # no config: level
    ],
)
def test_a_bad_stack_file_is_one_line_naming_it_and_exit_2(tmp_path, capsys, text):
    path = tmp_path / "Pulumi.k8s-l4.yaml"
    path.write_text(text)
    assert plan_tool.main(["--stack", "k8s-l4", "--stack-file", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --stack-file {path}: ")


def test_a_bare_stack_file_option_reads_the_stacks_own_file_as_the_quickstart_says(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(plan_tool, "ROOT", tmp_path)
    assert plan_tool.main(["--stack", "gcp-h100", "--stack-file"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --stack-file {tmp_path / 'Pulumi.gcp-h100.yaml'}: does not exist"
    )


def test_a_directory_given_as_the_stack_file_is_one_line(tmp_path, capsys):
    assert plan_tool.main(["--stack", "k8s-l4", "--stack-file", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


@pytest.mark.parametrize("stack", ["a b", "prod/a", "", "x" * 101, "naïve"])
def test_a_stack_name_pulumi_refuses_is_one_line_and_exit_2(stack, capsys):
    assert plan_tool.main(["--stack", stack]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: --stack {stack!r}: ")


def test_an_unexpected_failure_is_one_line_saying_it_is_a_bug(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise OverflowError("cannot convert float infinity to integer")

    monkeypatch.setattr(plan_tool, "plan", broken)
    assert plan_tool.main(["--stack", "k8s-l4"]) == 3
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "OverflowError" in line and "a bug" in line


def test_a_list_on_the_command_line_reads_its_items_as_a_stack_file_would():
    assert plan_tool.parse_pairs("--config", ['vllm:allowedCidrs=[yes, "10.0.0.0/8", 010]']) == {
        "vllm:allowedCidrs": ["yes", "10.0.0.0/8", 8]
    }
