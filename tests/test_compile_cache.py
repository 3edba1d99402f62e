"""vLLM's compile cache in the stack's bucket (scripts/compile_cache.sh), run with the fake gcloud and aws
CLIs of tests/test_weight_cache.py, whose buckets are directories: each hash-named directory vLLM compiles
into is saved once, by the first replica that has it, and restored by the next ones before vLLM starts."""

from __future__ import annotations

import http.server
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from components import launch, scripts, vm
from components.spec import build_spec
from tests.test_vm_bootstrap import health_report, run_script, sandbox, shellcheck  # noqa: F401 (a fixture)
from tests.test_weight_cache import (  # noqa: F401 (a fixture)
    DEADLINE_SECONDS,
    SHELLCHECK,
    URLS,
    buckets,
    shipped_for,
)
from tests.test_weight_cache_clouds import script_value

KEY = "acme/tiny-llm/0123456789abcdef0123456789abcdef01234567/vllm_vllm-openai:v0.33.0/H100-tp8-pp1"
BACKEND_UNIT = "torch_compile_cache/1a2b3c4d5e"
AOT_UNIT = "torch_compile_cache/torch_aot_compile/9f8e7d6c5b4a"
ARTIFACT = b"compiled" * 512


def env_for(buckets: Path, url: str, replica: str) -> dict[str, str]:  # noqa: F811
    """Each replica of a test is a machine of its own name (a fake ``hostname``), as in a group."""
    fake = buckets.parent / "bin" / "hostname"
    fake.write_text('#!/usr/bin/env bash\necho "$REPLICA_NAME"\n')
    fake.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{buckets.parent / 'bin'}:{os.environ['PATH']}",
        "BUCKETS": str(buckets),
        "COMPILE_CACHE_URL": url,
        "COMPILE_CACHE_KEY": KEY,
        "COMPILE_CACHE_DIR": str(buckets.parent / replica / "vllm-cache"),
        "COMPILE_CACHE_REGION": "us-east-1",
        "REPLICA_NAME": replica,
    }


def run(env: dict[str, str], command: str) -> str:
    result = subprocess.run(
        [
            "bash",
            str(shipped_for(Path(env["BUCKETS"]), env["COMPILE_CACHE_URL"], "compile_cache.sh")),
            command,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE_SECONDS,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def compile_into(env: dict[str, str], unit: str, content: bytes = ARTIFACT) -> None:
    """What vLLM leaves after compiling: a hash-named directory with a rank's artifacts."""
    rank = Path(env["COMPILE_CACHE_DIR"]) / unit / "rank_0_0" / "backbone"
    rank.mkdir(parents=True)
    (rank / "artifact_shape_None_subgraph_0").write_bytes(content)
    (rank.parent.parent / "cache_key_factors.json").write_text("{}\n")


def prefix(buckets: Path, url: str) -> Path:  # noqa: F811
    return buckets / url.split("://")[1] / "compile-cache" / KEY


def restored(env: dict[str, str], unit: str) -> bytes | None:
    artifact = (
        Path(env["COMPILE_CACHE_DIR"]) / unit / "rank_0_0" / "backbone" / "artifact_shape_None_subgraph_0"
    )
    return artifact.read_bytes() if artifact.exists() else None


def test_the_script_passes_shellcheck():
    binary = str(SHELLCHECK) if SHELLCHECK.exists() else "shellcheck"
    result = subprocess.run(
        [binary, "-s", "bash", str(scripts.path("compile_cache.sh"))], capture_output=True
    )
    assert result.returncode == 0, result.stdout


@URLS
def test_a_later_replica_restores_what_the_first_compiled(buckets, url):  # noqa: F811
    first, later = env_for(buckets, url, "a"), env_for(buckets, url, "b")
    compile_into(first, BACKEND_UNIT)
    assert "saved 1" in run(first, "save")
    assert "restored 1" in run(later, "restore")
    assert restored(later, BACKEND_UNIT) == ARTIFACT
    assert (Path(later["COMPILE_CACHE_DIR"]) / BACKEND_UNIT / "cache_key_factors.json").exists()


@URLS
def test_ahead_of_time_and_backend_units_are_saved_each(buckets, url):  # noqa: F811
    first, later = env_for(buckets, url, "a"), env_for(buckets, url, "b")
    compile_into(first, BACKEND_UNIT)
    compile_into(first, AOT_UNIT)
    assert "saved 2" in run(first, "save")
    run(later, "restore")
    assert restored(later, BACKEND_UNIT) == restored(later, AOT_UNIT) == ARTIFACT


@URLS
def test_a_unit_already_in_the_bucket_is_never_saved_again(buckets, url):  # noqa: F811
    first, later = env_for(buckets, url, "a"), env_for(buckets, url, "b")
    compile_into(first, BACKEND_UNIT)
    run(first, "save")
    marker = (prefix(buckets, url) / f"{BACKEND_UNIT}.complete").read_text()
    compile_into(later, BACKEND_UNIT, b"recompiled")
    assert "saved 0" in run(later, "save")
    assert (prefix(buckets, url) / f"{BACKEND_UNIT}.complete").read_text() == marker
    assert [owner.name for owner in (prefix(buckets, url) / BACKEND_UNIT).iterdir()] == ["a"]


@URLS
def test_a_new_unit_of_the_same_key_is_added_beside_the_saved_ones(buckets, url):  # noqa: F811
    """Another hash (the streamed model's path, another vllm:extraArgs) under the same key: saved too."""
    first, streaming, later = (env_for(buckets, url, replica) for replica in "abc")
    compile_into(first, BACKEND_UNIT)
    run(first, "save")
    run(streaming, "restore")
    compile_into(streaming, "torch_compile_cache/feedbeef00")
    assert "saved 1" in run(streaming, "save")
    assert "restored 2" in run(later, "restore")


@URLS
def test_an_upload_without_its_marker_is_not_restored(buckets, url):  # noqa: F811
    """A replica that died mid-upload (or is still uploading) left files but no marker."""
    upload = prefix(buckets, url) / BACKEND_UNIT / "a" / "rank_0_0"
    upload.mkdir(parents=True)
    (upload / "partial").write_bytes(b"half")
    later = env_for(buckets, url, "b")
    assert "restored 0" in run(later, "restore")
    assert not (Path(later["COMPILE_CACHE_DIR"]) / BACKEND_UNIT).exists()


@URLS
def test_a_restored_unit_that_does_not_match_its_marker_is_dropped(buckets, url):  # noqa: F811
    first, later = env_for(buckets, url, "a"), env_for(buckets, url, "b")
    compile_into(first, BACKEND_UNIT)
    run(first, "save")
    artifact = next((prefix(buckets, url) / BACKEND_UNIT / "a").rglob("artifact_*"))
    artifact.write_bytes(b"truncated")
    output = run(later, "restore")
    assert "does not match its marker" in output
    assert not (Path(later["COMPILE_CACHE_DIR"]) / BACKEND_UNIT).exists()  # vLLM compiles it again


@URLS
def test_replicas_saving_at_once_leave_one_marker_and_it_restores(buckets, url):  # noqa: F811
    savers = [env_for(buckets, url, replica) for replica in "ab"]
    for env in savers:
        compile_into(env, BACKEND_UNIT, f"compiled by {env['REPLICA_NAME']}".encode())
    processes = [
        subprocess.Popen(
            ["bash", str(shipped_for(buckets, url, "compile_cache.sh")), "save"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for env in savers
    ]
    outputs = [process.communicate(timeout=DEADLINE_SECONDS)[0] for process in processes]
    assert all(process.returncode == 0 for process in processes), outputs
    assert sum("saved 1" in output for output in outputs) == 1, outputs
    later = env_for(buckets, url, "c")
    run(later, "restore")
    owner = (prefix(buckets, url) / f"{BACKEND_UNIT}.complete").read_text().splitlines()[0]
    assert restored(later, BACKEND_UNIT) == f"compiled by {owner}".encode()


@URLS
def test_an_empty_bucket_restores_nothing_and_vllm_compiles(buckets, url):  # noqa: F811
    env = env_for(buckets, url, "a")
    assert "restored 0" in run(env, "restore")
    assert "saved 0" in run(env, "save")  # vLLM compiled nothing (e.g. --enforce-eager)


# --- on the machines: what the program renders ------------------------------------------------------------


def test_the_key_is_the_model_commit_the_image_the_gpu_and_the_parallelism():
    spec = build_spec("gcp-h100", {})
    assert launch.compile_cache_key(spec) == f"{spec.model}/main/vllm_vllm-openai:v0.33.0/H100-tp8-pp1"


@pytest.mark.parametrize("stack", ["gcp-h100", "aws-h100"])
def test_a_replica_with_the_bucket_carries_the_compile_cache(stack):
    spec = build_spec(stack, {})
    script = rendered_with_bucket(spec)
    assert "compile_cache.sh" in vm.scripts_in(script)
    settings = dict(
        pair.split("=", 1) for pair in shlex.split(script_value(script, "COMPILE_CACHE_ENV")[1:-1])
    )
    assert settings["COMPILE_CACHE_KEY"] == launch.compile_cache_key(spec)
    assert settings["COMPILE_CACHE_HEALTH_URL"] == "http://127.0.0.1:8000/health"
    assert settings["COMPILE_CACHE_WAIT_SECONDS"] == str(launch.probe_timings(spec).startup_seconds)
    assert shellcheck(script).returncode == 0


@pytest.mark.parametrize("role", ["ray-head", "ray-worker"])
def test_a_ray_node_keeps_its_compile_cache_to_itself(role):
    """A group's compiled ranks are split over its machines: no one machine could save a unit whole."""
    spec = build_spec("gcp-h100-multinode", {})
    script = rendered_with_bucket(spec, role)
    assert "compile_cache.sh" not in vm.scripts_in(script)
    assert "COMPILE_CACHE_ENV" not in script  # the serve role's hooks restore and save, a Ray node's do not


def test_without_a_bucket_there_is_no_compile_cache_to_share():
    spec = build_spec("gcp-h100", {"vllm:weightCache": "hub"})
    launch_ = launch.launch_spec(spec, has_hf_token=True)
    script = vm.bootstrap_script(
        spec, launch_, api_key_secret="k", hf_token_secret=None, health_report=health_report(spec, launch_)
    )
    assert "compile_cache.sh" not in vm.scripts_in(script)


def test_vllm_compiles_into_a_host_directory_restored_before_it_starts_and_saved_beside_it(sandbox):  # noqa: F811
    spec = build_spec("gcp-h100", {})
    tmp = Path(sandbox["TMP"])
    fake = Path(sandbox["VLLM_INSTALL_DIR"]) / "compile_cache.sh"
    fake.parent.mkdir(parents=True)
    fake.write_text(
        f'#!/usr/bin/env bash\necho "$1 $COMPILE_CACHE_DIR $COMPILE_CACHE_URL" >>{tmp}/compile-calls\n'
    )
    fake.chmod(0o755)
    (fake.parent / "weight_cache.sh").write_text("#!/usr/bin/env bash\n")
    (fake.parent / "weight_cache.sh").chmod(0o755)
    env = {**sandbox, "VLLM_COMPILE_CACHE": str(tmp / "vllm-cache")}
    result = run_script(rendered_with_bucket(spec), env, "run")
    assert result.returncode == 0, result.stderr
    argv = (tmp / "docker-argv").read_text().splitlines()
    assert argv[argv.index(f"{tmp}/vllm-cache:/root/.cache/vllm") - 1] == "--volume"
    assert "VLLM_CACHE_ROOT=/root/.cache/vllm" in argv
    deadline = time.monotonic() + DEADLINE_SECONDS  # save-when-serving runs in the background
    while len((tmp / "compile-calls").read_text().splitlines()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    calls = (tmp / "compile-calls").read_text().splitlines()
    assert calls == [f"{command} {tmp}/vllm-cache {BUCKET}" for command in ("restore", "save-when-serving")]


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[str]:
    """A stand-in for vLLM's /health on 127.0.0.1, answering 503 until ``ready`` exists, then 200."""
    ready = tmp_path / "ready"

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if ready.exists() else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health"
    server.shutdown()
    server.server_close()


@URLS
def test_saving_waits_until_vllm_serves(buckets, url, serving, tmp_path):  # noqa: F811
    env = {
        **env_for(buckets, url, "a"),
        "COMPILE_CACHE_HEALTH_URL": serving,
        "COMPILE_CACHE_POLL_SECONDS": "0.2",
    }
    compile_into(env, BACKEND_UNIT)
    saver = subprocess.Popen(
        ["bash", str(shipped_for(buckets, url, "compile_cache.sh")), "save-when-serving"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:  # still compiling: nothing saved
        assert saver.poll() is None and not (prefix(buckets, url) / f"{BACKEND_UNIT}.complete").exists()
        time.sleep(0.1)
    (tmp_path / "ready").touch()
    output, _ = saver.communicate(timeout=DEADLINE_SECONDS)
    assert "saved 1" in output


def test_a_vllm_that_never_serves_saves_nothing(buckets, serving):  # noqa: F811
    env = {
        **env_for(buckets, "gs://vllm-weights-test", "a"),
        "COMPILE_CACHE_HEALTH_URL": serving,
        "COMPILE_CACHE_WAIT_SECONDS": "1",
        "COMPILE_CACHE_POLL_SECONDS": "0.2",
    }
    compile_into(env, BACKEND_UNIT)
    assert "nothing saved" in run(env, "save-when-serving")
    assert not (buckets / "vllm-weights-test").exists()


BUCKET = "gs://vllm-compile-test"


def rendered_with_bucket(spec, role: str = "serve") -> str:
    launch_ = launch.launch_spec(spec, has_hf_token=True)
    return vm.bootstrap_script(
        spec,
        launch_,
        api_key_secret="k",
        hf_token_secret=None,
        role=role,
        ray_env=vm.ray_env(spec, "10.0.0.2") if role != "serve" else None,
        health_report=health_report(spec, launch_),
        weight_cache_url=BUCKET,
    )
