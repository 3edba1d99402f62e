"""A VM booted under a real systemd: a ``systemd-nspawn`` container over a Debian rootfs from ``debootstrap``.

The rootfs is built once per package list (``rootfs``) and cached outside the repository; every machine gets
its own copy-on-write layer over it (overlayfs), kept across its reboots. Fakes stand only where hardware or
a cloud API would be (tests/boot/bin, tests/boot/units): the GPU, the Docker daemon and CLI, the cloud CLIs
and metadata server, md RAID and the disks' udev names (the disks themselves are real loop devices), the
Hugging Face Hub. The platform's boot script runs the way the platform runs it: GCP's guest agent unit at
every boot, AWS's cloud-init final stage once per instance.

Needs root, ``debootstrap``, ``systemd-nspawn`` (Debian's systemd-container), ``nsenter``, ``losetup``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUITE = "bookworm"
MIRROR = os.environ.get("VLLM_BOOT_MIRROR", "http://deb.debian.org/debian")
#: What the boot scripts use besides the base system: systemd as init, python3 (the agents, daemon.json),
#: curl (metadata), e2fsprogs (mkfs.ext4), iproute2 (the fake metadata server's address), procps.
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "curl", "e2fsprogs", "procps", "iproute2")
CACHE = Path(os.environ.get("VLLM_BOOT_CACHE", "/var/cache/vllm-boot"))
TOOLS = ("debootstrap", "systemd-nspawn", "nsenter", "losetup", "mount")
#: Whether this machine runs systemd itself (a CI VM): nspawn then registers the container with machined.
HOST_SYSTEMD = Path("/run/systemd/system").is_dir()
#: How long a test waits for anything a machine does: seconds on an idle machine; only a failing test waits
#: this long, on a loaded 2-core CI machine.
DEADLINE_SECONDS = 240


#: The Ops Agent as dpkg lists it on a GCP image that has it (its unit is a fake: units/).
OPS_AGENT_PACKAGE = """
Package: google-cloud-ops-agent
Status: install ok installed
Priority: optional
Section: misc
Maintainer: Google Cloud Ops Agent <google-cloud-ops-agent@google.com>
Architecture: amd64
Version: 2.0.0~fake
Description: fake Google Cloud Ops Agent for the boot tests
"""


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def rootfs() -> Path:
    """The cached Debian rootfs for ``PACKAGES``: built under a lock (parallel test workers wait for one
    build), in a scratch directory renamed into place, so a build that dies half-way is never used."""
    key = hashlib.sha256(f"{SUITE} {MIRROR} {' '.join(PACKAGES)}".encode()).hexdigest()[:12]
    target = CACHE / f"rootfs-{SUITE}-{key}"
    if (target / "etc" / "os-release").exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "etc" / "os-release").exists():
            return target
        scratch = CACHE / f"build-{key}"
        if scratch.exists():  # a build that died: debootstrap may have left /proc and /sys mounted in it
            for mount in ("proc", "sys", "dev/pts", "dev"):
                subprocess.run(["umount", "--lazy", str(scratch / mount)], capture_output=True, check=False)
            shutil.rmtree(scratch)
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(scratch),
                MIRROR,
            ],
            check=True,
            capture_output=True,
            timeout=900,
        )
        (scratch / "etc" / "machine-id").write_text("")  # a new one at each first boot, as on a new VM
        scratch.rename(target)
    return target


def _run(*command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=check, timeout=timeout)


class Machine:
    """One VM: ``boot``, look inside with ``sh``, ``reboot``, ``destroy``. Use as a context manager, or
    through ``Fleet``, so it is always torn down."""

    def __init__(
        self,
        name: str,
        workdir: Path,
        *,
        platform: str,
        boot_script: bytes,
        secrets: dict[str, str],
        shared: Path,
        disks: int = 0,
        network: str | None = None,
        metadata: dict[str, str] | None = None,
        files: dict[str, str] | None = None,
    ) -> None:
        self.name, self.platform = name, platform
        #: nspawn's machine name (its hostname, and its directory under /run/systemd/nspawn): unique per test
        self.machine_name = f"{name}-{hashlib.sha256(str(workdir).encode()).hexdigest()[:8]}"
        self.dir = workdir / name
        self.upper, self.work, self.root = self.dir / "upper", self.dir / "work", self.dir / "root"
        for folder in (self.upper, self.work, self.root):
            folder.mkdir(parents=True)
        self.shared, self.network = shared, network
        self.loops: list[str] = []
        self.process: subprocess.Popen[bytes] | None = None
        self.leader = 0
        self.boots = 0
        try:
            self._prepare(boot_script, secrets, disks, metadata or {})
            for path, text in (files or {}).items():  # anything else on its disk (relative to /)
                (self.upper / path).parent.mkdir(parents=True, exist_ok=True)
                (self.upper / path).write_text(text)
        except BaseException:
            self.destroy()  # the loop devices made so far
            raise

    # --- the machine's disk, before its first boot -------------------------------------------------------

    def _prepare(
        self, boot_script: bytes, secrets: dict[str, str], disks: int, metadata: dict[str, str]
    ) -> None:
        root = self.upper
        for folder in (
            "usr/bin",
            "usr/local/bin",
            "etc/systemd/system/multi-user.target.wants",
            "etc/systemd/system/sysinit.target.wants",
            "etc/fake-cloud/secrets",
            "etc/fake-cloud/metadata",
            "var/lib/fake-cloud/buckets",
            "var/lib/fake-cloud/hub",
        ):
            (root / folder).mkdir(parents=True, exist_ok=True)
        for fake in (HERE / "bin").iterdir():
            where = (
                "usr/bin"
                if fake.name in ("docker", "dockerd", "cloud-init", "google_metadata_script_runner")
                else "usr/local/bin"
            )
            shutil.copy2(fake, root / where / fake.name)
        units = root / "etc/systemd/system"
        wanted = ["docker.service", "fake-metadata.service"]
        wanted += ["google-startup-scripts.service"] if self.platform == "gcp" else ["cloud-init.target"]
        for unit in (HERE / "units").iterdir():
            shutil.copy2(unit, units / unit.name)
        for unit in wanted:
            (units / "multi-user.target.wants" / unit).symlink_to(f"/etc/systemd/system/{unit}")
        if self.platform == "aws":
            (units / "cloud-init.target.wants").mkdir()
            (units / "cloud-init.target.wants" / "cloud-final.service").symlink_to(
                "/etc/systemd/system/cloud-final.service"
            )
        if self.platform == "gcp":  # the Ops Agent (a cloud service's agent) counts as installed
            (root / "var/lib/dpkg").mkdir(parents=True)
            status = (rootfs() / "var/lib/dpkg/status").read_text()
            (root / "var/lib/dpkg/status").write_text(status + OPS_AGENT_PACKAGE)
        key = "startup-script" if self.platform == "gcp" else "user-data"
        (root / "etc/fake-cloud/metadata" / key).write_bytes(boot_script)
        for name, value in metadata.items():
            (root / "etc/fake-cloud/metadata" / name).write_text(value)
        for name, value in secrets.items():
            (root / "etc/fake-cloud/secrets" / name).write_text(value)
        (root / "etc/hosts").write_text(
            f"127.0.0.1 localhost\n127.0.1.1 {self.machine_name}\n169.254.169.254 metadata.google.internal\n"
        )
        names = []
        for index in range(disks):
            image = self.dir / f"nvme{index}.img"
            with open(image, "wb") as disk:
                disk.truncate(64 << 20)
            self.loops.append(_run("losetup", "--find", "--show", str(image)).stdout.strip())
            by_id = (
                f"google-local-nvme-ssd-{index}"
                if self.platform == "gcp"
                else f"nvme-Amazon_EC2_NVMe_Instance_Storage_AWS{index:017d}"
            )
            names.append(f"{by_id} {self.loops[-1]}\n")
        if disks:
            (root / "etc/fake-cloud/nvme-disks").write_text("".join(names))
            (units / "sysinit.target.wants" / "fake-nvme.service").symlink_to(
                "/etc/systemd/system/fake-nvme.service"
            )

    # --- power --------------------------------------------------------------------------------------------

    def boot(self) -> None:
        base = rootfs()
        _run(
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            f"lowerdir={base},upperdir={self.upper},workdir={self.work}",
            str(self.root),
        )
        command = [
            "systemd-nspawn",
            "--quiet",
            "--boot",
            f"--machine={self.machine_name}",
            f"--directory={self.root}",
            "--console=pipe",
            f"--bind={self.shared}/buckets:/var/lib/fake-cloud/buckets",
            f"--bind={self.shared}/hub:/var/lib/fake-cloud/hub",
        ]
        command += (
            [f"--network-namespace-path=/run/netns/{self.network}"] if self.network else ["--private-network"]
        )
        command += [f"--bind={loop}" for loop in self.loops]
        if HOST_SYSTEMD:  # nspawn runs in a scope of its own, whose device policy must let the disks through
            command += [f"--property=DeviceAllow={loop} rwm" for loop in self.loops]
        else:  # no systemd to register with or to ask for a scope (a container's init, a Firecracker VM)
            command += ["--register=no", "--keep-unit"]
        self.boots += 1
        with open(self.dir / f"console-{self.boots}.log", "wb") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        self.leader = 0
        self.wait_for(self._leader_up, "systemd to start in the container")
        self.wait_for(
            lambda: self.sh("systemctl is-system-running").stdout.strip() not in ("", "offline"),
            "the container's systemd to answer",
        )

    def _leader_up(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"systemd-nspawn exited with {self.process.returncode}: {self.console()}")
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        for child in children:
            with contextlib.suppress(OSError):
                if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                    self.leader = int(child)
                    return True
        return False

    def reboot(self) -> None:
        """A guest reboot (``systemctl reboot``): the same disk, a new boot; the container's /run, /dev and
        mounts start empty, as a VM's do."""
        assert self.process is not None
        self.sh("systemctl reboot")
        try:
            self.process.wait(timeout=DEADLINE_SECONDS)
        except subprocess.TimeoutExpired as error:
            raise AssertionError(f"{self.name} did not shut down to reboot: {self.journal()}") from error
        self._unmount()
        self.boot()

    def shut_down(self) -> None:
        """An ACPI power button press (GCP's preemption, EC2's spot interruption at the end of its notice, a
        stop): systemd stops every unit in order and powers off."""
        assert self.process is not None
        self.sh("systemctl poweroff")
        try:
            self.process.wait(timeout=DEADLINE_SECONDS)
        except subprocess.TimeoutExpired as error:
            raise AssertionError(f"{self.name} did not power off: {self.console()}") from error
        self._unmount()

    def disk_file(self, path: str) -> str:
        """A file the machine wrote to its disk, read while it is off ('' when absent)."""
        found = self.upper / path.lstrip("/")
        return found.read_text() if found.exists() else ""

    def power_off(self) -> None:
        """Pulls the plug (teardown: nothing inside needs to stop cleanly)."""
        if self.process is not None and self.process.poll() is None:
            if self.leader:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.leader, signal.SIGKILL)  # PID 1 of the container: its whole PID namespace
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=60)
        self._unmount()

    def _unmount(self) -> None:
        if os.path.ismount(self.root):
            _run("umount", "--lazy", str(self.root))

    def destroy(self) -> None:
        try:
            self.power_off()
        finally:
            for loop in self.loops:
                _run("losetup", "--detach", loop, check=False)
            self.loops = []

    def __enter__(self) -> Machine:
        return self

    def __exit__(self, *_: object) -> None:
        self.destroy()

    # --- looking inside -----------------------------------------------------------------------------------

    def sh(self, script: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Runs ``script`` in the container (all its namespaces), as root."""
        return subprocess.run(
            ["nsenter", "--target", str(self.leader), "--all", "/bin/sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
        )

    def active(self, unit: str) -> bool:
        return self.sh(f"systemctl is-active --quiet {unit}").returncode == 0

    def serving(self, port: int = 8000) -> bool:
        """vLLM (the fake one) answers /health and lists its model, over HTTP inside the machine."""
        return (
            self.sh(
                f"curl -fsS http://127.0.0.1:{port}/health && curl -fsS http://127.0.0.1:{port}/v1/models"
            ).returncode
            == 0
        )

    def read(self, path: str) -> str:
        """A file of the machine's disk (empty when absent)."""
        found = self.sh(f"cat {path} 2>/dev/null")
        return found.stdout

    def console(self) -> str:
        return (self.dir / f"console-{self.boots}.log").read_text(errors="replace")[-4000:]

    def journal(self) -> str:
        return self.sh("journalctl --no-pager -b -n 150 -o short-monotonic").stdout

    def wait_for(self, condition: Callable[[], bool], what: str, deadline: float = DEADLINE_SECONDS) -> None:
        """Polls ``condition`` until it holds; fails with the machine's journal after ``deadline`` seconds."""
        end = time.monotonic() + deadline
        while not condition():
            if time.monotonic() > end:
                seen = self.journal() if self.leader else self.console()
                raise AssertionError(f"{self.name}: no {what} after {deadline} s\n{seen}")
            time.sleep(0.5)


class Fleet:
    """The machines of one test and what they share (the stack's bucket, the Hub); all torn down at the end,
    loop devices and mounts included, whatever the test did."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.shared = workdir / "shared"
        for folder in ("buckets", "hub"):
            (self.shared / folder).mkdir(parents=True)
        self.machines: list[Machine] = []
        self.netns: list[str] = []

    def machine(self, name: str, **settings: object) -> Machine:
        found = Machine(name, self.workdir, shared=self.shared, **settings)  # type: ignore[arg-type]
        self.machines.append(found)
        return found

    def network(self, *addresses: str) -> list[str]:
        """Network namespaces joined by a bridge, one per address (a VPC subnet): for machines that talk to
        each other (a Ray group)."""
        tag = hashlib.sha256(str(self.workdir).encode()).hexdigest()[:6]
        bridge = f"vb{tag}"
        self.netns.append(f"bridge:{bridge}")
        _run("ip", "link", "add", bridge, "type", "bridge")
        _run("ip", "link", "set", bridge, "up")
        names = []
        for index, address in enumerate(addresses):
            name = f"vb{tag}n{index}"
            _run("ip", "netns", "add", name)
            self.netns.append(name)
            _run("ip", "link", "add", f"{name}h", "type", "veth", "peer", "name", "eth0", "netns", name)
            _run("ip", "link", "set", f"{name}h", "master", bridge, "up")
            _run("ip", "-n", name, "address", "add", f"{address}/24", "dev", "eth0")
            _run("ip", "-n", name, "link", "set", "eth0", "up")
            _run("ip", "-n", name, "link", "set", "lo", "up")
            # the metadata server's address (the container gets no CAP_NET_ADMIN in a namespace it joins)
            _run("ip", "-n", name, "address", "add", "169.254.169.254/32", "dev", "lo")
            names.append(name)
        return names

    def destroy(self) -> None:
        errors = []
        for machine in self.machines:
            try:
                machine.destroy()
            except Exception as error:  # tear down the others still
                errors.append(error)
        for name in self.netns:
            if name.startswith("bridge:"):
                _run("ip", "link", "delete", name.removeprefix("bridge:"), check=False)
            else:
                _run("ip", "netns", "delete", name, check=False)
        if errors:
            raise errors[0]


@contextlib.contextmanager
def fleet(workdir: Path) -> Iterator[Fleet]:
    machines = Fleet(workdir)
    try:
        yield machines
    finally:
        machines.destroy()
