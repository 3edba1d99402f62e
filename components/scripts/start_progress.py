#!/usr/bin/env python3
"""A pod's start judged by its progress, with the VMs' rule (health_agent.py): a download is healthy while
its bytes keep arriving (--progress-bytes more per --stall seconds) and hung when they stop; every phase has
a hard cap. Kubernetes has no health agent: components/kubernetes/pods.py runs this in the pod, with the
values of the one definition (launch.py STALL_SECONDS and health_caps, health_agent.py PROGRESS_BYTES).
Python 3 standard library only: it runs on the vLLM image's python3.

  watch -- CMD...  runs the download CMD (the shared cache's fill, hf_cache_fill.sh). When its bytes stop
                   it stops CMD and exits STALLED, so the kubelet restarts the init container and the
                   download resumes; otherwise it exits as CMD does (a crash fails the container as ever).
  look             one look at another pod's fill (hf_cache_fill.sh's wait): exits 1 once the fill has
                   added no byte for --stall seconds, so a waiter takes over a dead or hung filler's lock.
  probe            vLLM's liveness probe where its container downloads from the Hub itself: 0 healthy, 1
                   broken (the kubelet restarts the container). Until vLLM first answers 200: broken when a
                   download (a huggingface_hub ``.incomplete`` file under --dir) stalls, or a phase outlasts
                   its cap (--caps WEIGHTS LOAD: the download from its first byte, the load from the
                   container's start or the download's end). Once ready: broken when /health has not
                   answered 200 for --hang seconds.
  ``look`` and ``probe`` keep their state between looks in --state, a file of the container's own file
  system: a restarted container starts afresh.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

#: A stalled download's exit (sysexits.h EX_TEMPFAIL: a temporary failure, to be retried).
STALLED = 75
#: How long a stopped download may take to exit on SIGTERM before SIGKILL.
STOP_SECONDS = 10


def log(message: str) -> None:
    """To stderr: the pod's log has it, and a download's output can go to /dev/null without it."""
    print(f"start-progress: {message}", file=sys.stderr, flush=True)


def weight_bytes(root: str) -> tuple[int, bool]:
    """Bytes allocated under ``root`` (st_blocks: a preallocated or sparse file counts what was written),
    and whether a Hugging Face download is under way there (a ``<blob>.incomplete`` file), as the health
    agent counts them."""
    total, incomplete = 0, False
    for directory, _, files in os.walk(root) if root else ():
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
            except OSError:  # gone between the listing and the look: a finished download's temporary file
                continue
            incomplete = incomplete or name.endswith(".incomplete")
    return total, incomplete


@dataclass
class State:
    """What a judge remembers between looks (times are epoch seconds)."""

    first: float  # the first look: the container's start, within one probe period
    progress_at: float  # the last progress: a new phase, or --progress-bytes more than ``mark``
    mark: int = -1  # bytes at the last progress (-1: none seen yet)
    stage: str = "load"  # "weights" while a download is under way, else "load"
    stage_since: float = 0.0
    downloaded_at: float = 0.0  # the last look at a download under way
    ok_at: float = 0.0  # the last 200 from /health (0: never ready)

    def see(self, now: float, size: int, progress_bytes: int, stage: str = "weights") -> None:
        """The health agent's rule: progress is a new stage or ``progress_bytes`` more than at the last
        progress; fewer bytes (files removed) only lower the mark."""
        if stage != self.stage:
            self.stage, self.stage_since, self.progress_at = stage, now, now
        if stage == "weights":
            self.downloaded_at = now
        if self.mark < 0 or size < self.mark:
            self.mark = size
        elif size - self.mark >= progress_bytes:
            self.mark, self.progress_at = size, now


def load_state(path: str, now: float, stage: str) -> State:
    try:
        return State(**json.loads(Path(path).read_text()))
    except (OSError, ValueError, TypeError):  # the first look of this container
        return State(first=now, progress_at=now, stage=stage, stage_since=now)


def save_state(path: str, state: State) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(asdict(state)))


def watch(options: argparse.Namespace) -> int:
    child = subprocess.Popen(options.command)
    state = State(first=time.monotonic(), progress_at=time.monotonic(), stage="weights")
    while True:
        try:
            return child.wait(timeout=options.interval)
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        state.see(now, weight_bytes(options.dir)[0], options.progress_bytes)
        if now - state.progress_at > options.stall:
            log(f"no new byte under {options.dir} for {now - state.progress_at:.0f} s: stopping the download")
            child.terminate()
            try:
                child.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            return STALLED


def look(options: argparse.Namespace) -> int:
    now = time.time()
    state = load_state(options.state, now, "weights")
    state.see(now, weight_bytes(options.dir)[0], options.progress_bytes)
    save_state(options.state, state)
    still = now - state.progress_at
    if still > options.stall:
        log(f"no new byte under {options.dir} for {still:.0f} s (window {options.stall:.0f} s)")
        return 1
    return 0


def answers(url: str, timeout: float) -> bool:
    """vLLM's /health answers 200 (over HTTPS too: its own certificate names the service, not localhost)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return response.status == 200
    except (OSError, http.client.HTTPException):  # refused, reset, timed out, not 2xx, not HTTP
        return False


def probe(options: argparse.Namespace) -> int:
    now = time.time()
    size, incomplete = weight_bytes(options.dir)
    stage = "weights" if incomplete else "load"
    state = load_state(options.state, now, stage)
    ready = answers(options.health_url, options.timeout)
    if ready:
        state.ok_at = now
    elif not state.ok_at:
        state.see(now, size, options.progress_bytes, stage)
    save_state(options.state, state)
    if ready:
        return 0
    if state.ok_at:  # a hang after ready, or a saturated server: patience
        failing = now - state.ok_at
        if failing > options.hang:
            log(f"/health has not answered 200 for {failing:.0f} s since vLLM was ready")
            return 1
        return 0
    caps = dict(zip(("weights", "load"), options.caps, strict=True))
    since = state.stage_since if stage == "weights" else max(state.first, state.downloaded_at)
    elapsed = now - since
    if elapsed > caps[stage]:
        log(f"{stage} phase for {elapsed:.0f} s, over its {caps[stage]:.0f} s cap")
        return 1
    still = now - state.progress_at
    if stage == "weights" and still > options.stall:
        log(f"download stalled: no new byte for {still:.0f} s (window {options.stall:.0f} s)")
        return 1
    return 0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="A pod's start judged by its progress")
    modes = parser.add_subparsers(dest="mode", required=True)
    for name in ("watch", "look", "probe"):
        mode = modes.add_parser(name)
        mode.add_argument("--dir", default="", help="where the weights land")
        mode.add_argument("--stall", type=float, required=True, help="seconds a download may add no byte")
        mode.add_argument("--progress-bytes", type=int, required=True, help="what counts as progress")
        if name == "watch":
            mode.add_argument("--interval", type=float, default=15.0, help="seconds between looks")
            mode.add_argument("command", nargs="+", help="the download, after --")
        else:
            mode.add_argument("--state", required=True, help="the judge's memory between looks")
        if name == "probe":
            mode.add_argument("--health-url", required=True)
            mode.add_argument("--timeout", type=float, required=True, help="for one /health request")
            mode.add_argument("--hang", type=float, required=True, help="seconds without 200 once ready")
            mode.add_argument("--caps", type=float, nargs=2, required=True, metavar=("WEIGHTS", "LOAD"))
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    options = parse(argv)
    return {"watch": watch, "look": look, "probe": probe}[options.mode](options)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
