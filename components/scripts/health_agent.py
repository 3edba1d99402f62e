#!/usr/bin/env python3
"""Host-side health agent of a vLLM VM (GCP and AWS): judges the replica, so the platform replaces only
replicas that are really broken. Python 3 standard library only (the Deep Learning VM and the DLAMI ship
python3); installed by vm_bootstrap.sh as the ``vllm-health`` systemd unit.

Why: a model can take longer to load than the platform lets a replica be unhealthy (GCP's autohealing
initialDelaySec is at most 3600 s, and health checks keep counting during it). The agent knows when the
vLLM container started, so it can tell "still loading" from "broken".

Verdict (the same on both clouds), until the replica is first ready, by the phase it is in:
  - start (boot, Docker, the image pull) and load (the weights read into GPU memory, from the disk or
    streamed from the bucket, compile, CUDA graphs, until /health answers 200): healthy until the phase's
    hard cap (--caps START WEIGHTS LOAD) runs out, each the budget of that phase at the slowest rates
    (components/launch.py ``health_caps``); a start after a weights phase (a stream, or the rest of an
    image pull that ran beside a copy from the bucket) counts from its end;
  - weights (a download or a bucket copy under --weights-dir in progress): healthy while bytes keep
    arriving (at least PROGRESS_BYTES per --stall seconds) up to the phase's cap; a download that stops is
    unhealthy after --stall seconds. A slow Hub is never a broken replica, a hung one is replaced soon;
  - a crash loop (the vLLM unit restarted more than --max-failed-starts times without becoming ready) is
    unhealthy in any phase.
  Once ready, ``serve`` and ``ray-head`` mirror vLLM's /health (a hang after ready is unhealthy after
  --failed-looks consecutive failed looks; a crashed container, which the unit restarts, loads again within
  the load cap, up to --max-failed-starts restarts); a ``ray-worker`` is ready while it holds a connection
  to its Ray head's GCS port and is given the load cap again to rejoin when it loses it.
  Each phase reached (Docker up, weights arriving, vLLM's container running: its image pulled, vLLM
  listening, ready) is logged with its time since the agent started, and published (--publish) with the
  current phase so that ``tools.status`` shows it.

Action per cloud:
  - gcp: serve the verdict over HTTP on --port (200 healthy, 503 unhealthy); the managed group's
    autohealing health check targets it. With --hold-until-uptime, a loading replica answers unhealthy
    until the host has been up that long: the group ignores the answers during its initial delay, and a
    rolling update, which counts a new VM as ready once it answers healthy, waits for the model longer;
  - aws: on the first unhealthy verdict, mark the instance Unhealthy in its Auto Scaling group once
    (``aws autoscaling set-instance-health``, instance id and region from IMDSv2), retrying only failures;
    with --lifecycle-hook, complete the group's launch lifecycle hook once vLLM serves (``LaunchHook``);
    with --drain-target-group, leave the load balancer's target group on a spot interruption notice
    (``SpotDrain``).
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

ROLES = ("serve", "ray-head", "ray-worker")
#: What weight_cache.sh writes under --weights-dir once the model's files are whole there (its LOCAL_MARKER):
#: the weights phase is over, though vLLM's container may wait on for its image, pulled meanwhile.
FETCHED_MARKER = ".weight-cache-complete"
TCP_ESTABLISHED = "01"
#: What counts as progress in the weights phase: this many new bytes under --weights-dir since the last
#: progress (a few seconds of the slowest download; a log line or a lock file is far less).
PROGRESS_BYTES = 16 * 1024 * 1024
#: The judged phases, in the order a start goes through them, and the phases reached (logged, published).
STAGES = ("start", "weights", "load")
MILESTONES = ("docker", "weights", "image", "listening", "ready")


def log(message: str) -> None:
    print(f"vllm-health: {message}", flush=True)


@dataclass(frozen=True)
class Observation:
    """One look at the replica."""

    now: float
    container_started_at: float | None  # None: no running container
    unit_restarts: int  # systemd's NRestarts of the vLLM unit
    ready: bool  # vLLM /health is 200 (serve, ray-head) / connected to the Ray head (ray-worker)
    #: when weight_cache.sh last chose a path for the weights (its --weight-path-file's mtime), if it did
    fetch_started_at: float | None = None
    downloading: bool = False  # a download or bucket copy of the weights is under way (or waits for a fill)
    waiting: bool = False  # weight_cache.sh waits for another replica's fill: no bytes to expect
    weight_bytes: int = 0  # bytes on disk under --weights-dir
    docker: bool = False  # Docker answers
    listening: bool = False  # vLLM accepts connections


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    reason: str


class Judge:
    """The verdict logic, free of I/O so it is tested on its own and shared by both clouds."""

    def __init__(
        self,
        role: str,
        caps: dict[str, float],
        stall: float,
        max_failed_starts: int,
        started: float,
        failed_looks: int = 1,
        expected_bytes: float = 0,
    ) -> None:
        self.role, self.caps, self.stall, self.max_failed_starts = role, caps, stall, max_failed_starts
        self.expected_bytes = expected_bytes  # the weights' size, for a percentage (0: unknown)
        self.failed_looks = failed_looks  # consecutive failed looks at a ready vLLM before it is unhealthy
        self.failing = 0
        self.was_ready = False
        self.restarts_at_ready: int | None = None  # NRestarts when last ready (or first seen)
        self.last_ready = started
        self.absent_since: float | None = started  # when the container was last seen gone
        self.started = started
        self.reached: dict[str, float] = {}  # milestone -> when first reached
        self.stage, self.stage_since = "start", started
        self.downloaded_at = 0.0  # the last look at a download under way (none yet)
        self.mark: int | None = None  # weight bytes at the last progress
        self.progress_at = started
        self.chosen_at: float | None = None  # weight_cache.sh's last choice of a path, as last seen
        self.phase = "boot"  # what the replica does now, as tools.status shows it

    def milestones(self, seen: Observation) -> None:
        reached = {
            "docker": seen.docker or seen.container_started_at is not None,
            "weights": seen.downloading and not seen.waiting,
            "image": seen.container_started_at is not None,
            "listening": seen.listening or seen.ready,
            "ready": seen.ready,
        }
        for name in MILESTONES:
            if reached[name] and name not in self.reached:
                self.reached[name] = seen.now
                log(f"phase {name} reached at +{seen.now - self.started:.0f} s")

    def progress(self, seen: Observation, stage: str) -> None:
        """Progress is a new stage, a new path for the weights, or PROGRESS_BYTES more weight bytes than at
        the last progress."""
        chose = seen.fetch_started_at != self.chosen_at  # weight_cache.sh chose a path: a wait, then a fetch
        if stage != self.stage or chose or seen.waiting:  # a wait adds no byte: the window starts after it
            self.progress_at = seen.now
        if stage != self.stage:
            self.stage, self.stage_since = stage, seen.now
        self.chosen_at = seen.fetch_started_at
        if stage == "weights":
            self.downloaded_at = seen.now
        if self.mark is None or seen.weight_bytes < self.mark:
            self.mark = seen.weight_bytes
        elif seen.weight_bytes - self.mark >= PROGRESS_BYTES:
            self.mark, self.progress_at = seen.weight_bytes, seen.now

    def judge(self, seen: Observation) -> Verdict:
        self.milestones(seen)
        if self.restarts_at_ready is None:
            self.restarts_at_ready = seen.unit_restarts
        if seen.container_started_at is None:
            self.absent_since = seen.now if self.absent_since is None else self.absent_since
        else:
            self.absent_since = None
        began = seen.container_started_at
        stage = "weights" if seen.downloading else "start" if began is None else "load"
        self.progress(seen, stage)
        if seen.ready:
            self.was_ready, self.restarts_at_ready, self.last_ready = True, seen.unit_restarts, seen.now
            self.failing, self.phase = 0, "ready"
            return Verdict(True, "ready")
        restarted = seen.container_started_at is None or seen.container_started_at > self.last_ready
        if self.was_ready and self.role != "ray-worker" and not restarted:  # a hang: the same container
            self.failing += 1
            if self.failing < self.failed_looks:
                return Verdict(True, f"ready; /health failed {self.failing} look(s) in a row")
            return Verdict(False, "vLLM /health fails after the replica was ready")
        failed_starts = seen.unit_restarts - self.restarts_at_ready
        if failed_starts > self.max_failed_starts:
            return Verdict(False, f"crash loop: {failed_starts} restarts without becoming ready")
        if stage == "start":  # from the container's exit, or the end of a weights phase before it (a wait
            # for another replica's fill, then a stream from the bucket: no weights phase on disk)
            since = max(self.absent_since if self.absent_since is not None else seen.now, self.downloaded_at)
        elif stage == "load":  # from the container's start, or the end of a download within it
            since = max(seen.now if began is None else began, self.downloaded_at)
        else:  # from weight_cache.sh's last choice (a wait for another's fill, then the Hub), or first byte
            since = self.stage_since if seen.fetch_started_at is None else seen.fetch_started_at
        if self.was_ready:  # a worker that lost its head, or a restart: counts from then
            since = max(since, self.last_ready)
        self.phase = self.describe(seen, stage)
        elapsed, cap = seen.now - since, self.caps[stage]
        what = self.phase + ("%" if stage == "weights" and self.expected_bytes and not seen.waiting else "")
        what = "rejoining the Ray head" if self.was_ready and self.role == "ray-worker" else what
        if elapsed > cap:
            return Verdict(False, f"{what} for {elapsed:.0f} s, over the {stage} phase's {cap:.0f} s cap")
        still = seen.now - self.progress_at
        if stage == "weights" and not seen.waiting and still > self.stall:
            return Verdict(False, f"{what}: stalled, no new byte for {still:.0f} s (window {self.stall:.0f})")
        return Verdict(True, f"{what}: {elapsed:.0f} s of the {stage} phase's {cap:.0f} s cap")

    def describe(self, seen: Observation, stage: str) -> str:
        """The phase as published: one word, and for the weights their percentage or size (tag-safe)."""
        if stage == "weights" and seen.waiting:
            return "waiting"
        if stage == "weights" and self.expected_bytes:
            return f"weights {min(99, int(100 * seen.weight_bytes / self.expected_bytes))}"
        if stage == "weights":
            return f"weights {seen.weight_bytes / 1e9:.1f} GB"
        if stage == "load":
            return "listening" if seen.listening else "loading"
        return "image" if seen.docker else "boot"

    def timings(self) -> str:
        """When each phase was reached, epoch seconds: ``boot=... docker=... weights=...``."""
        return " ".join(f"{name}={when:.0f}" for name, when in {"boot": self.started, **self.reached}.items())


def weight_path(options: argparse.Namespace) -> tuple[str, float | None]:
    """What weight_cache.sh recorded in --weight-path-file (hub, bucket, local, wait, stream) and when."""
    try:
        path = Path(options.weight_path_file)
        return path.read_text().strip(), path.stat().st_mtime
    except OSError:
        return "", None


def weight_bytes(root: str) -> tuple[int, bool]:
    """Bytes allocated under ``root`` (st_blocks: a preallocated or sparse file counts what was written),
    and whether a Hugging Face download is under way there: huggingface_hub writes each file to
    ``<blob>.incomplete`` and renames it once whole, over HTTP and Xet alike (file_download.py,
    ``_download_to_tmp_and_move``, which hands ``xet_get`` that path)."""
    total, incomplete = 0, False
    for directory, _, files in os.walk(root) if root else ():
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
            except OSError:  # gone between the listing and the look: a finished download's temporary file
                continue
            incomplete = incomplete or name.endswith(".incomplete")
    return total, incomplete


def parse_docker_time(text: str) -> float:
    """Docker's RFC 3339 ``StartedAt`` (nanoseconds, ``Z``) as epoch seconds; Python 3.10 cannot parse it."""
    return datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()  # noqa: UP017 (3.10 has no UTC)


def container_started_at(container: str) -> float | None:
    result = subprocess.run(
        ["docker", "inspect", "--format", "{{.State.Running}} {{.State.StartedAt}}", container],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    fields = result.stdout.split()
    if result.returncode != 0 or len(fields) != 2 or fields[0] != "true":
        return None
    return parse_docker_time(fields[1])


def unit_restarts(unit: str) -> int:
    result = subprocess.run(
        ["systemctl", "show", "--property", "NRestarts", "--value", unit],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    text = result.stdout.strip()
    return int(text) if result.returncode == 0 and text.isdigit() else 0


def vllm_health(url: str, timeout: float) -> tuple[bool, bool]:
    """(listening, ready): vLLM answers at all, and answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return True, response.status == 200
    except urllib.error.HTTPError:
        return True, False
    except OSError:
        return False, False


def docker_up() -> bool:
    command = ["docker", "info", "--format", "{{.ServerVersion}}"]
    return subprocess.run(command, capture_output=True, timeout=30, check=False).returncode == 0


def _proc_address(text: str) -> tuple[str, int]:
    """An address of /proc/net/tcp (little-endian hex IPv4 ``0100007F:18EB``) as (ip, port)."""
    host, port = text.split(":")
    if len(host) == 32:  # tcp6: an IPv4-mapped address keeps the IPv4 part in its last 8 digits
        host = host[24:]
    return socket.inet_ntoa(bytes.fromhex(host)[::-1]), int(port, 16)


def connected_to(host: str, port: int, tables: tuple[str, ...] = ("/proc/net/tcp", "/proc/net/tcp6")) -> bool:
    """Whether this host holds an established TCP connection to ``host:port`` (a worker's raylet keeps one
    to its head's GCS). The container shares the host's network, so its sockets are listed here."""
    try:
        wanted = (socket.gethostbyname(host), port)
    except OSError:
        return False
    for table in tables:
        try:
            with open(table) as lines:
                rows = [line.split() for line in lines.readlines()[1:]]
        except OSError:
            continue
        for row in rows:
            if len(row) > 3 and row[3] == TCP_ESTABLISHED and _proc_address(row[2]) == wanted:
                return True
    return False


class AwsReporter:
    """Marks this instance Unhealthy in its Auto Scaling group, once; a failed call is retried a minute on."""

    RETRY_SECONDS = 60

    def __init__(self, imds_url: str, region: str) -> None:
        self.imds_url, self.region, self.reported = imds_url.rstrip("/"), region, False
        self.retry_at = 0.0

    def _imds(self, path: str, token: str) -> str:
        request = urllib.request.Request(
            f"{self.imds_url}/latest/{path}", headers={"X-aws-ec2-metadata-token": token}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.read().decode().strip()

    def token(self) -> str:
        put = urllib.request.Request(
            f"{self.imds_url}/latest/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "300"},
        )
        with urllib.request.urlopen(put, timeout=5) as response:
            return response.read().decode().strip()

    def identity(self) -> tuple[str, str] | None:
        """This instance's id and region from IMDSv2, None (logged) when IMDS does not answer."""
        try:
            token = self.token()
            instance_id = self._imds("meta-data/instance-id", token)
            return instance_id, self.region or self._imds("meta-data/placement/region", token)
        except OSError as error:
            log(f"cannot read the instance identity from IMDS: {error}")
            return None

    def report(self, reason: str) -> None:
        if self.reported or time.time() < self.retry_at:
            return
        self.retry_at = time.time() + self.RETRY_SECONDS
        found = self.identity()
        if found is None:
            return
        instance_id, region = found
        command = [
            "aws",
            "autoscaling",
            "set-instance-health",
            "--region",
            region,
            "--instance-id",
            instance_id,
        ]
        command += ["--health-status", "Unhealthy", "--no-should-respect-grace-period"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode == 0:
            self.reported = True
            log(f"marked {instance_id} Unhealthy in its Auto Scaling group: {reason}")
        else:
            log(f"set-instance-health failed ({result.returncode}): {result.stderr.strip()}")


# --drain-target-group: spot/instance-action answers 404 until EC2 schedules this spot instance's stop or
# termination, two minutes ahead ("Spot Instance interruption notices", EC2 user guide; AWS says to look
# every 5 s, the agent's interval). On the notice the instance leaves the target group, once: the load
# balancer sends it no new request and lets those in flight finish (DeregisterTargets; an absent target is a
# success, so a repeat is harmless). A failed call is retried at the next look. A class of its own: only a
# spot machine's agent has the flag, and only its user data carries this (components/vm.py AGENT_FLAG_PARTS).
class SpotDrain:
    def __init__(self, aws: AwsReporter, target_group: str) -> None:
        self.aws, self.target_group, self.drained = aws, target_group, False

    def step(self) -> None:
        if self.drained:
            return
        try:
            self.aws._imds("meta-data/spot/instance-action", self.aws.token())
        except OSError:  # 404 (no notice) or IMDS down
            return
        instance, region = self.aws.identity() or ("", "")
        command = ["aws", "elbv2", "deregister-targets", "--region", region]
        command += ["--target-group-arn", self.target_group, "--targets", f"Id={instance}"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        self.drained = result.returncode == 0
        log(f"spot interruption notice: deregister-targets {instance}: {result.returncode} {result.stderr}")


# --lifecycle-hook: the instance waits in Pending:Wait at launch until this completes its group's launch
# lifecycle hook: CONTINUE once vLLM first answers /health 200 (a new machine counts only once it serves),
# ABANDON on an unhealthy verdict, and a heartbeat every --lifecycle-heartbeat seconds while it loads
# (RecordLifecycleActionHeartbeat restarts the hook's timeout, at most 7200 s). An instance that waits on
# no hook (launched before the hook existed, or completed before a reboot) is left be. A failed call is
# retried a minute on. Comments, not docstrings: the agent rides in AWS user data (16 KB).
class LaunchHook:
    def __init__(self, aws: AwsReporter, hook: str, beat: float) -> None:
        self.aws, self.hook, self.beat = aws, hook, beat
        self.done, self.retry, self.beat_at, self.target = False, 0.0, time.time() + beat, [""]

    def step(self, verdict: Verdict) -> None:
        now, ready = time.time(), verdict.reason == "ready"
        beat = verdict.healthy and not ready
        if self.done or now < self.retry or (beat and not (self.beat and now >= self.beat_at)):
            return
        self.retry = now + 60
        try:
            if self.target == [""]:
                instance, region = self.aws.identity() or ("", "")
                found = self.call(
                    "describe-auto-scaling-instances", "--instance-ids", instance, "--region", region
                )
                found = json.loads(found)["AutoScalingInstances"][0]
                self.target = [
                    "--lifecycle-hook-name",
                    self.hook,
                    "--region",
                    region,
                    "--instance-id",
                    instance,
                ]
                self.target += ["--auto-scaling-group-name", found["AutoScalingGroupName"]]
                self.done = found["LifecycleState"] != "Pending:Wait"
            if not self.done:
                result = ["--lifecycle-action-result", "CONTINUE" if ready else "ABANDON"]
                self.call(
                    *(
                        ["record-lifecycle-action-heartbeat"]
                        if beat
                        else ["complete-lifecycle-action", *result]
                    ),
                    *self.target,
                )
                self.done, self.retry, self.beat_at = not beat, 0.0, now + self.beat
            log(f"launch hook: {verdict.reason}")
        except (OSError, ValueError, LookupError, subprocess.SubprocessError) as error:
            log(f"launch hook: {error!r}")

    def call(self, *args: str) -> str:
        result = subprocess.run(["aws", "autoscaling", *args], capture_output=True, text=True, check=False)
        if result.returncode:
            raise OSError(result.stderr)
        return result.stdout


# --publish: the phase and the timings of each phase reached go where tools.status reads them, whenever the
# phase is reached, and at most every SECONDS as it progresses; each kind writes them its own way (a
# subclass, so that a platform's agent ships only its own: Platform.agent_omits). Values use only tag-safe
# characters. A failed write is logged and retried SECONDS on.
class Publisher:
    SECONDS = 30

    def __init__(self) -> None:
        self.last, self.due, self.retry = ("", ""), 0.0, 0.0

    def step(self, phase: str, timings: str) -> None:
        now = time.time()
        if (phase, timings) == self.last or (timings == self.last[1] and now < self.due) or now < self.retry:
            return
        try:
            self.write(phase, timings)
            self.last, self.due = (phase, timings), now + self.SECONDS
        except (OSError, subprocess.SubprocessError) as error:
            self.retry = now + self.SECONDS
            log(f"cannot publish the phase: {error!r}")

    def write(self, phase: str, timings: str) -> None:
        raise NotImplementedError


# guest-attributes: the VM's guest attributes vllm/phase and vllm/timings (GCP: the metadata server, no IAM
# role needed; the instance's enable-guest-attributes metadata turns them on).
class GuestAttributes(Publisher):
    def __init__(self, metadata_url: str) -> None:
        super().__init__()
        self.metadata_url = metadata_url.rstrip("/")

    def write(self, phase: str, timings: str) -> None:
        for key, value in (("phase", phase), ("timings", timings)):
            request = urllib.request.Request(
                f"{self.metadata_url}/instance/guest-attributes/vllm/{key}",
                data=value.encode(),
                method="PUT",
                headers={"Metadata-Flavor": "Google"},
            )
            urllib.request.urlopen(request, timeout=5).close()


# instance-tags: the instance's tags vllm:phase and vllm:timings (AWS: ec2:CreateTags on the stack's
# instances, these two keys only).
class InstanceTags(Publisher):
    def __init__(self, aws: AwsReporter) -> None:
        super().__init__()
        self.aws = aws

    def write(self, phase: str, timings: str) -> None:
        instance, region = self.aws.identity() or ("", "")
        tags = [{"Key": "vllm:phase", "Value": phase}, {"Key": "vllm:timings", "Value": timings}]
        command = ["aws", "ec2", "create-tags", "--region", region, "--resources", instance]
        command += ["--tags", json.dumps(tags)]
        result = subprocess.run(command, capture_output=True, timeout=60, check=False)
        if result.returncode:
            raise OSError(result.stderr.decode().strip())


class FirstBootHold:
    """--hold-until-uptime: the verdict served over HTTP holds a loading replica unhealthy until the host
    has been up that long, on the VM's first boot only. A reboot (host maintenance) is no new VM: the
    group's initial delay does not cover it, so a hold then would have the VM recreated. ``marker``, on the
    boot disk, records that the first boot's hold is over."""

    def __init__(self, hold: float, marker: str, uptime_file: str) -> None:
        self.hold, self.marker, self.uptime_file = hold, Path(marker), uptime_file

    def apply(self, verdict: Verdict) -> Verdict:
        if self.marker.exists():
            return verdict
        with open(self.uptime_file) as uptime_file:
            uptime = float(uptime_file.read().split()[0])
        if uptime >= self.hold or verdict.reason == "ready":
            self.marker.parent.mkdir(parents=True, exist_ok=True)
            self.marker.touch()
            return verdict
        if not verdict.healthy:
            return verdict
        return Verdict(
            False, f"{verdict.reason}; held unhealthy until {self.hold:.0f} s of uptime (now {uptime:.0f})"
        )


class Agent:
    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.judge = Judge(
            options.role,
            dict(zip(STAGES, options.caps, strict=True)),
            options.stall,
            options.max_failed_starts,
            time.time(),
            options.failed_looks,
            options.weights_bytes,
        )
        self.reporter = (
            AwsReporter(options.imds_url, options.region) if options.report == "autoscaling-group" else None
        )
        self.launch_hook = (
            LaunchHook(self.reporter, options.lifecycle_hook, options.lifecycle_heartbeat)
            if self.reporter is not None and options.lifecycle_hook
            else None
        )
        self.publisher: Publisher | None = None
        if options.publish == "guest-attributes":
            self.publisher = GuestAttributes(options.metadata_url)
        elif options.publish == "instance-tags" and self.reporter is not None:
            self.publisher = InstanceTags(self.reporter)
        self.spot_drain = (
            SpotDrain(self.reporter, options.drain_target_group)
            if self.reporter is not None and options.drain_target_group
            else None
        )
        self.hold = (
            FirstBootHold(options.hold_until_uptime, options.hold_marker, options.uptime_file)
            if options.hold_until_uptime
            else None
        )
        self.lock = threading.Lock()
        self.verdict = Verdict(True, "not looked yet")
        self.logged: Verdict | None = None

    def observe(self) -> Observation:
        options = self.options
        started = container_started_at(options.container)
        if options.role == "ray-worker":
            listening = ready = connected_to(options.ray_head, options.ray_port)
        else:
            listening, ready = vllm_health(options.health_url, options.probe_timeout)
        path, chosen = weight_path(options)
        size, incomplete = (0, False) if ready else weight_bytes(options.weights_dir)
        # the bucket's path: weight_cache.sh fetches before the container starts, while the image is pulled
        # (what is left of the pull after the fetch is the start phase's again); the Hub's: vLLM downloads;
        # a stream's weights arrive within vLLM's load, into GPU memory, judged by the load phase's cap
        fetched = bool(options.weights_dir) and os.path.exists(
            os.path.join(options.weights_dir, FETCHED_MARKER)
        )
        fetching = path in ("hub", "bucket", "wait") and started is None and not fetched
        return Observation(
            time.time(),
            started,
            unit_restarts(options.unit),
            ready and started is not None,
            chosen,
            downloading=fetching or incomplete,
            waiting=fetching and path == "wait",
            weight_bytes=size,
            docker="docker" in self.judge.reached or docker_up(),
            listening=listening,
        )

    def step(self) -> Verdict:
        if self.spot_drain is not None:
            self.spot_drain.step()
        verdict = self.judge.judge(self.observe())
        with self.lock:
            self.verdict = self.hold.apply(verdict) if self.hold is not None else verdict
        if self.logged is None or verdict.healthy != self.logged.healthy:
            log(f"{'healthy' if verdict.healthy else 'UNHEALTHY'}: {verdict.reason}")
            self.logged = verdict
        if self.publisher is not None:
            self.publisher.step(self.judge.phase, self.judge.timings())
        if self.launch_hook is not None:
            self.launch_hook.step(verdict)
        if not verdict.healthy and self.reporter is not None:
            self.reporter.report(verdict.reason)
        return verdict

    def current(self) -> Verdict:
        with self.lock:
            return self.verdict

    def look(self) -> None:
        try:
            self.step()
        except Exception as error:  # one failed look must never stop the agent
            log(f"look failed: {error!r}")

    def loop(self) -> None:
        while True:
            time.sleep(self.options.interval)
            self.look()


def serve(agent: Agent, port: int) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            verdict = agent.current()
            body = json.dumps({"healthy": verdict.healthy, "reason": verdict.reason}).encode()
            self.send_response(200 if verdict.healthy else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # checks every few seconds: no access log
            pass

    server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Health agent of a vLLM VM")
    parser.add_argument(
        "--report",
        choices=("http", "autoscaling-group"),
        required=True,
        help="http: serve the verdict on --port for a health check that reads it (GCP autohealing); "
        "autoscaling-group: mark this instance Unhealthy in its Auto Scaling group (AWS)",
    )
    parser.add_argument("--role", choices=ROLES, required=True)
    parser.add_argument(
        "--caps",
        type=float,
        nargs=len(STAGES),
        required=True,
        metavar=("START", "WEIGHTS", "LOAD"),
        help="the seconds each phase may last at most",
    )
    parser.add_argument("--stall", type=float, default=600.0, help="seconds a download may add no byte")
    parser.add_argument("--weights-dir", default="", help="where the model's files land on this host")
    parser.add_argument("--weights-bytes", type=float, default=0.0, help="their size, for a percentage")
    parser.add_argument(
        "--weight-path-file", default="/run/vllm/weight-path", help="where weight_cache.sh records their path"
    )
    parser.add_argument("--publish", choices=("", "guest-attributes", "instance-tags"), default="")
    parser.add_argument("--metadata-url", default="http://metadata.google.internal/computeMetadata/v1")
    parser.add_argument("--max-failed-starts", type=int, default=3)
    parser.add_argument(
        "--failed-looks",
        type=int,
        default=2,
        help="consecutive failed looks at a ready vLLM before unhealthy",
    )
    parser.add_argument("--port", type=int, default=0, help="with --report http: serve the verdict here")
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--container", default="vllm")
    parser.add_argument("--unit", default="vllm.service")
    parser.add_argument("--health-url", default="http://127.0.0.1:8000/health")
    parser.add_argument("--probe-timeout", type=float, default=5.0)
    parser.add_argument("--ray-head", default="")
    parser.add_argument("--ray-port", type=int, default=6379)
    parser.add_argument("--region", default="", help="autoscaling-group: the group's region (else from IMDS)")
    parser.add_argument("--imds-url", default="http://169.254.169.254")
    parser.add_argument("--lifecycle-hook", default="")  # autoscaling-group: see LaunchHook
    parser.add_argument("--lifecycle-heartbeat", type=float, default=0.0)
    parser.add_argument("--drain-target-group", default="")  # autoscaling-group: see SpotDrain
    parser.add_argument("--hold-until-uptime", type=float, default=0.0, help="http: see FirstBootHold")
    parser.add_argument("--uptime-file", default="/proc/uptime")
    parser.add_argument("--hold-marker", default="/var/lib/vllm/health-hold-done")
    options = parser.parse_args(argv)
    if options.role == "ray-worker" and not options.ray_head:
        parser.error("--ray-head is required for a ray-worker")
    if options.report == "http" and not options.port:
        parser.error("--port is required with --report http: the health check reads the verdict there")
    return options


def main(argv: list[str]) -> None:
    options = parse(argv)
    agent = Agent(options)
    log(f"judging a {options.role} ({options.report}): caps {options.caps}, stall {options.stall:.0f} s")
    agent.look()  # the first verdict is a real one
    if options.port:
        serve(agent, options.port)
    agent.loop()


if __name__ == "__main__":
    main(sys.argv[1:])
