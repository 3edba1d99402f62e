#!/usr/bin/env bash
# Acceptance test of the Kubernetes backend: the CPU dev stack (Pulumi.dev.yaml: vLLM's CPU image,
# Qwen2.5-0.5B, a ClusterIP Service) on a kind cluster, with the real Pulumi CLI.
#
#   tools/acceptance.sh           pulumi up -> kubectl port-forward -> tools.status --wait -> one chat
#                                 completion (HTTP 200, non-empty answer) -> a short tools.bench sweep
#                                 (its JSON kept in ACCEPTANCE_BENCH_JSON) -> pulumi destroy
#   tools/acceptance.sh destroy   destroy what a run in ACCEPTANCE_WORK_DIR left behind (CI runs it
#                                 `if: always()`, for a run that was cancelled or timed out)
#
# The run always destroys the stack and stops the port-forward on exit, pass or fail. It never touches
# your Pulumi login, your kubeconfig or the repository: the stack's state lives in a throwaway local
# backend (PULUMI_BACKEND_URL=file://...), `pulumi` runs in a copy of the project (so `pulumi stack init`
# writes its encryption salt there, not into Pulumi.dev.yaml), and kubectl and Pulumi see only the kind
# cluster's kubeconfig.
#
# Needs Docker, kind, kubectl, the pulumi CLI, curl and the project's virtualenv
# (python3 -m venv .venv && .venv/bin/pip install -r requirements.txt -r requirements-tools.txt). Optional
# environment:
#   KIND_CLUSTER              kind cluster to deploy to (default vllm-acceptance); created when missing,
#                             and then deleted at the end
#   ACCEPTANCE_WORK_DIR       where the state, kubeconfig and logs live (default: a temp dir, removed at the
#                             end unless a destroy failed)
#   ACCEPTANCE_WAIT_SECONDS   how long tools.status --wait gives the endpoint (default 1800)
#   PULUMI_CONFIG_PASSPHRASE  the throwaway state's passphrase (default: generated, kept in the work dir)
#   ACCEPTANCE_BENCH_JSON     where tools.bench writes its results (default: $TMPDIR/vllm-acceptance-bench.json;
#                             empty: no bench)
set -euo pipefail

readonly STACK=dev
readonly SERVICE_PORT=80 # components/kubernetes/load_balancer.py SERVICE_PORT
readonly PORT_FORWARD_SECONDS=60
readonly COMPLETION_SECONDS=300

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cluster=${KIND_CLUSTER:-vllm-acceptance}
wait_seconds=${ACCEPTANCE_WAIT_SECONDS:-1800}
bench_json=${ACCEPTANCE_BENCH_JSON-${TMPDIR:-/tmp}/vllm-acceptance-bench.json}
python=$repo/.venv/bin/python
port_forward_pid=""

log() { printf '==> %s\n' "$*" >&2; }
fail() {
  printf 'acceptance: %s\n' "$*" >&2
  exit 1
}
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "${BASH_SOURCE[0]}"; }

# Runs pulumi (or anything) inside the project copy, where Pulumi.yaml and Pulumi.dev.yaml are.
in_project() { (cd "$work/project" && "$@"); }

setup_environment() {
  mkdir -p "$work/state"
  export PULUMI_BACKEND_URL="file://$work/state"
  export PULUMI_SKIP_UPDATE_CHECK=true
  export KUBECONFIG="$work/kubeconfig"
  if [[ -z ${PULUMI_CONFIG_PASSPHRASE:-} ]]; then
    if [[ ! -f $work/passphrase ]]; then
      (umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$work/passphrase")
    fi
    PULUMI_CONFIG_PASSPHRASE=$(<"$work/passphrase")
    export PULUMI_CONFIG_PASSPHRASE
  fi
}

require_tools() {
  local tool
  for tool in kind kubectl pulumi curl tar; do
    command -v "$tool" >/dev/null || fail "$tool is not on PATH"
  done
  [[ -x $python ]] || fail "no $python: python3 -m venv .venv && .venv/bin/pip install -r requirements.txt"
}

ensure_cluster() {
  local clusters
  clusters=$(kind get clusters)
  if grep -qx -- "$cluster" <<<"$clusters"; then
    log "using kind cluster $cluster"
  else
    log "creating kind cluster $cluster"
    touch "$work/cluster-created"
    kind create cluster --name "$cluster" --wait 300s
  fi
  kind get kubeconfig --name "$cluster" >"$KUBECONFIG"
}

# A copy of the working tree (your uncommitted changes included), using the project's virtualenv.
copy_project() {
  mkdir -p "$work/project"
  tar -C "$repo" --exclude=./.git --exclude=./.venv --exclude=./policy/venv --exclude=__pycache__ -cf - . |
    tar -C "$work/project" -xf -
  # A salt or secrets provider of your own dev stack belongs to another passphrase: this stack makes its own.
  grep -Ev '^(encryptionsalt|secretsprovider|encryptedkey):' "$repo/Pulumi.$STACK.yaml" \
    >"$work/project/Pulumi.$STACK.yaml"
  ln -sfn "$repo/.venv" "$work/project/.venv"
}

bring_up() {
  in_project pulumi stack init "$STACK" --non-interactive
  touch "$work/stack-initialized"
  in_project pulumi config set kubernetes:context "kind-$cluster" --stack "$STACK" --non-interactive
  # The Deployment's custom timeouts (components/kubernetes/replica.py) budget the image pull and the model
  # load: the CPU image is several GB, and `pulumi up` returns once the pod serves.
  log "pulumi up (pulls the vLLM CPU image, several GB, then downloads and loads the model)"
  in_project pulumi up --stack "$STACK" --yes --non-interactive
}

# `kubectl port-forward` to the ClusterIP Service on a free local port; sets $port.
start_port_forward() {
  local endpoint host service namespace deadline
  endpoint=$(in_project pulumi stack output endpoint --stack "$STACK" --non-interactive)
  # A ClusterIP Service's endpoint is its in-cluster name: http://<service>.<namespace>.svc.cluster.local
  host=${endpoint#*://}
  [[ $host == *.*.svc.* ]] || fail "endpoint $endpoint is not a ClusterIP Service's name (vllm:serviceType)"
  service=${host%%.*}
  namespace=${host#*.}
  namespace=${namespace%%.*}
  log "kubectl port-forward service/$service in namespace $namespace"
  # The log exists before the background job opens it: the wait below reads it at once (a race otherwise).
  : >"$work/port-forward.log"
  kubectl --namespace "$namespace" port-forward --address 127.0.0.1 "service/$service" ":$SERVICE_PORT" \
    >"$work/port-forward.log" 2>&1 &
  port_forward_pid=$!
  deadline=$((SECONDS + PORT_FORWARD_SECONDS))
  port=""
  while [[ -z $port ]]; do
    port=$(sed -n 's/^Forwarding from 127\.0\.0\.1:\([0-9][0-9]*\) .*/\1/p' "$work/port-forward.log" | head -n 1)
    [[ -n $port ]] && break
    kill -0 "$port_forward_pid" 2>/dev/null || fail "kubectl port-forward exited: $(<"$work/port-forward.log")"
    ((SECONDS < deadline)) || fail "kubectl port-forward did not listen within $PORT_FORWARD_SECONDS s"
    sleep 1
  done
  log "forwarding 127.0.0.1:$port to service/$service"
}

stop_port_forward() {
  if [[ -n $port_forward_pid ]]; then
    kill "$port_forward_pid" 2>/dev/null || true
    wait "$port_forward_pid" 2>/dev/null || true
    port_forward_pid=""
  fi
}

# The key travels by environment and a header file, never in argv (visible to every user in `ps`).
check_endpoint() {
  local url="http://127.0.0.1:$port" api_key model body code
  api_key=$(in_project pulumi stack output apiKey --show-secrets --stack "$STACK" --non-interactive)
  model=$(in_project pulumi stack output model --stack "$STACK" --non-interactive)
  log "tools.status --wait (deadline $wait_seconds s)"
  (cd "$repo" && VLLM_API_KEY=$api_key "$python" -m tools.status --endpoint "$url" --wait \
    --timeout "$wait_seconds" --interval 5)

  log "chat completion from $model"
  (umask 077 && printf 'Authorization: Bearer %s\n' "$api_key" >"$work/auth-header")
  body=$("$python" -c 'import json, sys
print(json.dumps({"model": sys.argv[1], "max_tokens": 32, "temperature": 0,
                  "messages": [{"role": "user", "content": "Say hello in one short sentence."}]}))' "$model")
  code=$(curl --silent --show-error --max-time "$COMPLETION_SECONDS" --output "$work/completion.json" \
    --write-out '%{http_code}' --header @"$work/auth-header" --header 'Content-Type: application/json' \
    --data "$body" "$url/v1/chat/completions") || fail "chat completion: curl failed"
  [[ $code == 200 ]] || fail "chat completion: HTTP $code: $(head -c 500 "$work/completion.json")"
  "$python" - "$work/completion.json" <<'PYTHON' || fail "chat completion: $(head -c 500 "$work/completion.json")"
import json
import sys

try:
    content = json.load(open(sys.argv[1]))["choices"][0]["message"]["content"]
except (ValueError, KeyError, IndexError, TypeError) as error:
    sys.exit(f"not an OpenAI chat completion ({error!r})")
if not isinstance(content, str) or not content.strip():
    sys.exit("choices[0].message.content is empty")
print(f"answer: {content.strip()}")
PYTHON

  [[ -n $bench_json ]] || return 0
  log "tools.bench: a short sweep, results in $bench_json"
  (cd "$repo" && VLLM_API_KEY=$api_key "$python" -m tools.bench --endpoint "$url" --model "$model" \
    --concurrency 1,2 --requests 8 --input-tokens 64 --output-tokens 16 --json "$bench_json") ||
    fail "tools.bench failed"
}

# What the pod did, for the log of a failed run.
diagnostics() {
  local namespace pod
  log "diagnostics"
  kubectl get pods,events --all-namespaces --output wide || true
  kubectl get pods --all-namespaces --selector app.kubernetes.io/name=vllm \
    --output jsonpath='{range .items[*]}{.metadata.namespace} {.metadata.name}{"\n"}{end}' |
    while read -r namespace pod; do
      kubectl logs --namespace "$namespace" "$pod" --all-containers --tail 200 || true
    done || true
}

# Destroys the stack and forgets it; a no-op when there is none (already destroyed, or never created).
destroy_stack() {
  if [[ ! -f $work/stack-initialized ]]; then
    log "no stack to destroy in $work"
    return 0
  fi
  log "pulumi destroy"
  in_project pulumi destroy --stack "$STACK" --yes --non-interactive &&
    in_project pulumi stack rm "$STACK" --yes --non-interactive &&
    rm -f "$work/stack-initialized"
}

delete_cluster() {
  if [[ -f $work/cluster-created ]]; then
    log "deleting kind cluster $cluster"
    kind delete cluster --name "$cluster" && rm -f "$work/cluster-created"
  fi
}

cleanup() {
  local status=$?
  trap - EXIT
  set +e
  stop_port_forward
  if ((status != 0)) && [[ -f $work/stack-initialized ]]; then
    diagnostics
  fi
  if ! destroy_stack; then
    status=1
    printf 'acceptance: pulumi destroy failed; state kept in %s: ACCEPTANCE_WORK_DIR=%s %s destroy\n' \
      "$work" "$work" "$0" >&2
  fi
  delete_cluster
  if ((own_work)) && [[ ! -f $work/stack-initialized ]]; then
    rm -rf "$work"
  fi
  exit "$status"
}

command=${1:-run}
case $command in
  run | destroy) ;;
  -h | --help)
    usage
    exit 0
    ;;
  *)
    usage >&2
    exit 2
    ;;
esac

own_work=0
if [[ -n ${ACCEPTANCE_WORK_DIR:-} ]]; then
  work=$ACCEPTANCE_WORK_DIR
  mkdir -p "$work"
elif [[ $command == destroy ]]; then
  fail "destroy needs ACCEPTANCE_WORK_DIR: the work directory of the run to destroy"
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/vllm-acceptance.XXXXXX")
  own_work=1
fi
work=$(cd "$work" && pwd)
if [[ $command == destroy && ! -f $work/stack-initialized && ! -f $work/cluster-created ]]; then
  log "nothing to destroy in $work"
  exit 0
fi

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

require_tools
setup_environment
if [[ $command == destroy ]]; then
  exit 0 # cleanup destroys
fi
[[ ! -f $work/stack-initialized ]] || fail "$work holds the stack of an earlier run: destroying it first"
ensure_cluster
copy_project
bring_up
start_port_forward
check_endpoint
log "PASS: the dev stack served a chat completion on kind"
