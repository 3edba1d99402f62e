"""The VM boot path under a real systemd: each platform's rendered boot script boots a Debian machine in a
systemd-nspawn container (tests/boot/machine.py), run the way the platform runs it, with fakes only where
hardware or a cloud API would be. Each test is one thing that must hold on a real machine.

Needs root, debootstrap and systemd-container (.ci/run installs them); skipped elsewhere, except in CI
(CI=true), where a machine that cannot run them fails the tests."""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from components import vm
from components.aws import machines as aws_machines
from components.aws.identity import log_group_name
from components.gcp.machine import IMAGE_METADATA_KEY
from components.launch import launch_spec
from components.spec import build_spec
from tests.boot import machine as boot
from tests.harness import Run, run_program
from tests.test_vm_bootstrap import health_report, metrics_agent

#: Each test boots machines under systemd: seconds to minutes on a loaded machine.
pytestmark = pytest.mark.slow

API_KEY, HF_TOKEN = "sk-boot-test-0123456789", "hf_boottest"
MIRRORED = "us-central1-docker.pkg.dev/test-project/vllm-dockerhub/vllm/vllm-openai:v0.33.0"
#: Where a GCP machine's health agent serves its verdict (components/gcp/machine.py health_report).
AGENT_PORT = 8090

#: The IAM permissions of the predefined roles the program grants on the GCP weight cache (Cloud Storage
#: IAM roles, https://cloud.google.com/iam/docs/roles-permissions/storage, 2026-12): what the fake gcloud
#: lets the VM's service account do on the bucket, so a grant that misses a permission one of
#: weight_cache.sh's commands needs fails the race test as Cloud Storage would (403).
GCS_ROLE_PERMISSIONS = {
    "roles/storage.objectUser": {
        "storage.objects.create",
        "storage.objects.delete",
        "storage.objects.get",
        "storage.objects.list",
        "storage.objects.restore",
        "storage.objects.update",
        "storage.multipartUploads.abort",
        "storage.multipartUploads.create",
        "storage.multipartUploads.list",
        "storage.multipartUploads.listParts",
    },
    "roles/storage.legacyBucketReader": {"storage.buckets.get", "storage.objects.list"},
}


@pytest.fixture(scope="session")
def nspawn() -> None:
    """The tools and root a booted machine needs, and the cached rootfs (built on first use)."""
    missing = boot.missing_tools()
    reason = (
        f"the boot tests need root and {', '.join(boot.TOOLS)}; missing: {', '.join(missing)}"
        if missing
        else "the boot tests need root"
        if os.geteuid() != 0
        else ""
    )
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI runs them: .ci/run installs debootstrap and systemd-container)")
        pytest.skip(reason)
    boot.rootfs()


@pytest.fixture
def fleet(nspawn: None, tmp_path: Path) -> Iterator[boot.Fleet]:
    with boot.fleet(tmp_path) as machines:
        yield machines


#: The load balancer's target group a spot machine leaves on EC2's interruption notice.
TARGET_GROUP = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/vllm-boot/0123456789abcdef"


def boot_script(
    stack: str, role: str = "serve", head: str = "", config: dict | None = None, weight_cache_url: str = ""
) -> bytes:
    """What the platform hands the machine: GCP's startup-script metadata value, AWS's user data (decoded
    from the launch template's base64, gzip'd when large, as cloud-init receives it). The weights come from
    the Hub here unless ``weight_cache_url`` names a bucket; the race test boots the real program's script
    with its bucket."""
    spec = build_spec(stack, config or {})
    launch = launch_spec(spec, has_hf_token=True)
    gcp = spec.cloud == "gcp"
    drain = [] if gcp else aws_machines.drain_args(spec, TARGET_GROUP)
    script = vm.bootstrap_script(
        spec,
        launch,
        api_key_secret=f"{spec.name}-api-key",
        hf_token_secret=f"{spec.name}-hf-token",
        role=role,
        ray_env=vm.ray_env(spec, head) if role != "serve" else None,
        health_report=[*health_report(spec, launch), *drain],
        image_metadata_key=IMAGE_METADATA_KEY if gcp else "",
        log_group="" if gcp else log_group_name(spec),
        metrics_agent=metrics_agent(spec, launch),
        weight_cache_url=weight_cache_url,
    )
    if gcp:
        return script.encode()
    return base64.b64decode(aws_machines.user_data(script))


def secrets(stack: str) -> dict[str, str]:
    name = build_spec(stack, {}).name
    return {f"{name}-api-key": API_KEY, f"{name}-hf-token": HF_TOKEN}


def new_machine(
    fleet: boot.Fleet, name: str, stack: str, disks: int = 2, script: bytes = b"", **settings
) -> boot.Machine:
    platform = build_spec(stack, {}).cloud
    return fleet.machine(
        name,
        platform=platform,
        boot_script=script or boot_script(stack),
        secrets=secrets(stack),
        disks=disks,
        metadata={IMAGE_METADATA_KEY: MIRRORED} if platform == "gcp" else {"region": "us-east-1"},
        **settings,
    )


def wait_serving(machine: boot.Machine) -> None:
    machine.wait_for(lambda: machine.active("vllm.service") and machine.serving(), "vLLM serving")


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


# --- the weight cache --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gcp_program() -> Run:
    """The real program's GCP stack with its default weight cache (a bucket): its boot script, its grants."""
    return run_program("gcp-h100", secrets={"vllm:hfToken": HF_TOKEN, "vllm:apiKey": API_KEY})


def test_two_machines_racing_on_a_fresh_weight_cache_both_serve_and_fill_it_once(fleet, gcp_program):
    """Both boot at once on the stack's bucket (one shared directory), with exactly the permissions the
    program grants the VMs on it: one takes the lock, downloads from the Hub and fills the bucket; the other
    finds the fill (its download, then its upload) slower than its own Hub download, takes a Hub slot and
    downloads too. The bucket is filled once."""
    (template,) = gcp_program.of_type("gcp:compute/instanceTemplate:InstanceTemplate")
    script = template.inputs["metadata"]["startup-script"]
    granted = [
        grant.inputs["role"] for grant in gcp_program.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
    ]
    permissions = "\n".join(sorted(set().union(*(GCS_ROLE_PERMISSIONS[role] for role in granted))))
    names = {
        line.split("=", 1)[0]: line.split("=", 1)[1] for line in script.splitlines() if "_SECRET=" in line
    }
    stored = {names["API_KEY_SECRET"]: API_KEY, names["HF_TOKEN_SECRET"]: HF_TOKEN}
    machines = [
        fleet.machine(
            name,
            platform="gcp",
            boot_script=script.encode(),
            secrets=stored,
            disks=2,
            metadata={IMAGE_METADATA_KEY: MIRRORED},
            files={"etc/fake-cloud/gcs-permissions": permissions},
        )
        for name in ("a", "b")
    ]
    for machine in machines:
        machine.boot()
    for machine in machines:
        wait_serving(machine)
    downloads = (fleet.shared / "hub" / "downloads").read_text().splitlines()
    assert len(downloads) == 2, downloads
    paths = sorted(machine.read("/run/vllm/weight-path").strip() for machine in machines)
    assert paths == ["hub", "hub"]
    bucket = template.inputs["metadata"]["startup-script"].split("WEIGHT_CACHE_URL=", 1)[1].split("\n")[0]
    cache = fleet.shared / "buckets" / bucket.removeprefix("gs://")
    # the filler uploads in the background while its vLLM serves; its marker comes last
    machines[0].wait_for(lambda: any(cache.rglob(".complete")), "the bucket's fill")
    assert len(list(cache.rglob(".complete"))) == len(list(cache.rglob(".hub-1"))) == 1


def program_machine(fleet: boot.Fleet, name: str, run: Run, permissions: str = "") -> boot.Machine:
    """A GCP machine booting the real program's startup script, with its secrets (and, if given, exactly the
    bucket permissions the program grants)."""
    (template,) = run.of_type("gcp:compute/instanceTemplate:InstanceTemplate")
    script = template.inputs["metadata"]["startup-script"]
    names = {
        line.split("=", 1)[0]: line.split("=", 1)[1] for line in script.splitlines() if "_SECRET=" in line
    }
    return fleet.machine(
        name,
        platform="gcp",
        boot_script=script.encode(),
        secrets={names["API_KEY_SECRET"]: API_KEY, names["HF_TOKEN_SECRET"]: HF_TOKEN},
        disks=2,
        metadata={IMAGE_METADATA_KEY: MIRRORED},
        files={"etc/fake-cloud/gcs-permissions": permissions} if permissions else {},
    )


def bucket_files(fleet: boot.Fleet, pattern: str) -> list[Path]:
    return list((fleet.shared / "buckets").rglob(pattern))


def vllm_log(machine: boot.Machine) -> str:
    return machine.read("/var/log/fake-vllm.log")


def test_a_later_replica_loads_the_compiled_code_the_first_saved_to_the_bucket(fleet, gcp_program):
    """The first machine compiles, serves, then saves vLLM's compile cache to the stack's bucket (with the
    program's grants); the next one restores it before vLLM starts, and vLLM finds it."""
    permissions = "\n".join(sorted(set().union(*GCS_ROLE_PERMISSIONS.values())))
    first = program_machine(fleet, "a", gcp_program, permissions)
    first.boot()
    wait_serving(first)
    first.wait_for(
        lambda: any("compile-cache" in marker.parts for marker in bucket_files(fleet, "*.complete")),
        "the compile cache saved",
    )
    assert "compiled " in vllm_log(first)
    later = program_machine(fleet, "b", gcp_program, permissions)
    later.boot()
    wait_serving(later)
    assert "compile cache hit" in vllm_log(later) and "compiled " not in vllm_log(later)


def test_an_aws_replica_loads_the_compiled_code_another_saved_to_s3(fleet):
    script = boot_script("aws-h100", weight_cache_url="s3://vllm-boot-weights")
    first = new_machine(fleet, "a", "aws-h100", script=script)
    first.boot()
    wait_serving(first)
    first.wait_for(
        lambda: any("compile-cache" in marker.parts for marker in bucket_files(fleet, "*.complete")),
        "the compile cache saved",
    )
    later = new_machine(fleet, "b", "aws-h100", script=script)
    later.boot()
    wait_serving(later)
    assert "compile cache hit" in vllm_log(later) and "compiled " not in vllm_log(later)
    assert "s3 ls --region us-east-1 --recursive s3://vllm-boot-weights/compile-cache/" in later.read(
        "/var/log/fake-aws-calls"
    )


def transfers(machine: boot.Machine) -> dict[tuple[str, str], float]:
    """When the image's pull and the weights' copy from the bucket (its ``files/``) started and ended
    (tests/boot/bin/fake-transfer's log): ``{("start", "pull"): epoch, ...}``."""
    seen: dict[tuple[str, str], float] = {}
    for line in machine.read("/var/log/fake-transfers.log").splitlines():
        when, event, kind, what = line.split()
        if kind == "pull" or what.endswith("/files"):
            seen.setdefault((event, kind), float(when))
    return seen


def vllm_started(machine: boot.Machine) -> float:
    """When the vLLM container was run (the fake docker's log, under its data root)."""
    log = machine.read(f"{machine.read('/run/fake-docker/data-root').strip()}/containers.log")
    return min(float(line.split()[0]) for line in log.splitlines() if " run vllm " in line)


@pytest.mark.parametrize(
    ("stack", "bucket"), [("gcp-h100", "gs://vllm-boot-weights"), ("aws-h100", "s3://vllm-boot-weights")]
)
def test_a_later_replica_pulls_the_image_while_it_copies_the_weights_and_runs_vllm_after_both(
    fleet, stack, bucket
):
    """The copy from the bucket needs no image, so the boot pulls it meanwhile. The later machine's fake pull
    and fake copy each wait for the other to have started (/etc/fake-cloud/overlapping-transfers): run one
    after the other, the first would give up and the machine would not serve."""
    script = boot_script(stack, weight_cache_url=bucket)
    first = new_machine(fleet, "a", stack, script=script)
    first.boot()
    wait_serving(first)
    first.wait_for(lambda: bool(bucket_files(fleet, ".complete")), "the bucket filled")
    later = new_machine(
        fleet, "b", stack, script=script, files={"etc/fake-cloud/overlapping-transfers": "rendezvous\n"}
    )
    later.boot()
    wait_serving(later)
    assert later.read("/run/vllm/weight-path").strip() == "bucket"
    seen = transfers(later)
    assert seen["start", "pull"] < seen["done", "copy"] and seen["start", "copy"] < seen["done", "pull"]
    assert vllm_started(later) >= max(seen["done", "pull"], seen["done", "copy"])


@pytest.fixture(scope="module")
def gcp_streaming() -> Run:
    return run_program(
        "gcp-h100", {"vllm:weightCache": "stream"}, secrets={"vllm:hfToken": HF_TOKEN, "vllm:apiKey": API_KEY}
    )


def test_a_later_replica_streams_the_weights_from_the_bucket_the_first_filled(fleet, gcp_streaming):
    """The first machine downloads from the Hub and fills the bucket; the next one copies nothing: vLLM
    streams from the bucket (the fake vLLM refuses a gs:// model without the streamer or the files)."""
    first = program_machine(fleet, "a", gcp_streaming)
    first.boot()
    wait_serving(first)
    first.wait_for(lambda: bool(bucket_files(fleet, ".complete")), "the bucket filled")
    later = program_machine(fleet, "b", gcp_streaming)
    later.boot()
    wait_serving(later)
    assert later.read("/run/vllm/weight-path").strip() == "stream"
    assert "streaming gs://" in vllm_log(later)
    assert len((fleet.shared / "hub" / "downloads").read_text().splitlines()) == 1


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
