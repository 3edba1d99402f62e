"""vLLM's progress probe on Kubernetes (scripts/start_progress.py ``probe``), run as the kubelet runs it
against a fake vLLM container, a real process that downloads into a Hugging Face cache as huggingface_hub
does (``<blob>.incomplete``, renamed once whole) and then answers /health. Windows are injected short; the
pod spec's values are the shared ones (tests/test_kubernetes.py)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from components import scripts
from components.scripts import health_agent, start_progress

DEADLINE_SECONDS = 120  # a loaded 2-core machine; each scenario takes a few seconds
PROGRESS_BYTES = 4096
STALL = 3.0  # the injected stall window: several chunk intervals of a slow download

#: python3 FAKE PORT HUB CHUNKS CHUNK_SECONDS MODE: vLLM's container. It downloads CHUNKS chunks of 8 KiB
#: (twice the progress unit), one per CHUNK_SECONDS, into HUB's blobs/<blob>.incomplete (0: no download);
#: MODE ``hang`` then stops adding bytes and never serves; ``serve`` renames the blob and answers /health
#: 200 until the file HUB/../sick exists (then 503: a hung server).
FAKE_VLLM = r"""
import http.server, pathlib, sys, time
port, hub, chunks, every, mode = int(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:]
blobs = hub / "models--acme--tiny-llm" / "blobs"
blobs.mkdir(parents=True, exist_ok=True)
partial = blobs / "0123abcd.incomplete"
if chunks:
    with open(partial, "ab") as out:
        for _ in range(chunks):
            time.sleep(float(every))
            out.write(b"w" * 8192)
            out.flush()
if mode == "hang":
    time.sleep(3600)
if chunks:
    partial.rename(blobs / "0123abcd")
sick = hub.parent / "sick"
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(503 if sick.exists() else 200)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Pod:
    """One vLLM container and its probe, with the container's own state file."""

    def __init__(self, root: Path, caps: tuple[float, float] = (60.0, 60.0), hang: float = 60.0) -> None:
        self.root, self.hub, self.port = root, root / "cache" / "hub", free_port()
        self.hub.mkdir(parents=True, exist_ok=True)
        self.caps, self.hang = caps, hang
        self.container: subprocess.Popen | None = None
        self.state = root / "tmp" / "state.json"

    def start(self, chunks: int, every: float, mode: str = "serve") -> None:
        self.state.unlink(missing_ok=True)  # a new container: a fresh file system
        argv = [sys.executable, "-c", FAKE_VLLM, str(self.port), str(self.hub), str(chunks), str(every), mode]
        self.container = subprocess.Popen(argv)

    def look(self) -> tuple[int, str]:
        """One run of the probe, as the kubelet runs it: its exit code and what it said."""
        argv = [sys.executable, str(scripts.path("start_progress.py")), "probe", "--dir", str(self.hub)]
        argv += ["--stall", str(STALL), "--progress-bytes", str(PROGRESS_BYTES), "--state", str(self.state)]
        argv += ["--health-url", f"http://127.0.0.1:{self.port}/health", "--timeout", "2"]
        argv += ["--hang", str(self.hang), "--caps", *map(str, self.caps)]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=DEADLINE_SECONDS)
        return result.returncode, result.stderr

    def until(self, verdict: int, deadline: float = DEADLINE_SECONDS) -> tuple[float, str]:
        """Looks until the probe answers ``verdict``: seconds taken and what it said; fails past the deadline
        or when the probe answers the other verdict first."""
        begun = time.monotonic()
        while time.monotonic() - begun < deadline:
            code, said = self.look()
            if code == verdict:
                return time.monotonic() - begun, said
            assert code == 0, f"the probe failed too soon: {said}"
        raise AssertionError(f"no verdict {verdict} within {deadline} s")

    def ready(self) -> bool:
        """The probe has seen vLLM answer 200."""
        return self.state.exists() and json.loads(self.state.read_text())["ok_at"] > 0

    def healthy_until_ready(self) -> float:
        """Looks until vLLM is ready, each look healthy: the seconds it took."""
        begun = time.monotonic()
        while not self.ready():
            code, said = self.look()
            assert code == 0, said
            assert time.monotonic() - begun < DEADLINE_SECONDS, "vLLM never became ready"
        return time.monotonic() - begun

    def stop(self) -> None:
        if self.container is not None and self.container.poll() is None:
            self.container.kill()
        if self.container is not None:
            self.container.wait(timeout=DEADLINE_SECONDS)


@pytest.fixture
def pod(tmp_path: Path) -> Iterator[Pod]:
    made = Pod(tmp_path)
    yield made
    made.stop()


def test_a_slow_download_that_keeps_adding_bytes_is_healthy_until_vllm_serves(pod):
    # 24 chunks, one every 0.4 s: the download lasts three stall windows, never one without a byte
    pod.start(chunks=24, every=0.4)
    assert pod.healthy_until_ready() >= 3 * STALL


def test_a_download_that_stops_adding_bytes_is_broken_after_the_stall_window(pod):
    pod.start(chunks=2, every=0.2, mode="hang")
    while not list(pod.hub.rglob("*.incomplete")):
        assert pod.container is not None and pod.container.poll() is None
    begun = time.monotonic()
    _, said = pod.until(1)
    assert STALL <= time.monotonic() - begun < STALL + 30, said
    assert "stalled" in said


def test_a_restarted_container_resumes_the_download_with_a_fresh_window(pod):
    pod.start(chunks=2, every=0.2, mode="hang")
    pod.until(1)
    pod.stop()  # the kubelet's restart: the partial file stays in the pod's cache
    pod.start(chunks=10, every=0.4)
    pod.healthy_until_ready()
    assert (pod.hub / "models--acme--tiny-llm" / "blobs" / "0123abcd").stat().st_size == 12 * 8192


def test_a_load_that_outlasts_its_cap_is_broken(tmp_path):
    pod = Pod(tmp_path, caps=(60.0, 2.0))
    try:
        pod.start(chunks=0, every=0, mode="hang")  # no download, never serves: stuck in the load
        _, said = pod.until(1)
        assert "over its 2 s cap" in said
    finally:
        pod.stop()


def test_a_ready_server_is_given_the_hang_window_before_it_is_broken(tmp_path):
    pod = Pod(tmp_path, hang=2.0)
    try:
        pod.start(chunks=1, every=0)
        pod.healthy_until_ready()
        (tmp_path / "cache" / "sick").touch()  # /health answers 503 from now on
        begun = time.monotonic()
        _, said = pod.until(1)
        assert time.monotonic() - begun >= 2.0 and "has not answered 200" in said
    finally:
        pod.stop()


def test_the_progress_rule_is_the_health_agents():
    judge = health_agent.Judge("serve", {"start": 99, "weights": 99, "load": 99}, 10, 3, 0.0)
    state = start_progress.State(first=0.0, progress_at=0.0, stage="start", stage_since=0.0)
    unit = health_agent.PROGRESS_BYTES
    for now, size in (
        (1, 0),
        (2, unit - 1),
        (3, unit),
        (4, unit + 1),
        (5, 2 * unit),
        (6, unit),
        (7, 2 * unit),
    ):
        judge.judge(health_agent.Observation(now, None, 0, False, None, downloading=True, weight_bytes=size))
        state.see(now, size, unit)
        assert (state.mark, state.progress_at) == (judge.mark, judge.progress_at), now
