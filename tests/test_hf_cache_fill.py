"""The shared-cache fill (scripts/hf_cache_fill.sh), run with a fake ``hf`` CLI over a local directory that
stands for vllm:cacheClaim: one pod downloads the model's commit under a lock, the others wait and find it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from components import launch, scripts
from components.kubernetes import pods
from components.scripts import start_progress
from components.spec import build_spec
from tests.test_weight_cache import SHELLCHECK

MODEL = "acme/tiny-llm"
REVISION = "0123456789abcdef0123456789abcdef01234567"
DEADLINE_SECONDS = 120  # a loaded 2-core machine; the protocol itself takes a second or two

#: hf download MODEL --revision REV --cache-dir DIR [--include GLOB]... [--exclude GLOB]...: records the
#: download and its globs, takes FAKE_HF_SECONDS (the race window), adds FAKE_HF_CHUNKS chunks of 8 KiB to a
#: partial blob one per FAKE_HF_CHUNK_SECONDS (a slow download), with FAKE_HF_HANG then adds nothing more
#: and never returns (a hung one), fails with FAKE_HF_EXIT (a crashed one), else writes the
#: files of FAKE_REPO_FILES (the repository's listing) the globs select, as huggingface_hub lays out a
#: commit's snapshot and selects files (utils/_paths.py filter_repo_objects: fnmatch on the path, kept when
#: it matches an include, if any, and no exclude).
HF = r"""#!/usr/bin/env python3
import fnmatch, os, pathlib, sys, time
args = sys.argv[1:]
if args[:1] != ["download"] or args[2] != "--revision" or args[4] != "--cache-dir":
    sys.exit(2)
model, revision, cache = args[1], args[3], args[5]
globs = {"--include": [], "--exclude": []}
rest = args[6:]
for flag, glob in zip(rest[::2], rest[1::2]):
    globs[flag].append(glob)
with open(os.environ["FAKE_HUB_LOG"], "a") as log:
    log.write(f"{model}@{revision} token={os.environ.get('HF_TOKEN', 'none')}\n")
with open(os.environ["FAKE_HUB_LOG"] + ".globs", "a") as log:
    log.write(" ".join(rest) + "\n")
time.sleep(float(os.environ.get("FAKE_HF_SECONDS", "1")))
blobs = pathlib.Path(cache, "models--" + model.replace("/", "--"), "blobs")
blobs.mkdir(parents=True, exist_ok=True)
with open(blobs / "weights.incomplete", "ab") as partial:  # resumed, as huggingface_hub resumes a download
    for _ in range(int(os.environ.get("FAKE_HF_CHUNKS", "0"))):
        time.sleep(float(os.environ["FAKE_HF_CHUNK_SECONDS"]))
        partial.write(b"w" * 8192)
        partial.flush()
if os.environ.get("FAKE_HF_HANG"):
    time.sleep(3600)
if os.environ.get("FAKE_HF_EXIT", "0") != "0":
    sys.exit(int(os.environ["FAKE_HF_EXIT"]))
snapshot = pathlib.Path(cache, "models--" + model.replace("/", "--"), "snapshots", revision)
for name in os.environ.get("FAKE_REPO_FILES", "config.json model.safetensors").split():
    included = not globs["--include"] or any(fnmatch.fnmatch(name, g) for g in globs["--include"])
    if included and not any(fnmatch.fnmatch(name, g) for g in globs["--exclude"]):
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / name).write_text("file\n")
"""


@pytest.fixture
def claim(tmp_path: Path) -> Path:
    """The shared volume's HF hub cache, with a fake ``hf`` on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    hf = bin_dir / "hf"
    hf.write_text(HF)
    hf.chmod(hf.stat().st_mode | stat.S_IEXEC)
    cache = tmp_path / "claim" / "hub"
    cache.mkdir(parents=True)
    return cache


#: The injected stall window and progress unit (the pods' are launch.STALL_SECONDS and the health agent's
#: PROGRESS_BYTES: test_kubernetes_cache_claim.py): several chunk intervals of a slow download.
STALL_SECONDS = 3
PROGRESS_BYTES = 4096


def script(
    cache: Path,
    revision: str = REVISION,
    fetch_seconds: int = 60,
    lock_seconds: int = 300,
    takeover_seconds: int = 300,
) -> str:
    return scripts.render(
        pods.FILL_SCRIPT,
        model=MODEL,
        revision=revision,
        cache_dir=str(cache),
        fetch_seconds=fetch_seconds,
        lock_seconds=lock_seconds,
        poll_seconds="0.5",
        stall_seconds=STALL_SECONDS,
        takeover_seconds=takeover_seconds,
        progress_bytes=PROGRESS_BYTES,
        start_progress=scripts.Included(scripts.source(pods.PROGRESS_SCRIPT)),
    )


def start(cache: Path, text: str, **env: str) -> subprocess.Popen:
    environment = {
        **os.environ,
        "PATH": f"{cache.parent.parent / 'bin'}:{os.environ['PATH']}",
        "FAKE_HUB_LOG": str(cache.parent.parent / "hub-downloads"),
        **env,
    }
    return subprocess.Popen(
        ["bash", "-c", text], env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(process: subprocess.Popen, returncode: int = 0) -> str:
    output, _ = process.communicate(timeout=DEADLINE_SECONDS)
    assert process.returncode == returncode, output
    return output


def hub_downloads(cache: Path) -> list[str]:
    log = cache.parent.parent / "hub-downloads"
    return log.read_text().splitlines() if log.exists() else []


def snapshot(cache: Path, revision: str = REVISION) -> Path:
    return cache / "models--acme--tiny-llm" / "snapshots" / revision


def state(cache: Path, revision: str = REVISION) -> Path:
    return cache / ".vllm-fill" / "acme--tiny-llm" / revision


def lock_by_hand(cache: Path, epoch: int) -> None:
    (state(cache) / "lock").mkdir(parents=True)
    (state(cache) / "lock" / "owner").write_text(f"other-pod {epoch}\n")


def test_the_script_as_pods_run_it_passes_shellcheck(tmp_path):
    spec = build_spec(
        "shared", {"vllm:preset": "k8s-l4", "vllm:cacheClaim": "hf-cache", "vllm:createNamespace": "false"}
    )
    rendered = tmp_path / "fill.sh"
    rendered.write_text(pods.fill_script(spec, launch.launch_spec(spec, has_hf_token=True)))
    binary = str(SHELLCHECK) if SHELLCHECK.exists() else "shellcheck"
    result = subprocess.run([binary, "-s", "bash", str(rendered)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_two_pods_racing_download_from_the_hub_once(claim):
    outputs = [finish(process) for process in [start(claim, script(claim)), start(claim, script(claim))]]
    assert len(hub_downloads(claim)) == 1, outputs
    assert sum("lock taken" in output for output in outputs) == 1
    assert (snapshot(claim) / "model.safetensors").exists()
    assert not (state(claim) / "lock").exists()  # released once the fill is complete


def test_a_pod_that_finds_the_commit_complete_downloads_nothing(claim):
    finish(start(claim, script(claim)))
    output = finish(start(claim, script(claim)))
    assert len(hub_downloads(claim)) == 1
    assert "is in the shared cache" in output


def test_a_pod_waits_for_a_live_fillers_lock_then_finds_its_files(claim):
    lock_by_hand(claim, int(time.time()))
    waiter = start(claim, script(claim))
    deadline = time.monotonic() + DEADLINE_SECONDS
    log = []
    while "waiting" not in "".join(log) and time.monotonic() < deadline:
        log.append(waiter.stdout.readline())  # pyright: ignore[reportOptionalMemberAccess]
    (state(claim) / "complete").write_text("filled by the other pod\n")
    output = "".join(log) + finish(waiter)
    assert hub_downloads(claim) == [], output
    assert "another pod fills the shared cache" in output


def test_a_dead_fillers_lock_is_taken_over_by_one_pod(claim):
    lock_by_hand(claim, int(time.time()) - 3600)
    outputs = [finish(process) for process in [start(claim, script(claim)), start(claim, script(claim))]]
    assert len(hub_downloads(claim)) == 1, outputs
    assert sum("taking it over" in output for output in outputs) == 1
    assert (state(claim) / "complete").exists()


def test_a_failed_download_releases_the_lock_and_fails_the_container(claim):
    finish(start(claim, script(claim), FAKE_HF_EXIT="1"), returncode=1)
    assert not (state(claim) / "lock").exists() and not (state(claim) / "complete").exists()
    finish(start(claim, script(claim)))  # the kubelet's restart of the init container fills at once
    assert len(hub_downloads(claim)) == 2


def test_a_download_past_the_fetch_budget_is_cut_short(claim):
    begun = time.monotonic()
    output = finish(start(claim, script(claim, fetch_seconds=1), FAKE_HF_SECONDS="60"), returncode=124)
    assert time.monotonic() - begun < 30, output
    assert not (state(claim) / "lock").exists()


def test_another_commit_is_another_fill(claim):
    other = "fedcba9876543210fedcba9876543210fedcba98"
    finish(start(claim, script(claim)))
    finish(start(claim, script(claim, revision=other)))
    assert [line.split()[0] for line in hub_downloads(claim)] == [f"{MODEL}@{REVISION}", f"{MODEL}@{other}"]
    assert snapshot(claim, other).exists()


def test_the_hf_token_reaches_the_download_by_environment(claim):
    text = script(claim)
    finish(start(claim, text, HF_TOKEN="hf_from_the_secret"))
    assert hub_downloads(claim) == [f"{MODEL}@{REVISION} token=hf_from_the_secret"]
    assert "hf_from_the_secret" not in text


def fetched(cache: Path) -> list[str]:
    return sorted(
        str(path.relative_to(snapshot(cache))) for path in snapshot(cache).rglob("*") if path.is_file()
    )


#: Meta's Llama 3.1 8B Instruct as the Hub lists it: sharded safetensors, Meta's own checkpoint in
#: original/ (consolidated.00.pth, as large again as the weights), tokenizer and configs.
LLAMA_FILES = (
    "config.json generation_config.json model.safetensors.index.json model-00001-of-00002.safetensors "
    "model-00002-of-00002.safetensors tokenizer.json tokenizer_config.json special_tokens_map.json "
    "LICENSE README.md original/consolidated.00.pth original/params.json original/tokenizer.model"
)


def test_the_fill_downloads_the_weights_the_budget_counts_and_what_vllm_reads_beside_them(claim):
    finish(start(claim, script(claim), FAKE_REPO_FILES=LLAMA_FILES))
    assert fetched(claim) == sorted(
        [
            "config.json",
            "generation_config.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "model.safetensors.index.json",
            "special_tokens_map.json",
            "tokenizer.json",
            "tokenizer_config.json",
        ]
    )


def test_consolidated_duplicates_of_a_sharded_checkpoint_are_left_on_the_hub(claim):
    # Mistral's repositories carry both: vLLM loads the shards listed in model.safetensors.index.json.
    files = "config.json model-00001-of-00002.safetensors model-00002-of-00002.safetensors "
    files += "consolidated.safetensors"
    finish(start(claim, script(claim), FAKE_REPO_FILES=files))
    assert "consolidated.safetensors" not in fetched(claim)
    assert "model-00002-of-00002.safetensors" in fetched(claim)


def test_a_repository_of_consolidated_safetensors_alone_gets_them(claim):
    finish(start(claim, script(claim), FAKE_REPO_FILES="params.json consolidated.safetensors"))
    assert fetched(claim) == ["consolidated.safetensors", "params.json"]


def test_a_pytorch_only_repository_gets_its_bin_weights_and_no_other_bin(claim):
    files = "config.json pytorch_model.bin training_args.bin tokenizer.json"
    finish(start(claim, script(claim), FAKE_REPO_FILES=files))
    assert fetched(claim) == ["config.json", "pytorch_model.bin", "tokenizer.json"]
    assert (state(claim) / "complete").exists()


# --- progress: the VMs' rule (start_progress.py), with an injected short window -------------------------


def test_a_slow_download_that_keeps_adding_bytes_is_never_stopped(claim):
    # 16 chunks, one every 0.5 s: the download lasts over two stall windows, never one without a byte
    begun = time.monotonic()
    output = finish(start(claim, script(claim), FAKE_HF_CHUNKS="16", FAKE_HF_CHUNK_SECONDS="0.5"))
    assert time.monotonic() - begun >= 2 * STALL_SECONDS, output
    assert (state(claim) / "complete").exists() and len(hub_downloads(claim)) == 1


def test_a_stalled_download_is_stopped_after_the_stall_window_and_fails_the_container(claim):
    begun = time.monotonic()
    hung = start(claim, script(claim), FAKE_HF_CHUNKS="2", FAKE_HF_CHUNK_SECONDS="0.1", FAKE_HF_HANG="1")
    output = finish(hung, returncode=start_progress.STALLED)
    assert STALL_SECONDS <= time.monotonic() - begun < STALL_SECONDS + 60, output
    assert "no new byte" in output
    assert not (state(claim) / "lock").exists() and not (state(claim) / "complete").exists()


def test_the_restarted_fill_resumes_the_stalled_download(claim):
    hung = start(claim, script(claim), FAKE_HF_CHUNKS="2", FAKE_HF_CHUNK_SECONDS="0.1", FAKE_HF_HANG="1")
    finish(hung, returncode=start_progress.STALLED)
    finish(
        start(claim, script(claim), FAKE_HF_CHUNKS="2", FAKE_HF_CHUNK_SECONDS="0.1")
    )  # the kubelet's restart
    partial = claim / "models--acme--tiny-llm" / "blobs" / "weights.incomplete"
    assert partial.stat().st_size == 4 * 8192 and (state(claim) / "complete").exists()


def test_a_waiter_takes_over_a_fill_that_adds_no_byte(claim):
    lock_by_hand(claim, int(time.time()))  # a young lock: only its progress says its pod is gone
    output = finish(start(claim, script(claim, takeover_seconds=STALL_SECONDS)))
    assert "has stalled" in output and (state(claim) / "complete").exists()
    assert len(hub_downloads(claim)) == 1


def test_a_waiter_keeps_waiting_while_the_fill_adds_bytes(claim):
    lock_by_hand(claim, int(time.time()))
    waiter = start(claim, script(claim, takeover_seconds=STALL_SECONDS))
    filler = subprocess.Popen(  # the other pod's download: 16 chunks, one every 0.5 s, over two windows
        [sys.executable, "-c", HF, "download", MODEL, "--revision", REVISION, "--cache-dir", str(claim)],
        env={
            **os.environ,
            "FAKE_HUB_LOG": str(claim.parent / "other-pod"),
            "FAKE_HF_SECONDS": "0",
            "FAKE_HF_CHUNKS": "16",
            "FAKE_HF_CHUNK_SECONDS": "0.5",
        },
    )
    assert filler.wait(timeout=DEADLINE_SECONDS) == 0
    (state(claim) / "complete").write_text("filled by the other pod\n")
    output = finish(waiter)
    assert hub_downloads(claim) == [] and "taking it over" not in output, output
