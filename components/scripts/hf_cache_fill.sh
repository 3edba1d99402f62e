#!/usr/bin/env bash
# Fills the shared Hugging Face cache (vllm:cacheClaim, one ReadWriteMany volume every serving pod mounts)
# with one commit of the model before vLLM starts, so that the Hub is downloaded from once per stack and
# vLLM's startup probe budgets the read of the weights alone. The init container of every serving pod runs
# it (components/kubernetes/pods.py renders the values below; the HF token, when the stack has one, is in
# the environment as HF_TOKEN, filled from the stack's Secret: nothing secret is written here).
#
# Protocol, under CACHE_DIR/.vllm-fill/<model>/<revision>/ (a commit: another commit is another fill):
#   lock/      created by mkdir, which is atomic on a local file system and on NFS alike (the server
#              creates the directory or answers EEXIST): exactly one pod fills. lock/owner holds
#              "<pod> <epoch seconds>". The filler removes it when its download ends, done or failed.
#   complete   renamed into place once `hf download` has succeeded: the commit is whole in the cache.
#   stale-<epoch>/  created by mkdir by the one pod that takes over a dead filler's lock of that epoch.
# A pod that finds the lock waits for `complete`. A lock older than LOCK_SECONDS belongs to a dead pod (the
# filler's download is killed at FETCH_SECONDS, and its lock removed): one waiter takes it over and fills.
#
# Progress (start_progress.py, the VMs' rule): the filler's download is healthy while its bytes keep arriving
# (PROGRESS_BYTES more per STALL_SECONDS) and stopped when they do not: the script exits non-zero, the lock
# released, the kubelet restarts the init container and `hf download` resumes (it skips the files the commit
# already has and continues a partial one). A waiter that sees the fill add no byte for TAKEOVER_SECONDS
# (the stall window and a grace: a live filler stops itself first) takes over the lock of a pod that died
# or hangs, without waiting out LOCK_SECONDS. FETCH_SECONDS stays the download's hard cap.
#
# Why a lock of our own: huggingface_hub takes a file lock per file under CACHE_DIR/.locks/ (filelock),
# but calls it "best-effort": on some NFS mounts flock(2) "silently succeeds for every caller", which
# costs "duplicated bandwidth" (huggingface_hub 2.4.0, file_download.py, _download_to_tmp_and_move): each
# pod would download the whole model. Its per-process temporary files keep the cache correct even then,
# and `hf download` skips every file this commit already has in the cache, so a takeover resumes a dead
# filler's work file by file.
set -euo pipefail

readonly MODEL={{model}}
readonly REVISION={{revision}}
readonly CACHE_DIR={{cache_dir}}
readonly FETCH_SECONDS={{fetch_seconds}}
readonly LOCK_SECONDS={{lock_seconds}}
readonly POLL_SECONDS={{poll_seconds}}
readonly STALL_SECONDS={{stall_seconds}}
readonly TAKEOVER_SECONDS={{takeover_seconds}}
readonly PROGRESS_BYTES={{progress_bytes}}
readonly STATE="$CACHE_DIR/.vllm-fill/${MODEL//\//--}/$REVISION"
readonly LOCK="$STATE/lock"
readonly COMPLETE="$STATE/complete"
readonly FILES="$CACHE_DIR/models--${MODEL//\//--}" # the commit's blobs land here, and its partial files
WORK=$(mktemp -d) # this run's own: the judge and its memory of the fill under a lock
readonly WORK PROGRESS="$WORK/start_progress.py"

cat >"$PROGRESS" <<'PY'
{{start_progress}}
PY

# start_progress.py MODE [ARGS...] over the model's files, with the stall window of MODE's caller
progress() {
  local mode=$1 stall=$2
  shift 2
  python3 "$PROGRESS" "$mode" --dir "$FILES" --stall "$stall" --progress-bytes "$PROGRESS_BYTES" "$@"
}

log() { echo "hf-cache-fill: $*"; }

release() { rm -rf "$LOCK"; }

# The epoch second the current lock was taken at: its owner's record, else (a filler that died between
# mkdir and writing it) the directory's own time. Fails when there is no lock.
lock_epoch() {
  local epoch
  if read -r _ epoch 2>/dev/null <"$LOCK/owner" && [ -n "${epoch:-}" ]; then
    echo "$epoch"
  else
    stat -c %Y "$LOCK" 2>/dev/null
  fi
}

# The files vLLM loads, as the budget counts them (components/model_facts.py, _weights_gb): the weights at
# the top of the repository, its *.safetensors without the consolidated* duplicates of a sharded checkpoint
# (when it has only those, them), else the PyTorch pytorch_model*.bin; and beside them the config,
# tokenizer, chat template and remote-code files vLLM reads first. Nothing in a folder (`original/` holds
# Meta's .pth checkpoint, about as large again as the weights), no duplicate .bin of a safetensors repo.
# `hf download` matches --include/--exclude as fnmatch globs on the file's path, where `*` crosses `/`
# (huggingface_hub utils/_paths.py filter_repo_objects): `*/*` is every file in a folder.
readonly SNAPSHOT="$CACHE_DIR/models--${MODEL//\//--}/snapshots/$REVISION"
readonly TOP_LEVEL=(--exclude '*/*')
readonly READ_FIRST=(--include '*.json' --include '*.model' --include '*.tiktoken' --include '*.txt'
  --include '*.jinja' --include '*.py')

has() { compgen -G "$SNAPSHOT/$1" >/dev/null; }

# One `hf download` of the commit's files the arguments select, within what is left of FETCH_SECONDS, stopped
# (exit 75) when its bytes stop for STALL_SECONDS. In the background, so that SIGTERM (the pod deleted) is
# acted on at once: bash defers traps until a foreground child returns.
fetch() {
  local left=$((DEADLINE - $(date +%s)))
  [ "$left" -gt 0 ] || return 124
  progress watch "$STALL_SECONDS" --interval "$POLL_SECONDS" -- \
    timeout "$left" hf download "$MODEL" --revision "$REVISION" --cache-dir "$CACHE_DIR" "${TOP_LEVEL[@]}" "$@" \
    >/dev/null &
  wait "$!"
}

download() {
  log "downloading $MODEL@$REVISION from the Hugging Face Hub into $CACHE_DIR (at most ${FETCH_SECONDS}s)"
  DEADLINE=$(($(date +%s) + FETCH_SECONDS))
  fetch "${READ_FIRST[@]}" --include '*.safetensors' --exclude 'consolidated*'
  has '*.safetensors' || fetch --include 'consolidated*.safetensors'
  has '*.safetensors' || fetch --include 'pytorch_model*.bin'
  date +%s >"$COMPLETE.$$"
  mv "$COMPLETE.$$" "$COMPLETE"
  log "$MODEL@$REVISION is in the shared cache"
}

fill() {
  local epoch age
  trap 'exit 143' TERM INT
  mkdir -p "$STATE"
  while :; do
    if [ -f "$COMPLETE" ]; then
      log "$MODEL@$REVISION is in the shared cache"
      return 0
    fi
    if mkdir "$LOCK" 2>/dev/null; then
      trap release EXIT
      printf '%s %s\n' "${HOSTNAME:-pod}" "$(date +%s)" >"$LOCK/owner"
      log "lock taken: this pod fills the shared cache"
      download
      return 0
    fi
    epoch=$(lock_epoch) || continue # released between our mkdir and this look: try again
    age=$(($(date +%s) - epoch))
    if [ "$age" -ge "$LOCK_SECONDS" ] && mkdir "$STATE/stale-$epoch" 2>/dev/null; then
      log "the lock is ${age}s old without a finished fill (its pod died): taking it over"
      release
      continue
    fi
    # this lock's fill, judged from this pod's first look at it: a new lock (a restarted filler) starts afresh
    if ! progress look "$TAKEOVER_SECONDS" --state "$WORK/fill-$epoch" &&
      mkdir "$STATE/stale-$epoch" 2>/dev/null; then
      log "the fill under the lock has stalled (its pod died or hangs): taking it over"
      release
      continue
    fi
    log "another pod fills the shared cache (lock ${age}s old); waiting"
    sleep "$POLL_SECONDS"
  done
}

fill
