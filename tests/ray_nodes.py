"""Runs ``ray_bootstrap.sh`` as the nodes of a Ray group on this machine, each node like a container.

Every node gets its own PID namespace, so the script is PID 1 as in a container, its ``ray stop --force``
sees only its own node's processes, and killing the node kills everything in it. All nodes of a test share
one network namespace that holds only the loopback interface: they reach each other on 127.0.0.1, nothing
leaves the machine, and Ray's fixed default ports cannot clash with anything else running here. (Outside
such a namespace Ray swaps 127.0.0.1 for the machine's address.) Needs root, ``unshare``, ``nsenter`` and
``ip``.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from components.scripts import path as script_path

SCRIPT = script_path("ray_bootstrap.sh")
VENV_BIN = Path(sys.executable).parent
TOOLS = ("unshare", "nsenter", "ip")
#: A node's own PID namespace, /proc included; --kill-child: when unshare dies, so does the node.
NODE_NAMESPACES = ("unshare", "--pid", "--fork", "--mount-proc", "--kill-child")

#: How long a test waits for anything Ray does: seconds on an idle machine, minutes on a loaded 2-core CI
#: machine, where each Ray process is a Python interpreter importing Ray while other jobs take the CPUs.
#: Only a failing test ever waits this long; a node that exits early fails its wait at once.
DEADLINE_SECONDS = 300

#: The head declares a killed node dead after 3 failed health checks 0.5 s apart, where Ray's defaults take
#: 15 s or more: a killed node refuses each check at once. A check still waits Ray's default 10 s for an
#: answer, as a node starved of CPU on a loaded machine answers late and must not be declared dead for it.
#: Ray's other timeouts stay as they are: `RAY_gcs_rpc_server_reconnect_timeout_s` (60 s), for one, applies
#: to every Ray process, the head's own `ray start` included, and a loaded machine can keep a starting GCS
#: from answering for several seconds.
FAST_RAY_FAILURE_DETECTION = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "10000",
    "RAY_health_check_failure_threshold": "3",
}


PR_SET_PDEATHSIG = 1


def die_with_the_test() -> None:
    """Runs in each child before exec: the kernel SIGKILLs it when the test process dies, however it dies,
    so no node outlives an interrupted test run."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def missing_capability() -> str | None:
    """Why Ray groups cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root for network and PID namespaces"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    return f"needs {', '.join(missing)}" if missing else None


def wait_until(
    condition: Callable[[], object], what: str, node: Node, timeout: float = DEADLINE_SECONDS
) -> None:
    """Polls ``condition`` until it holds. Fails at the deadline, or at once if ``node`` (the one expected to
    bring the condition about) exits first, with the node's output."""
    deadline = time.monotonic() + timeout
    while not condition():
        if node.process.poll() is not None:
            raise AssertionError(
                f"{node.name} exited {node.process.returncode} before {what}:\n{node.output()}"
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}:\n{node.output()}")
        time.sleep(0.2)


class Node:
    """One ``ray_bootstrap.sh`` run: the container's main process on one node."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], network: Path, log: Path, script: Path = SCRIPT
    ):
        self.name, self.log = name, log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                # nsenter execs unshare, so this PID is unshare's: killing it takes the whole node down
                ["nsenter", f"--net={network}", *NODE_NAMESPACES, "bash", str(script), *argv],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_the_test,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float = DEADLINE_SECONDS) -> int:
        """The node's exit status; a node still running at the deadline fails the test with its output."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{self.name} still running after {timeout} s:\n{self.output()}") from None

    def kill(self) -> None:
        """Kills every process of the node at once, like a crashed container or a lost VM."""
        if self.process.poll() is None:
            self.process.kill()  # unshare ignores SIGTERM; its --kill-child turns this into SIGKILL for PID 1
            self.process.wait(DEADLINE_SECONDS)

    def terminate_script(self) -> None:
        """SIGTERM to the script itself (PID 1 of the node), as ``docker stop`` or a pod deletion sends."""
        children = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=True
        ).stdout.split()
        os.kill(int(children[0]), signal.SIGTERM)


class RayHost:
    """The nodes of one test, their loopback-only network, and a short temp dir (Ray's socket paths must
    stay under 108 bytes, which pytest's tmp_path can exceed)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="rb-", dir="/tmp"))
        self.nodes: list[Node] = []
        self.holder = subprocess.Popen(
            ["unshare", "--net", "sh", "-c", "ip link set lo up && echo up && exec sleep infinity"],
            stdout=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=die_with_the_test,
        )
        assert self.holder.stdout is not None and self.holder.stdout.readline() == b"up\n"
        self.network = Path(f"/proc/{self.holder.pid}/ns/net")

    def env(self, **values: str) -> dict[str, str]:
        """A clean environment (nothing leaks in from the test runner) with this venv's ray and python3."""
        return {
            "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.root),
            "LANG": "C.UTF-8",
            **FAST_RAY_FAILURE_DETECTION,
            **values,
        }

    def start(self, name: str, argv: list[str], env: dict[str, str], script: Path = SCRIPT) -> Node:
        (self.root / name).mkdir(exist_ok=True)
        runs = sum(node.name == name for node in self.nodes)
        node = Node(
            name,
            argv,
            {"RAY_TMPDIR": str(self.root / name), **env},
            self.network,
            self.root / f"{name}.{runs}.log",
            script,
        )
        self.nodes.append(node)
        return node

    def close(self) -> None:
        for node in self.nodes:
            node.kill()
        self.holder.kill()
        self.holder.wait(DEADLINE_SECONDS)
        shutil.rmtree(self.root, ignore_errors=True)
