"""scripts/local_nvme.sh: the HF cache and Docker's data root on a RAID0 of the machine's local NVMe, run with
fake disk tools, a fake systemctl and the real python3 that merges daemon.json."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from components import scripts, vm
from tests.test_vm_bootstrap import rendered, run_script, sandbox  # noqa: F401 (a fixture)
from tests.test_weight_cache import SHELLCHECK

#: Each fake records its argv in $FAKE/calls. mountpoint answers from $FAKE/mounted; mount adds to it;
#: mdadm --detail succeeds while the array is active ($FAKE/active), --assemble and --create fail then (its
#: disks are busy), --assemble succeeds once an array was created; blkid once a file system was made;
#: systemctl only records.
FAKES = {
    "mountpoint": 'grep -qxF "$2" "$FAKE/mounted"',
    "mount": 'echo "${*: -1}" >>"$FAKE/mounted"',
    "mdadm": (
        'if [ "$1" = --detail ]; then [ -e "$FAKE/active" ]; exit; fi; [ ! -e "$FAKE/active" ] || exit 1; '
        '[ "$1" != --assemble ] || [ -e "$FAKE/array" ] || exit 1; '
        '[ "$1" != --create ] || touch "$FAKE/array"; touch "$FAKE/active"'
    ),
    "blkid": '[ -e "$FAKE/formatted" ]',
    "mkfs.ext4": 'touch "$FAKE/formatted"',
    "apt-get": "true",
    "systemctl": "true",
}
#: The Deep Learning images' daemon.json: the NVIDIA runtime, which the data root must not replace.
NVIDIA_RUNTIME = {"runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}}


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
        "LOCAL_NVME_ROOT": str(tmp_path / "nvme"),
        "LOCAL_NVME_DOCKER": f"{tmp_path}/docker/daemon.json:{tmp_path}/docker.service.d/vllm-nvme.conf",
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
    """What changed the machine (not the looks: mountpoint, blkid, mdadm --detail, a failed assemble)."""
    return [
        call
        for call in calls
        if call.split()[0] in ("mdadm", "mkfs.ext4", "mount") and not call.startswith("mdadm --detail")
    ]


def daemon_json(env: dict[str, str]) -> Path:
    return Path(env["LOCAL_NVME_DOCKER"].split(":")[0])


def drop_in(env: dict[str, str]) -> Path:
    return Path(env["LOCAL_NVME_DOCKER"].split(":")[1])


def systemctl(calls: list[str]) -> list[str]:
    return [call.removeprefix("systemctl ") for call in calls if call.startswith("systemctl ")]


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
    assert calls[3:] == [
        f"mount -o noatime /dev/md/vllm-nvme {machine['LOCAL_NVME_ROOT']}",
        f"mount --bind {machine['LOCAL_NVME_ROOT']}/vllm-cache {machine['TARGET']}",
    ]


def test_partitions_namespace_aliases_and_ebs_volumes_are_not_striped(machine):
    (device,) = disks(machine, "nvme-Amazon_EC2_NVMe_Instance_Storage_AWS1F2E3D4C5B6A7980")
    disks(machine, "nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0", "google-local-nvme-ssd-0-part1")
    (
        Path(machine["LOCAL_NVME_BY_ID"]) / "nvme-Amazon_EC2_NVMe_Instance_Storage_AWS1F2E3D4C5B6A7980_1"
    ).symlink_to(device)
    calls = actions(run(machine))
    assert not [call for call in calls if call.startswith("mdadm")]  # one disk: no array
    assert f"mount -o noatime {device} {machine['LOCAL_NVME_ROOT']}" in calls


def test_after_a_reboot_the_array_is_assembled_and_not_formatted_again(machine):
    disks(machine, "google-local-nvme-ssd-0", "google-local-nvme-ssd-1")
    run(machine)
    (Path(machine["FAKE"]) / "calls").unlink()
    (Path(machine["FAKE"]) / "mounted").write_text("")  # a reboot unmounts
    (Path(machine["FAKE"]) / "active").unlink()  # and stops the array
    calls = actions(run(machine))
    assert not [call for call in calls if call.startswith(("mkfs", "mdadm --create"))]
    assert f"mount -o noatime /dev/md/vllm-nvme {machine['LOCAL_NVME_ROOT']}" in calls


def test_after_a_reboot_an_array_udev_assembled_is_mounted_as_it_is(machine):
    """udev's incremental assembly often has the array active before the script runs: --assemble and
    --create would fail on its busy disks (and set -e end the script, keeping Docker down)."""
    disks(machine, "google-local-nvme-ssd-0", "google-local-nvme-ssd-1")
    run(machine)
    (Path(machine["FAKE"]) / "calls").unlink()
    (Path(machine["FAKE"]) / "mounted").write_text("")  # a reboot unmounts; the array stays active
    calls = actions(run(machine))
    assert not [call for call in calls if call.startswith("mdadm")]
    assert f"mount -o noatime /dev/md/vllm-nvme {machine['LOCAL_NVME_ROOT']}" in calls
    calls = actions(run(machine))
    assert not [call for call in calls if call.startswith(("mkfs", "mdadm --create"))]
    assert f"mount -o noatime /dev/md/vllm-nvme {machine['LOCAL_NVME_ROOT']}" in calls


def test_the_deep_learning_amis_instance_store_array_is_used_as_it_is(machine):
    disks(machine, "nvme-Amazon_EC2_NVMe_Instance_Storage_AWS1F2E3D4C5B6A7980")
    (Path(machine["FAKE"]) / "mounted").write_text(machine["LOCAL_NVME_DLAMI"] + "\n")
    calls = actions(run(machine))
    assert calls == [f"mount --bind {machine['LOCAL_NVME_DLAMI']}/vllm-cache {machine['TARGET']}"]


def test_a_mounted_array_and_cache_are_left_alone(machine):
    disks(machine, "google-local-nvme-ssd-0")
    (Path(machine["FAKE"]) / "mounted").write_text(f"{machine['LOCAL_NVME_ROOT']}\n{machine['TARGET']}\n")
    assert actions(run(machine)) == []


def test_without_local_nvme_the_cache_stays_on_the_boot_disk(machine):
    disks(machine, "nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0")
    assert actions(run(machine)) == []
    assert Path(machine["TARGET"]).is_dir()
    assert not daemon_json(machine).exists() and not drop_in(machine).exists()


# --- Docker's data root ----------------------------------------------------------------------------------


def test_dockers_data_root_moves_to_the_array_and_keeps_the_nvidia_runtime(machine):
    disks(machine, "google-local-nvme-ssd-0", "google-local-nvme-ssd-1")
    daemon_json(machine).parent.mkdir()
    daemon_json(machine).write_text(json.dumps(NVIDIA_RUNTIME))
    calls = run(machine)
    assert json.loads(daemon_json(machine).read_text()) == {
        **NVIDIA_RUNTIME,
        "data-root": f"{machine['LOCAL_NVME_ROOT']}/docker",
    }
    assert systemctl(calls) == ["daemon-reload", "restart docker"]


def test_after_a_reboot_docker_mounts_the_array_before_it_starts(machine):
    disks(machine, "nvme-Amazon_EC2_NVMe_Instance_Storage_AWS1F2E3D4C5B6A7980")
    run(machine)
    unit = drop_in(machine).read_text().splitlines()
    assert f"ExecStartPre=-{scripts.path('local_nvme.sh').resolve()} {machine['TARGET']}" in unit
    assert "After=dlami-nvme.service" in unit  # the DLAMI's array first, where the image has it


def test_docker_restarts_only_when_its_data_root_changed(machine):
    disks(machine, "google-local-nvme-ssd-0")
    run(machine)
    (Path(machine["FAKE"]) / "calls").unlink()
    (Path(machine["FAKE"]) / "mounted").write_text("")  # a reboot: docker.service's drop-in runs the script
    assert systemctl(run(machine)) == []  # restarting docker from its own start would never end


def test_on_the_deep_learning_ami_dockers_data_root_is_on_its_array(machine):
    disks(machine, "nvme-Amazon_EC2_NVMe_Instance_Storage_AWS1F2E3D4C5B6A7980")
    (Path(machine["FAKE"]) / "mounted").write_text(machine["LOCAL_NVME_DLAMI"] + "\n")
    run(machine)
    data_root = json.loads(daemon_json(machine).read_text())["data-root"]
    assert data_root == f"{machine['LOCAL_NVME_DLAMI']}/docker"


def test_a_booting_nvme_vm_moves_dockers_data_root_before_it_starts_vllm(sandbox, tmp_path):  # noqa: F811
    """The whole boot (vm_bootstrap.sh) on an A3 with fake disk tools: Docker restarts on the NVMe first."""
    assert vm.embedded("local_nvme.sh").text in rendered("gcp-h100")
    fakes, by_id = Path(sandbox["PATH"].split(":")[0]), Path(sandbox["LOCAL_NVME_BY_ID"])
    fake = tmp_path / "fake"
    for folder in (by_id, fake):
        folder.mkdir()
    (fake / "mounted").touch()
    for name, body in FAKES.items():
        if name != "systemctl":  # the sandbox's records every call
            (fakes / name).write_text(f"#!/usr/bin/env bash\n{body}\n")
            (fakes / name).chmod(0o755)
    (tmp_path / "dev-ssd0").touch()
    (by_id / "google-local-nvme-ssd-0").symlink_to(tmp_path / "dev-ssd0")
    docker = f"{tmp_path}/daemon.json:{tmp_path}/drop-in.conf"
    env = {**sandbox, "FAKE": str(fake), "LOCAL_NVME_DOCKER": docker}
    result = run_script(rendered("gcp-h100"), env, "boot")
    assert result.returncode == 0, result.stdout + result.stderr
    data_root = json.loads((tmp_path / "daemon.json").read_text())["data-root"]
    assert data_root == f"{sandbox['LOCAL_NVME_ROOT']}/docker"
    calls = (tmp_path / "systemctl-calls").read_text().splitlines()
    assert calls.index("restart docker") < calls.index("restart vllm.service")


def test_docker_restarts_after_the_lock_is_released(machine):
    """docker.service's drop-in runs this script, which takes the lock, and moby's unit has TimeoutStartSec=0:
    a restart asked for under the lock would wait forever (tests/test_boot.py boots it under systemd)."""
    disks(machine, "google-local-nvme-ssd-0")
    systemctl = Path(machine["PATH"].split(":")[0]) / "systemctl"
    systemctl.write_text(
        '#!/usr/bin/env bash\nif [ "$1" = restart ] && ! flock -n "$TARGET.lock" true; then\n'
        '  echo "restart under the lock" >>"$FAKE/calls"\nfi\n'
    )
    assert "restart under the lock" not in run(machine)
