#!/usr/bin/env bash
# Keeps vLLM's torch.compile artifacts in the stack's bucket, so a replica that finds them there skips the
# compilation a first start of the same model, image, GPU and parallelism pays. Run as root on a single-node
# replica by vm_bootstrap.sh: `restore` before vLLM starts, `save-when-serving` beside it.
#
#   compile_cache.sh restore             copy the saved units into COMPILE_CACHE_DIR
#   compile_cache.sh save                save the units of COMPILE_CACHE_DIR the bucket lacks
#   compile_cache.sh save-when-serving   save once COMPILE_CACHE_HEALTH_URL answers: vLLM serves only after
#                                        its compilation and CUDA graph capture, so the units are whole
#
# vLLM (0.33.0) keeps its compiled code in directories named by a hash of everything that shapes it (the
# model's config and path, the vLLM and torch code, the compile config, the environment; vllm/compilation/
# backends.py and decorators.py): VLLM_CACHE_ROOT/torch_compile_cache/<hash>/ and, with AOT compilation,
# torch_compile_cache/torch_aot_compile/<hash>/. Each such directory is one unit here, saved whole by the
# first replica that has it and never overwritten; vLLM itself ignores a unit whose hash it does not
# compute, so a restored unit it does not need costs only its copy. Objects under
# COMPILE_CACHE_URL/compile-cache/COMPILE_CACHE_KEY/ (the key: model, revision, image, GPU, parallelism):
#   <unit>/<host>/...   one replica's upload of the unit
#   <unit>.complete     created only if absent (GCS generation precondition 0, S3 If-None-Match '*'),
#                       after its upload: "<host>" and then "<size> <path>" per file. The one replica
#                       whose marker is created owns the unit; a later replica restores that upload.
#
#   COMPILE_CACHE_URL     gs://BUCKET or s3://BUCKET                                              (required)
#   COMPILE_CACHE_KEY     the bucket prefix of this model, image, GPU and parallelism             (required)
#   COMPILE_CACHE_DIR     the host directory the container sees as VLLM_CACHE_ROOT                (required)
#   COMPILE_CACHE_REGION  the bucket's AWS region (S3 only)
#   COMPILE_CACHE_HEALTH_URL    vLLM's /health                                            (save-when-serving)
#   COMPILE_CACHE_WAIT_SECONDS  longest wait for it (the replica's load budget)                      [3600]
#   COMPILE_CACHE_POLL_SECONDS  pause between two looks                                                [10]
set -euo pipefail

readonly URL=${COMPILE_CACHE_URL:?COMPILE_CACHE_URL: gs://BUCKET or s3://BUCKET}
readonly KEY=${COMPILE_CACHE_KEY:?COMPILE_CACHE_KEY: model/revision/image/gpu-tpN-ppM}
readonly DIR=${COMPILE_CACHE_DIR:?COMPILE_CACHE_DIR: vLLM cache root on the host}
readonly PREFIX="${URL%/}/compile-cache/$KEY"
HOST=$(hostname)
readonly HOST
SCRATCH=$(mktemp -d)
readonly SCRATCH
trap 'rm -rf "$SCRATCH"' EXIT
# S3: the bucket for s3api calls and the region flag (an arm of its own: a machine's copy keeps its bucket's
# arms only, components/vm.py other_buckets).
case "$URL" in
  s3://*)
    BUCKET=${URL#*://}
    BUCKET=${BUCKET%%/*}
    S3_REGION=()
    if [ -n "${COMPILE_CACHE_REGION:-}" ]; then S3_REGION=(--region "$COMPILE_CACHE_REGION"); fi
    ;;
esac

log() { echo "compile-cache: $*"; }

# --- the bucket ------------------------------------------------------------------------------------------

# Creates object $1 from file $2 only if it does not exist (see weight_cache.sh's create_lock).
create_object() {
  case "$URL" in
    gs://*) gcloud storage cp --quiet --if-generation-match=0 "$2" "$PREFIX/$1" >/dev/null 2>&1 ;;
    s3://*) aws s3api put-object "${S3_REGION[@]}" --bucket "$BUCKET" \
      --key "${PREFIX#s3://"$BUCKET"/}/$1" --body "$2" --if-none-match '*' >/dev/null 2>&1 ;;
  esac
}

read_object() {
  case "$URL" in
    gs://*) gcloud storage cat "$PREFIX/$1" 2>/dev/null ;;
    s3://*) aws s3 cp "${S3_REGION[@]}" "$PREFIX/$1" - 2>/dev/null ;;
  esac
}

# The units that have a marker, one a line (their paths relative to PREFIX).
complete_units() {
  case "$URL" in
    gs://*) gcloud storage ls "$PREFIX/**" 2>/dev/null | sed -n "s#^$PREFIX/\(.*\)\.complete\$#\1#p" ;;
    s3://*) aws s3 ls "${S3_REGION[@]}" --recursive "$PREFIX/" 2>/dev/null \
      | awk '{print $4}' | sed -n "s#^${PREFIX#s3://*/}/\(.*\)\.complete\$#\1#p" ;;
  esac
}

sync_tree() {
  case "$URL" in
    gs://*) gcloud storage rsync --quiet --recursive "$1" "$2" ;;
    s3://*) aws s3 sync "${S3_REGION[@]}" --only-show-errors "$1" "$2" ;;
  esac
}

# --- the local cache -------------------------------------------------------------------------------------

# vLLM's hash-named compile directories under DIR, one a line, relative to DIR.
local_units() {
  local unit
  for unit in "$DIR"/torch_compile_cache/* "$DIR"/torch_compile_cache/torch_aot_compile/*; do
    if [ -d "$unit" ] && [ "${unit##*/}" != torch_aot_compile ]; then echo "${unit#"$DIR"/}"; fi
  done
}

# "<size> <path>" of every file of unit $1, sorted by path.
listing() {
  (cd "$DIR/$1" && find . -type f -printf '%s %P\n') | sort -k2
}

# True when unit $1 holds every file of listing $2 with its size.
matches() {
  local size path
  [ -s "$2" ] || return 1
  while read -r size path; do
    [ -f "$DIR/$1/$path" ] && [ "$(stat -c %s "$DIR/$1/$path")" = "$size" ] || return 1
  done <"$2"
}

restore() {
  local unit marker="$SCRATCH/marker" files="$SCRATCH/files" owner restored=0
  mkdir -p "$DIR"
  while read -r unit; do
    read_object "$unit.complete" >"$marker" || continue
    owner=$(head -n 1 "$marker")
    tail -n +2 "$marker" >"$files"
    if [ -d "$DIR/$unit" ] && matches "$unit" "$files"; then continue; fi
    mkdir -p "$DIR/$unit"
    if sync_tree "$PREFIX/$unit/$owner" "$DIR/$unit" && matches "$unit" "$files"; then
      restored=$((restored + 1))
    else
      log "$unit does not match its marker: vLLM compiles it again"
      rm -rf "${DIR:?}/$unit"
    fi
  done < <(complete_units)
  log "restored $restored compiled unit(s) from $PREFIX"
}

save() {
  local unit files="$SCRATCH/files" saved=0
  while read -r unit; do
    [ -n "$unit" ] || continue
    if read_object "$unit.complete" >/dev/null; then continue; fi # another replica saved it: once per key
    { echo "$HOST"; listing "$unit"; } >"$files"
    sync_tree "$DIR/$unit" "$PREFIX/$unit/$HOST"
    if create_object "$unit.complete" "$files"; then
      saved=$((saved + 1))
    else
      log "$unit was saved by another replica first"
    fi
  done < <(local_units)
  log "saved $saved compiled unit(s) to $PREFIX"
}

save_when_serving() {
  local url=${COMPILE_CACHE_HEALTH_URL:?COMPILE_CACHE_HEALTH_URL: the /health of vLLM}
  local wait=${COMPILE_CACHE_WAIT_SECONDS:-3600}
  local deadline=$((SECONDS + wait))
  until curl -fsS -o /dev/null --max-time 5 "$url"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "vLLM did not serve within ${wait}s: nothing saved"
      return 0
    fi
    sleep "${COMPILE_CACHE_POLL_SECONDS:-10}"
  done
  save
}

case "${1:-}" in
  restore) restore ;;
  save) save ;;
  save-when-serving) save_when_serving ;;
  *)
    log "usage: $0 restore|save|save-when-serving"
    exit 2
    ;;
esac
