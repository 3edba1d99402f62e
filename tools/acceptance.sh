#!/usr/bin/env bash
# Acceptance test on a real platform: one command deploys a stack, proves it serves, and destroys it.
#
#   tools/acceptance.sh [--stack dev|gcp-l4|aws-l4] [run]
#   tools/acceptance.sh [--stack dev|gcp-l4|aws-l4] destroy
#
# --stack dev (the default): the CPU dev stack (Pulumi.dev.yaml: vLLM's CPU image, Qwen2.5-0.5B, a ClusterIP
#   Service) on a kind cluster: pulumi up -> kubectl port-forward -> tools.status --wait -> one chat
#   completion (HTTP 200, non-empty answer) -> a short tools.bench sweep -> pulumi destroy.
# --stack gcp-l4 | aws-l4: the preset (stacks/<stack>.yaml: one L4 per replica, a small open model, the
#   bucket weight cache, plain HTTP) with vllm:replicas 2 on your cloud account:
#     the cost line (the most the run costs, from tools.plan) -> pulumi up -> tools.status --stack --wait
#     -> one chat completion -> tools.bench (when tools/bench.py exists) -> the replica table shows every
#     replica READY -> /metrics, /docs, /openapi.json and the Ray and vLLM ports are not reachable through
#     the load balancer -> a request without the key gets 401 -> the vLLM container killed on one replica
#     restarts on the same machine (see below) -> pulumi destroy
#     -> nothing tagged with the stack is left (instances, disks, buckets, load balancers, addresses).
# destroy: destroy what a run in ACCEPTANCE_WORK_DIR left behind (CI runs it `if: always()`, for a run that
#   was cancelled or timed out), then the leftover check.
#
# The run always destroys the stack (and stops the port-forward) on exit, pass or fail. It never touches
# your Pulumi login, your kubeconfig or the repository: the stack's state lives in a throwaway local
# backend (PULUMI_BACKEND_URL=file://...), `pulumi` runs in a copy of the project (so `pulumi stack init`
# writes its encryption salt there, not into the repository's stack files), and kubectl and Pulumi see only
# the kind cluster's kubeconfig.
#
# The restart check needs a command on one machine, and these stacks open no SSH; each cloud's own channel
# runs it. AWS: SSM Run Command; the run attaches the AWS-managed AmazonSSMManagedInstanceCore policy to the
# stack's instance role for its own duration and detaches it before the destroy (the program leaves it out,
# so a deployed stack has no remote shell; components/aws/identity.py). GCP: a VM Manager OS policy
# assignment on the one instance the run labels (enable-osconfig=TRUE in its metadata; the project needs
# the osconfig.googleapis.com API), which reports through a guest attribute; the run deletes it before the
# destroy. The command kills the container and waits for the one systemd starts in its place.
#
# Needs the pulumi CLI, curl and the project's virtualenv (python3 -m venv .venv && .venv/bin/pip install -r
# requirements.txt -r requirements-tools.txt); dev: Docker, kind, kubectl; gcp-l4: gcloud with Application
# Default Credentials; aws-l4: the aws CLI v2 with credentials. Optional environment:
#   KIND_CLUSTER              dev: kind cluster to deploy to (default vllm-acceptance); created when
#                             missing, and then deleted at the end
#   ACCEPTANCE_GCP_PROJECT    gcp-l4: the project (default GOOGLE_CLOUD_PROJECT, else CLOUDSDK_CORE_PROJECT)
#   ACCEPTANCE_REGION         gcp-l4, aws-l4: the region (default the preset's)
#   ACCEPTANCE_REPLICAS       gcp-l4, aws-l4: replicas behind the load balancer (default 2)
#   ACCEPTANCE_MAX_MINUTES    gcp-l4, aws-l4: the run's budget in minutes, which the cost line prices and
#                             no tools.status --wait outlasts (default 120, the workflows' run step)
#   ACCEPTANCE_WORK_DIR       where the state, kubeconfig and logs live (default: a temp dir, removed at the
#                             end unless a destroy failed)
#   ACCEPTANCE_WAIT_SECONDS   how long tools.status --wait gives the endpoint (default 1800)
#   PULUMI_CONFIG_PASSPHRASE  the throwaway state's passphrase (default: generated, kept in the work dir)
#   ACCEPTANCE_BENCH_JSON     where tools.bench writes its results, kept after the run (default:
#                             $TMPDIR/vllm-acceptance-bench.json; empty: no bench)
set -euo pipefail

readonly SERVICE_PORT=80 # components/kubernetes/load_balancer.py SERVICE_PORT
readonly PORT_FORWARD_SECONDS=60
readonly COMPLETION_SECONDS=300
# What the load balancer must not expose: vLLM's own non-API paths, the Ray head's GCS, dashboard and
# client ports, vLLM's port itself and SSH (connections to them must fail).
readonly CLOSED_PATHS="/metrics /docs /openapi.json"
readonly CLOSED_PORTS="22 6379 8000 8265 10001"
readonly CONNECT_SECONDS=5
# AWS: what SSM Run Command needs on the machine, attached for the run only (see the header).
readonly SSM_POLICY_ARN_SUFFIX=policy/AmazonSSMManagedInstanceCore
readonly SSM_ONLINE_SECONDS=900
# How long the kill command may take to run and report: SSM's or the OS Config agent's pickup included.
readonly RESTART_SECONDS=1200

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cluster=${KIND_CLUSTER:-vllm-acceptance}
wait_seconds=${ACCEPTANCE_WAIT_SECONDS:-1800}
bench_json=${ACCEPTANCE_BENCH_JSON-${TMPDIR:-/tmp}/vllm-acceptance-bench.json}
replicas=${ACCEPTANCE_REPLICAS:-2}
max_minutes=${ACCEPTANCE_MAX_MINUTES:-120}
region=${ACCEPTANCE_REGION:-}
gcp_project=${ACCEPTANCE_GCP_PROJECT:-${GOOGLE_CLOUD_PROJECT:-${CLOUDSDK_CORE_PROJECT:-}}}
python=$repo/.venv/bin/python
port_forward_pid=""
budget_end=$((SECONDS + max_minutes * 60))

log() { printf '==> %s\n' "$*" >&2; }
fail() {
  printf 'acceptance: %s\n' "$*" >&2
  exit 1
}
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "${BASH_SOURCE[0]}"; }

# Runs pulumi (or anything) inside the project copy, where Pulumi.yaml and the stack's config are.
in_project() { (cd "$work/project" && "$@"); }

setup_environment() {
  mkdir -p "$work/state"
  export PULUMI_BACKEND_URL="file://$work/state"
  export PULUMI_SKIP_UPDATE_CHECK=true
  if [[ $platform == kind ]]; then
    export KUBECONFIG="$work/kubeconfig"
  fi
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
  local -a tools=(pulumi curl tar)
  case $platform in
    kind) tools+=(kind kubectl) ;;
    gcp) tools+=(gcloud) ;;
    aws) tools+=(aws) ;;
  esac
  for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null || fail "$tool is not on PATH"
  done
  [[ -x $python ]] || fail "no $python: python3 -m venv .venv && .venv/bin/pip install -r requirements.txt"
  if [[ $platform == gcp && -z $gcp_project ]]; then
    fail "no GCP project: set ACCEPTANCE_GCP_PROJECT (or GOOGLE_CLOUD_PROJECT)"
  fi
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
  # A salt or secrets provider of your own stack file belongs to another passphrase: this stack makes its own.
  # A preset stack (gcp-l4, aws-l4) starts from no stack file: its name picks stacks/<stack>.yaml.
  rm -f "$work/project/Pulumi.$STACK.yaml"
  if [[ $platform == kind ]]; then
    grep -Ev '^(encryptionsalt|secretsprovider|encryptedkey):' "$repo/Pulumi.$STACK.yaml" \
      >"$work/project/Pulumi.$STACK.yaml"
  fi
  ln -sfn "$repo/.venv" "$work/project/.venv"
}

# `pulumi config set` for each KEY VALUE pair this run sets on a cloud stack, and the same as tools.plan flags.
stack_settings() {
  printf '%s\n' vllm:replicas "$replicas"
  if [[ $platform == gcp ]]; then printf '%s\n' gcp:project "$gcp_project"; fi
  if [[ -n $region ]]; then printf '%s\n' "$platform:region" "$region"; fi
}

# The most the run costs: the plan's hourly price of the replicas' machines times the run's budget (the
# stack's costBreakdown output, which has no totalHourly when a price is unknown).
print_cost() {
  local key value hourly
  local -a flags=()
  while read -r key && read -r value; do flags+=(--config "$key=$value"); done < <(stack_settings)
  log "tools.plan --stack $STACK ${flags[*]}"
  in_project "$python" -m tools.plan --stack "$STACK" "${flags[@]}" --json >"$work/plan.json" ||
    fail "tools.plan refused the stack's config"
  hourly=$("$python" -c 'import json, sys
print(json.load(open(sys.argv[1]))["cost"].get("totalHourly") or "")' "$work/plan.json")
  [[ -n $hourly ]] || fail "tools.plan has no price for $STACK: no cost line, no run"
  "$python" - "$hourly" "$max_minutes" "$replicas" >&2 <<'PYTHON'
import sys

hourly, minutes, replicas = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
print(
    f"cost: at most ${hourly * minutes / 60:.2f}: {replicas} replica(s) at ${hourly:.2f}/h on demand for at most "
    f"{minutes} min (ACCEPTANCE_MAX_MINUTES), from tools.plan; the load balancer, disks and bucket add cents"
)
PYTHON
}

bring_up() {
  local key value
  in_project pulumi stack init "$STACK" --non-interactive
  touch "$work/stack-initialized"
  if [[ $platform == kind ]]; then
    in_project pulumi config set kubernetes:context "kind-$cluster" --stack "$STACK" --non-interactive
    # The Deployment's custom timeouts (components/kubernetes/replica.py) budget the image pull and the model
    # load: the CPU image is several GB, and `pulumi up` returns once the pod serves.
    log "pulumi up (pulls the vLLM CPU image, several GB, then downloads and loads the model)"
  else
    while read -r key && read -r value; do
      in_project pulumi config set "$key" "$value" --stack "$STACK" --non-interactive
    done < <(stack_settings)
    log "pulumi up ($replicas replica(s); the first one fills the bucket from the Hub)"
  fi
  in_project pulumi up --stack "$STACK" --yes --non-interactive
}

# `kubectl port-forward` to the ClusterIP Service on a free local port; sets $url.
start_port_forward() {
  local endpoint host service namespace deadline port
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
  url="http://127.0.0.1:$port"
}

stop_port_forward() {
  if [[ -n $port_forward_pid ]]; then
    kill "$port_forward_pid" 2>/dev/null || true
    wait "$port_forward_pid" 2>/dev/null || true
    port_forward_pid=""
  fi
}

# The load balancer's URL, from the stack's outputs; sets $url.
read_endpoint() {
  url=$(in_project pulumi stack output endpoint --stack "$STACK" --non-interactive)
  [[ $url == http://* ]] || fail "endpoint $url is not plain HTTP: these stacks serve without vllm:domain"
  url=${url%/}
}

# The key travels by environment and a header file, never in argv (visible to every user in `ps`).
read_secrets() {
  api_key=$(in_project pulumi stack output apiKey --show-secrets --stack "$STACK" --non-interactive)
  model=$(in_project pulumi stack output model --stack "$STACK" --non-interactive)
  (umask 077 && printf 'Authorization: Bearer %s\n' "$api_key" >"$work/auth-header")
}

# On a cloud, a wait never outlasts the run's budget (ACCEPTANCE_MAX_MINUTES), which the cost line prices.
wait_until_ready() {
  local timeout=$wait_seconds left=$((budget_end - SECONDS))
  if [[ $platform == kind ]]; then
    log "tools.status --wait (deadline $timeout s)"
    (cd "$repo" && VLLM_API_KEY=$api_key "$python" -m tools.status --endpoint "$url" --wait \
      --timeout "$timeout" --interval 5)
  else
    ((left > 0)) || fail "the run's budget of $max_minutes min (ACCEPTANCE_MAX_MINUTES) is spent"
    ((timeout < left)) || timeout=$left
    log "tools.status --wait (deadline $timeout s)"
    in_project "$python" -m tools.status --stack "$STACK" --wait --timeout "$timeout" --interval 10
  fi
}

# POSTs a one-question chat completion to $url; the HTTP code on stdout, the body in $work/completion.json.
post_completion() {
  local body
  body=$("$python" -c 'import json, sys
print(json.dumps({"model": sys.argv[1], "max_tokens": 32, "temperature": 0,
                  "messages": [{"role": "user", "content": "Say hello in one short sentence."}]}))' "$model")
  curl --silent --show-error --max-time "$COMPLETION_SECONDS" --output "$work/completion.json" \
    --write-out '%{http_code}' --header 'Content-Type: application/json' "$@" --data "$body" \
    "$url/v1/chat/completions"
}

check_completion() {
  local code
  log "chat completion from $model"
  code=$(post_completion --header @"$work/auth-header") || fail "chat completion: curl failed"
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
}

# A short load test, when the project has tools.bench; its results are kept in $bench_json. On kind the
# endpoint is the port-forward, with the key by environment (never in argv); on a cloud, the stack's outputs.
run_bench() {
  [[ -n $bench_json ]] || return 0
  if [[ ! -f $work/project/tools/bench.py ]]; then
    log "no tools/bench.py: no load test"
    return 0
  fi
  local target=(--stack "$STACK")
  [[ $platform != kind ]] || target=(--endpoint "$url" --model "$model")
  log "tools.bench: a short sweep, results in $bench_json"
  VLLM_API_KEY=$api_key in_project "$python" -m tools.bench "${target[@]}" --concurrency 1,4 --requests 8 \
    --json "$bench_json" || fail "tools.bench failed"
}

# tools.status exits 0 only when every check passes and every replica the platform lists is READY.
check_replicas_ready() {
  log "replica table: every replica READY"
  in_project "$python" -m tools.status --stack "$STACK" || fail "not every replica is READY"
}

check_not_exposed() {
  local host=${url#http://} path code port
  host=${host%%[:/]*}
  for path in $CLOSED_PATHS; do
    code=$(curl --silent --output /dev/null --write-out '%{http_code}' --max-time 30 \
      --header @"$work/auth-header" "$url$path") || code=000
    [[ $code != 2* ]] || fail "$path answers HTTP $code through the load balancer"
    log "$path through the load balancer: HTTP $code"
  done
  for port in $CLOSED_PORTS; do
    if curl --silent --output /dev/null --connect-timeout "$CONNECT_SECONDS" --max-time $((CONNECT_SECONDS * 2)) \
      "http://$host:$port/"; then
      fail "port $port of $host accepts connections"
    fi
    log "port $port of $host: closed"
  done
}

check_key_required() {
  local code
  log "chat completion without the key"
  code=$(post_completion) || fail "chat completion without the key: curl failed"
  [[ $code == 401 ]] || fail "a request without the key got HTTP $code, not 401"
}

# --- The restart check: kill the vLLM container on one replica, see it start again on the same machine ----

# Runs on the machine as root (/bin/sh): kills the container vllm.service runs, waits up to 5 minutes for
# systemd to start a new one (Restart=always, RestartSec=10: components/scripts/vm_bootstrap.sh), and sets
# $result to "<StartedAt before> -> <StartedAt now> <Running now>".
# shellcheck disable=SC2016 # expanded on the machine, not here
readonly KILL_SCRIPT='before=$(docker inspect --format "{{.State.StartedAt}}" vllm) || exit 1
docker kill vllm >/dev/null || exit 1
now=""
i=0
while [ "$i" -lt 60 ]; do
  now=$(docker inspect --format "{{.State.StartedAt}} {{.State.Running}}" vllm 2>/dev/null)
  case "$now" in *" true") [ "${now% true}" != "$before" ] && break ;; esac
  i=$((i + 1))
  sleep 5
done
result="$before -> $now"
echo "$result"'

# AWS: SSM Run Command. The run attaches AmazonSSMManagedInstanceCore to the stack's instance role for its
# own duration (the program leaves it out: components/aws/identity.py) and detaches it before the destroy.
aws_instances() {
  aws ec2 describe-instances --region "$cloud_region" \
    --filters "Name=tag:vllm:stack,Values=$STACK" Name=instance-state-name,Values=pending,running \
    --query 'Reservations[].Instances[].InstanceId' --output text | tr '\t' '\n' | sed '/^$/d' | sort
}

aws_attach_ssm() {
  local instance=$1 profile role online deadline=$((SECONDS + SSM_ONLINE_SECONDS))
  profile=$(aws ec2 describe-instances --region "$cloud_region" --instance-ids "$instance" \
    --query 'Reservations[0].Instances[0].IamInstanceProfile.Arn' --output text)
  role=$(aws iam get-instance-profile --instance-profile-name "${profile##*/}" \
    --query 'InstanceProfile.Roles[0].RoleName' --output text)
  log "attaching AmazonSSMManagedInstanceCore to $role for this run"
  printf '%s\n' "$role" >"$work/ssm-role"
  aws iam attach-role-policy --role-name "$role" --policy-arn "arn:aws:iam::aws:$SSM_POLICY_ARN_SUFFIX"
  while :; do
    online=$(aws ssm describe-instance-information --region "$cloud_region" \
      --filters "Key=InstanceIds,Values=$instance" --query 'InstanceInformationList[0].PingStatus' \
      --output text 2>/dev/null) || online=""
    [[ $online == Online ]] && break
    ((SECONDS < deadline)) || fail "the SSM agent of $instance was not Online within $SSM_ONLINE_SECONDS s"
    sleep 10
  done
}

# Before the destroy: the role Pulumi deletes must carry no policy it did not attach.
aws_detach_ssm() {
  local role
  [[ -f $work/ssm-role ]] || return 0
  role=$(<"$work/ssm-role")
  log "detaching AmazonSSMManagedInstanceCore from $role"
  aws iam detach-role-policy --role-name "$role" --policy-arn "arn:aws:iam::aws:$SSM_POLICY_ARN_SUFFIX" &&
    rm -f "$work/ssm-role"
}

# Runs KILL_SCRIPT on the instance; prints its result.
aws_kill_vllm() {
  local instance=$1 id status parameters deadline=$((SECONDS + RESTART_SECONDS))
  aws_attach_ssm "$instance"
  parameters=$("$python" -c 'import json, sys
print(json.dumps({"commands": [sys.argv[1]]}))' "$KILL_SCRIPT")
  id=$(aws ssm send-command --region "$cloud_region" --instance-ids "$instance" \
    --document-name AWS-RunShellScript --parameters "$parameters" --query Command.CommandId --output text)
  while :; do
    status=$(aws ssm get-command-invocation --region "$cloud_region" --command-id "$id" \
      --instance-id "$instance" --query Status --output text 2>/dev/null) || status=Pending
    case $status in
      Success) break ;;
      Pending | InProgress | Delayed) ;;
      *) fail "SSM command on $instance: $status" ;;
    esac
    ((SECONDS < deadline)) || fail "SSM command on $instance did not finish within $RESTART_SECONDS s"
    sleep 5
  done
  aws ssm get-command-invocation --region "$cloud_region" --command-id "$id" --instance-id "$instance" \
    --query StandardOutputContent --output text
}

# GCP: an OS policy assignment (VM Manager; the OS Config agent of Google's Ubuntu images runs it once
# the instance's metadata has enable-osconfig=TRUE) on the one instance the run labels, which writes the
# result to a guest attribute. The run deletes the assignment before the destroy.
gcp_instances() {
  gcloud compute instances list --project "$gcp_project" --filter="labels.stack=vllm-$STACK" \
    --format='value(id,name,zone.basename())' | sort
}

gcp_kill_vllm() {
  local id name zone assignment result deadline=$((SECONDS + RESTART_SECONDS))
  read -r id name zone <<<"$1"
  assignment=vllm-acceptance-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
  gcloud compute instances add-metadata "$name" --project "$gcp_project" --zone "$zone" \
    --metadata=enable-osconfig=TRUE,enable-guest-attributes=TRUE
  gcloud compute instances add-labels "$name" --project "$gcp_project" --zone "$zone" \
    --labels="vllm-acceptance=$assignment"
  "$python" - "$KILL_SCRIPT" "$assignment" >"$work/os-policy.json" <<'PYTHON'
import json
import sys

kill, assignment = sys.argv[1], sys.argv[2]
report = (
    'curl --silent --fail -X PUT -H "Metadata-Flavor: Google" --data "$result" '
    "http://metadata.google.internal/computeMetadata/v1/instance/guest-attributes/vllm-acceptance/restart "
    "&& touch /run/vllm-acceptance-killed && exit 100\nexit 1"
)
validate = "[ -f /run/vllm-acceptance-killed ] && exit 100\nexit 101"
resource = {
    "id": "kill-vllm",
    "exec": {
        "validate": {"interpreter": "SHELL", "script": validate},
        "enforce": {"interpreter": "SHELL", "script": f"{kill}\n{report}"},
    },
}
print(json.dumps({
    "osPolicies": [{"id": "kill-vllm", "mode": "ENFORCEMENT", "resourceGroups": [{"resources": [resource]}]}],
    "instanceFilter": {"inclusionLabels": [{"labels": {"vllm-acceptance": assignment}}]},
    "rollout": {"disruptionBudget": {"fixed": 1}, "minWaitDuration": "0s"},
}))
PYTHON
  printf '%s %s\n' "$assignment" "$zone" >"$work/os-policy-assignment"
  gcloud compute os-config os-policy-assignments create "$assignment" --project "$gcp_project" \
    --location "$zone" --file "$work/os-policy.json" --async
  while :; do
    result=$(gcloud compute instances get-guest-attributes "$name" --project "$gcp_project" --zone "$zone" \
      --query-path=vllm-acceptance/restart --format='value(value)' 2>/dev/null) || result=""
    [[ -n $result ]] && break
    ((SECONDS < deadline)) || fail "the OS policy did not run on $name within $RESTART_SECONDS s" \
      "(VM Manager: the osconfig.googleapis.com API enabled, the image's OS Config agent)"
    sleep 15
  done
  printf '%s\n' "$result"
}

gcp_delete_assignment() {
  local assignment zone
  [[ -f $work/os-policy-assignment ]] || return 0
  read -r assignment zone <"$work/os-policy-assignment"
  log "deleting the OS policy assignment $assignment"
  gcloud compute os-config os-policy-assignments delete "$assignment" --project "$gcp_project" \
    --location "$zone" --quiet && rm -f "$work/os-policy-assignment"
}

check_restart() {
  local before after instance result started now
  before=$("${platform}_instances")
  instance=$(head -n 1 <<<"$before")
  [[ -n $instance ]] || fail "no running instance of the stack $STACK"
  log "killing the vLLM container on ${instance%% *}"
  result=$("${platform}_kill_vllm" "$instance" | tail -n 1)
  started=${result%% -> *}
  now=${result#* -> }
  [[ -n $started && $now == *" true" && ${now% true} != "$started" ]] ||
    fail "the vLLM container on ${instance%% *} did not restart: $result"
  log "the vLLM container on ${instance%% *} restarted (started $started, now ${now% true})"
  wait_until_ready
  after=$("${platform}_instances")
  [[ $after == "$before" ]] ||
    fail "instances changed after the kill: $(tr '\n' ' ' <<<"$before")-> $(tr '\n' ' ' <<<"$after")"
  log "no machine was replaced"
}

# --- After the destroy: nothing tagged with the stack is left ------------------------------------------------

gcp_leftovers() {
  local name=vllm-$STACK kind
  # Instances and buckets carry the label stack=<name> (components/gcp/machine.py, weight_cache.py); disks,
  # addresses and the load balancer's parts are named <name> or <name>-... (Pulumi's auto-names).
  gcloud compute instances list --project "$gcp_project" --filter="labels.stack=$name" \
    --format='value(selfLink)' || return 1
  gcloud storage buckets list --project "$gcp_project" --filter="labels.stack=$name" --format='value(name)' ||
    return 1
  for kind in disks addresses forwarding-rules target-http-proxies url-maps backend-services; do
    gcloud compute "$kind" list --project "$gcp_project" --filter="name ~ ^$name(-|\$)" \
      --format='value(selfLink)' || return 1
  done
}

aws_leftovers() {
  local tag="Name=tag:vllm:stack,Values=$STACK"
  # Every resource carries the tag vllm:stack=<stack> (components/aws/machines.py stack_tags); terminated
  # instances stay listed for a while and are not left.
  aws ec2 describe-instances --region "$cloud_region" --filters "$tag" \
    Name=instance-state-name,Values=pending,running,stopping,stopped \
    --query 'Reservations[].Instances[].InstanceId' --output text || return 1
  aws ec2 describe-volumes --region "$cloud_region" --filters "$tag" --query 'Volumes[].VolumeId' \
    --output text || return 1
  aws ec2 describe-addresses --region "$cloud_region" --filters "$tag" --query 'Addresses[].AllocationId' \
    --output text || return 1
  aws resourcegroupstaggingapi get-resources --region "$cloud_region" \
    --tag-filters "Key=vllm:stack,Values=$STACK" --resource-type-filters elasticloadbalancing:loadbalancer s3 \
    --query 'ResourceTagMappingList[].ResourceARN' --output text || return 1
}

check_leftovers() {
  local left
  [[ $platform != kind ]] || return 0
  log "leftover check: nothing tagged with $STACK"
  left=$("${platform}_leftovers" | tr '\t' '\n' | sed '/^$/d') || {
    printf 'acceptance: the leftover check could not list the resources\n' >&2
    return 1
  }
  if [[ -n $left ]]; then
    printf 'acceptance: left after the destroy:\n%s\n' "$left" >&2
    return 1
  fi
  log "nothing left"
}

# What the replicas did, for the log of a failed run.
diagnostics() {
  local namespace pod
  log "diagnostics"
  if [[ $platform != kind ]]; then
    in_project "$python" -m tools.status --stack "$STACK" || true
    return 0
  fi
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
  case $platform in
    aws) aws_detach_ssm || return 1 ;;
    gcp) gcp_delete_assignment || return 1 ;;
  esac
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
  local status=$? had_stack
  trap - EXIT
  set +e
  stop_port_forward
  if ((status != 0)) && [[ -f $work/stack-initialized ]]; then
    diagnostics
  fi
  had_stack=0
  if [[ -f $work/stack-initialized ]]; then had_stack=1; fi
  if ! destroy_stack; then
    status=1
    printf 'acceptance: pulumi destroy failed; state kept in %s: ACCEPTANCE_WORK_DIR=%s %s --stack %s destroy\n' \
      "$work" "$work" "$0" "$STACK" >&2
  elif ((had_stack)) && ! check_leftovers; then
    status=1
  fi
  delete_cluster
  if ((own_work)) && [[ ! -f $work/stack-initialized ]]; then
    rm -rf "$work"
  fi
  exit "$status"
}

STACK=dev
command=run
while (($#)); do
  case $1 in
    --stack)
      (($# >= 2)) || {
        usage >&2
        exit 2
      }
      STACK=$2
      shift 2
      ;;
    run | destroy)
      command=$1
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
done
case $STACK in
  dev) platform=kind ;;
  gcp-l4) platform=gcp ;;
  aws-l4) platform=aws ;;
  *)
    printf 'acceptance: --stack %s: one of dev, gcp-l4, aws-l4\n' "$STACK" >&2
    exit 2
    ;;
esac
readonly STACK platform
# The region a cloud stack deploys to: ACCEPTANCE_REGION, else the preset's.
cloud_region=$region
if [[ $platform != kind && -z $cloud_region ]]; then
  cloud_region=$(sed -n "s/^ *$platform:region: *//p" "$repo/stacks/$STACK.yaml")
fi

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
if [[ $platform == kind ]]; then
  ensure_cluster
  copy_project
  bring_up
  start_port_forward
  read_secrets
  wait_until_ready
  check_completion
  run_bench
  log "PASS: the dev stack served a chat completion on kind"
  exit 0
fi
copy_project
print_cost
bring_up
read_endpoint
read_secrets
wait_until_ready
check_completion
run_bench
check_replicas_ready
check_not_exposed
check_key_required
check_restart
log "PASS: $STACK served on $platform through its load balancer"
