#!/usr/bin/env bash
# Turns a GPU VM into a vLLM replica: the GCP startup script and the AWS user data, run as root at boot.
#
#   vm_bootstrap.sh            boot: start the health agent, check the GPU stack, install the unit, start it
#   vm_bootstrap.sh secrets    (unit ExecStartPre) read the HF token and API key from the secret store
#   vm_bootstrap.sh disks      (unit ExecStartPre) mount the HF cache on the local NVMe, if the machine has it
#   vm_bootstrap.sh run        (unit ExecStart) run the pinned vLLM container in the foreground
#
# Secrets are read from the platform's secret store at every (re)start into a root-only file on tmpfs and
# reach the container through --env-file: they are never in this script, the unit, argv or the log.
set -euo pipefail

# Rendered by components/vm.py. PLATFORM: the platform's title, for the log; ROLE: serve | ray-head |
# ray-worker; *_SECRET: names of entries in the secret store (HF token empty for open models);
# CONTAINER_ENV: non-secret NAME=value pairs; VLLM_ARGV: vllm serve ... (the head's command when
# multi-node); RAY_ENV: ray_bootstrap.sh settings; RAY_BOOTSTRAP_SOURCE: its source without its shebang.
# Both empty when ROLE=serve. The scripts' sources are plain text in quoted heredocs: AWS's gzip'd user data
# (16 KB at most) compresses them with this script, far better than gzip + base64 of each.
# HEALTH_AGENT_ARGS: health_agent.py's flags (cloud, role, load budget, port); HEALTH_AGENT_SOURCE: its
# source; METRICS_AGENT_SOURCE: metrics_agent.py's where the platform runs it. STOP_SECONDS: how long
# `docker stop` lets vLLM drain.
PLATFORM={{platform}}
IMAGE={{image}}
ROLE={{role}}
API_KEY_SECRET={{api_key_secret}}
HF_TOKEN_SECRET={{hf_token_secret}}
CONTAINER_ENV=({{container_env}})
VLLM_ARGV=({{vllm_argv}})
RAY_ENV=({{ray_env}})
RAY_BOOTSTRAP_SOURCE=$(
  cat <<'RAY_BOOTSTRAP_SH'
{{ray_bootstrap_source}}
RAY_BOOTSTRAP_SH
)
HEALTH_AGENT_ARGS=({{health_agent_args}})
HEALTH_AGENT_SOURCE=$(
  cat <<'HEALTH_AGENT_PY'
{{health_agent_source}}
HEALTH_AGENT_PY
)
METRICS_AGENT_SOURCE=$(
  cat <<'METRICS_AGENT_PY'
{{metrics_agent_source}}
METRICS_AGENT_PY
)
STOP_SECONDS={{stop_seconds}}
# The stack's weight cache (gs:// or s3:// bucket; empty: vLLM downloads from the Hub itself), where under
# HF_CACHE the model's files land (vLLM's model path), weight_cache.sh's settings, and its source.
WEIGHT_CACHE_URL={{weight_cache_url}}
WEIGHT_CACHE_DIR={{weight_cache_dir}}
WEIGHT_CACHE_ENV=({{weight_cache_env}})
WEIGHT_CACHE_SOURCE=$(
  cat <<'WEIGHT_CACHE_SH'
{{weight_cache_source}}
WEIGHT_CACHE_SH
)
# local_nvme.sh's source, on machines with local NVMe (the HF cache and Docker's data root go there).
LOCAL_NVME_SOURCE=$(
  cat <<'LOCAL_NVME_SH'
{{local_nvme_source}}
LOCAL_NVME_SH
)

# Fixed on a VM; overridable so the tests can run the script in a scratch directory.
INSTALL_DIR=${VLLM_INSTALL_DIR:-/opt/vllm}
SECRETS_FILE=${VLLM_SECRETS_FILE:-/run/vllm/secrets.env}
HF_CACHE=${VLLM_HF_CACHE:-/var/lib/vllm/hf-cache}
UNIT=${VLLM_UNIT_FILE:-/etc/systemd/system/vllm.service}
AGENT_UNIT=${VLLM_AGENT_UNIT_FILE:-/etc/systemd/system/vllm-health.service}
PYTHON=${VLLM_PYTHON:-/usr/bin/python3}

log() { echo "vllm-bootstrap: $*"; }

# Where VM platforms differ, the boot script calls its platform's hooks: components/<platform>/vm_hooks.sh,
# with the platform's own settings, rendered in here by components/vm.py (the stack's platform's only):
#   platform_read_secret NAME   print the current value of the secret store's entry NAME
#   platform_resolve_image      point IMAGE at where this machine pulls it from
#   platform_log_args           docker's options for the container's log, one word a line
#   platform_install_metrics    at boot: have vLLM's /metrics reach the platform's monitoring
{{platform_hooks}}

write_secrets() {
  local attempt api_key hf_token=""
  install -d -m 0700 "$(dirname "$SECRETS_FILE")"
  for attempt in 1 2 3 4 5 6; do
    if api_key=$(platform_read_secret "$API_KEY_SECRET") \
      && { [ -z "$HF_TOKEN_SECRET" ] || hf_token=$(platform_read_secret "$HF_TOKEN_SECRET"); }; then
      umask 077
      {
        printf '%s=%s\n' VLLM_API_KEY "$api_key"
        if [ -n "$hf_token" ]; then printf '%s=%s\n' HF_TOKEN "$hf_token"; fi
      } >"$SECRETS_FILE"
      log "secrets read from the $PLATFORM secret store"
      return 0
    fi
    log "secret store not readable yet (attempt $attempt of 6)"
    sleep $((attempt * 5))
  done
  log "cannot read secrets $API_KEY_SECRET${HF_TOKEN_SECRET:+ and $HF_TOKEN_SECRET}: check the instance's service account / role"
  return 1
}

wait_for_gpus() {
  local waited=0
  until nvidia-smi >/dev/null 2>&1; do
    if [ "$waited" -ge 900 ]; then
      log "no NVIDIA driver after ${waited}s"
      return 1
    fi
    log "waiting for the NVIDIA driver (${waited}s)"
    sleep 15
    waited=$((waited + 15))
  done
  log "GPUs: $(nvidia-smi --query-gpu=name --format=csv,noheader | sort | uniq -c | xargs)"
}

ensure_container_runtime() {
  if command -v docker >/dev/null && command -v nvidia-ctk >/dev/null; then
    return 0
  fi
  log "installing Docker and the NVIDIA container toolkit"
  export DEBIAN_FRONTEND=noninteractive
  curl -fsSL https://nvidia.github.io/libnvidia-container/gpgkey \
    | gpg --dearmor --yes -o /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
  curl -fsSL https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list \
    | sed 's#deb https://#deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] https://#' \
      >/etc/apt/sources.list.d/nvidia-container-toolkit.list
  apt-get update -q
  apt-get install -y -q docker.io nvidia-container-toolkit
  nvidia-ctk runtime configure --runtime=docker
  systemctl restart docker
}

# The health agent runs from the first minute of boot: the platform's health check reads it (GCP) or it
# reports to the Auto Scaling group (AWS), and the load budget counts from its start until vLLM's.
install_health_agent() {
  install -d -m 0755 "$INSTALL_DIR"
  printf '%s\n' "$HEALTH_AGENT_SOURCE" >"$INSTALL_DIR/health_agent.py"
  if [ -n "$METRICS_AGENT_SOURCE" ]; then printf '%s\n' "$METRICS_AGENT_SOURCE" >"$INSTALL_DIR/metrics_agent.py"; fi
  install_agent_service "$AGENT_UNIT" 5 \
    "vLLM health agent ($ROLE): healthy while loading within budget, then vLLM's own health" \
    "$PYTHON $INSTALL_DIR/health_agent.py ${HEALTH_AGENT_ARGS[*]}"
}

# An agent's systemd service, restarted whenever it exits, started now and at every boot.
# Arguments: the unit file, the seconds between restarts, its description, its command line.
install_agent_service() {
  cat >"$1" <<EOF
[Unit]
Description=$3
After=network-online.target
Wants=network-online.target

[Service]
Restart=always
RestartSec=$2
ExecStart=$4

[Install]
WantedBy=multi-user.target
EOF
  systemctl daemon-reload
  systemctl enable "${1##*/}"
  systemctl restart "${1##*/}"
}

# An embedded script (its source without the shebang, which the user data's comment stripping would drop)
# as an executable file of INSTALL_DIR.
install_script() {
  printf '#!/usr/bin/env bash\n%s\n' "$2" >"$INSTALL_DIR/$1"
  chmod 0755 "$INSTALL_DIR/$1"
}

install_unit() {
  install -d -m 0755 "$INSTALL_DIR" "$HF_CACHE"
  install -m 0700 "$0" "$INSTALL_DIR/vm_bootstrap.sh"
  if [ -n "$RAY_BOOTSTRAP_SOURCE" ]; then install_script ray_bootstrap.sh "$RAY_BOOTSTRAP_SOURCE"; fi
  if [ -n "$WEIGHT_CACHE_URL" ]; then
    install_script weight_cache.sh "$WEIGHT_CACHE_SOURCE"
  fi
  if [ -n "$LOCAL_NVME_SOURCE" ]; then
    install_script local_nvme.sh "$LOCAL_NVME_SOURCE"
    # Now, before vllm.service pulls the image: Docker's data root moves to the NVMe (Docker restarts once).
    "$INSTALL_DIR/local_nvme.sh" "$HF_CACHE"
  fi
  cat >"$UNIT" <<EOF
[Unit]
Description=vLLM OpenAI-compatible server ($ROLE)
After=docker.service network-online.target
Wants=network-online.target
Requires=docker.service

[Service]
Restart=always
RestartSec=10
TimeoutStartSec=infinity
ExecStartPre=-/usr/bin/docker rm -f vllm
ExecStartPre=$INSTALL_DIR/vm_bootstrap.sh secrets
ExecStartPre=$INSTALL_DIR/vm_bootstrap.sh disks
ExecStart=$INSTALL_DIR/vm_bootstrap.sh run
ExecStop=/usr/bin/docker stop --time $STOP_SECONDS vllm
TimeoutStopSec=$((STOP_SECONDS + 30))

[Install]
WantedBy=multi-user.target
EOF
  systemctl daemon-reload
  systemctl enable vllm.service
}

# The HF cache on the local NVMe array, at every start (a reboot, which AWS user data does not rerun, leaves
# it unmounted); nothing on machines without local NVMe.
mount_local_nvme() {
  if [ -n "$LOCAL_NVME_SOURCE" ]; then "$INSTALL_DIR/local_nvme.sh" "$HF_CACHE"; fi
}

# The model's files from the stack's bucket, or from the Hub once for the whole stack (weight_cache.sh),
# before vLLM starts; the pulled image runs the Hub download with the HF token of the secrets file.
fetch_weights() {
  if [ -z "$WEIGHT_CACHE_URL" ]; then return 0; fi
  env "${WEIGHT_CACHE_ENV[@]}" WEIGHT_CACHE_URL="$WEIGHT_CACHE_URL" WEIGHT_CACHE_DIR="$HF_CACHE/$WEIGHT_CACHE_DIR" \
    WEIGHT_CACHE_IMAGE="$IMAGE" WEIGHT_CACHE_ENV_FILE="$SECRETS_FILE" "$INSTALL_DIR/weight_cache.sh" fetch
}

run_container() {
  platform_resolve_image
  fetch_weights
  local -a docker_args=(
    run --name vllm --rm --gpus all --ipc=host --network host
    --env-file "$SECRETS_FILE"
    --volume "$HF_CACHE:/root/.cache/huggingface"
  )
  local -a logging
  mapfile -t logging < <(platform_log_args)
  docker_args+=("${logging[@]}")
  local pair
  for pair in "${CONTAINER_ENV[@]}" "${RAY_ENV[@]}"; do
    docker_args+=(--env "$pair")
  done
  case "$ROLE" in
    serve)
      exec docker "${docker_args[@]}" --entrypoint "${VLLM_ARGV[0]}" "$IMAGE" "${VLLM_ARGV[@]:1}"
      ;;
    ray-head | ray-worker)
      # Ray needs /dev/infiniband for EFA/RDMA when the machine has it.
      if [ -d /dev/infiniband ]; then docker_args+=(--device /dev/infiniband); fi
      docker_args+=(--volume "$INSTALL_DIR/ray_bootstrap.sh:/opt/vllm/ray_bootstrap.sh:ro" --entrypoint bash)
      if [ "$ROLE" = ray-head ]; then
        exec docker "${docker_args[@]}" "$IMAGE" /opt/vllm/ray_bootstrap.sh head -- "${VLLM_ARGV[@]}"
      fi
      exec docker "${docker_args[@]}" "$IMAGE" /opt/vllm/ray_bootstrap.sh worker
      ;;
    *)
      log "unknown role '$ROLE'"
      exit 2
      ;;
  esac
}

main() {
  case "${1:-boot}" in
    boot)
      log "booting a vLLM $ROLE on $PLATFORM with $IMAGE"
      install_health_agent
      wait_for_gpus
      ensure_container_runtime
      platform_install_metrics
      install_unit
      systemctl restart vllm.service
      log "vllm.service started; vllm-health.service judges the replica, the load balancer routes on /health"
      ;;
    secrets) write_secrets ;;
    disks) mount_local_nvme ;;
    run) run_container ;;
    *)
      log "usage: $0 [boot|secrets|disks|run]"
      exit 2
      ;;
  esac
}

main "$@"
