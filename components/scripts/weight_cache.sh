#!/usr/bin/env bash
# Puts a model's files in a local directory before vLLM starts, from the stack's bucket when it holds them,
# so the Hugging Face Hub is downloaded from once per stack, not once per replica. Run as root on a GPU VM
# by vm_bootstrap.sh (on every node: a Ray worker loads its own share of the weights from the same path).
#
#   weight_cache.sh fetch
#
# Protocol, over objects under WEIGHT_CACHE_URL/<model>/<revision>/ (a commit, so a model updated on the Hub is
# a new prefix, filled anew, never served from an older fill):
#   .lock       created only if absent (a conditional create: GCS generation precondition 0, S3 If-None-Match
#               '*'), so exactly one replica fills the cache; it holds "<host> <epoch seconds>".
#   files/...   the model's files, as `hf download --local-dir` writes them.
#   .complete   written last by the filler: "<size> <path>" per file. Its presence means files/ is whole.
#   .progress   the fill's progress, rewritten by the filler at every poll: "<done> <total> <rate> <epoch>",
#               bytes of the fill's work done (downloaded from the Hub, then uploaded) of its total (twice
#               the weights), bytes/s since the lock was taken, and when it was written.
#   .hub-<n>    conditional creates, n = 1 .. WEIGHT_CACHE_HUB_DOWNLOADERS - 1: a follower that holds one
#               downloads from the Hub while the fill is under way (the filler is the first downloader).
# The replica holding the lock downloads from the Hub, then uploads and writes the marker in the background
# while its own vLLM loads (its time to ready is the Hub path's, no more). Any other replica (a follower)
# copies from the bucket once the marker is there and checks every size against it (a mismatch: one more
# copy, then the Hub). It waits for the marker only while the fill's progress says the fill and its own copy
# end sooner than its own Hub download would (WEIGHT_CACHE_HUB_MBPS, WEIGHT_CACHE_BUCKET_MBPS); otherwise it
# downloads from the Hub itself when it gets one of the Hub slots, else waits on. The cache is still filled
# once: only the lock's holder fills it. A follower waits at most WEIGHT_CACHE_WAIT_SECONDS for the marker,
# and not at all once the lock is older than WEIGHT_CACHE_LOCK_SECONDS (its filler died): then it downloads
# from the Hub itself, and one replica that finds the lock stale takes the fill over after its own download.
#
#   WEIGHT_CACHE_URL           gs://BUCKET or s3://BUCKET                                          (required)
#   WEIGHT_CACHE_MODEL         the Hub model id, e.g. meta-llama/Llama-3.1-8B-Instruct            (required)
#   WEIGHT_CACHE_REVISION      the branch, tag or commit downloaded (hf download --revision)       (required)
#   WEIGHT_CACHE_DIR           local directory the files land in (vLLM's model path)              (required)
#   WEIGHT_CACHE_WAIT_SECONDS  longest wait for another replica's fill                                [3600]
#   WEIGHT_CACHE_LOCK_SECONDS  age after which a lock without a marker is stale                      [7200]
#   WEIGHT_CACHE_POLL_SECONDS  pause between two looks at the bucket                                   [15]
#   WEIGHT_CACHE_SIZE_BYTES    the weights' expected size; 0: unknown, a follower waits for the fill    [0]
#   WEIGHT_CACHE_HUB_MBPS      this node's expected Hub download rate, MB/s                           [250]
#   WEIGHT_CACHE_BUCKET_MBPS   this node's expected copy rate from the bucket, MB/s                  [2500]
#   WEIGHT_CACHE_HUB_DOWNLOADERS  the most replicas downloading from the Hub during a fill, filler included [4]
#   WEIGHT_CACHE_IMAGE         run `hf` inside this image with WEIGHT_CACHE_ENV_FILE's HF_TOKEN (vLLM depends
#                              on huggingface_hub, whose setup.py installs the `hf` console script since
#                              0.34); empty: `hf` on PATH
#   WEIGHT_CACHE_ENV_FILE      docker --env-file for the Hub download (the HF token, root-only)
#   WEIGHT_CACHE_REGION        the bucket's AWS region (S3 only)
#   WEIGHT_CACHE_PATH_FILE     records the path the files take: wait (for another replica's fill), hub,
#                              bucket, local or stream (the health agent judges a download by its progress,
#                              a wait, which adds no byte, by its cap, and a stream by the load's cap;
#                              vm_bootstrap.sh gives vLLM the bucket's URL on "stream")
#   WEIGHT_CACHE_STREAM        1: once the marker is there, copy nothing: vLLM streams the files from
#                              PREFIX/files into GPU memory (the Run:ai model streamer), recorded as
#                              "stream", provided WEIGHT_CACHE_IMAGE has the streamer's backend for the
#                              bucket (vLLM's image installs runai-model-streamer[s3,gcs]); else it copies
set -euo pipefail

readonly URL=${WEIGHT_CACHE_URL:?WEIGHT_CACHE_URL: gs://BUCKET or s3://BUCKET}
readonly MODEL=${WEIGHT_CACHE_MODEL:?WEIGHT_CACHE_MODEL: the Hub model id}
readonly REVISION=${WEIGHT_CACHE_REVISION:?WEIGHT_CACHE_REVISION: a branch, tag or commit of the model}
readonly DIR=${WEIGHT_CACHE_DIR:?WEIGHT_CACHE_DIR: where the files land}
readonly WAIT_SECONDS=${WEIGHT_CACHE_WAIT_SECONDS:-3600}
readonly LOCK_SECONDS=${WEIGHT_CACHE_LOCK_SECONDS:-7200}
readonly POLL_SECONDS=${WEIGHT_CACHE_POLL_SECONDS:-15}
readonly SIZE_BYTES=${WEIGHT_CACHE_SIZE_BYTES:-0}
readonly HUB_MBPS=${WEIGHT_CACHE_HUB_MBPS:-250}
readonly BUCKET_MBPS=${WEIGHT_CACHE_BUCKET_MBPS:-2500}
readonly HUB_DOWNLOADERS=${WEIGHT_CACHE_HUB_DOWNLOADERS:-4}
readonly IMAGE=${WEIGHT_CACHE_IMAGE:-}
readonly ENV_FILE=${WEIGHT_CACHE_ENV_FILE:-}
readonly PATH_FILE=${WEIGHT_CACHE_PATH_FILE:-/dev/null}
readonly STREAM=${WEIGHT_CACHE_STREAM:-0}
readonly PREFIX="${URL%/}/$MODEL/$REVISION"
readonly LOCAL_MARKER="$DIR/.weight-cache-complete"
SCRATCH=$(mktemp -d)
readonly SCRATCH
# When the fill this replica does began (its lock, or a stale one it took over).
LOCK_EPOCH=$(date +%s)
trap 'rm -rf "$SCRATCH"' EXIT

log() { echo "weight-cache: $*"; }

# --- the bucket: the only place the two clouds differ ----------------------------------------------------

# Conditional create of a lock object (default .lock): succeeds for exactly one caller while it does not
# exist. GCS: `gcloud storage cp --if-generation-match=0` (gcloud reference, storage cp; Cloud Storage
# "Request preconditions": generation 0 matches only when no live object exists, else 412). S3: PutObject
# with If-None-Match: * (S3 user guide, "How to prevent object overwrites with conditional writes": 412 when
# the key exists, 409 ConditionalRequestConflict for a concurrent one, to be retried: a failed create is
# followed by a look at the lock and, while none is readable, another try).
create_lock() {
  local key=${1:-.lock} body="$SCRATCH/lock"
  printf '%s %s\n' "$(hostname)" "$(date +%s)" >"$body"
  case "$URL" in
    gs://*) gcloud storage cp --quiet --if-generation-match=0 "$body" "$PREFIX/$key" >/dev/null 2>&1 ;;
    s3://*) aws s3api put-object "${S3_REGION[@]}" --bucket "$BUCKET" --key "$KEY_PREFIX/$key" \
      --body "$body" --if-none-match '*' >/dev/null 2>&1 ;;
  esac
}

# Takes over a stale lock without deleting it (the replicas may not delete objects): one conditional create
# of a key named for the stale lock's epoch, so among the replicas that judged that lock stale exactly one
# fills. Should that one die too, later replicas download from the Hub without filling.
take_stale_lock() {
  create_lock ".lock.taken-$1"
}

# Prints an object's content; fails when it does not exist.
read_object() {
  case "$URL" in
    gs://*) gcloud storage cat "$PREFIX/$1" 2>/dev/null ;;
    s3://*) aws s3 cp "${S3_REGION[@]}" "$PREFIX/$1" - 2>/dev/null ;;
  esac
}

write_object() {
  case "$URL" in
    gs://*) gcloud storage cp --quiet "$2" "$PREFIX/$1" >/dev/null ;;
    s3://*) aws s3 cp "${S3_REGION[@]}" --only-show-errors "$2" "$PREFIX/$1" ;;
  esac
}

# Bytes under the fill's files/ in the bucket: 0 before the upload starts, or when the listing fails.
bucket_bytes() {
  case "$URL" in
    gs://*) { gcloud storage du --summarize "$PREFIX/files" 2>/dev/null || true; } \
      | awk '{s += $1} END {print s + 0}' ;;
    s3://*) { aws s3 ls "${S3_REGION[@]}" --recursive --summarize "$PREFIX/files/" 2>/dev/null || true; } \
      | awk '/Total Size:/ {s = $3} END {print s + 0}' ;;
  esac
}

# Parallel transfer of a directory tree. gcloud storage runs parallel and sliced object transfers by
# default. The AWS CLI: v2 uses the CRT transfer client (parallel, throughput-targeted) when the profile asks
# for it (s3.preferred_transfer_client = crt, AWS CLI v2 "S3 configuration", where the classic client's
# settings below are ignored); v1 has no CRT client (its "S3 configuration" topic, docs.aws.amazon.com/cli/
# v1/topic/s3-config.html, lists no preferred_transfer_client) and copies with 10 concurrent requests by
# default, so the profile raises max_concurrent_requests and the part size for it. The Deep Learning AMIs'
# release notes list the pip package awscli 1.x (AWS CLI v1) among their Python packages (e.g. the PyTorch
# 2.9/2.12 OSS DLAMIs, 2026); which `aws` the Base OSS AMI puts first on PATH is not in its notes, so the
# profile is fast with either.
sync_tree() {
  case "$URL" in
    gs://*) gcloud storage rsync --quiet --recursive --exclude='^\.cache/' "$1" "$2" ;;
    s3://*) AWS_CONFIG_FILE="$SCRATCH/aws-config" aws s3 sync "${S3_REGION[@]}" --only-show-errors \
      --exclude '.cache/*' "$1" "$2" ;;
  esac
}

# --- the local directory -------------------------------------------------------------------------------

# "<size> <path>" of every file under DIR, sorted by path (hf download's own .cache/ and our marker left out).
listing() {
  (cd "$DIR" && find . -type f ! -path './.cache/*' ! -name .weight-cache-complete -printf '%s %P\n') \
    | sort -k2
}

# True when every file the marker lists is in DIR with its size.
matches() {
  local size path
  [ -s "$1" ] || return 1
  while read -r size path; do
    [ -f "$DIR/$path" ] && [ "$(stat -c %s "$DIR/$path")" = "$size" ] || return 1
  done <"$1"
}

hub_download() {
  log "downloading $MODEL@$REVISION from the Hugging Face Hub"
  echo hub >"$PATH_FILE"
  mkdir -p "$DIR"
  if [ -n "$IMAGE" ]; then
    docker run --rm --network host ${ENV_FILE:+--env-file "$ENV_FILE"} --env HF_XET_HIGH_PERFORMANCE=1 \
      --volume "$DIR:$DIR" --entrypoint hf "$IMAGE" download "$MODEL" --revision "$REVISION" --local-dir "$DIR" \
      >/dev/null
  else
    hf download "$MODEL" --revision "$REVISION" --local-dir "$DIR" >/dev/null
  fi
  listing >"$LOCAL_MARKER"
}

copy_from_bucket() {
  local marker=$1 attempt
  for attempt in 1 2; do
    log "copying $MODEL from $PREFIX (attempt $attempt)"
    mkdir -p "$DIR"
    echo bucket >"$PATH_FILE"
    if sync_tree "$PREFIX/files" "$DIR" && matches "$marker"; then
      cp "$marker" "$LOCAL_MARKER"
      return 0
    fi
    log "the copy does not match the marker's files and sizes: copying again"
    rm -rf "$DIR"
  done
  return 1
}

# Whether vLLM can stream from the bucket: stream mode, and the image has the Run:ai streamer's backend
# for the bucket's scheme (Python packages runai_model_streamer_gcs / runai_model_streamer_s3). A custom
# vllm:image without it copies, as with vllm:weightCache bucket, rather than fail to load.
can_stream() {
  local backend
  [ "$STREAM" = 1 ] && [ -n "$IMAGE" ] || return 1
  case "$URL" in
    gs://*) backend=runai_model_streamer_gcs ;;
    s3://*) backend=runai_model_streamer_s3 ;;
  esac
  if docker run --rm --entrypoint python3 "$IMAGE" -c "import $backend" >/dev/null 2>&1; then
    return 0
  fi
  log "$IMAGE lacks $backend (runai-model-streamer): copying the files instead of streaming them"
  return 1
}

# Runs "$@" (after the total work) while writing the fill's progress to the bucket (.progress, above):
# bytes downloaded into DIR plus bytes in the bucket, at every poll and once more when "$@" has ended.
with_progress() {
  local total=$1 pid ended=0 worked
  shift
  "$@" &
  pid=$!
  while [ "$ended" = 0 ]; do
    kill -0 "$pid" 2>/dev/null || ended=1
    worked=$(($(du -sb "$DIR" 2>/dev/null | cut -f1 || echo 0) + $(bucket_bytes)))
    printf '%s %s %s %s\n' "$((worked < total ? worked : total))" "$total" \
      "$((worked / ($(date +%s) - LOCK_EPOCH + 1)))" "$(date +%s)" >"$SCRATCH/progress"
    write_object .progress "$SCRATCH/progress" || true
    [ "$ended" = 1 ] || sleep "$POLL_SECONDS"
  done
  wait "$pid"
}

# Uploads DIR and then the marker: a reader never sees a marker before the files it lists.
fill_bucket() {
  log "filling $PREFIX"
  with_progress "$((2 * $(awk '{s += $1} END {print s + 0}' "$LOCAL_MARKER")))" sync_tree "$DIR" "$PREFIX/files"
  write_object .complete "$LOCAL_MARKER"
  log "filled $PREFIX: $(wc -l <"$LOCAL_MARKER") files"
}

# True when the fill's progress says it and this replica's copy end later than its own Hub download
# would ("<those seconds> <own Hub seconds>" on stdout; no progress yet: the whole fill at the Hub's rate).
# Unknown size: false (wait, as before).
fill_is_slower_than_the_hub() {
  local worked total rate fill own=$((SIZE_BYTES / HUB_MBPS / 1000000))
  [ "$SIZE_BYTES" -gt 0 ] || return 1
  read -r worked total rate _ < <(read_object .progress) \
    || { worked=0 total=$((2 * SIZE_BYTES)) rate=$((HUB_MBPS * 1000000)); }
  fill=$(((total - worked) / (rate + 1) + SIZE_BYTES / BUCKET_MBPS / 1000000))
  echo "$fill $own"
  [ "$fill" -ge "$own" ]
}

# One of the Hub slots a follower may take while the fill lasts (never released: the replicas may not
# delete objects, so at most HUB_DOWNLOADERS - 1 followers ever download during one fill).
take_hub_slot() {
  local slot
  for ((slot = 1; slot < HUB_DOWNLOADERS; slot++)); do
    if create_lock ".hub-$slot"; then return 0; fi
  done
  return 1
}

# The epoch second the current lock was taken at.
# fill_bucket after this script has returned: the background fill owns the scratch directory from then.
fill_in_background() {
  trap - EXIT
  (
    fill_bucket || log "filling $PREFIX failed: the next replicas download from the Hub once the lock is stale"
    rm -rf "$SCRATCH"
  ) &
}

lock_epoch() {
  local epoch
  read -r _ epoch < <(read_object .lock) || return 1
  [ -n "${epoch:-}" ] || return 1
  echo "$epoch"
}

fetch() {
  if [ -f "$LOCAL_MARKER" ] && matches "$LOCAL_MARKER"; then
    log "$MODEL already in $DIR"
    echo local >"$PATH_FILE"
    return 0
  fi
  rm -rf "$DIR"
  local waited=0 epoch age times fill own marker="$SCRATCH/complete"
  while :; do
    if read_object .complete >"$marker" && [ -s "$marker" ]; then
      if can_stream; then
        log "vLLM streams $MODEL from $PREFIX/files"
        echo stream >"$PATH_FILE"
        return 0
      fi
      copy_from_bucket "$marker" && return 0
      log "the bucket's copy of $MODEL does not match its marker: downloading from the Hub"
      hub_download
      return 0
    fi
    if create_lock; then
      log "lock taken: this replica fills the cache"
      with_progress "$((2 * SIZE_BYTES))" hub_download
      fill_in_background
      return 0
    fi
    epoch=$(lock_epoch) || epoch=$(date +%s)
    age=$(($(date +%s) - epoch))
    if [ "$age" -ge "$LOCK_SECONDS" ]; then
      log "the lock is ${age}s old with no marker (its filler died): downloading from the Hub"
      hub_download
      if take_stale_lock "$epoch"; then fill_in_background; fi
      return 0
    fi
    if [ "$waited" -ge "$WAIT_SECONDS" ]; then
      log "no marker after ${waited}s: downloading from the Hub"
      hub_download
      return 0
    fi
    if times=$(fill_is_slower_than_the_hub) && take_hub_slot; then
      read -r fill own <<<"$times"
      log "the fill and a copy take ~${fill}s, the Hub ~${own}s: downloading from the Hub"
      hub_download
      return 0
    fi
    if [ "$waited" -eq 0 ]; then echo wait >"$PATH_FILE"; fi
    log "another replica fills the cache (lock ${age}s old); waiting (${waited}s of ${WAIT_SECONDS}s)"
    sleep "$POLL_SECONDS"
    waited=$((waited + POLL_SECONDS))
  done
}

# S3: the bucket and key prefix for s3api calls, the region flag, and a profile selecting the CRT client
# (an arm of its own: a machine's copy keeps its bucket's arms only, components/vm.py other_buckets).
case "$URL" in
  s3://*)
    BUCKET=${URL#*://}
    BUCKET=${BUCKET%%/*}
    KEY_PREFIX=${PREFIX#*://"$BUCKET"/}
    S3_REGION=()
    if [ -n "${WEIGHT_CACHE_REGION:-}" ]; then S3_REGION=(--region "$WEIGHT_CACHE_REGION"); fi
    printf '[default]\ns3 =\n  preferred_transfer_client = crt\n  max_concurrent_requests = 64\n  multipart_chunksize = 64MB\n' \
      >"$SCRATCH/aws-config"
    ;;
esac

case "${1:-}" in
  fetch) fetch ;;
  *)
    log "usage: $0 fetch"
    exit 2
    ;;
esac
