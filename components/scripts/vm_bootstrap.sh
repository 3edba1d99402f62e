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
# CONTAINER_ENV: non-secret NAME=value pairs (vLLM's command and the role's own settings: its hooks, below).
# HEALTH_AGENT_ARGS: health_agent.py's flags (cloud, role, phase caps, port). STOP_SECONDS: how long
# `docker stop` lets vLLM drain. The scripts this VM runs are in install_health_agent, below.
PLATFORM={{platform}}
IMAGE={{image}}
ROLE={{role}}
API_KEY_SECRET={{api_key_secret}}
HF_TOKEN_SECRET={{hf_token_secret}}
CONTAINER_ENV=({{container_env}})
HEALTH_AGENT_ARGS=({{health_agent_args}})
STOP_SECONDS={{stop_seconds}}
# The stack's weight cache (gs:// or s3:// bucket; empty: vLLM downloads from the Hub itself), where under
# HF_CACHE the model's files land (vLLM's model path) and weight_cache.sh's settings.
WEIGHT_CACHE_URL={{weight_cache_url}}
WEIGHT_CACHE_DIR={{weight_cache_dir}}
WEIGHT_CACHE_ENV=({{weight_cache_env}})
# Where the container keeps vLLM's cache (torch.compile's artifacts; a host directory).
VLLM_CACHE_ROOT={{vllm_cache_dir}}
# LOCAL_NVME: non-empty on machines with local NVMe (local_nvme.sh puts the HF cache and Docker's data root
# there).
LOCAL_NVME={{local_nvme}}

# Fixed on a VM; overridable so the tests can run the script in a scratch directory.
INSTALL_DIR=${VLLM_INSTALL_DIR:-/opt/vllm}
SECRETS_FILE=${VLLM_SECRETS_FILE:-/run/vllm/secrets.env}
HF_CACHE=${VLLM_HF_CACHE:-/var/lib/vllm/hf-cache}
UNIT=${VLLM_UNIT_FILE:-/etc/systemd/system/vllm.service}
AGENT_UNIT=${VLLM_AGENT_UNIT_FILE:-/etc/systemd/system/vllm-health.service}
PYTHON=${VLLM_PYTHON:-/usr/bin/python3}
VLLM_CACHE=${VLLM_COMPILE_CACHE:-/var/lib/vllm/vllm-cache}
# Where weight_cache.sh records the path the weights take (wait, hub, bucket, local, stream): the health
# agent reads it at its fixed place (vm.WEIGHT_PATH_FILE), a single-node replica streams on "stream".
WEIGHT_PATH_FILE=${VLLM_WEIGHT_PATH_FILE:-{{weight_path_file}}}

log() { echo "vllm-bootstrap: $*"; }

# Where VM platforms differ, the boot script calls its platform's hooks: components/<platform>/vm_hooks.sh,
# with the platform's own settings, rendered in here by components/vm.py (the stack's platform's only):
#   platform_read_secret NAME   print the current value of the secret store's entry NAME
#   platform_resolve_image      point IMAGE at where this machine pulls it from
#   platform_log_args           docker's options for the container's log, one word a line
#   platform_install_metrics    at boot: have vLLM's /metrics reach the platform's monitoring
{{platform_hooks}}

# Where VM roles differ, the boot script calls its role's hooks: components/scripts/vm_serve.sh on a
# single-node replica, vm_ray.sh on a Ray head or worker, with the role's own settings, rendered in here by
# components/vm.py (the machine's role's only):
#   role_exec DOCKER_RUN_OPTION...   exec docker run with these options and the role's container command
{{role_hooks}}

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
# The scripts this VM runs are written out first, each from its quoted heredoc (components/vm.py: the
# health agent; the metrics agent where the platform runs it; ray_bootstrap.sh on Ray nodes; weight_cache.sh
# with the weight cache; local_nvme.sh with local NVMe; compile_cache.sh on single-node replicas with the
# weight cache): plain text, which AWS's gzip'd user data (16 KB at most) compresses with the rest.
install_health_agent() {
  install -d -m 0755 "$INSTALL_DIR"
{{shipped_scripts}}
  install_agent_service "$AGENT_UNIT" 5 \
    "vLLM health agent ($ROLE): loading while it progresses, then vLLM's health" \
    "$PYTHON $INSTALL_DIR/health_agent.py ${HEALTH_AGENT_ARGS[*]}"
}

# A shipped script, from the heredoc on stdin, as a file of INSTALL_DIR: its shebang first (the user data's
# comment stripping drops it from the heredoc); shell scripts executable.
install_script() {
  local interpreter=bash mode=0755
  if [[ $1 == *.py ]]; then interpreter=python3 mode=0644; fi
  { echo "#!/usr/bin/env $interpreter"; cat; } >"$INSTALL_DIR/$1"
  chmod "$mode" "$INSTALL_DIR/$1"
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

install_unit() {
  install -d -m 0755 "$INSTALL_DIR" "$HF_CACHE"
  install -m 0700 "$0" "$INSTALL_DIR/vm_bootstrap.sh"
  if [ -n "$LOCAL_NVME" ]; then
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
  if [ -n "$LOCAL_NVME" ]; then "$INSTALL_DIR/local_nvme.sh" "$HF_CACHE"; fi
}

# The model's files from the stack's bucket, or from the Hub once for the whole stack (weight_cache.sh),
# before vLLM starts; the pulled image runs the Hub download with the HF token of the secrets file.
fetch_weights() {
  if [ -z "$WEIGHT_CACHE_URL" ]; then return 0; fi
  env "${WEIGHT_CACHE_ENV[@]}" WEIGHT_CACHE_URL="$WEIGHT_CACHE_URL" WEIGHT_CACHE_DIR="$HF_CACHE/$WEIGHT_CACHE_DIR" \
    WEIGHT_CACHE_IMAGE="$IMAGE" WEIGHT_CACHE_ENV_FILE="$SECRETS_FILE" WEIGHT_CACHE_PATH_FILE="$WEIGHT_PATH_FILE" \
    "$INSTALL_DIR/weight_cache.sh" fetch
}

# The image, pulled beside the weights' fetch (a copy from the bucket needs no image; a Hub download runs in
# it, and its `docker run` joins the pull under way: the daemon shares a layer's download between the
# pulls that want it, moby distribution/xfer/transfer.go), unless already here (a restart: `docker run`
# would not pull it either). vLLM starts once both have succeeded; either failing fails the start
# (systemd ends the other with the unit, and starts it again).
run_container() {
  local pull
  platform_resolve_image
  docker image inspect "$IMAGE" >/dev/null 2>&1 || docker pull --quiet "$IMAGE" >/dev/null &
  pull=$!
  fetch_weights || { log "the model's files could not be fetched"; return 1; }
  wait "$pull" || { log "pulling $IMAGE failed"; return 1; }
  install -d -m 0755 "$VLLM_CACHE"
  local -a docker_args=(
    run --name vllm --rm --gpus all --ipc=host --network host
    --env-file "$SECRETS_FILE"
    --volume "$HF_CACHE:/root/.cache/huggingface"
    --volume "$VLLM_CACHE:$VLLM_CACHE_ROOT" --env "VLLM_CACHE_ROOT=$VLLM_CACHE_ROOT"
  )
  local -a logging
  mapfile -t logging < <(platform_log_args)
  docker_args+=("${logging[@]}")
  local pair
  for pair in "${CONTAINER_ENV[@]}"; do
    docker_args+=(--env "$pair")
  done
  role_exec "${docker_args[@]}"
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
