"""tools/acceptance.sh on the clouds (gcp-l4, aws-l4): its control flow against fakes of pulumi, curl, gcloud
and aws on PATH, and of the project's tools.plan, tools.status and tools.bench in a copy of the repository.

The fakes prove what the script asks and in which order, and that every failure still ends in `pulumi
destroy` and the leftover check; what the clouds answer is the real run's business (docs/development.md,
"Acceptance on GCP and AWS")."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.harness import ROOT

SCRIPT = ROOT / "tools" / "acceptance.sh"
API_KEY = "sk-fake-acceptance-cloud-key"
MODEL = "Qwen/Qwen3-8B"
LB_ADDRESS = "203.0.113.10"
HOURLY = 1.41  # what the fake tools.plan prices the stack at
INSTANCES = ["i-0aaa", "i-0bbb"]

# One program for every fake CLI, dispatching on its name; each call appends its argv as a JSON line to
# $FAKE_LOG. State that lives across calls (destroyed, the SSM commands sent) is in $FAKE_STATE.
FAKE_CLI = r"""
import json, os, sys

LOG, STATE = os.environ["FAKE_LOG"], os.environ["FAKE_STATE"]
NAME, ARGS = os.path.basename(sys.argv[0]), sys.argv[1:]
ENV = os.environ


def record(**event):
    with open(LOG, "a") as log:
        log.write(json.dumps({"tool": NAME, "argv": ARGS, **event}) + "\n")


def flag(name, default=None):
    return ARGS[ARGS.index(name) + 1] if name in ARGS else default


def state(name):
    return os.path.exists(os.path.join(STATE, name))


def mark(name, text=""):
    with open(os.path.join(STATE, name), "w") as file:
        file.write(text)


def pulumi():
    record(cwd=os.getcwd(), backend=ENV.get("PULUMI_BACKEND_URL"))
    if ARGS[:1] == [ENV.get("FAKE_FAIL")]:
        sys.exit(f"error: {ARGS[0]} failed (FAKE_FAIL)")
    if ARGS[:1] == ["destroy"]:
        mark("destroyed")
    if ARGS[:2] == ["stack", "output"]:
        endpoint = "http://" + ENV["FAKE_LB"]
        print({"endpoint": endpoint, "apiKey": ENV["FAKE_API_KEY"], "model": ENV["FAKE_MODEL"]}[ARGS[2]])


def curl():
    url = ARGS[-1]
    headers = [ARGS[i + 1] for i, arg in enumerate(ARGS) if arg == "--header"]
    auth = any(h.startswith("@") and "Bearer " + ENV["FAKE_API_KEY"] in open(h[1:]).read() for h in headers)
    record(url=url, auth=auth)
    host_port = url.split("://", 1)[1].split("/", 1)[0]
    if ":" in host_port and host_port.rsplit(":", 1)[1] != ENV.get("FAKE_OPEN_PORT"):
        sys.exit(7)  # couldn't connect
    path = "/" + url.split("://", 1)[1].partition("/")[2]
    if path == "/v1/chat/completions":
        if auth:
            answer = {"choices": [{"message": {"content": "Hi!"}}]}
            code, body = int(ENV.get("FAKE_COMPLETION_CODE", 200)), answer
        else:
            code, body = int(ENV.get("FAKE_NO_KEY_CODE", 401)), {"error": "no key"}
    elif path == ENV.get("FAKE_EXPOSED_PATH"):
        code, body = 200, {}
    else:
        code, body = 404, {"detail": "Not Found"}
    with open(flag("--output"), "w") as out:
        out.write(json.dumps(body))
    if "--write-out" in ARGS:
        print(code, end="")


# What the kill script prints on the machine: StartedAt before -> StartedAt now, Running now.
def restart_result():
    if ENV.get("FAKE_NO_RESTART"):
        return "2026-12-07T10:00:00Z -> 2026-12-07T10:00:00Z false"
    return "2026-12-07T10:00:00Z -> 2026-12-07T10:05:00Z true"


# The stack's instances before the destroy; FAKE_REPLACED swaps the first one after the first look.
def listed_instances():
    listed = int(open(os.path.join(STATE, "listed")).read()) if state("listed") else 0
    mark("listed", str(listed + 1))
    ids = ENV["FAKE_INSTANCES"].split()
    if listed and ENV.get("FAKE_REPLACED"):
        ids = [ids[0] + "-new", *ids[1:]]
    return ids


def gcloud():
    policy = json.load(open(flag("--file"))) if "--file" in ARGS else None
    record(policy=policy)
    if ARGS[1:3] == ["instances", "list"] and not state("destroyed"):
        print("\n".join(f"{i}\tvllm-gcp-l4-group-{i}\tus-central1-a" for i in listed_instances()))
    elif ARGS[1:3] in (["instances", "list"], ["disks", "list"]) and ENV.get("FAKE_LEFTOVER"):
        print(ENV["FAKE_LEFTOVER"])
    elif ARGS[1:3] == ["instances", "get-guest-attributes"]:
        print(restart_result())


def aws():
    record()
    service, command = ARGS[0], ARGS[1]
    if (service, command) == ("ec2", "describe-instances"):
        if "--instance-ids" in ARGS:
            return print("arn:aws:iam::123456789012:instance-profile/vllm-aws-l4-profile-abc1234")
        if state("destroyed"):
            return print(ENV.get("FAKE_LEFTOVER", ""))
        print("\t".join(listed_instances()))
    elif (service, command) == ("iam", "get-instance-profile"):
        print("vllm-aws-l4-role-abc1234")
    elif (service, command) == ("ssm", "describe-instance-information"):
        print("Online")
    elif (service, command) == ("ssm", "send-command"):
        script = json.loads(flag("--parameters"))["commands"][0]
        sent = len([n for n in os.listdir(STATE) if n.startswith("command-")])
        mark(f"command-{sent}", script)
        print(f"command-{sent}")
    elif (service, command) == ("ssm", "get-command-invocation"):
        if flag("--query") == "Status":
            return print("Success")
        print(restart_result())
    elif (service, command) in (("ec2", "describe-volumes"), ("ec2", "describe-addresses")):
        print("")
    elif service == "resourcegroupstaggingapi":
        print(ENV.get("FAKE_LEFTOVER", "") if state("destroyed") else "")


{"pulumi": pulumi, "curl": curl, "gcloud": gcloud, "aws": aws}[NAME]()
"""

# The project's tools as the script calls them (python -m tools.<name> in the project copy).
FAKE_TOOL = r"""
import json, os, sys

NAME = __name__.rsplit(".", 1)[-1] if __name__ != "__main__" else os.path.basename(__file__)[:-3]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({"tool": "tools." + NAME, "argv": sys.argv[1:]}) + "\n")
if NAME == "plan":
    hourly = float(os.environ["FAKE_HOURLY"])  # unpriced: the costBreakdown output has no total
    print(json.dumps({"cost": {"totalHourly": hourly} if hourly else {"candidates": []}}))
if NAME == "status":
    waiting = "--wait" in sys.argv
    sys.exit(int(os.environ.get("FAKE_WAIT_EXIT" if waiting else "FAKE_TABLE_EXIT", "0")))
if NAME == "bench":
    open(sys.argv[sys.argv.index("--json") + 1], "w").write("{}")
    sys.exit(int(os.environ.get("FAKE_BENCH_EXIT", "0")))
"""


@dataclass
class Run:
    returncode: int
    stderr: str
    events: list[dict]

    def index(self, predicate: Callable[[dict], bool]) -> int:
        return next(i for i, event in enumerate(self.events) if predicate(event))

    def has(self, predicate: Callable[[dict], bool]) -> bool:
        return any(predicate(event) for event in self.events)

    def calls(self, tool: str) -> list[list[str]]:
        return [event["argv"] for event in self.events if event["tool"] == tool]


def called(tool: str, *words: str) -> Callable[[dict], bool]:
    return lambda event: event["tool"] == tool and event["argv"][: len(words)] == list(words)


def curled(path: str, *, auth: bool) -> Callable[[dict], bool]:
    return lambda event: event["tool"] == "curl" and event["url"].endswith(path) and event["auth"] == auth


def ssm_sent(word: str) -> Callable[[dict], bool]:
    return lambda event: called("aws", "ssm", "send-command")(event) and word in " ".join(event["argv"])


def make_repo(base: Path) -> Path:
    """The script in a copy of the repository whose tools.plan, tools.status and tools.bench are fakes."""
    copy = base / "repo"
    (copy / "tools").mkdir(parents=True)
    shutil.copy2(SCRIPT, copy / "tools" / "acceptance.sh")
    shutil.copytree(ROOT / "stacks", copy / "stacks")
    shutil.copy2(ROOT / "Pulumi.yaml", copy / "Pulumi.yaml")
    (copy / "tools" / "__init__.py").write_text("")
    for name in ("plan", "status", "bench"):
        (copy / "tools" / f"{name}.py").write_text(FAKE_TOOL)
    (copy / ".venv").symlink_to(Path(sys.executable).parent.parent)
    return copy


def make_runner(base: Path, repo: Path) -> Callable[..., Run]:
    """Runs the script in ``repo`` with the fake CLIs first on PATH; its state and logs live in ``base``."""
    bin_dir = base / "bin"
    bin_dir.mkdir()
    program = bin_dir / "fake_cli.py"
    program.write_text(f"#!{sys.executable} -S\n{FAKE_CLI}")
    program.chmod(0o755)
    for name in ("pulumi", "curl", "gcloud", "aws"):
        (bin_dir / name).symlink_to(program)

    def run(*args: str, **fake_env: str) -> Run:
        state = base / "state"
        shutil.rmtree(state, ignore_errors=True)
        state.mkdir()
        log = base / "calls.jsonl"
        log.unlink(missing_ok=True)
        env = {
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "HOME": str(base),
            "TMPDIR": str(base),
            "FAKE_LOG": str(log),
            "FAKE_STATE": str(state),
            "FAKE_LB": LB_ADDRESS,
            "FAKE_API_KEY": API_KEY,
            "FAKE_MODEL": MODEL,
            "FAKE_HOURLY": str(HOURLY),
            "FAKE_INSTANCES": " ".join(INSTANCES),
            "ACCEPTANCE_GCP_PROJECT": "acceptance-project",
            **fake_env,
        }
        result = subprocess.run(
            ["bash", str(repo / "tools" / "acceptance.sh"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        events = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return Run(result.returncode, result.stderr, events)

    return run


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path)


@pytest.fixture
def run_script(tmp_path: Path, repo: Path) -> Callable[..., Run]:
    return make_runner(tmp_path, repo)


@pytest.fixture(scope="module")
def passed(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Run]:
    """The run of each stack where every fake answers as a healthy stack does, once per module."""
    base = tmp_path_factory.mktemp("passed")
    run = make_runner(base, make_repo(base))
    runs: dict[str, Run] = {}

    def get(stack: str) -> Run:
        if stack not in runs:
            runs[stack] = run("--stack", stack)
        return runs[stack]

    return get


# --- the order of the steps ------------------------------------------------------------------------------


def test_aws_run_prices_deploys_proves_and_destroys_in_that_order(passed):
    run = passed("aws-l4")
    assert run.returncode == 0, run.stderr
    order = [
        run.index(called("tools.plan")),
        run.index(called("pulumi", "stack", "init", "aws-l4")),
        run.index(called("pulumi", "config", "set", "vllm:replicas", "2")),
        run.index(called("pulumi", "up")),
        run.index(lambda e: e["tool"] == "tools.status" and "--wait" in e["argv"]),
        run.index(curled("/v1/chat/completions", auth=True)),
        run.index(called("tools.bench")),
        run.index(lambda e: e["tool"] == "tools.status" and "--wait" not in e["argv"]),
        run.index(curled("/metrics", auth=True)),
        run.index(curled("/v1/chat/completions", auth=False)),
        run.index(called("aws", "iam", "attach-role-policy")),
        run.index(ssm_sent("docker kill vllm")),
        run.index(called("aws", "iam", "detach-role-policy")),
        run.index(called("pulumi", "destroy")),
        run.index(called("pulumi", "stack", "rm")),
        run.index(called("aws", "resourcegroupstaggingapi", "get-resources")),
    ]
    assert order == sorted(order)
    assert "PASS: aws-l4" in run.stderr


def test_gcp_run_deploys_into_the_given_project_and_checks_for_leftovers_after_the_destroy(run_script):
    run = run_script("--stack", "gcp-l4", ACCEPTANCE_REGION="us-east4")
    assert run.returncode == 0, run.stderr
    assert run.calls("pulumi")[2][:4] == ["config", "set", "gcp:project", "acceptance-project"]
    assert run.calls("pulumi")[3][:4] == ["config", "set", "gcp:region", "us-east4"]
    plan = run.calls("tools.plan")[0]
    assert {"vllm:replicas=2", "gcp:project=acceptance-project", "gcp:region=us-east4"} <= set(plan)
    destroyed = run.index(called("pulumi", "destroy"))
    leftovers = [e["argv"] for e in run.events[destroyed:] if e["tool"] == "gcloud" and "list" in e["argv"]]
    kinds = {argv[1] for argv in leftovers}
    assert {"instances", "buckets", "disks", "addresses", "forwarding-rules", "backend-services"} <= kinds
    assert all(argv[argv.index("--project") + 1] == "acceptance-project" for argv in run.calls("gcloud"))
    # Labels and name prefixes of this stack's resources only.
    filters = [next(arg for arg in argv if arg.startswith("--filter=")) for argv in leftovers]
    assert all("vllm-gcp-l4" in f for f in filters), filters


def test_the_cost_line_is_the_plans_hourly_price_times_the_runs_budget(run_script):
    run = run_script("--stack", "gcp-l4", ACCEPTANCE_MAX_MINUTES="90")
    assert run.returncode == 0, run.stderr
    assert f"cost: at most ${HOURLY * 1.5:.2f}: 2 replica(s) at ${HOURLY:.2f}/h" in run.stderr
    assert run.stderr.index("cost: at most") < run.stderr.index("pulumi up")


def test_no_wait_outlasts_the_budget_the_cost_line_priced(run_script):
    run = run_script("--stack", "gcp-l4", ACCEPTANCE_MAX_MINUTES="1", ACCEPTANCE_WAIT_SECONDS="1800")
    waits = [argv for argv in run.calls("tools.status") if "--wait" in argv]
    assert waits and all(0 < float(argv[argv.index("--timeout") + 1]) <= 60 for argv in waits)


def test_a_plan_without_a_price_stops_the_run_before_anything_is_deployed(run_script):
    run = run_script("--stack", "aws-l4", FAKE_HOURLY="0")
    assert run.returncode != 0
    assert "no cost line, no run" in run.stderr
    assert run.calls("pulumi") == []


def test_the_load_test_runs_only_when_the_project_has_tools_bench(run_script, repo):
    with_bench = run_script("--stack", "aws-l4")
    assert with_bench.calls("tools.bench")[0][:6] == [
        "--stack",
        "aws-l4",
        "--concurrency",
        "1,4",
        "--requests",
        "8",
    ]
    (repo / "tools" / "bench.py").unlink()
    without = run_script("--stack", "aws-l4")
    assert without.returncode == 0, without.stderr
    assert not without.has(called("tools.bench")) and "no tools/bench.py" in without.stderr


def test_the_exposure_check_asks_the_closed_paths_and_the_ray_ports_of_the_load_balancer(passed):
    run = passed("gcp-l4")
    urls = {event["url"] for event in run.events if event["tool"] == "curl"}
    assert {f"http://{LB_ADDRESS}/metrics", f"http://{LB_ADDRESS}/docs"} <= urls
    assert {f"http://{LB_ADDRESS}:{port}/" for port in (6379, 8265, 10001, 8000, 22)} <= urls


@pytest.mark.parametrize(
    ("override", "expected"), [({}, "us-east-1"), ({"ACCEPTANCE_REGION": "us-west-2"}, "us-west-2")]
)
def test_the_aws_cli_asks_the_stacks_region_the_presets_unless_overridden(run_script, override, expected):
    run = run_script("--stack", "aws-l4", **override)
    assert run.returncode == 0, run.stderr
    regional = [argv for argv in run.calls("aws") if argv[0] != "iam"]
    assert regional and all(argv[argv.index("--region") + 1] == expected for argv in regional)


def test_the_key_never_reaches_argv(passed):
    run = passed("aws-l4")
    assert run.returncode == 0, run.stderr
    assert not any(API_KEY in " ".join(event["argv"]) for event in run.events)


# --- the restart check ----------------------------------------------------------------------------------


def test_aws_restart_check_kills_the_container_on_one_machine_by_ssm_then_sees_the_same_machines(passed):
    run = passed("aws-l4")
    assert run.returncode == 0, run.stderr
    sent = [argv for argv in run.calls("aws") if argv[:2] == ["ssm", "send-command"]]
    assert len(sent) == 1 and sent[0][sent[0].index("--instance-ids") + 1] == INSTANCES[0]
    assert json.loads(sent[0][sent[0].index("--parameters") + 1]) == {"commands": [kill_script()]}
    # After the kill: ready again (tools.status --wait), then the same machines as before.
    waits = [i for i, e in enumerate(run.events) if e["tool"] == "tools.status" and "--wait" in e["argv"]]
    assert len(waits) == 2 and waits[1] > run.index(ssm_sent("docker kill vllm"))
    assert "restarted (started 2026-12-07T10:00:00Z, now 2026-12-07T10:05:00Z)" in run.stderr
    assert "no machine was replaced" in run.stderr


def os_policy(run: Run) -> dict:
    return next(
        e["policy"] for e in run.events if called("gcloud", "compute", "os-config")(e) and e["policy"]
    )


def test_gcp_restart_check_runs_the_kill_script_by_an_os_policy_on_the_one_labelled_instance(passed):
    run = passed("gcp-l4")
    assert run.returncode == 0, run.stderr
    labelled = next(argv for argv in run.calls("gcloud") if argv[1:3] == ["instances", "add-labels"])
    assert labelled[3] == f"vllm-gcp-l4-group-{INSTANCES[0]}"
    label = labelled[-1].removeprefix("--labels=")
    policy = os_policy(run)
    key, value = label.split("=")
    assert policy["instanceFilter"] == {"inclusionLabels": [{"labels": {key: value}}]}
    (resource,) = policy["osPolicies"][0]["resourceGroups"][0]["resources"]
    enforce = resource["exec"]["enforce"]["script"]
    assert enforce.startswith(kill_script()) and "guest-attributes/vllm-acceptance/restart" in enforce
    assert [
        arg
        for argv in run.calls("gcloud")
        if argv[1:3] == ["instances", "add-metadata"]
        for arg in argv
        if arg.startswith("--metadata")
    ] == ["--metadata=enable-osconfig=TRUE,enable-guest-attributes=TRUE"]
    assert "no machine was replaced" in run.stderr


def test_gcp_deletes_its_os_policy_assignment_before_the_destroy_when_the_container_did_not_restart(
    run_script,
):
    run = run_script("--stack", "gcp-l4", FAKE_NO_RESTART="1")
    assert run.returncode != 0 and "did not restart" in run.stderr
    created = run.events[
        run.index(called("gcloud", "compute", "os-config", "os-policy-assignments", "create"))
    ]
    deleted = run.index(called("gcloud", "compute", "os-config", "os-policy-assignments", "delete"))
    assert run.events[deleted]["argv"][4] == created["argv"][4]
    assert deleted < run.index(called("pulumi", "destroy"))


def kill_script() -> str:
    text = SCRIPT.read_text()
    start = text.index("readonly KILL_SCRIPT='") + len("readonly KILL_SCRIPT='")
    return text[start : text.index("'\n", start)]


def test_the_kill_script_kills_the_container_and_reports_the_one_systemd_starts(tmp_path):
    # A fake docker: the container started at T0; `docker kill` has systemd start a new one at T1.
    docker = tmp_path / "docker"
    docker.write_text(
        "#!/bin/sh\n"
        f"state={tmp_path}/killed\n"
        'case "$1" in\n'
        '  kill) touch "$state"; echo vllm ;;\n'
        '  inspect) if [ -f "$state" ]; then t=T1; else t=T0; fi\n'
        '    case "$3" in *Running*) echo "$t true" ;; *) echo "$t" ;; esac ;;\n'
        "esac\n"
    )
    docker.chmod(0o755)
    result = subprocess.run(
        ["/bin/sh", "-c", kill_script()],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "T0 -> T1 true"
    assert (tmp_path / "killed").exists()


# --- destroy on every failure path ----------------------------------------------------------------------

FAILURES = {
    "up": ({"FAKE_FAIL": "up"}, "error: up failed"),
    "never-ready": ({"FAKE_WAIT_EXIT": "3"}, ""),
    "completion": ({"FAKE_COMPLETION_CODE": "500"}, "chat completion: HTTP 500"),
    "bench": ({"FAKE_BENCH_EXIT": "1"}, "tools.bench failed"),
    "replica-not-ready": ({"FAKE_TABLE_EXIT": "1"}, "not every replica is READY"),
    "metrics-exposed": ({"FAKE_EXPOSED_PATH": "/metrics"}, "/metrics answers HTTP 200"),
    "ray-port-open": ({"FAKE_OPEN_PORT": "8265"}, "port 8265 of 203.0.113.10 accepts connections"),
    "no-key-accepted": ({"FAKE_NO_KEY_CODE": "200"}, "without the key got HTTP 200, not 401"),
    "machine-replaced": ({"FAKE_REPLACED": "1"}, "instances changed after the kill"),
    "no-restart": (
        {"FAKE_NO_RESTART": "1"},
        "did not restart: 2026-12-07T10:00:00Z -> 2026-12-07T10:00:00Z false",
    ),
}


@pytest.mark.parametrize("failure", FAILURES)
def test_every_failure_destroys_the_stack_and_checks_for_leftovers(run_script, failure):
    fake_env, reason = FAILURES[failure]
    run = run_script("--stack", "aws-l4", **fake_env)
    assert run.returncode != 0, f"{failure} passed"
    assert reason in run.stderr
    assert run.index(called("pulumi", "destroy")) > run.index(called("pulumi", "up"))
    assert run.calls("pulumi")[-1][:2] == ["stack", "rm"]
    assert run.index(called("aws", "resourcegroupstaggingapi")) > run.index(called("pulumi", "destroy"))


def test_the_ssm_policy_is_detached_before_the_destroy_when_the_restart_check_fails(run_script):
    run = run_script("--stack", "aws-l4", FAKE_REPLACED="1")
    assert run.returncode != 0
    detached = run.index(called("aws", "iam", "detach-role-policy"))
    assert (
        run.index(called("aws", "iam", "attach-role-policy"))
        < detached
        < run.index(called("pulumi", "destroy"))
    )
    role = run.events[detached]["argv"]
    assert role[role.index("--role-name") + 1] == "vllm-aws-l4-role-abc1234"


def test_something_left_after_the_destroy_fails_a_run_that_passed_and_names_it(run_script):
    run = run_script("--stack", "aws-l4", FAKE_LEFTOVER="arn:aws:s3:::vllm-aws-l4-weights-abc1234")
    assert run.returncode == 1
    assert "left after the destroy:\narn:aws:s3:::vllm-aws-l4-weights-abc1234" in run.stderr


def test_a_gcp_disk_left_after_the_destroy_fails_the_run(run_script):
    run = run_script("--stack", "gcp-l4", FAKE_LEFTOVER="projects/p/zones/z/disks/vllm-gcp-l4-group-x1")
    assert run.returncode == 1 and "vllm-gcp-l4-group-x1" in run.stderr


def test_a_failed_destroy_keeps_the_state_and_names_the_command_that_finishes_it(run_script, tmp_path):
    work = tmp_path / "work"
    failed = run_script("--stack", "gcp-l4", FAKE_FAIL="destroy", ACCEPTANCE_WORK_DIR=str(work))
    assert failed.returncode != 0
    assert f"ACCEPTANCE_WORK_DIR={work}" in failed.stderr and "--stack gcp-l4 destroy" in failed.stderr
    after_destroy = failed.events[failed.index(called("pulumi", "destroy")) :]
    assert not [e for e in after_destroy if e["tool"] == "gcloud"], "no leftover check while the stack exists"
    retried = run_script("--stack", "gcp-l4", "destroy", ACCEPTANCE_WORK_DIR=str(work))
    assert retried.returncode == 0, retried.stderr
    assert retried.calls("pulumi")[:2] == [
        ["destroy", "--stack", "gcp-l4", "--yes", "--non-interactive"],
        ["stack", "rm", "gcp-l4", "--yes", "--non-interactive"],
    ]
    assert retried.has(called("gcloud", "compute", "instances", "list"))


# --- refusals before anything runs ----------------------------------------------------------------------


def test_an_unknown_stack_is_refused_with_the_valid_ones(run_script):
    run = run_script("--stack", "gcp-h100")
    assert run.returncode == 2
    assert "--stack gcp-h100: one of dev, gcp-l4, aws-l4" in run.stderr
    assert run.events == []


def test_gcp_without_a_project_stops_before_any_call(run_script):
    run = run_script("--stack", "gcp-l4", ACCEPTANCE_GCP_PROJECT="")
    assert run.returncode != 0 and "ACCEPTANCE_GCP_PROJECT" in run.stderr
    assert run.events == []


# --- the presets the script deploys ---------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["gcp-l4", "aws-l4"])
def test_the_acceptance_presets_serve_an_open_model_on_one_l4_from_the_bucket_over_plain_http(preset):
    config = yaml.safe_load((ROOT / "stacks" / f"{preset}.yaml").read_text())["config"]
    assert config["vllm:gpu"] == "L4:1" and config["vllm:weightCache"] == "bucket"
    assert "vllm:domain" not in config and "vllm:hfToken" not in config
    from tools.fakes_hub import PRESET_MODELS

    assert not PRESET_MODELS[config["vllm:model"]].gated, "the acceptance run has no HF token"


#: The replicas: 2 variant the acceptance run deploys (ACCEPTANCE_REPLICAS): two machines behind the one load
#: balancer; the group's size property and the load balancer resource, by platform.
VARIANT_GROUP = {
    "gcp-l4": ("targetSize", "gcp:compute/globalForwardingRule:GlobalForwardingRule"),
    "aws-l4": ("desiredCapacity", "aws:lb/loadBalancer:LoadBalancer"),
}


@pytest.mark.parametrize("preset", VARIANT_GROUP)
def test_the_two_replica_variant_puts_two_machines_behind_one_load_balancer_at_twice_the_price(preset):
    from tools import plan as plan_tool

    single, variant = plan_tool.plan(preset), plan_tool.plan(preset, {"vllm:replicas": "2"})
    size, balancer = VARIANT_GROUP[preset]
    sizes = [row["properties"][size] for row in variant["resources"] if size in row["properties"]]
    assert sizes == [2]
    assert len([row for row in variant["resources"] if row["type"] == balancer]) == 1
    assert variant["cost"]["totalHourly"] == pytest.approx(
        2 * single["cost"]["totalHourly"], abs=0.02
    )  # each rounded to cents


def test_the_script_reads_each_presets_region_under_its_platforms_key():
    # cloud_region: sed "s/^ *$platform:region: *//p" stacks/<stack>.yaml, platform gcp or aws.
    for preset, platform in (("gcp-l4", "gcp"), ("aws-l4", "aws")):
        config = yaml.safe_load((ROOT / "stacks" / f"{preset}.yaml").read_text())["config"]
        assert config[f"{platform}:region"]


# --- the workflows that run it ----------------------------------------------------------------------------

CLOUD_WORKFLOWS = {
    "gcp-l4": ROOT / ".github" / "workflows" / "acceptance-gcp.yml",
    "aws-l4": ROOT / ".github" / "workflows" / "acceptance-aws.yml",
}


def workflow(stack: str) -> tuple[dict, dict]:
    loaded = yaml.safe_load(CLOUD_WORKFLOWS[stack].read_text())
    return loaded, loaded["jobs"][stack]


@pytest.mark.parametrize("stack", CLOUD_WORKFLOWS)
def test_a_cloud_acceptance_runs_by_hand_or_weekly_where_the_repository_opts_in(stack):
    loaded, job = workflow(stack)
    triggers = loaded[True]  # YAML 1.1 reads the key `on` as True
    assert set(triggers) == {"workflow_dispatch", "schedule"}
    assert len(triggers["schedule"]) == 1
    assert job["if"] == "github.event_name == 'workflow_dispatch' || vars.ACCEPTANCE_WEEKLY == 'true'"


@pytest.mark.parametrize(("stack", "target"), [("gcp-l4", "project"), ("aws-l4", "account")])
def test_a_cloud_acceptance_takes_the_region_and_the_project_or_account_as_inputs(stack, target):
    loaded, _ = workflow(stack)
    assert set(loaded[True]["workflow_dispatch"]["inputs"]) == {"region", target}


@pytest.mark.parametrize("stack", CLOUD_WORKFLOWS)
def test_a_cloud_acceptance_gets_credentials_by_oidc_only(stack):
    loaded, job = workflow(stack)
    assert loaded["permissions"] == {"contents": "read", "id-token": "write"}
    text = CLOUD_WORKFLOWS[stack].read_text()
    assert "secrets." not in text, "no long-lived cloud key: OIDC federation only"
    uses = [step["uses"].split("@")[0] for step in job["steps"] if "uses" in step]
    auth = {"gcp-l4": "google-github-actions/auth", "aws-l4": "aws-actions/configure-aws-credentials"}[stack]
    assert auth in uses


def test_the_gcp_acceptance_federates_through_a_workload_identity_provider():
    _, job = workflow("gcp-l4")
    auth = next(s for s in job["steps"] if s.get("uses", "").startswith("google-github-actions/auth@"))
    assert set(auth["with"]) == {"workload_identity_provider", "service_account"}


def test_the_aws_acceptance_assumes_a_role_in_the_chosen_account():
    _, job = workflow("aws-l4")
    step = next(
        s for s in job["steps"] if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")
    )
    assert step["with"]["role-to-assume"].startswith(
        "arn:aws:iam::${{ inputs.account || vars.AWS_ACCOUNT_ID }}:"
    )
    # The session outlives the job: a run never loses its credentials before the destroy step.
    assert step["with"]["role-duration-seconds"] >= job["timeout-minutes"] * 60


@pytest.mark.parametrize("stack", CLOUD_WORKFLOWS)
def test_two_runs_never_share_a_stack(stack):
    loaded, _ = workflow(stack)
    group = loaded["concurrency"]["group"]
    assert stack in group and ("inputs.project" in group or "inputs.account" in group)
    assert loaded["concurrency"]["cancel-in-progress"] is False, (
        "a cancelled run would skip nothing, but waits"
    )


@pytest.mark.parametrize("stack", CLOUD_WORKFLOWS)
def test_a_cloud_acceptance_runs_the_script_then_destroys_always_within_the_jobs_time(stack):
    _, job = workflow(stack)
    runs = [step.get("run") for step in job["steps"]]
    run_step = job["steps"][runs.index(f"bash tools/acceptance.sh --stack {stack}")]
    destroy_step = job["steps"][runs.index(f"bash tools/acceptance.sh --stack {stack} destroy")]
    assert job["steps"].index(run_step) < job["steps"].index(destroy_step)
    assert destroy_step["if"] == "always()"
    assert run_step["env"]["ACCEPTANCE_WORK_DIR"] == destroy_step["env"]["ACCEPTANCE_WORK_DIR"]
    assert run_step["timeout-minutes"] + destroy_step["timeout-minutes"] <= job["timeout-minutes"]
    # The cost line prices the run's own limit.
    assert int(job["env"]["ACCEPTANCE_MAX_MINUTES"]) == run_step["timeout-minutes"]
