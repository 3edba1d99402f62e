"""scripts/local_nvme.sh: the HF cache on a RAID0 of the machine's local NVMe, run with fake disk tools."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from components import scripts
from tests.test_weight_cache import SHELLCHECK

#: Each fake records its argv in $FAKE/calls. mountpoint answers from $FAKE/mounted; mount adds to it;
#: mdadm --assemble succeeds once an array was created; blkid once a file system was made.
FAKES = {
    "mountpoint": 'grep -qxF "$2" "$FAKE/mounted"',
    "mount": 'echo "${*: -1}" >>"$FAKE/mounted"',
    "mdadm": (
        '[ "$1" != --assemble ] || [ -e "$FAKE/array" ] || exit 1; '
        '[ "$1" != --create ] || touch "$FAKE/array"'
    ),
    "blkid": '[ -e "$FAKE/formatted" ]',
    "mkfs.ext4": 'touch "$FAKE/formatted"',
    "apt-get": "true",
}


@pytest.fixture
def machine(tmp_path: Path) -> dict[str, str]:
    bin_dir, by_id, fake = tmp_path / "bin", tmp_path / "by-id", tmp_path / "fake"
    for folder in (bin_dir, by_id, fake):
        folder.mkdir()
    (fake / "mounted").touch()
    for name, body in FAKES.items():
        path = bin_dir / name
        path.write_text(f'#!/usr/bin/env bash\necho "{name} $*" >>"$FAKE/calls"\n{body}\n')
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE": str(fake),
        "LOCAL_NVME_BY_ID": str(by_id),
        "LOCAL_NVME_DLAMI": str(tmp_path / "dlami-nvme"),
        "TARGET": str(tmp_path / "hf-cache"),
    }


def disks(env: dict[str, str], *names: str) -> list[str]:
    """Links in by-id to device files; returns the devices."""
    devices = []
    for name in names:
        device = Path(env["FAKE"]) / f"dev-{name}"
        device.touch()
        (Path(env["LOCAL_NVME_BY_ID"]) / name).symlink_to(device)
        devices.append(str(device))
    return devices


def run(env: dict[str, str]) -> list[str]:
    result = subprocess.run(
        ["bash", str(scripts.path("local_nvme.sh")), env["TARGET"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    calls = Path(env["FAKE"]) / "calls"
    return calls.read_text().splitlines() if calls.exists() else []


def actions(calls: list[str]) -> list[str]:
    """What changed the machine (not the looks: mountpoint, blkid, a failed assemble)."""
    return [call for call in calls if call.split()[0] in ("mdadm", "mkfs.ext4", "mount")]


def test_the_script_passes_shellcheck():
    binary = str(SHELLCHECK) if SHELLCHECK.exists() else "shellcheck"
    result = subprocess.run([binary, "-s", "bash", str(scripts.path("local_nvme.sh"))], capture_output=True)
    assert result.returncode == 0, result.stdout


def test_gcp_local_ssds_are_striped_formatted_and_mounted_on_the_cache(machine):
    devices = disks(machine, *(f"google-local-nvme-ssd-{n}" for n in range(16)))
    calls = actions(run(machine))
    assert calls[0] == "mdadm --assemble /dev/md/vllm-nvme " + " ".join(sorted(devices))
    assert calls[1] == (
        "mdadm --create /dev/md/vllm-nvme --run --level=0 --raid-devices=16 " + " ".join(sorted(devices))
    )
    assert calls[2].startswith("mkfs.ext4 ") and calls[2].endswith(" /dev/md/vllm-nvme")
    assert calls[3] == f"mount -o noatime /dev/md/vllm-nvme {machine['TARGET']}"


def test_partitions_namespace_aliases_and_ebs_volumes_are_not_striped(machine):
    (device,) = disks(machine, "nvme-Amazon_EC2_NVMe_Instance_Storage_AWS1F2E3D4C5B6A7980")
    disks(machine, "nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0", "google-local-nvme-ssd-0-part1")
    (
        Path(machine["LOCAL_NVME_BY_ID"]) / "nvme-Amazon_EC2_NVMe_Instance_Storage_AWS1F2E3D4C5B6A7980_1"
    ).symlink_to(device)
    calls = actions(run(machine))
    assert not [call for call in calls if call.startswith("mdadm")]  # one disk: no array
    assert calls[-1] == f"mount -o noatime {device} {machine['TARGET']}"


def test_after_a_reboot_the_array_is_assembled_and_not_formatted_again(machine):
    disks(machine, "google-local-nvme-ssd-0", "google-local-nvme-ssd-1")
    run(machine)
    (Path(machine["FAKE"]) / "calls").unlink()
    (Path(machine["FAKE"]) / "mounted").write_text("")  # a reboot unmounts
    calls = actions(run(machine))
    assert not [call for call in calls if call.startswith(("mkfs", "mdadm --create"))]
    assert calls[-1] == f"mount -o noatime /dev/md/vllm-nvme {machine['TARGET']}"


def test_the_deep_learning_amis_instance_store_array_is_used_as_it_is(machine):
    disks(machine, "nvme-Amazon_EC2_NVMe_Instance_Storage_AWS1F2E3D4C5B6A7980")
    (Path(machine["FAKE"]) / "mounted").write_text(machine["LOCAL_NVME_DLAMI"] + "\n")
    calls = actions(run(machine))
    assert calls == [f"mount --bind {machine['LOCAL_NVME_DLAMI']}/vllm-cache {machine['TARGET']}"]


def test_a_mounted_cache_is_left_alone(machine):
    disks(machine, "google-local-nvme-ssd-0")
    (Path(machine["FAKE"]) / "mounted").write_text(machine["TARGET"] + "\n")
    assert actions(run(machine)) == []


def test_without_local_nvme_the_cache_stays_on_the_boot_disk(machine):
    disks(machine, "nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0")
    assert actions(run(machine)) == []
    assert Path(machine["TARGET"]).is_dir()
