"""The weight cache protocol (scripts/weight_cache.sh), run with fake gcloud, aws and hf CLIs whose buckets
are directories: one replica fills the bucket from the Hub under a conditional-create lock,
the others copy it."""

from __future__ import annotations

import configparser
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from components import scripts, vm

SHELLCHECK = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "shellcheck"
MODEL = "acme/tiny-llm"
REVISION = "0123456789abcdef0123456789abcdef01234567"
WEIGHTS = b"w" * 4096
DEADLINE_SECONDS = 120  # a loaded 2-core machine; the protocol itself takes a second or two

#: gs://BUCKET/KEY and s3://BUCKET/KEY are $BUCKETS/BUCKET/KEY. A conditional create uses bash's noclobber
#: (O_EXCL), as atomic as the clouds' preconditions. FAKE_BAD_COPIES: that many first syncs drop bytes.
COMMON = r"""
set -euo pipefail
local_path() { case "$1" in gs://* | s3://*) echo "$BUCKETS/${1#*://}" ;; *) echo "$1" ;; esac; }
put() { local target; target=$(local_path "$2"); mkdir -p "$(dirname "$target")"; cp "$1" "$target"; }
exclusive_write() { mkdir -p "$(dirname "$2")"; (set -o noclobber; cat "$1" >"$2") 2>/dev/null; }
tree_bytes() { find "$1" -type f -printf '%s\n' 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
sync_tree() {
  local src dst
  src=$(local_path "$1"); dst=$(local_path "$2")
  [ -d "$src" ] || exit 1
  mkdir -p "$dst"
  (cd "$src" && find . -type f ! -path './.cache/*' -print0) | while IFS= read -r -d '' file; do
    mkdir -p "$dst/$(dirname "$file")"; cp "$src/$file" "$dst/$file"
  done
  echo x >>"$BUCKETS/.syncs"
  if [ "$(wc -l <"$BUCKETS/.syncs")" -le "${FAKE_BAD_COPIES:-0}" ]; then
    find "$dst" -name '*.safetensors' -exec truncate -s 10 {} +
  fi
}
"""

GCLOUD = r"""
echo "$*" >>"$BUCKETS/.gcloud-calls"
words=(); generation=""
for arg in "${@:3}"; do
  case "$arg" in
    --if-generation-match=*) generation=${arg#*=} ;;
    --quiet | --recursive | --exclude=* | --summarize) ;;
    *) words+=("$arg") ;;
  esac
done
case "$1 $2" in
  "storage cp")
    if [ "$generation" = 0 ]; then exclusive_write "${words[0]}" "$(local_path "${words[1]}")" || exit 1
    else put "${words[0]}" "${words[1]}"; fi ;;
  "storage cat") cat "$(local_path "${words[0]}")" ;;
  "storage rsync") sync_tree "${words[0]}" "${words[1]}" ;;
  "storage ls")
    root=$(local_path "${words[0]%/\*\*}")
    [ -d "$root" ] && (cd "$root" && find . -type f -printf '%P\n' | sed "s#^#${words[0]%/\*\*}/#") ;;
  "storage du") [ -z "${FAKE_NO_LISTING:-}" ] || exit 1
    echo "$(tree_bytes "$(local_path "${words[0]}")")  ${words[0]}" ;;
  *) exit 1 ;;
esac
"""

AWS = r"""
echo "$*" >>"$BUCKETS/.aws-calls"
if [ "$1 $2" = "s3 sync" ] && [ -n "${AWS_CONFIG_FILE:-}" ]; then
  cp "$AWS_CONFIG_FILE" "$BUCKETS/.aws-config"
fi
words=(); declare -A opt=()
set -- "$@"
command="$1 $2"; shift 2
while [ $# -gt 0 ]; do
  case "$1" in
    --region | --exclude) shift 2 ;;
    --only-show-errors | --recursive) shift ;;
    --summarize) opt[--summarize]=1; shift ;;
    --bucket | --key | --body | --if-none-match) opt[$1]=$2; shift 2 ;;
    *) words+=("$1"); shift ;;
  esac
done
case "$command" in
  "s3api put-object")
    [ "${opt[--if-none-match]}" = "*" ] || exit 2
    exclusive_write "${opt[--body]}" "$BUCKETS/${opt[--bucket]}/${opt[--key]}" || exit 1 ;;
  "s3 cp")
    if [ "${words[1]}" = - ]; then cat "$(local_path "${words[0]}")"
    else put "${words[0]}" "${words[1]}"; fi ;;
  "s3 sync") sync_tree "${words[0]}" "${words[1]}" ;;
  "s3 ls")
    if [ -n "${opt[--summarize]:-}" ]; then
      [ -z "${FAKE_NO_LISTING:-}" ] || exit 1
      echo "Total Size: $(tree_bytes "$(local_path "${words[0]}")")"
    else
      root=$(local_path "${words[0]}"); bucket=${words[0]#s3://}; bucket=${bucket%%/*}
      key=${root#"$BUCKETS/$bucket"/}; listed='2026-12-07 00:00:00 %s %p\n'
      [ -d "$root" ] && (cd "$BUCKETS/$bucket" && find "$key" -type f -printf "$listed")
    fi ;;
  *) exit 1 ;;
esac
"""

#: hf download MODEL --revision REV --local-dir DIR: records the download and its revision, takes a moment
#: (the race window; with FAKE_HUB_GATE, until that file exists), writes files.
HF = r"""
set -euo pipefail
[ "$1" = download ] && [ "$3" = --revision ] && [ "$5" = --local-dir ] || exit 2
echo "$2@$4 $(hostname)" >>"$BUCKETS/.hub-downloads"
sleep 1
if [ -n "${FAKE_HUB_GATE:-}" ]; then  # a slow Hub: the download ends once the test opens the gate
  for _ in $(seq 1200); do [ -e "$FAKE_HUB_GATE" ] && break; sleep 0.1; done
fi
mkdir -p "$6/.cache/huggingface"
echo '{"model_type": "llama"}' >"$6/config.json"
head -c 4096 /dev/zero | tr '\0' w >"$6/model.safetensors"
echo metadata >"$6/.cache/huggingface/model.safetensors.metadata"
"""

#: docker run --rm --entrypoint python3 IMAGE -c "import MODULE": the image's Python has MODULE unless
#: FAKE_IMAGE_LACKS names it (a custom image without the Run:ai streamer); --entrypoint hf: the Hub CLI.
DOCKER = r"""
set -euo pipefail
echo "$*" >>"$BUCKETS/.docker-calls"
[ "$1" = run ] || exit 2
shift
entrypoint=""
while [ "${1#-}" != "$1" ]; do
  case "$1" in
    --entrypoint) entrypoint=$2; shift 2 ;;
    --env-file | --env | --volume | --network) shift 2 ;;
    *) shift ;;
  esac
done
shift  # the image
case "$entrypoint" in
  hf) exec hf "$@" ;;
  python3) [ "$1" = -c ] && [ "$2" != "import ${FAKE_IMAGE_LACKS:-}" ] ;;
  *) exit 2 ;;
esac
"""


@pytest.fixture
def buckets(tmp_path: Path) -> Path:
    root = tmp_path / "buckets"
    root.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in {"gcloud": COMMON + GCLOUD, "aws": COMMON + AWS, "hf": HF, "docker": DOCKER}.items():
        path = bin_dir / name
        path.write_text(f"#!/usr/bin/env bash\n{body}")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return root


def env_for(buckets: Path, url: str, replica: str, **settings: str) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{buckets.parent / 'bin'}:{os.environ['PATH']}",
        "BUCKETS": str(buckets),
        "WEIGHT_CACHE_URL": url,
        "WEIGHT_CACHE_MODEL": MODEL,
        "WEIGHT_CACHE_REVISION": REVISION,
        "WEIGHT_CACHE_DIR": str(buckets.parent / replica / "weights"),
        "WEIGHT_CACHE_POLL_SECONDS": "1",
        "WEIGHT_CACHE_REGION": "us-east-1",
        **settings,
    }


def shipped_for(buckets: Path, url: str, name: str) -> Path:
    """The bucket script ``name`` as a machine whose bucket is ``url`` receives it (vm.shipped: its own
    bucket's calls only), written once per test before any run reads it."""
    path = buckets.parent / f"{url.split('://')[0]}-{name}"
    if not path.exists():
        path.write_text(vm.shipped(name, arms=vm.other_buckets(url)))
    return path


def start(env: dict[str, str], script: Path | None = None) -> subprocess.Popen:
    """weight_cache.sh fetch: as a machine with the env's bucket receives it, unless ``script``."""
    shipped = script or shipped_for(Path(env["BUCKETS"]), env["WEIGHT_CACHE_URL"], "weight_cache.sh")
    return subprocess.Popen(
        ["bash", str(shipped), "fetch"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=DEADLINE_SECONDS)
    assert process.returncode == 0, output
    return output


def fetch(env: dict[str, str]) -> str:
    return finish(start(env))


def hub_downloads(buckets: Path) -> list[str]:
    log = buckets / ".hub-downloads"
    return log.read_text().splitlines() if log.exists() else []


def has_the_weights(env: dict[str, str]) -> bool:
    weights = Path(env["WEIGHT_CACHE_DIR"]) / "model.safetensors"
    return weights.exists() and weights.read_bytes() == WEIGHTS


def prefix(buckets: Path, url: str, revision: str = REVISION) -> Path:
    return buckets / url.split("://")[1] / MODEL / revision


def fill_by_hand(buckets: Path, url: str, marker_size: int = len(WEIGHTS)) -> None:
    """What a finished filler leaves: the files, then a marker listing them."""
    files = prefix(buckets, url) / "files"
    files.mkdir(parents=True)
    (files / "config.json").write_text('{"model_type": "llama"}\n')
    (files / "model.safetensors").write_bytes(WEIGHTS)
    (prefix(buckets, url) / ".complete").write_text(f"24 config.json\n{marker_size} model.safetensors\n")


def lock_by_hand(buckets: Path, url: str, epoch: int) -> None:
    prefix(buckets, url).mkdir(parents=True, exist_ok=True)
    (prefix(buckets, url) / ".lock").write_text(f"other-replica {epoch}\n")


URLS = pytest.mark.parametrize("url", ["gs://vllm-weights-test", "s3://vllm-weights-test"])


def test_the_script_passes_shellcheck():
    binary = str(SHELLCHECK) if SHELLCHECK.exists() else "shellcheck"
    result = subprocess.run([binary, "-s", "bash", str(scripts.path("weight_cache.sh"))], capture_output=True)
    assert result.returncode == 0, result.stdout


@URLS
def test_two_replicas_racing_download_from_the_hub_once(buckets, url):
    first, second = env_for(buckets, url, "a"), env_for(buckets, url, "b")
    outputs = [finish(process) for process in [start(first), start(second)]]
    assert len(hub_downloads(buckets)) == 1, outputs
    assert has_the_weights(first) and has_the_weights(second)
    assert sum("lock taken" in output for output in outputs) == 1


@URLS
def test_the_filler_writes_a_marker_listing_every_file_and_its_size(buckets, url):
    fetch(env_for(buckets, url, "a"))
    marker = (prefix(buckets, url) / ".complete").read_text().splitlines()
    assert marker == ["24 config.json", f"{len(WEIGHTS)} model.safetensors"]  # no .cache/ of hf's own
    assert (prefix(buckets, url) / "files" / "model.safetensors").read_bytes() == WEIGHTS


@URLS
def test_a_replica_that_finds_the_marker_copies_from_the_bucket(buckets, url):
    fill_by_hand(buckets, url)
    output = fetch(env_for(buckets, url, "a"))
    assert hub_downloads(buckets) == []
    assert has_the_weights(env_for(buckets, url, "a"))
    assert "copying" in output


@URLS
def test_a_waiter_copies_once_the_filler_writes_its_marker(buckets, url):
    lock_by_hand(buckets, url, int(time.time()))
    waiter = start(env_for(buckets, url, "a"))
    calls = buckets / (".gcloud-calls" if url.startswith("gs") else ".aws-calls")
    deadline = time.monotonic() + DEADLINE_SECONDS
    # Three calls (the marker's read, the lock's create, the lock's read): the waiter has passed this
    # round's look for the marker and will wait. A fake logs a call before it answers, so filling at the
    # first call could land before that look, and the replica would copy without waiting.
    while not (calls.exists() and len(calls.read_text().splitlines()) >= 3):
        assert time.monotonic() < deadline and waiter.poll() is None
        time.sleep(0.1)
    fill_by_hand(buckets, url)
    output = finish(waiter)
    assert "waiting" in output
    assert hub_downloads(buckets) == []
    assert has_the_weights(env_for(buckets, url, "a"))


@URLS
def test_a_stale_lock_sends_the_replica_to_the_hub_and_it_takes_the_fill_over(buckets, url):
    lock_by_hand(buckets, url, int(time.time()) - 7300)
    output = fetch(env_for(buckets, url, "a", WEIGHT_CACHE_LOCK_SECONDS="7200"))
    assert "its filler died" in output
    assert len(hub_downloads(buckets)) == 1
    assert (prefix(buckets, url) / ".complete").exists()  # the next replica copies
    fetch(env_for(buckets, url, "b"))
    assert len(hub_downloads(buckets)) == 1


@URLS
def test_replicas_that_find_the_same_stale_lock_fill_the_bucket_once(buckets, url):
    lock_by_hand(buckets, url, int(time.time()) - 7300)
    outputs = [finish(process) for process in [start(env_for(buckets, url, r)) for r in "ab"]]
    assert sum("filled" in output for output in outputs) == 1, outputs
    assert len(hub_downloads(buckets)) == 2  # neither could wait for the other


@URLS
def test_a_wait_past_its_bound_falls_back_to_the_hub(buckets, url):
    lock_by_hand(buckets, url, int(time.time()))
    output = fetch(env_for(buckets, url, "a", WEIGHT_CACHE_WAIT_SECONDS="2"))
    assert "no marker after" in output
    assert len(hub_downloads(buckets)) == 1
    assert has_the_weights(env_for(buckets, url, "a"))
    assert not (prefix(buckets, url) / ".complete").exists()  # the filler still owns the fill


@URLS
def test_the_path_file_says_wait_while_another_replica_fills_then_the_path_taken(buckets, url):
    """The health agent judges a wait, which adds no byte, by its cap, and a download by its progress."""
    lock_by_hand(buckets, url, int(time.time()))
    path_file = buckets.parent / "weight-path"
    waiter = start(env_for(buckets, url, "a", WEIGHT_CACHE_PATH_FILE=str(path_file)))
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not (path_file.exists() and path_file.read_text() == "wait\n"):
        assert time.monotonic() < deadline and waiter.poll() is None, "no wait recorded"
        time.sleep(0.1)
    fill_by_hand(buckets, url)
    finish(waiter)
    assert path_file.read_text() == "bucket\n"


@URLS
def test_a_copy_that_does_not_match_the_marker_is_copied_again(buckets, url):
    fill_by_hand(buckets, url)
    output = fetch(env_for(buckets, url, "a", FAKE_BAD_COPIES="1"))
    assert "copying again" in output
    assert hub_downloads(buckets) == []
    assert has_the_weights(env_for(buckets, url, "a"))


@URLS
def test_a_bucket_that_never_matches_its_marker_falls_back_to_the_hub(buckets, url):
    fill_by_hand(buckets, url, marker_size=len(WEIGHTS) + 1)
    output = fetch(env_for(buckets, url, "a"))
    assert "does not match its marker" in output
    assert len(hub_downloads(buckets)) == 1
    assert has_the_weights(env_for(buckets, url, "a"))


@URLS
def test_a_restarted_replica_keeps_its_local_copy_without_asking_the_bucket(buckets, url):
    env = env_for(buckets, url, "a")
    fetch(env)
    for calls in buckets.glob(".*-calls"):
        calls.unlink()
    assert "already in" in fetch(env)
    assert list(buckets.glob(".*-calls")) == []
    assert len(hub_downloads(buckets)) == 1


def test_the_gcs_lock_is_a_generation_precondition(buckets):
    fetch(env_for(buckets, "gs://vllm-weights-test", "a"))
    calls = (buckets / ".gcloud-calls").read_text()
    assert "storage cp --quiet --if-generation-match=0 " in calls
    assert f"gs://vllm-weights-test/{MODEL}/{REVISION}/.lock" in calls


def test_the_s3_lock_is_a_put_if_none_match(buckets):
    fetch(env_for(buckets, "s3://vllm-weights-test", "a"))
    calls = (buckets / ".aws-calls").read_text()
    assert f"--bucket vllm-weights-test --key {MODEL}/{REVISION}/.lock" in calls
    assert "--if-none-match *" in calls


def test_the_s3_copy_is_parallel_with_either_aws_cli(buckets):
    """CLI v2 takes the CRT client; v1, which has none (the pip awscli of the Deep Learning AMIs), copies
    with 64 concurrent requests instead of its 10."""
    url = "s3://vllm-weights-test"
    fill_by_hand(buckets, url)
    fetch(env_for(buckets, url, "a"))
    profile = configparser.ConfigParser()
    profile.read_string((buckets / ".aws-config").read_text())
    s3 = dict(line.split(" = ") for line in profile["default"]["s3"].strip().splitlines())
    assert s3 == {
        "preferred_transfer_client": "crt",
        "max_concurrent_requests": "64",
        "multipart_chunksize": "64MB",
    }


@URLS
def test_the_hub_download_asks_for_the_revision_the_bucket_is_keyed_by(buckets, url):
    fetch(env_for(buckets, url, "a"))
    assert [line.split()[0] for line in hub_downloads(buckets)] == [f"{MODEL}@{REVISION}"]
    assert (prefix(buckets, url) / ".complete").exists()


@URLS
def test_a_fill_of_another_revision_is_not_copied(buckets, url):
    fill_by_hand(buckets, url)  # the files of REVISION
    newer = "fedcba9876543210fedcba9876543210fedcba98"
    output = fetch(env_for(buckets, url, "a", WEIGHT_CACHE_REVISION=newer))
    assert [line.split()[0] for line in hub_downloads(buckets)] == [f"{MODEL}@{newer}"]
    assert "lock taken" in output
    assert (prefix(buckets, url, newer) / ".lock").exists()


# --- vllm:weightCache stream ------------------------------------------------------------------------------

STREAMER_BACKENDS = {
    "gs://vllm-weights-test": "runai_model_streamer_gcs",
    "s3://vllm-weights-test": "runai_model_streamer_s3",
}


def stream_env(buckets: Path, url: str, replica: str, **settings: str) -> dict[str, str]:
    path_file = buckets.parent / replica / "weight-path"
    path_file.parent.mkdir(exist_ok=True)
    return env_for(
        buckets,
        url,
        replica,
        WEIGHT_CACHE_STREAM="1",
        WEIGHT_CACHE_IMAGE="vllm/vllm-openai:v0.33.0",
        WEIGHT_CACHE_PATH_FILE=str(path_file),
        **settings,
    )


def weight_path(env: dict[str, str]) -> str:
    return Path(env["WEIGHT_CACHE_PATH_FILE"]).read_text().strip()


@URLS
def test_streaming_a_filled_bucket_copies_nothing_and_records_the_stream(buckets, url):
    fill_by_hand(buckets, url)
    env = stream_env(buckets, url, "a")
    output = fetch(env)
    assert weight_path(env) == "stream"
    assert f"streams {MODEL} from {url}/{MODEL}/{REVISION}/files" in output
    assert not Path(env["WEIGHT_CACHE_DIR"]).exists() and hub_downloads(buckets) == []


@URLS
def test_streaming_first_asks_the_image_for_the_streamer_backend_of_the_bucket(buckets, url):
    fill_by_hand(buckets, url)
    fetch(stream_env(buckets, url, "a"))
    calls = (buckets / ".docker-calls").read_text()
    assert f"--entrypoint python3 vllm/vllm-openai:v0.33.0 -c import {STREAMER_BACKENDS[url]}" in calls


@URLS
def test_an_image_without_the_streamer_backend_copies_the_files_instead(buckets, url):
    fill_by_hand(buckets, url)
    env = stream_env(buckets, url, "a", FAKE_IMAGE_LACKS=STREAMER_BACKENDS[url])
    output = fetch(env)
    assert "lacks" in output and weight_path(env) == "bucket"
    assert has_the_weights(env)


@URLS
def test_the_replica_that_fills_a_streamed_bucket_loads_its_own_download(buckets, url):
    env = stream_env(buckets, url, "a")
    output = fetch(env)
    assert "lock taken" in output and weight_path(env) == "hub"
    assert has_the_weights(env)


# --- followers: wait for the fill only when it ends sooner than their own Hub download ---------------------

#: A 10 GB model, the Hub at 100 MB/s (a 100 s download), the bucket at 1,000 MB/s (a 10 s copy).
SIZES = {
    "WEIGHT_CACHE_SIZE_BYTES": str(10**10),
    "WEIGHT_CACHE_HUB_MBPS": "100",
    "WEIGHT_CACHE_BUCKET_MBPS": "1000",
}


def progress_by_hand(buckets: Path, url: str, worked: int, rate: int) -> None:
    """What a filler reports: its work done of twice the weights, at ``rate`` bytes/s."""
    (prefix(buckets, url) / ".progress").write_text(f"{worked} {2 * 10**10} {rate} {int(time.time())}\n")


def wait_for(condition, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline and (process is None or process.poll() is None)
        time.sleep(0.1)


@URLS
def test_a_ray_nodes_script_without_the_followers_functions_goes_to_the_hub_at_once(buckets, url, tmp_path):
    """Ray nodes never wait (WEIGHT_CACHE_WAIT_SECONDS 0): their script ships without what a follower
    calls (vm.FOLLOWER_FUNCTIONS), and finds a fill under way all the same."""
    shipped = tmp_path / "weight_cache.sh"
    shipped.write_text(vm.shipped("weight_cache.sh", vm.FOLLOWER_FUNCTIONS))
    assert not any(f"{function}()" in shipped.read_text() for function in vm.FOLLOWER_FUNCTIONS)
    lock_by_hand(buckets, url, int(time.time()))
    progress_by_hand(buckets, url, worked=10**9, rate=10**6)
    env = env_for(buckets, url, "a", WEIGHT_CACHE_WAIT_SECONDS="0", **SIZES)
    output = finish(start(env, shipped))
    assert "no marker after 0s: downloading from the Hub" in output and "command not found" not in output
    assert len(hub_downloads(buckets)) == 1 and has_the_weights(env)


@URLS
def test_a_follower_goes_to_the_hub_when_the_fill_would_end_after_its_own_download(buckets, url):
    lock_by_hand(buckets, url, int(time.time()))
    progress_by_hand(buckets, url, worked=10**9, rate=10**6)  # 19,000 s left
    output = fetch(env_for(buckets, url, "a", **SIZES))
    assert "the Hub ~100s: downloading from the Hub" in output
    assert len(hub_downloads(buckets)) == 1 and has_the_weights(env_for(buckets, url, "a"))
    assert not (prefix(buckets, url) / ".complete").exists()  # the lock's holder still fills, once


@URLS
def test_a_follower_waits_when_the_fill_ends_sooner_than_its_own_download(buckets, url):
    lock_by_hand(buckets, url, int(time.time()))
    progress_by_hand(buckets, url, worked=2 * 10**10 - 10**9, rate=10**9)  # 1 s left, then a 10 s copy
    waiter = start(env_for(buckets, url, "a", **SIZES))
    wait_for(lambda: bucket_calls(buckets, url) >= 4, waiter)  # marker, lock, lock's age, progress: it waits
    fill_by_hand(buckets, url)
    output = finish(waiter)
    assert "waiting" in output and hub_downloads(buckets) == []
    assert has_the_weights(env_for(buckets, url, "a"))


def bucket_calls(buckets: Path, url: str, naming: str = "") -> int:
    """How many calls the fake CLI has seen (that name ``naming``): it logs each before it answers."""
    calls = buckets / (".gcloud-calls" if url.startswith("gs") else ".aws-calls")
    return sum(naming in line for line in calls.read_text().splitlines()) if calls.exists() else 0


@URLS
def test_followers_past_the_hub_slots_wait_for_the_fill(buckets, url):
    lock_by_hand(buckets, url, int(time.time()))
    progress_by_hand(buckets, url, worked=10**9, rate=10**6)
    settings = {**SIZES, "WEIGHT_CACHE_HUB_DOWNLOADERS": "2"}  # the filler and one follower
    first = fetch(env_for(buckets, url, "a", **settings))
    assert "downloading from the Hub" in first
    second = start(env_for(buckets, url, "b", **settings))
    wait_for(lambda: bucket_calls(buckets, url, ".hub-1") >= 2, second)  # the one slot is taken: it waits
    fill_by_hand(buckets, url)
    output = finish(second)
    assert "waiting" in output and "copying" in output
    assert len(hub_downloads(buckets)) == 1  # the first follower's alone


@URLS
def test_a_slow_fill_sends_a_follower_to_the_hub_and_the_cache_is_still_filled_once(buckets, url, tmp_path):
    gate = tmp_path / "hub-gate"
    filler = start(env_for(buckets, url, "a", FAKE_HUB_GATE=str(gate), **SIZES))
    wait_for(lambda: (prefix(buckets, url) / ".progress").exists(), filler)
    follower = fetch(env_for(buckets, url, "b", **SIZES))  # the filler's download is still under way
    gate.touch()
    filled = finish(filler)
    assert "downloading from the Hub" in follower and "lock taken" in filled
    assert "filled" in filled and "filled" not in follower
    assert len(hub_downloads(buckets)) == 2
    assert (prefix(buckets, url) / ".complete").exists()


@URLS
def test_a_bucket_listing_that_fails_leaves_the_fill_whole(buckets, url):
    """The upload's progress comes from listing the bucket: a listing refused counts 0 bytes, no more."""
    output = fetch(env_for(buckets, url, "a", FAKE_NO_LISTING="1", **SIZES))
    wait_for(lambda: (prefix(buckets, url) / ".complete").exists())
    assert "lock taken" in output and has_the_weights(env_for(buckets, url, "a"))


@URLS
def test_the_filler_reports_its_progress_to_the_bucket(buckets, url):
    fetch(env_for(buckets, url, "a", **SIZES))
    wait_for(lambda: (prefix(buckets, url) / ".complete").exists())
    worked, total, _, _ = (prefix(buckets, url) / ".progress").read_text().split()
    assert int(total) == 2 * (24 + len(WEIGHTS))  # the upload's: twice the files it lists
    assert int(worked) == int(total)
