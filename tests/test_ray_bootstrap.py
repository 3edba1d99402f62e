"""ray_bootstrap.sh, the Ray group bootstrap of every multi-node platform, run against real Ray processes.

Each node runs the real script in its own PID namespace on a loopback-only network (see tests/ray_nodes.py);
a small Python program stands in for ``vllm serve``. Ray's GPU resource is faked with ``--num-gpus`` through
RAY_START_ARGS, so the GPU half of the gate is really exercised on a CPU machine.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from components import vm
from tests.ray_nodes import (
    DEADLINE_SECONDS,
    SCRIPT,
    VENV_BIN,
    Node,
    RayHost,
    missing_capability,
    wait_until,
)

#: A head's whole run: its gate (at most GROUP_TIMEOUT_SECONDS and one look), then the fake vLLM joining the
#: cluster and running a task on every node.
HEAD_RUN_SECONDS = 2 * DEADLINE_SECONDS
#: Every wait below has its own deadline and fails with the node's output; this only catches a hang outside
#: them (the module's fixture waits on three head runs). The fixtures still clean up.
pytestmark = pytest.mark.timeout(4 * HEAD_RUN_SECONDS)

FAKE_VLLM = Path(__file__).with_name("ray_fake_vllm.py")
USAGE = "usage: ray_bootstrap.sh head -- <vllm serve argv...> | ray_bootstrap.sh worker"
HEAD_IP = "127.0.0.1"
HF_TOKEN = "hf_sentinel_token_never_printed"
API_KEY = "sentinel-api-key-never-printed"
LOOPBACK_NODE_ENV = {"VLLM_HOST_IP": HEAD_IP, "NCCL_SOCKET_IFNAME": "lo", "GLOO_SOCKET_IFNAME": "lo"}
#: The head's gate deadline where the group is meant to form: generous, as a Ray start on a loaded machine
#: takes minutes (the gate counts from the script's start).
GROUP_TIMEOUT_SECONDS = DEADLINE_SECONDS
#: A worker shares the host and its 127.0.0.1 with the head here, unlike on separate machines, so the ports
#: Ray fixes by default must differ: its dashboard agent's, and the range its raylet hands to Python
#: workers (both raylets would hand out 10002 first; Ray checks a port is free before handing it out, but a
#: worker binds it only after it has started, so two workers starting at once, one per node, can collide).
WORKER_PORTS = "--dashboard-agent-listen-port 52366 --min-worker-port 20002 --max-worker-port 29999"


@pytest.fixture
def host() -> Iterator[RayHost]:
    reason = missing_capability()
    if reason:
        pytest.skip(reason)
    ray_host = RayHost()
    yield ray_host
    ray_host.close()


def head_env(
    host: RayHost,
    *,
    nodes: int = 2,
    gpus_per_node: int = 1,
    brings_gpus: int = 1,
    timeout: int = GROUP_TIMEOUT_SECONDS,
) -> dict[str, str]:
    return host.env(
        RAY_HEAD_ADDRESS=HEAD_IP,
        RAY_EXPECTED_NODES=str(nodes),
        RAY_GPUS_PER_NODE=str(gpus_per_node),
        RAY_WAIT_TIMEOUT_SECONDS=str(timeout),
        RAY_POLL_SECONDS="1",
        RAY_START_ARGS=f"--num-gpus {brings_gpus}",
        HF_TOKEN=HF_TOKEN,
        VLLM_API_KEY=API_KEY,
    )


def worker_env(host: RayHost, **overrides: str) -> dict[str, str]:
    return host.env(
        RAY_HEAD_ADDRESS=HEAD_IP,
        RAY_WORKER_RETRY_SECONDS="1",
        RAY_START_ARGS=f"--num-gpus 1 {WORKER_PORTS}",
        HF_TOKEN=HF_TOKEN,
        VLLM_API_KEY=API_KEY,
        **overrides,
    )


def start_head(host: RayHost, record: Path, env: dict[str, str], *vllm_flags: str) -> Node:
    argv = ["head", "--", "python3", str(FAKE_VLLM), "--record", str(record), *vllm_flags]
    return host.start("head", argv, env)


def start_worker(host: RayHost) -> Node:
    return host.start("worker", ["worker"], worker_env(host))


def read_record(record: Path) -> dict:
    return json.loads(record.read_text())


def last_line(node: Node) -> str:
    return node.output().strip().splitlines()[-1]


# --- the script itself -------------------------------------------------------------------------------------


def test_script_passes_shellcheck():
    result = subprocess.run([VENV_BIN / "shellcheck", SCRIPT], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


BAD_INPUT = {
    "worker without head address": (
        ["worker"],
        {},
        "RAY_HEAD_ADDRESS is required for a worker: the host or IP of the Ray head",
    ),
    "head without node count": (
        ["head", "--", "true"],
        {"RAY_HEAD_ADDRESS": HEAD_IP, "RAY_GPUS_PER_NODE": "8"},
        "RAY_EXPECTED_NODES is required: an integer >= 1",
    ),
    "node count not an integer": (
        ["head", "--", "true"],
        {"RAY_HEAD_ADDRESS": HEAD_IP, "RAY_EXPECTED_NODES": "two", "RAY_GPUS_PER_NODE": "8"},
        "RAY_EXPECTED_NODES must be an integer >= 1, got 'two'",
    ),
    "negative GPU count": (
        ["head", "--", "true"],
        {"RAY_HEAD_ADDRESS": HEAD_IP, "RAY_EXPECTED_NODES": "2", "RAY_GPUS_PER_NODE": "-1"},
        "RAY_GPUS_PER_NODE must be an integer >= 0, got '-1'",
    ),
    "fractional timeout": (
        ["head", "--", "true"],
        {
            "RAY_HEAD_ADDRESS": HEAD_IP,
            "RAY_EXPECTED_NODES": "2",
            "RAY_GPUS_PER_NODE": "8",
            "RAY_WAIT_TIMEOUT_SECONDS": "1.5",
        },
        "RAY_WAIT_TIMEOUT_SECONDS must be an integer >= 1, got '1.5'",
    ),
    "port out of range": (
        ["worker"],
        {"RAY_HEAD_ADDRESS": HEAD_IP, "RAY_PORT": "70000"},
        "RAY_PORT must be a TCP port (1-65535), got '70000'",
    ),
    "head without its address or IP": (
        ["head", "--", "true"],
        {"RAY_EXPECTED_NODES": "2", "RAY_GPUS_PER_NODE": "8"},
        "the head needs RAY_HEAD_ADDRESS (its own stable address) or RAY_NODE_IP to know its IP",
    ),
    "node IP on no interface": (
        ["worker"],
        {"RAY_HEAD_ADDRESS": HEAD_IP, "RAY_NODE_IP": "203.0.113.9"},
        "no network interface holds 203.0.113.9; set RAY_IFNAME",
    ),
    "head without a command": (
        ["head"],
        {},
        f"the head needs the vLLM command after '--'; {USAGE}",
    ),
    "unknown role": (
        ["leader"],
        {},
        f"unknown role 'leader'; {USAGE}",
    ),
}


@pytest.mark.parametrize(("argv", "env", "message"), BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_rejected_with_one_message_and_exit_2(tmp_path, argv, env, message):
    result = subprocess.run(
        ["bash", SCRIPT, *argv],
        env={"PATH": f"{fake_ray(tmp_path)}:{VENV_BIN}:/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=DEADLINE_SECONDS,
    )
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"ray-bootstrap: {message}\n")
    assert not (tmp_path / "ray-calls").exists()


def fake_ray(directory: Path) -> Path:
    """A `ray` that records its calls. These runs are outside any node's PID namespace: a real `ray stop`
    here would stop every Ray process on the machine, other tests' groups included."""
    ray = directory / "bin" / "ray"
    ray.parent.mkdir()
    ray.write_text(f'#!/bin/sh\necho "$*" >>{directory / "ray-calls"}\nexit 1\n')
    ray.chmod(0o755)
    return ray.parent


# --- a group that forms, and re-forms when its head is replaced -------------------------------------------


@dataclass(frozen=True)
class HeadRun:
    output: str
    status: int
    record: dict


@dataclass(frozen=True)
class ReplacedHead:
    first: HeadRun
    worker_output: str
    worker_kept_running: bool
    replacement: HeadRun


def finish(head: Node, record: Path) -> HeadRun:
    """Waits for a head to end and keeps what it printed and what its command recorded."""
    status = head.wait(HEAD_RUN_SECONDS)
    return HeadRun(head.output(), status, read_record(record) if record.exists() else {})


@pytest.fixture(scope="module")
def replaced_head() -> Iterator[ReplacedHead]:
    """A head waiting for 2 nodes x 1 GPU, joined by a worker only once it has reported waiting. Its
    command records what it saw and exits, which ends the head node, as a crashed vLLM ends its container.
    A new head then starts at the same address; the worker, left running, must rejoin it on its own.

    Every node is stopped before the tests read the outcome: a worker left retrying to join a head that is
    gone would load the machine under the module's other tests."""
    reason = missing_capability()
    if reason:
        pytest.skip(reason)
    host = RayHost()
    try:
        first, second = host.root / "first.json", host.root / "second.json"
        head = start_head(host, first, head_env(host), "--served-model-name", "two words")
        wait_until(lambda: "waiting for Ray group: 1/2" in head.output(), "the head to count itself", head)
        worker = start_worker(host)
        first_run = finish(head, first)
        replacement = finish(start_head(host, second, head_env(host)), second)
        outcome = ReplacedHead(first_run, worker.output(), worker.process.poll() is None, replacement)
    finally:
        host.close()
    yield outcome


@pytest.mark.slow
def test_head_execs_the_command_once_the_group_is_whole(replaced_head):
    head = replaced_head.first
    assert head.status == 0, head.output
    assert head.record["nodes"] == 2
    assert head.record["pid"] == 1  # exec'd: vLLM is the container's main process and gets its signals
    assert head.record["argv"][2:] == ["--served-model-name", "two words"]  # argv intact, spaces and all


@pytest.mark.slow
def test_gate_reports_progress_then_the_whole_group(replaced_head):
    output = replaced_head.first.output
    assert re.search(
        rf"waiting for Ray group: 1/2 nodes, 1/2 GPUs, \d+ s of {GROUP_TIMEOUT_SECONDS} s", output
    )
    assert re.search(r"Ray group whole: 2/2 nodes, 2/2 GPUs after \d+ s", output)


@pytest.mark.slow
def test_head_command_gets_node_ip_interface_and_cluster_address(replaced_head):
    env = replaced_head.first.record["env"]
    assert env | LOOPBACK_NODE_ENV == env
    assert env["RAY_ADDRESS"] == f"{HEAD_IP}:6379"


@pytest.mark.slow
def test_ray_processes_on_every_node_inherit_the_node_ip_and_interface(replaced_head):
    assert replaced_head.first.record["node_env"] == [LOOPBACK_NODE_ENV, LOOPBACK_NODE_ENV]


@pytest.mark.slow
def test_secrets_reach_the_command_and_are_never_printed(replaced_head):
    env = replaced_head.first.record["env"]
    assert (env["HF_TOKEN"], env["VLLM_API_KEY"]) == (HF_TOKEN, API_KEY)
    for output in (replaced_head.first.output, replaced_head.worker_output, replaced_head.replacement.output):
        assert HF_TOKEN not in output
        assert API_KEY not in output


@pytest.mark.slow
def test_worker_rejoins_a_replaced_head(replaced_head):
    replacement = replaced_head.replacement
    assert replacement.status == 0, replacement.output
    assert replacement.record["nodes"] == 2
    assert replaced_head.worker_kept_running  # the same worker process, never restarted
    assert f"left the Ray group at {HEAD_IP}:6379" in replaced_head.worker_output


# --- a group that does not form ----------------------------------------------------------------------------


@pytest.mark.slow
def test_gate_times_out_naming_the_missing_worker(host):
    record = host.root / "record.json"
    head = start_head(host, record, head_env(host, timeout=2))
    assert head.wait() == 1
    assert re.fullmatch(
        r"ray-bootstrap: Ray group incomplete after \d+ s: 1/2 nodes, 1/2 GPUs \(missing 1 node\(s\), "
        r"missing 1 GPU\(s\)\); are the workers running, and can they reach 127\.0\.0\.1:6379\?",
        last_line(head),
    )
    assert not record.exists()


@pytest.mark.slow
def test_gate_refuses_a_group_short_of_gpus(host):
    record = host.root / "record.json"
    head = start_head(host, record, head_env(host, nodes=1, gpus_per_node=2, brings_gpus=1, timeout=2))
    assert head.wait() == 1
    assert "1/1 nodes, 1/2 GPUs (missing 1 GPU(s))" in last_line(head)
    assert not record.exists()


@pytest.mark.slow
def test_a_vms_head_and_worker_form_the_group_each_with_its_own_roles_half_of_the_script(host):
    """A VM's boot script carries its Ray role's half of the script (vm.RAY_OTHER_ROLE_FUNCTIONS)."""
    shipped = {}
    for role in ("ray-head", "ray-worker"):
        shipped[role] = host.root / f"{role}.sh"
        shipped[role].write_text(vm.shipped("ray_bootstrap.sh", vm.RAY_OTHER_ROLE_FUNCTIONS[role]))
    record = host.root / "record.json"
    argv = ["head", "--", "python3", str(FAKE_VLLM), "--record", str(record)]
    head = host.start("head", argv, head_env(host), shipped["ray-head"])
    worker = host.start("worker", ["worker"], worker_env(host), shipped["ray-worker"])
    wait_until(record.exists, "the group to form", head)
    assert read_record(record)["nodes"] == 2
    assert "command not found" not in head.output() + worker.output()


# --- recovery ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_group_reforms_after_a_worker_is_lost(host):
    first, second = host.root / "first.json", host.root / "second.json"
    head = start_head(host, first, head_env(host), "--watch", "2")
    worker = start_worker(host)
    wait_until(first.exists, "the group to form", head)

    worker.kill()
    assert head.wait() == 1, head.output()  # the command fails: the container exits and is restarted
    assert "lost a node (1/2 alive)" in head.output()

    # The supervisor restarts both; the new head starts over the first one's Ray temp dir.
    head = start_head(host, second, head_env(host))
    start_worker(host)
    assert head.wait(HEAD_RUN_SECONDS) == 0, head.output()
    assert read_record(second)["nodes"] == 2


@pytest.mark.slow
def test_worker_stops_at_once_on_sigterm(host):
    """SIGTERM reaches the worker while its `ray start` waits on a head that never answers, which it would
    do for 10 minutes here: a worker that deferred the signal until `ray start` returned would outlive the
    deadline. Stopping takes at most two `ray stop` runs (the one under way, the exit trap's)."""
    worker = host.start("worker", ["worker"], worker_env(host, RAY_gcs_rpc_server_reconnect_timeout_s="600"))
    wait_until(lambda: "node IP" in worker.output(), "the worker to start joining", worker)
    worker.terminate_script()
    assert worker.wait() == 143, worker.output()
