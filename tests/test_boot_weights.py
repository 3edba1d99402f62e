"""The stack's bucket under a real systemd, as tests/test_boot.py boots machines (tests/boot/machine.py): the
weight cache (two machines racing on a fresh one; a later replica that copies the weights while it pulls the
image, or streams them) and vLLM's compile cache (a later replica restores what the first saved), each test
with the machines of one stack sharing one bucket and one Hub (directories of the test's own). A file of its
own, so pytest-xdist boots its machines beside tests/test_boot.py's.

Needs root, debootstrap and systemd-container (.ci/run installs them); skipped elsewhere, except in CI
(CI=true), where a machine that cannot run them fails the tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.gcp.machine import IMAGE_METADATA_KEY
from tests.boot import machine as boot
from tests.boot.scenario import API_KEY, HF_TOKEN, MIRRORED, boot_script, new_machine, wait_serving
from tests.harness import Run, run_program

#: Each test boots machines under systemd: seconds to minutes on a loaded machine.
pytestmark = pytest.mark.slow

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

#: A vllm.service drop-in on the machine's disk that makes weight_cache.sh and compile_cache.sh look every
#: second (the settings the program leaves at their defaults, 15 s and 10 s): on the fakes' instant
#: transfers, the first replica otherwise waits out a whole poll after its Hub download, another for its
#: fill, and one for its compile cache's save; the later one a poll for the fill. For the tests of a later
#: replica, which wait for the first's fill or save either way; not for the race, whose follower must look
#: at the bucket while the fill is under way.
QUICK_POLLS = {
    "etc/systemd/system/vllm.service.d/quick-polls.conf": (
        "[Service]\nEnvironment=WEIGHT_CACHE_POLL_SECONDS=1 COMPILE_CACHE_POLL_SECONDS=1\n"
    )
}


# --- two machines racing on a fresh weight cache ---------------------------------------------------------


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


# --- a later replica: the compile cache, the image pulled beside the copy, the weights streamed ------------


def program_machine(fleet: boot.Fleet, name: str, run: Run, permissions: str = "") -> boot.Machine:
    """A GCP machine booting the real program's startup script, with its secrets, polling every second
    (``QUICK_POLLS``), and, if given, exactly the bucket permissions the program grants."""
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
        files={**QUICK_POLLS, **({"etc/fake-cloud/gcs-permissions": permissions} if permissions else {})},
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
    first = new_machine(fleet, "a", "aws-h100", script=script, files=QUICK_POLLS)
    first.boot()
    wait_serving(first)
    first.wait_for(
        lambda: any("compile-cache" in marker.parts for marker in bucket_files(fleet, "*.complete")),
        "the compile cache saved",
    )
    later = new_machine(fleet, "b", "aws-h100", script=script, files=QUICK_POLLS)
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
    first = new_machine(fleet, "a", stack, script=script, files=QUICK_POLLS)
    first.boot()
    wait_serving(first)
    first.wait_for(lambda: bool(bucket_files(fleet, ".complete")), "the bucket filled")
    rendezvous = {"etc/fake-cloud/overlapping-transfers": "rendezvous\n"}
    later = new_machine(fleet, "b", stack, script=script, files={**QUICK_POLLS, **rendezvous})
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
