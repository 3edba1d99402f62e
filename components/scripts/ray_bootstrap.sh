#!/usr/bin/env bash
# Forms the Ray group of one multi-node vLLM replica. Runs inside the vLLM container on every node of the
# group (GCP VM, AWS VM, Kubernetes LeaderWorkerSet pod) as the container's main process:
#
#   ray_bootstrap.sh head -- vllm serve MODEL ... --distributed-executor-backend ray ...
#   ray_bootstrap.sh worker
#
# The head starts Ray, waits until the group holds exactly RAY_EXPECTED_NODES live nodes bringing
# RAY_GPUS_PER_NODE GPUs each, then execs vLLM. A worker joins the head at its stable address and rejoins
# whenever it loses it. Nothing is rendered into this file: it is configured only by the environment.
#
#   RAY_HEAD_ADDRESS          host or IP of the head, stable across head replacement (worker: required;
#                             head: required unless RAY_NODE_IP is set)
#   RAY_PORT                  the head's Ray (GCS) port                                           [6379]
#   RAY_EXPECTED_NODES        nodes in the group, head included (head: required)
#   RAY_GPUS_PER_NODE         GPUs Ray must see on each node, 0 for CPU (head: required)
#   RAY_WAIT_TIMEOUT_SECONDS  how long the head waits for the whole group                          [900]
#   RAY_POLL_SECONDS          pause between two looks at the group                                   [5]
#   RAY_WORKER_RETRY_SECONDS  pause before a worker joins again                                      [5]
#   RAY_NODE_IP               this node's IP          [source address of the route to RAY_HEAD_ADDRESS]
#   RAY_IFNAME                interface for NCCL and Gloo                  [the one holding RAY_NODE_IP]
#   RAY_START_ARGS            extra `ray start` flags, split on whitespace (fixed ports; tests: fake GPUs)
#
# Ray's own variables (RAY_TMPDIR, RAY_AUTH_MODE, RAY_<internal config>) reach Ray untouched. So do the
# HF token and the API key (HF_TOKEN, VLLM_API_KEY): this script never reads or prints them.
set -euo pipefail

readonly LOOK_TIMEOUT_SECONDS=60 # one look at the group; ray.init gives up well before on its own

log() { echo "ray-bootstrap: $*"; }
fail() {
  echo "ray-bootstrap: $*" >&2
  exit 1
}
config_error() {
  echo "ray-bootstrap: $*" >&2
  exit 2
}

usage_error() {
  config_error "$1; usage: ray_bootstrap.sh head -- <vllm serve argv...> | ray_bootstrap.sh worker"
}

# An unsigned decimal integer >= min, or a config error naming the variable and its value.
require_count() {
  local name=$1 min=$2 value=${!1-}
  if [ -z "$value" ]; then config_error "$name is required: an integer >= $min"; fi
  if ! [[ $value =~ ^[0-9]{1,9}$ ]] || ((10#$value < min)); then
    config_error "$name must be an integer >= $min, got '$value'"
  fi
  printf -v "$name" '%d' "$((10#$value))"
}

validate() {
  local role=$1
  RAY_PORT=${RAY_PORT:-6379}
  RAY_WAIT_TIMEOUT_SECONDS=${RAY_WAIT_TIMEOUT_SECONDS:-900}
  RAY_POLL_SECONDS=${RAY_POLL_SECONDS:-5}
  RAY_WORKER_RETRY_SECONDS=${RAY_WORKER_RETRY_SECONDS:-5}
  require_count RAY_PORT 1
  if ((RAY_PORT > 65535)); then config_error "RAY_PORT must be a TCP port (1-65535), got '$RAY_PORT'"; fi
  require_count RAY_WORKER_RETRY_SECONDS 1
  if [ "$role" = head ]; then
    if [ -z "${RAY_HEAD_ADDRESS:-}" ] && [ -z "${RAY_NODE_IP:-}" ]; then
      config_error "the head needs RAY_HEAD_ADDRESS (its own stable address) or RAY_NODE_IP to know its IP"
    fi
    require_count RAY_EXPECTED_NODES 1
    require_count RAY_GPUS_PER_NODE 0
    require_count RAY_WAIT_TIMEOUT_SECONDS 1
    require_count RAY_POLL_SECONDS 1
  else
    if [ -z "${RAY_HEAD_ADDRESS:-}" ]; then
      config_error "RAY_HEAD_ADDRESS is required for a worker: the host or IP of the Ray head"
    fi
  fi
  read -r -a START_ARGS <<<"${RAY_START_ARGS:-}"
}

# Prints "<node ip> <interface>". The IP is the source address the kernel picks to reach the head, which
# is the address the other members can reach this node at (`hostname -I` lists docker0 and friends in no
# set order). Python's stdlib does it because the image may lack iproute2. Detection is IPv4; set both
# variables for IPv6. Exit 2: no interface holds the IP (a config error); exit 1: the head's address
# does not resolve or route yet (worth a retry).
detect_network() {
  python3 - "${RAY_NODE_IP:-}" "${RAY_IFNAME:-}" "${RAY_HEAD_ADDRESS:-}" "$RAY_PORT" <<'PY'
import fcntl, socket, struct, sys

node_ip, ifname, head, port = sys.argv[1:]
if not node_ip:
    try:
        address = socket.getaddrinfo(head, int(port), socket.AF_INET, socket.SOCK_DGRAM)[0][4]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(address)  # UDP: picks the route, sends nothing
            node_ip = probe.getsockname()[0]
    except OSError as error:
        sys.exit(f"ray-bootstrap: cannot find this node's IP from the route to {head}: {error}")
if not ifname:
    SIOCGIFADDR = 0x8915
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as query:
        for _, name in socket.if_nameindex():
            try:
                request = struct.pack("256s", name.encode()[:15])
                held = socket.inet_ntoa(fcntl.ioctl(query.fileno(), SIOCGIFADDR, request)[20:24])
            except OSError:
                continue
            if held == node_ip:
                ifname = name
                break
    if not ifname:
        print(f"ray-bootstrap: no network interface holds {node_ip}; set RAY_IFNAME", file=sys.stderr)
        sys.exit(2)
print(node_ip, ifname)
PY
}

# Sets NODE_IP and IFNAME, retrying while the head's address does not resolve or route yet (a Kubernetes
# DNS record not yet published, a VM still booting); a head gives up at its wait timeout.
resolve_network() {
  local role=$1 network status
  while true; do
    if network=$(detect_network); then
      read -r NODE_IP IFNAME <<<"$network"
      return 0
    else
      status=$?
    fi
    if ((status == 2)); then exit 2; fi
    if [ "$role" = head ] && ((SECONDS >= RAY_WAIT_TIMEOUT_SECONDS)); then
      fail "gave up finding this node's IP after $SECONDS s"
    fi
    sleep "$RAY_WORKER_RETRY_SECONDS"
  done
}

# Every process Ray starts on this node, vLLM's GPU workers included, inherits these from `ray start`.
export_node_env() {
  export VLLM_HOST_IP=$NODE_IP NCCL_SOCKET_IFNAME=$IFNAME GLOO_SOCKET_IFNAME=$IFNAME
  log "node IP $NODE_IP on interface $IFNAME"
}

# Force-stops every Ray process of this node: before a start, leftovers of an earlier run in the same
# container that would refuse a new `ray start` or tie it to a stale session; at exit, whatever a failed
# run started.
stop_ray() { ray stop --force >/dev/null 2>&1 || true; }

# Prints "ray-group <live nodes> <GPUs on live nodes>" among Ray's own log lines. `ray.nodes()` is Ray's
# public API (what vLLM's multi-node example polls); `ray status` prints a report for humans whose layout
# changes between releases. Each look is a short-lived driver, so one failed look never wedges the gate.
look_at_group() {
  timeout "$LOOK_TIMEOUT_SECONDS" python3 - "$NODE_IP:$RAY_PORT" <<'PY' 2>&1
import sys

import ray

ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
alive = [node for node in ray.nodes() if node["Alive"]]
print("ray-group", len(alive), round(sum(node["Resources"].get("GPU", 0) for node in alive)), flush=True)
PY
}

# What separates the group from the expected one, e.g. "missing 1 node(s), missing 8 GPU(s)".
shortfall() {
  local nodes=$1 gpus=$2 want_nodes=$3 want_gpus=$4 gaps=()
  if ((nodes < want_nodes)); then gaps+=("missing $((want_nodes - nodes)) node(s)"); fi
  if ((nodes > want_nodes)); then gaps+=("$((nodes - want_nodes)) node(s) more than expected"); fi
  if ((gpus < want_gpus)); then gaps+=("missing $((want_gpus - gpus)) GPU(s)"); fi
  if ((gpus > want_gpus)); then gaps+=("$((gpus - want_gpus)) GPU(s) more than expected"); fi
  local joined
  printf -v joined '%s, ' "${gaps[@]}"
  echo "${joined%, }"
}

# Returns once the group has exactly the expected live nodes and GPUs; fails the run at the timeout,
# counted from the start of this script.
wait_for_group() {
  local want_nodes=$RAY_EXPECTED_NODES want_gpus=$((RAY_EXPECTED_NODES * RAY_GPUS_PER_NODE))
  local nodes=0 gpus=0 output counts
  while true; do
    if output=$(look_at_group) && counts=$(sed -n 's/^ray-group //p' <<<"$output") && [ -n "$counts" ]; then
      read -r nodes gpus <<<"$counts"
      if ((nodes == want_nodes && gpus == want_gpus)); then
        log "Ray group whole: $nodes/$want_nodes nodes, $gpus/$want_gpus GPUs after $SECONDS s"
        return 0
      fi
    else
      log "cannot read the Ray group: ${output##*$'\n'}"
    fi
    if ((SECONDS >= RAY_WAIT_TIMEOUT_SECONDS)); then
      fail "Ray group incomplete after $SECONDS s: $nodes/$want_nodes nodes, $gpus/$want_gpus GPUs" \
        "($(shortfall "$nodes" "$gpus" "$want_nodes" "$want_gpus")); are the workers running, and can" \
        "they reach ${RAY_HEAD_ADDRESS:-$NODE_IP}:$RAY_PORT?"
    fi
    log "waiting for Ray group: $nodes/$want_nodes nodes, $gpus/$want_gpus GPUs," \
      "$SECONDS s of $RAY_WAIT_TIMEOUT_SECONDS s"
    sleep "$RAY_POLL_SECONDS"
  done
}

run_head() {
  resolve_network head
  export_node_env
  trap stop_ray EXIT # a head that never serves leaves no Ray behind
  stop_ray
  # No dashboard: it would be an unauthenticated job-submission API, and TP/PP serving does not use it.
  ray start --head --port "$RAY_PORT" --node-ip-address "$NODE_IP" --include-dashboard=false \
    --disable-usage-stats "${START_ARGS[@]}"
  wait_for_group
  trap - EXIT
  export RAY_ADDRESS=$NODE_IP:$RAY_PORT # vLLM's ray.init() joins this cluster, whatever the temp dir
  log "starting $1"
  exec "$@"
}

run_worker() {
  local status
  resolve_network worker
  export_node_env
  # Only now: a worker that never got this far started no Ray, and a `ray stop` at its exit would stop
  # every Ray process it can see (outside a container, all of the machine's).
  trap stop_ray EXIT
  # A head replaced within seconds answers at the same address with a new cluster, and a raylet of the old
  # one stays connected, not a member, until its liveness self-check (every 60 s by default) sees the new
  # cluster ID and exits. Checking every 5 s lets the worker rejoin in seconds.
  export RAY_raylet_liveness_self_check_interval_ms=${RAY_raylet_liveness_self_check_interval_ms:-5000}
  while true; do
    stop_ray
    # In the background so that SIGTERM (docker stop, pod deletion) is acted on at once: bash defers
    # traps until a foreground child returns, and as PID 1 it ignores an untrapped SIGTERM.
    ray start --address "$RAY_HEAD_ADDRESS:$RAY_PORT" --node-ip-address "$NODE_IP" --disable-usage-stats \
      --block "${START_ARGS[@]}" &
    if wait "$!"; then status=0; else status=$?; fi
    log "left the Ray group at $RAY_HEAD_ADDRESS:$RAY_PORT (ray start exited $status);" \
      "joining again in $RAY_WORKER_RETRY_SECONDS s"
    sleep "$RAY_WORKER_RETRY_SECONDS"
  done
}

main() {
  local role=${1:-}
  case "$role" in
    head)
      if [ "${2:-}" != -- ] || [ $# -lt 3 ]; then usage_error "the head needs the vLLM command after '--'"; fi
      validate head
      trap 'exit 143' TERM INT
      run_head "${@:3}"
      ;;
    worker)
      if [ $# -ne 1 ]; then usage_error "a worker takes no arguments"; fi
      validate worker
      trap 'exit 143' TERM INT
      run_worker
      ;;
    *) usage_error "unknown role '$role'" ;;
  esac
}

main "$@"
