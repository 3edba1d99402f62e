"""GitHub Actions: valid workflow files, CI runs the project's own script, previews cover every preset."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from components.presets import available_presets
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


ACTIONLINT = Path(sys.executable).parent / "actionlint"


def test_every_workflow_passes_actionlint():
    # actionlint checks what the schema cannot: expressions and contexts, the inputs of popular actions, the
    # runtime of their pinned versions (node20 actions are deprecated), and `run:` scripts with shellcheck.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [str(ACTIONLINT), "-oneline", *map(str, WORKFLOWS)], capture_output=True, text=True, env=env, cwd=ROOT
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
    assert any(str(step.get("run", "")).endswith("bash .ci/run") for step in ci["jobs"]["test"]["steps"])


def test_ci_runs_as_root_with_setup_pythons_interpreter():
    """.ci/run installs Debian packages and boots machines under systemd-nspawn: both need root, which
    GitHub's runner user reaches through sudo; PATH carried over keeps setup-python's 3.11."""
    ci = load(ROOT / ".github" / "workflows" / "ci.yml")
    runs = [str(step.get("run", "")) for step in ci["jobs"]["test"]["steps"]]
    assert 'sudo env "PATH=$PATH" bash .ci/run' in runs


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


# --- The acceptance workflow: the CPU dev stack on kind, driven by tools/acceptance.sh --------------------

ACCEPTANCE = ROOT / ".github" / "workflows" / "acceptance.yml"
ACCEPTANCE_SCRIPT = ROOT / "tools" / "acceptance.sh"
SHELLCHECK = Path(sys.executable).parent / "shellcheck"
DEV_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
FAKE_API_KEY = "sk-fake-acceptance-key"


def github_path_filter_matches(pattern: str, path: str) -> bool:
    """GitHub's `paths:` glob: `**` crosses directories, `*` stays inside one."""
    regex = re.sub(r"\\\*\\\*|\\\*", lambda m: ".*" if m.group() == r"\*\*" else "[^/]*", re.escape(pattern))
    return re.fullmatch(regex, path) is not None


def acceptance_steps() -> list[dict]:
    return load(ACCEPTANCE)["jobs"]["kind"]["steps"]


def test_acceptance_runs_on_pull_requests_that_touch_the_kubernetes_backend_and_by_hand():
    triggers = load(ACCEPTANCE)[True]  # YAML 1.1 reads the key `on` as True
    paths = triggers["pull_request"]["paths"]

    def watched(path: str) -> bool:
        return any(github_path_filter_matches(pattern, path) for pattern in paths)

    def files(folder: str) -> list[str]:
        return [str(path.relative_to(ROOT)) for path in (ROOT / folder).rglob("*.py")]

    exercised = [
        *files("components/kubernetes"),
        "components/launch.py",
        "components/spec.py",
        "components/service_spec.py",
        "components/keys.py",
        "components/presets.py",
        "components/images.py",
        "components/service.py",
        "Pulumi.yaml",
        "Pulumi.dev.yaml",
        "requirements.txt",
        "tools/acceptance.sh",
        ".github/workflows/acceptance.yml",
    ]
    assert all(watched(path) for path in exercised), [path for path in exercised if not watched(path)]
    elsewhere = [*files("components/gcp"), *files("components/aws"), "README.md", "stacks/gcp-h100.yaml"]
    assert not any(watched(path) for path in elsewhere), [path for path in elsewhere if watched(path)]
    assert "workflow_dispatch" in triggers


def test_acceptance_job_runs_the_script_then_destroys_even_after_a_failure():
    steps = acceptance_steps()
    runs = [step.get("run") for step in steps]
    assert "bash tools/acceptance.sh" in runs and "bash tools/acceptance.sh destroy" in runs
    run, destroy = runs.index("bash tools/acceptance.sh"), runs.index("bash tools/acceptance.sh destroy")
    assert run < destroy and steps[destroy]["if"] == "always()"
    # Both steps share the work directory: that is where the destroy step finds the run's stack.
    assert steps[run]["env"]["ACCEPTANCE_WORK_DIR"] == steps[destroy]["env"]["ACCEPTANCE_WORK_DIR"]


def test_acceptance_job_is_read_only_bounded_in_time_and_one_run_per_pull_request():
    workflow = load(ACCEPTANCE)
    job = workflow["jobs"]["kind"]
    assert workflow["permissions"] == {"contents": "read"}
    assert "github.event.pull_request.number" in workflow["concurrency"]["group"]
    run = next(step for step in job["steps"] if step.get("run") == "bash tools/acceptance.sh")
    destroy = next(step for step in job["steps"] if step.get("run") == "bash tools/acceptance.sh destroy")
    # The run step stops early enough to leave the destroy step its time inside the job's limit.
    assert run["timeout-minutes"] + destroy["timeout-minutes"] <= job["timeout-minutes"]


def test_acceptance_actions_are_pinned_to_a_major_version():
    used = [step["uses"] for step in acceptance_steps() if "uses" in step]
    assert {use.split("@")[0] for use in used} >= {"helm/kind-action", "pulumi/actions"}
    assert all(re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", use) for use in used), used


def test_acceptance_script_passes_shellcheck():
    binary = str(SHELLCHECK) if SHELLCHECK.exists() else "shellcheck"
    result = subprocess.run([binary, str(ACCEPTANCE_SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# Fakes of the pulumi, kubectl and kind CLIs, one program dispatching on its name. Each call appends its argv
# (and the vLLM stand-in each request it serves) as a JSON line to $FAKE_LOG, so a test reads the order of
# operations. `kubectl port-forward` serves a fake vLLM on 127.0.0.1, as the real one forwards to the pod.
FAKE_CLI = r"""
import json, os, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = os.environ["FAKE_LOG"]
NAME = os.path.basename(sys.argv[0])
ARGS = sys.argv[1:]
ENDPOINT = os.environ.get("FAKE_ENDPOINT", "http://vllm-dev.vllm.svc.cluster.local")


def record(**event):
    with open(LOG, "a") as log:
        log.write(json.dumps(event) + "\n")


def pulumi():
    env = os.environ
    record(tool="pulumi", argv=ARGS, cwd=os.getcwd(), backend=env.get("PULUMI_BACKEND_URL"),
           passphrase=bool(env.get("PULUMI_CONFIG_PASSPHRASE")), kubeconfig=env.get("KUBECONFIG"))
    if ARGS[:1] == [os.environ.get("FAKE_FAIL")]:
        sys.exit(f"error: {ARGS[0]} failed (FAKE_FAIL)")
    if ARGS[:1] == [os.environ.get("FAKE_BLOCK")]:  # runs until Ctrl-C, or gives up after a minute
        time.sleep(60)
        sys.exit("error: FAKE_BLOCK was never interrupted")
    if ARGS[:2] == ["stack", "init"]:  # as the passphrase provider does: a salt in the stack's config file
        with open("Pulumi.dev.yaml", "a") as config:
            config.write("encryptionsalt: v1:fake\n")
    if ARGS[:2] == ["stack", "output"]:
        env = os.environ
        print({"endpoint": ENDPOINT, "apiKey": env["FAKE_API_KEY"], "model": env["FAKE_MODEL"]}[ARGS[2]])


def kind():
    record(tool="kind", argv=ARGS)
    if ARGS[:2] == ["get", "clusters"]:
        print(os.environ.get("FAKE_KIND_CLUSTERS", ""))
    if ARGS[:2] == ["get", "kubeconfig"]:
        print("apiVersion: v1\nkind: Config")


class FakeVllm(BaseHTTPRequestHandler):
    health_failures = int(os.environ.get("FAKE_HEALTH_FAILURES", "0"))

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_one(self, body=None):
        record(tool="vllm", method=self.command, path=self.path, agent=self.headers.get("User-Agent", ""),
               body=body)
        if self.path == "/health":
            if FakeVllm.health_failures > 0:
                FakeVllm.health_failures -= 1
                return self.answer(503, {"error": "loading"})
            return self.answer(200, {})
        if self.headers.get("Authorization") != "Bearer " + os.environ["FAKE_API_KEY"]:
            return self.answer(401, {"error": "Unauthorized"})
        if self.path == "/v1/models":
            return self.answer(200, {"data": [{"id": os.environ["FAKE_MODEL"]}]})
        if self.path == "/v1/chat/completions":
            content = os.environ.get("FAKE_CONTENT", "Hello! I am a small model.")
            return self.answer(200, {"choices": [{"message": {"role": "assistant", "content": content}}]})
        return self.answer(404, {"error": "not found"})

    def do_GET(self):
        self.handle_one()

    def do_POST(self):
        self.handle_one(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))

    def log_message(self, *args):
        pass


def kubectl():
    record(tool="kubectl", argv=ARGS, pid=os.getpid(), kubeconfig=os.environ.get("KUBECONFIG"))
    if "port-forward" in ARGS:
        server = ThreadingHTTPServer(("127.0.0.1", 0), FakeVllm)
        print(f"Forwarding from 127.0.0.1:{server.server_address[1]} -> 8000", flush=True)
        # Never outlive a test that went wrong: the script is expected to stop it long before.
        threading.Thread(target=lambda: (time.sleep(900), os._exit(0)), daemon=True).start()
        server.serve_forever()


{"pulumi": pulumi, "kind": kind, "kubectl": kubectl}[NAME]()
"""


@dataclass
class AcceptanceRun:
    returncode: int
    stdout: str
    stderr: str
    events: list[dict]

    def calls(self, tool: str) -> list[list[str]]:
        return [event["argv"] for event in self.events if event["tool"] == tool]

    def index(self, predicate: Callable[[dict], bool]) -> int:
        return next(i for i, event in enumerate(self.events) if predicate(event))


@pytest.fixture
def fake_clis(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "fake_cli.py"
    program.write_text(f"#!{sys.executable} -S\n{FAKE_CLI}")  # -S: stdlib only, quick to start
    program.chmod(0o755)
    for name in ("pulumi", "kubectl", "kind"):
        (bin_dir / name).symlink_to(program)
    return bin_dir


@pytest.fixture
def acceptance_env(tmp_path: Path, fake_clis: Path) -> dict[str, str]:
    return {
        "PATH": f"{fake_clis}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        "FAKE_LOG": str(tmp_path / "calls.jsonl"),
        "FAKE_API_KEY": FAKE_API_KEY,
        "FAKE_MODEL": DEV_MODEL,
        "FAKE_KIND_CLUSTERS": "vllm-acceptance",
        "ACCEPTANCE_WAIT_SECONDS": "300",  # returns as soon as ready: only a failing run waits it out
        "ACCEPTANCE_BENCH_JSON": "",  # no bench: its own test below (this fake vLLM does not stream)
    }


def read_events(env: dict[str, str]) -> list[dict]:
    log = Path(env["FAKE_LOG"])
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture
def run_acceptance(acceptance_env: dict[str, str]) -> Callable[..., AcceptanceRun]:
    def run(*args: str, **fake_env: str) -> AcceptanceRun:
        env = {**acceptance_env, **fake_env}
        Path(env["FAKE_LOG"]).unlink(missing_ok=True)
        result = subprocess.run(
            ["bash", str(ACCEPTANCE_SCRIPT), *args], env=env, capture_output=True, text=True, timeout=600
        )
        return AcceptanceRun(result.returncode, result.stdout, result.stderr, read_events(env))

    return run


def is_pulumi(command: str) -> Callable[[dict], bool]:
    words = command.split()
    return lambda event: event["tool"] == "pulumi" and event["argv"][: len(words)] == words


def is_port_forward(event: dict) -> bool:
    return event["tool"] == "kubectl" and "port-forward" in event["argv"]


def is_request(agent: str, path: str) -> Callable[[dict], bool]:
    return lambda event: (
        event["tool"] == "vllm" and event["path"] == path and event["agent"].startswith(agent)
    )


def test_acceptance_script_brings_up_waits_asks_and_destroys_in_that_order(run_acceptance):
    # The first /health answers 503 (the model is loading): only `tools.status --wait` gets past it.
    run = run_acceptance(FAKE_HEALTH_FAILURES="1")
    assert run.returncode == 0, run.stderr
    order = [
        run.index(is_pulumi("up")),
        run.index(is_port_forward),
        run.index(is_request("python-requests", "/health")),
        run.index(is_request("python-requests", "/v1/chat/completions")),
        run.index(is_request("curl", "/v1/chat/completions")),
        run.index(is_pulumi("destroy")),
        run.index(is_pulumi("stack rm")),
    ]
    assert order == sorted(order)
    assert "waiting for http://127.0.0.1:" in run.stderr and "READY" in run.stdout
    assert "answer: Hello! I am a small model." in run.stdout


def test_acceptance_script_port_forwards_the_dev_stacks_service_named_in_its_endpoint(run_acceptance):
    run = run_acceptance()
    forward = next(argv for argv in run.calls("kubectl") if "port-forward" in argv)
    assert forward[forward.index("--namespace") + 1] == "vllm"
    assert "service/vllm-dev" in forward and ":80" in forward
    assert forward[forward.index("--address") + 1] == "127.0.0.1"


def test_acceptance_script_asks_the_stacks_model_with_its_api_key(run_acceptance):
    run = run_acceptance()
    completion = run.events[run.index(is_request("curl", "/v1/chat/completions"))]
    assert completion["body"]["model"] == DEV_MODEL and completion["body"]["messages"]
    # The fake answers 401 to a wrong key, so a pass proves the key went through; argv never carries it.
    assert run.returncode == 0, run.stderr
    assert not any(FAKE_API_KEY in " ".join(event.get("argv", [])) for event in run.events)


def test_acceptance_script_benches_the_stacks_model_with_its_api_key_after_the_completion(
    run_acceptance, tmp_path
):
    # This fake vLLM does not stream: tools.bench, past the key and model checks, refuses it in one line,
    # which proves it ran against the forwarded endpoint with the stack's key and model.
    run = run_acceptance(ACCEPTANCE_BENCH_JSON=str(tmp_path / "bench.json"))
    assert run.returncode != 0
    assert "tools.bench: a short sweep" in run.stderr
    assert "answered a streaming request without streaming" in run.stderr
    bench = run.index(lambda event: event.get("body") and event["body"].get("stream") is True)
    assert run.events[bench]["body"]["model"] == DEV_MODEL
    assert bench > run.index(is_request("curl", "/v1/chat/completions"))
    assert run.index(is_pulumi("destroy")) > bench


def test_acceptance_script_stops_the_port_forward_on_exit(run_acceptance):
    run = run_acceptance()
    forward_pid = run.events[run.index(is_port_forward)]["pid"]
    assert run.returncode == 0, run.stderr
    with pytest.raises(ProcessLookupError):
        os.kill(forward_pid, 0)


@pytest.mark.parametrize(
    ("failure", "fake_env", "reason"),
    [
        ("pulumi up", {"FAKE_FAIL": "up"}, "error: up failed"),
        ("an empty answer", {"FAKE_CONTENT": ""}, "choices[0].message.content is empty"),
        (
            "a LoadBalancer endpoint",
            {"FAKE_ENDPOINT": "http://203.0.113.7"},
            "not a ClusterIP Service's name",
        ),
        (
            "an endpoint that never serves",
            {"FAKE_HEALTH_FAILURES": "1000", "ACCEPTANCE_WAIT_SECONDS": "2"},
            "TIMED OUT",
        ),
    ],
    ids=["up", "empty-answer", "load-balancer", "never-ready"],
)
def test_acceptance_script_destroys_the_stack_when_a_step_fails(run_acceptance, failure, fake_env, reason):
    run = run_acceptance(**fake_env)
    assert run.returncode != 0, f"{failure} passed"
    assert reason in run.stdout + run.stderr
    assert run.index(is_pulumi("destroy")) > run.index(is_pulumi("up"))
    assert run.calls("pulumi")[-1][:2] == ["stack", "rm"]


def test_acceptance_script_keeps_its_state_out_of_the_repository_and_your_logins(run_acceptance, tmp_path):
    before = (ROOT / "Pulumi.dev.yaml").read_text()
    run = run_acceptance()
    assert run.returncode == 0, run.stderr
    pulumi = [event for event in run.events if event["tool"] == "pulumi"]
    # pulumi runs in a copy of the project (the fake writes an encryption salt into its Pulumi.dev.yaml, as
    # `pulumi stack init` does) against a throwaway local backend; kubectl sees only the kind cluster.
    assert all(Path(event["cwd"]).is_relative_to(tmp_path) for event in pulumi)
    assert all(event["backend"].startswith(f"file://{tmp_path}/") and event["passphrase"] for event in pulumi)
    kubeconfigs = {event["kubeconfig"] for event in run.events if event["tool"] in ("pulumi", "kubectl")}
    assert len(kubeconfigs) == 1 and Path(kubeconfigs.pop()).is_relative_to(tmp_path)
    assert (ROOT / "Pulumi.dev.yaml").read_text() == before
    assert not list(tmp_path.glob("vllm-acceptance.*")), "the run's temp dir outlived it"


def test_acceptance_script_deploys_to_the_kind_clusters_context(run_acceptance):
    run = run_acceptance()
    assert run.calls("pulumi")[1][:4] == ["config", "set", "kubernetes:context", "kind-vllm-acceptance"]
    assert ["get", "kubeconfig", "--name", "vllm-acceptance"] in run.calls("kind")


def test_acceptance_script_runs_the_kind_flow_for_stack_dev_as_by_default(run_acceptance):
    run = run_acceptance("--stack", "dev")
    assert run.returncode == 0, run.stderr
    assert run.calls("pulumi")[0] == ["stack", "init", "dev", "--non-interactive"]
    assert any(is_port_forward(event) for event in run.events)


def test_acceptance_script_reuses_an_existing_kind_cluster_and_leaves_it(run_acceptance):
    run = run_acceptance(FAKE_KIND_CLUSTERS="kind\nvllm-acceptance")
    assert run.returncode == 0, run.stderr
    assert not [argv for argv in run.calls("kind") if argv[0] in ("create", "delete")]


def test_acceptance_script_creates_a_missing_kind_cluster_and_deletes_it_after_destroy(run_acceptance):
    run = run_acceptance(FAKE_KIND_CLUSTERS="kind", KIND_CLUSTER="laptop-test")
    assert run.returncode == 0, run.stderr
    kind = run.calls("kind")
    assert kind[1][:4] == ["create", "cluster", "--name", "laptop-test"]
    assert kind[-1] == ["delete", "cluster", "--name", "laptop-test"]
    deleted = run.index(lambda event: event["tool"] == "kind" and event["argv"][0] == "delete")
    assert deleted > run.index(is_pulumi("destroy"))


def test_acceptance_destroy_command_finishes_what_an_interrupted_run_left(run_acceptance, tmp_path):
    work = tmp_path / "work"
    failed = run_acceptance(ACCEPTANCE_WORK_DIR=str(work), FAKE_FAIL="destroy")
    assert failed.returncode != 0 and "ACCEPTANCE_WORK_DIR=" in failed.stderr
    assert (work / "stack-initialized").exists()
    retried = run_acceptance("destroy", ACCEPTANCE_WORK_DIR=str(work))
    assert retried.returncode == 0, retried.stderr
    assert retried.calls("pulumi") == [
        ["destroy", "--stack", "dev", "--yes", "--non-interactive"],
        ["stack", "rm", "dev", "--yes", "--non-interactive"],
    ]
    again = run_acceptance("destroy", ACCEPTANCE_WORK_DIR=str(work))
    assert again.returncode == 0 and again.events == [], "a second destroy has nothing left to do"


def test_acceptance_script_destroys_the_stack_when_interrupted_during_pulumi_up(acceptance_env):
    env = {**acceptance_env, "FAKE_BLOCK": "up"}
    script = subprocess.Popen(
        ["bash", str(ACCEPTANCE_SCRIPT)],
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # As a terminal's shell starts it: a pytest started in the background of a non-interactive shell
        # ignores SIGINT, its children inherit that, and bash cannot trap a signal ignored on entry.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while not any(is_pulumi("up")(event) for event in read_events(env)):
        assert script.poll() is None and time.monotonic() < deadline, "pulumi up never started"
        time.sleep(0.1)
    os.killpg(script.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole foreground group
    script.communicate(timeout=60)
    events = read_events(env)
    assert script.returncode == 130
    destroyed = next(i for i, event in enumerate(events) if is_pulumi("destroy")(event))
    assert destroyed > next(i for i, event in enumerate(events) if is_pulumi("up")(event))
