"""A machine's life under a real systemd: each platform's rendered boot script boots a Debian machine in a
systemd-nspawn container (tests/boot/machine.py), run the way the platform runs it, with fakes only where
hardware or a cloud API would be. This file: the first boot (with and without local NVMe), a guest reboot,
a crashed vLLM container, a Ray worker booted before its head, a preempted machine. The weight cache and the
compile cache in the stack's bucket: tests/test_boot_weights.py (a file of its own, so pytest-xdist boots
both files' machines at once). Each test is one thing that must hold on a real machine.

Needs root, debootstrap and systemd-container (.ci/run installs them); skipped elsewhere, except in CI
(CI=true), where a machine that cannot run them fails the tests."""

from __future__ import annotations

import json
import re

import pytest

from components.spec import build_spec
from tests.boot import machine as boot
from tests.boot.scenario import TARGET_GROUP, boot_script, new_machine, wait_serving

#: Each test boots machines under systemd: seconds to minutes on a loaded machine.
pytestmark = pytest.mark.slow

#: Where a GCP machine's health agent serves its verdict (components/gcp/machine.py health_report).
AGENT_PORT = 8090


def agent_ready(machine: boot.Machine) -> bool:
    """The health agent calls the replica ready: GCP's verdict over HTTP (what autohealing reads); AWS's
    agent acts only on an unhealthy verdict and logs only changes, so: running, and healthy in its log."""
    if machine.platform == "gcp":
        answer = machine.sh(f"curl -sS http://127.0.0.1:{AGENT_PORT}/")
        return answer.returncode == 0 and json.loads(answer.stdout or "{}").get("reason") == "ready"
    verdicts = re.findall(
        r"vllm-health: (healthy|UNHEALTHY):", machine.sh("journalctl -u vllm-health -o cat").stdout
    )
    return machine.active("vllm-health.service") and verdicts[-1:] == ["healthy"]


def reported_unhealthy(machine: boot.Machine) -> bool:
    """Whether the machine asked its platform to replace it (GCP: a 503 the agent logged; AWS: the call)."""
    if machine.platform == "aws":
        return "set-instance-health" in machine.read("/var/log/fake-aws-calls")
    return "UNHEALTHY" in machine.sh("journalctl -u vllm-health -o cat").stdout


def array_mount(machine: boot.Machine) -> str:
    """The device mounted where local_nvme.sh mounts the array ('' when none)."""
    return machine.sh("findmnt --noheadings --output SOURCE /mnt/vllm-nvme").stdout.strip()


def dockerd_starts(machine: boot.Machine) -> list[str]:
    """Each start of the (fake) dockerd: its data root and the device that root was on at that moment."""
    return [line for line in machine.read("/var/log/fake-dockerd.log").splitlines() if " start " in line]


# --- first boot ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["gcp-h100", "aws-h100"])
def test_first_boot_on_local_nvme_serves_and_the_agent_reports_healthy(fleet, stack):
    """The whole boot on a machine with local NVMe: the array is made, Docker moves onto it (a restart that
    deadlocked while local_nvme.sh held its lock), vLLM serves, the agent calls it ready."""
    machine = new_machine(fleet, "m", stack)
    machine.boot()
    wait_serving(machine)
    machine.wait_for(lambda: agent_ready(machine), "the agent's ready verdict")
    assert array_mount(machine).startswith("/dev/loop")
    assert dockerd_starts(machine)[-1].endswith(
        f"data-root=/mnt/vllm-nvme/docker on={array_mount(machine)}:/mnt/vllm-nvme"
    )
    assert not reported_unhealthy(machine)


def test_a_machine_without_local_nvme_serves_from_its_boot_disk(fleet):
    """local_nvme.sh finds no disk: the HF cache and Docker's data root stay where the image has them."""
    machine = new_machine(fleet, "m", "gcp-h100", disks=0)
    machine.boot()
    wait_serving(machine)
    assert array_mount(machine) == ""
    assert "data-root=/var/lib/docker " in dockerd_starts(machine)[-1]
    assert "no local NVMe" in machine.sh("journalctl -u google-startup-scripts -o cat").stdout


# --- reboot ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["gcp-h100", "aws-h100"])
def test_a_guest_reboot_comes_back_serving_with_the_array_mounted_before_docker(fleet, stack):
    """After a reboot udev has the array assembled before anything runs (--assemble and --create fail on its
    busy disks); Docker's drop-in mounts it before dockerd reads its data root; vLLM comes back by itself
    (AWS does not run user data again; GCP runs the startup script again)."""
    machine = new_machine(fleet, "m", stack)
    machine.boot()
    wait_serving(machine)
    starts_before = len(dockerd_starts(machine))
    machine.reboot()
    wait_serving(machine)
    assert array_mount(machine).startswith("/dev/loop")
    starts_after = dockerd_starts(machine)[starts_before:]
    assert starts_after and all(
        start.endswith(f"on={array_mount(machine)}:/mnt/vllm-nvme") for start in starts_after
    )
    assert machine.active("docker.service")
    assert not reported_unhealthy(machine)


# --- crash -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["gcp-h100", "aws-h100"])
def test_a_crashed_vllm_container_restarts_without_the_machine_being_replaced(fleet, stack):
    machine = new_machine(fleet, "m", stack, disks=0)
    machine.boot()
    wait_serving(machine)
    machine.wait_for(lambda: agent_ready(machine), "the agent's ready verdict")
    pid = json.loads(machine.read("/run/fake-docker/containers/vllm.json"))["pid"]
    machine.sh(f"kill -KILL {pid}")
    machine.wait_for(
        lambda: (
            machine.sh("systemctl show -P NRestarts vllm.service").stdout.strip() == "1" and machine.serving()
        ),
        "vLLM restarted by systemd",
    )
    machine.wait_for(lambda: agent_ready(machine), "the agent's ready verdict")
    assert not reported_unhealthy(machine)


# --- a Ray group -----------------------------------------------------------------------------------------

HEAD, WORKER = "10.77.0.2", "10.77.0.3"


def test_a_ray_worker_that_boots_before_its_head_joins_when_the_head_comes_up(fleet):
    """The worker's vLLM unit keeps trying to reach the head's GCS port and its agent keeps it within its
    budget; once the head boots, the worker joins, the head serves, and both agents call their node ready."""
    head_net, worker_net = fleet.network(HEAD, WORKER)
    stack = "gcp-h100-multinode"
    worker = new_machine(
        fleet,
        "worker",
        stack,
        disks=0,
        script=boot_script(stack, "ray-worker", head=HEAD),
        network=worker_net,
    )
    head = new_machine(
        fleet, "head", stack, disks=0, script=boot_script(stack, "ray-head", head=HEAD), network=head_net
    )
    worker.boot()
    worker.wait_for(lambda: worker.active("vllm.service"), "the worker's vLLM unit running")
    assert not agent_ready(worker)
    head.boot()
    wait_serving(head)
    worker.wait_for(lambda: agent_ready(worker), "the worker's agent calling it ready")
    head.wait_for(lambda: agent_ready(head), "the head's agent calling it ready")
    assert not reported_unhealthy(worker) and not reported_unhealthy(head)


# --- preemption ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["gcp-h100", "aws-h100"])
def test_a_preempted_machine_drains_vllm_before_docker_stops(fleet, stack):
    """Preemption (GCP) and a spot interruption (EC2, at the end of its two-minute notice) reach the guest as
    an ACPI shutdown: systemd stops vllm.service first (docker stop: vLLM gets SIGTERM and finishes its
    requests), then Docker. On EC2 the notice comes two minutes earlier (IMDS spot/instance-action): the
    health agent takes the machine out of the load balancer's target group then, once."""
    aws = build_spec(stack, {}).cloud == "aws"
    spot = {"vllm:spot": True}
    machine = new_machine(fleet, "m", stack, disks=0, script=boot_script(stack, config=spot) if aws else b"")
    machine.boot()
    wait_serving(machine)
    deregistered = f"elbv2 deregister-targets --region us-east-1 --target-group-arn {TARGET_GROUP} --targets"
    if aws:
        assert deregistered not in machine.read("/var/log/fake-aws-calls")  # no notice (404): no drain
        notice = json.dumps({"action": "terminate", "time": "2026-12-07T20:02:00Z"})
        machine.sh(f"echo '{notice}' > /etc/fake-cloud/metadata/spot-instance-action")
        machine.wait_for(
            lambda: deregistered in machine.read("/var/log/fake-aws-calls"), "the deregistration"
        )
    machine.shut_down()
    if aws:
        assert machine.disk_file("/var/log/fake-aws-calls").count(deregistered) == 1
    (drained,) = [
        line.split() for line in machine.disk_file("/var/log/fake-vllm.log").splitlines() if "SIGTERM" in line
    ]
    docker_stopped = [
        line.split()[0]
        for line in machine.disk_file("/var/log/fake-dockerd.log").splitlines()
        if line.endswith(" stop")
    ]
    assert drained[1:] == ["SIGTERM:", "draining"]
    assert docker_stopped and float(drained[0]) <= float(docker_stopped[-1])
