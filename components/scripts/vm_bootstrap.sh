#!/usr/bin/env bash
# Turns a GPU VM into a vLLM replica: the GCP startup script and the AWS user data, run as root at boot.
#
#   vm_bootstrap.sh            boot: start the health agent, check the GPU stack, install the unit, start it
#   vm_bootstrap.sh secrets    (unit ExecStartPre) read the HF token and API key from the secret store
#   vm_bootstrap.sh disks      (unit ExecStartPre) mount the HF cache on the local NVMe, if the machine has it
#   vm_bootstrap.sh run        (unit ExecStart) run the pinned vLLM container in the foreground
#
# Secrets are read from the cloud's secret store at every (re)start into a root-only file on tmpfs and
# reach the container through --env-file: they are never in this script, the unit, argv or the log.
set -euo pipefail

# Rendered by components/vm.py. CLOUD: gcp | aws; REGION: the AWS region of the secrets; ROLE: serve |
# ray-head | ray-worker; *_SECRET: names of entries in the secret store (HF token empty for open models);
# CONTAINER_ENV: non-secret NAME=value pairs; VLLM_ARGV: vllm serve ... (the head's command when
# multi-node); RAY_ENV: ray_bootstrap.sh settings; RAY_BOOTSTRAP_GZIP_BASE64: its source, gzip + base64
# (user data is limited to 16 KB on AWS). Both empty when ROLE=serve. HEALTH_AGENT_ARGS: health_agent.py's
# flags (cloud, role, load budget, port); AGENTS_TAR_GZIP_BASE64: a tar of it (and of metrics_agent.py
# where METRICS_AGENT_ARGS is set), gzip + base64.
CLOUD={{cloud}}
REGION={{region}}
IMAGE={{image}}
ROLE={{role}}
API_KEY_SECRET={{api_key_secret}}
HF_TOKEN_SECRET={{hf_token_secret}}
CONTAINER_ENV=({{container_env}})
VLLM_ARGV=({{vllm_argv}})
RAY_ENV=({{ray_env}})
RAY_BOOTSTRAP_GZIP_BASE64={{ray_bootstrap_gzip_base64}}
HEALTH_AGENT_ARGS=({{health_agent_args}})
AGENTS_TAR_GZIP_BASE64={{agents_tar_gzip_base64}}
# GCP: the instance metadata key naming IMAGE in the stack's Artifact Registry mirror of Docker Hub (its
# address holds the project id, known once deployed); empty: pull IMAGE as rendered.
IMAGE_METADATA_KEY={{image_metadata_key}}
# The stack's weight cache (gs:// or s3:// bucket; empty: vLLM downloads from the Hub itself), where under
# HF_CACHE the model's files land (vLLM's model path), weight_cache.sh's settings, and its source.
WEIGHT_CACHE_URL={{weight_cache_url}}
WEIGHT_CACHE_DIR={{weight_cache_dir}}
WEIGHT_CACHE_ENV=({{weight_cache_env}})
WEIGHT_CACHE_GZIP_BASE64={{weight_cache_gzip_base64}}
# local_nvme.sh, gzip + base64, on machines with local NVMe (the HF cache and Docker's data root go there).
LOCAL_NVME_GZIP_BASE64={{local_nvme_gzip_base64}}
# AWS: the stack's CloudWatch Logs group the container's output goes to (docker's awslogs driver, one
# stream per instance); GCP: docker's gcplogs driver writes to the project's Cloud Logging. Empty on AWS:
# docker's default json-file.
LOG_GROUP={{log_group}}
# GCP: the Ops Agent's Prometheus receiver scrapes vLLM's /metrics on METRICS_PORT into Cloud Monitoring
# as job METRICS_JOB (the stack's name: what its dashboard selects). Serving roles only.
METRICS_JOB={{metrics_job}}
METRICS_PORT={{metrics_port}}
# AWS: metrics_agent.py's flags: it reads /metrics on the host and sends vLLM's metrics to the stack's
# CloudWatch namespace. Empty where the platform collects otherwise, and on Ray workers.
METRICS_AGENT_ARGS=({{metrics_agent_args}})

# Fixed on a VM; overridable so the tests can run the script in a scratch directory.
INSTALL_DIR=${VLLM_INSTALL_DIR:-/opt/vllm}
SECRETS_FILE=${VLLM_SECRETS_FILE:-/run/vllm/secrets.env}
HF_CACHE=${VLLM_HF_CACHE:-/var/lib/vllm/hf-cache}
UNIT=${VLLM_UNIT_FILE:-/etc/systemd/system/vllm.service}
AGENT_UNIT=${VLLM_AGENT_UNIT_FILE:-/etc/systemd/system/vllm-health.service}
METRICS_UNIT=${VLLM_METRICS_UNIT_FILE:-/etc/systemd/system/vllm-metrics.service}
PYTHON=${VLLM_PYTHON:-/usr/bin/python3}
METADATA_URL=${VLLM_METADATA_URL:-http://metadata.google.internal/computeMetadata/v1}
IMDS_URL=${VLLM_IMDS_URL:-http://169.254.169.254/latest}
OPS_AGENT_CONFIG=${VLLM_OPS_AGENT_CONFIG:-/etc/google-cloud-ops-agent/config.yaml}

log() { echo "vllm-bootstrap: $*"; }

read_secret() {
  local name=$1
  case "$CLOUD" in
    gcp)
      gcloud secrets versions access latest --secret="$name" --quiet
      ;;
    aws)
      aws secretsmanager get-secret-value --region "$REGION" --secret-id "$name" \
        --query SecretString --output text
      ;;
    *)
      log "unknown cloud '$CLOUD'"
      return 2
      ;;
  esac
}

write_secrets() {
  local attempt api_key hf_token=""
  install -d -m 0700 "$(dirname "$SECRETS_FILE")"
  for attempt in 1 2 3 4 5 6; do
    if api_key=$(read_secret "$API_KEY_SECRET") \
      && { [ -z "$HF_TOKEN_SECRET" ] || hf_token=$(read_secret "$HF_TOKEN_SECRET"); }; then
      umask 077
      {
        printf '%s=%s\n' VLLM_API_KEY "$api_key"
        if [ -n "$hf_token" ]; then printf '%s=%s\n' HF_TOKEN "$hf_token"; fi
      } >"$SECRETS_FILE"
      log "secrets read from the $CLOUD secret store"
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
  base64 -d <<<"$AGENTS_TAR_GZIP_BASE64" | tar -xz --no-same-owner -C "$INSTALL_DIR"
  cat >"$AGENT_UNIT" <<EOF
[Unit]
Description=vLLM health agent ($ROLE): healthy while loading within budget, then vLLM's own health
After=network-online.target
Wants=network-online.target

[Service]
Restart=always
RestartSec=5
ExecStart=$PYTHON $INSTALL_DIR/health_agent.py ${HEALTH_AGENT_ARGS[*]}

[Install]
WantedBy=multi-user.target
EOF
  systemctl daemon-reload
  systemctl enable vllm-health.service
  systemctl restart vllm-health.service
}

# GCP: vLLM's Prometheus metrics into Cloud Monitoring (Managed Service for Prometheus) through the Ops
# Agent's prometheus receiver; the VM's service account has roles/monitoring.metricWriter. /metrics stays
# on the VM: the agent scrapes localhost. Best effort: a VM that cannot install the agent still serves.
install_metrics_agent() {
  if [ "$CLOUD" != gcp ] || [ "$ROLE" = ray-worker ]; then return 0; fi
  if ! dpkg -s google-cloud-ops-agent >/dev/null 2>&1; then
    log "installing the Ops Agent"
    if ! curl -fsS --retry 5 -o "$INSTALL_DIR/add-google-cloud-ops-agent-repo.sh" \
      https://dl.google.com/cloudagents/add-google-cloud-ops-agent-repo.sh \
      || ! bash "$INSTALL_DIR/add-google-cloud-ops-agent-repo.sh" --also-install; then
      log "the Ops Agent could not be installed: no vLLM metrics in Cloud Monitoring from this VM"
      return 0
    fi
  fi
  install -d -m 0755 "$(dirname "$OPS_AGENT_CONFIG")"
  cat >"$OPS_AGENT_CONFIG" <<EOF
metrics:
  receivers:
    vllm:
      type: prometheus
      config:
        scrape_configs:
          - job_name: $METRICS_JOB
            scrape_interval: 30s
            metrics_path: /metrics
            static_configs:
              - targets: ["localhost:$METRICS_PORT"]
  service:
    pipelines:
      vllm:
        receivers: [vllm]
EOF
  systemctl restart google-cloud-ops-agent
}

# AWS: vLLM's metrics into CloudWatch by metrics_agent.py (its docstring says why not the CloudWatch agent),
# with the instance role's cloudwatch:PutMetricData on the stack's namespace only. Python's standard library
# and the DLAMI's AWS CLI: nothing to install (install_health_agent unpacked it). /metrics stays on the
# host: the agent reads 127.0.0.1.
install_metrics_publisher() {
  if [ "${#METRICS_AGENT_ARGS[@]}" -eq 0 ]; then return 0; fi
  cat >"$METRICS_UNIT" <<EOF
[Unit]
Description=vLLM metrics to CloudWatch ($ROLE)
After=network-online.target
Wants=network-online.target

[Service]
Restart=always
RestartSec=30
ExecStart=$PYTHON $INSTALL_DIR/metrics_agent.py ${METRICS_AGENT_ARGS[*]}

[Install]
WantedBy=multi-user.target
EOF
  systemctl daemon-reload
  systemctl enable vllm-metrics.service
  systemctl restart vllm-metrics.service
}

install_unit() {
  install -d -m 0755 "$INSTALL_DIR" "$HF_CACHE"
  install -m 0700 "$0" "$INSTALL_DIR/vm_bootstrap.sh"
  if [ -n "$RAY_BOOTSTRAP_GZIP_BASE64" ]; then
    base64 -d <<<"$RAY_BOOTSTRAP_GZIP_BASE64" | gunzip >"$INSTALL_DIR/ray_bootstrap.sh"
    chmod 0755 "$INSTALL_DIR/ray_bootstrap.sh"
  fi
  if [ -n "$WEIGHT_CACHE_URL" ]; then
    base64 -d <<<"$WEIGHT_CACHE_GZIP_BASE64" | gunzip >"$INSTALL_DIR/weight_cache.sh"
    chmod 0755 "$INSTALL_DIR/weight_cache.sh"
  fi
  if [ -n "$LOCAL_NVME_GZIP_BASE64" ]; then
    base64 -d <<<"$LOCAL_NVME_GZIP_BASE64" | gunzip >"$INSTALL_DIR/local_nvme.sh"
    chmod 0755 "$INSTALL_DIR/local_nvme.sh"
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
ExecStop=/usr/bin/docker stop --time 60 vllm

[Install]
WantedBy=multi-user.target
EOF
  systemctl daemon-reload
  systemctl enable vllm.service
}

# Points IMAGE at the Artifact Registry mirror named in the instance metadata, and lets docker pull from it
# with the VM's service account (reader on that repository only).
resolve_image() {
  local mirrored
  if [ -z "$IMAGE_METADATA_KEY" ]; then return 0; fi
  mirrored=$(curl -fsS --retry 5 -H "Metadata-Flavor: Google" "$METADATA_URL/instance/attributes/$IMAGE_METADATA_KEY")
  gcloud auth configure-docker "${mirrored%%/*}" --quiet >/dev/null
  log "pulling $IMAGE through $mirrored"
  IMAGE=$mirrored
}

# The HF cache on the local NVMe array, at every start (a reboot, which AWS user data does not rerun, leaves
# it unmounted); nothing on machines without local NVMe.
mount_local_nvme() {
  if [ -n "$LOCAL_NVME_GZIP_BASE64" ]; then "$INSTALL_DIR/local_nvme.sh" "$HF_CACHE"; fi
}

# The model's files from the stack's bucket, or from the Hub once for the whole stack (weight_cache.sh),
# before vLLM starts; the pulled image runs the Hub download with the HF token of the secrets file.
fetch_weights() {
  if [ -z "$WEIGHT_CACHE_URL" ]; then return 0; fi
  env "${WEIGHT_CACHE_ENV[@]}" WEIGHT_CACHE_URL="$WEIGHT_CACHE_URL" WEIGHT_CACHE_DIR="$HF_CACHE/$WEIGHT_CACHE_DIR" \
    WEIGHT_CACHE_IMAGE="$IMAGE" WEIGHT_CACHE_ENV_FILE="$SECRETS_FILE" "$INSTALL_DIR/weight_cache.sh" fetch
}

# This instance's id, from IMDSv2 (a session token first: the launch template requires tokens).
aws_instance_id() {
  local token
  token=$(curl -fsS --retry 5 -X PUT "$IMDS_URL/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 60")
  curl -fsS --retry 5 -H "X-aws-ec2-metadata-token: $token" "$IMDS_URL/meta-data/instance-id"
}

# docker's log driver for the container: its output goes to the cloud's log service (and, with docker's
# dual logging, stays readable with `docker logs`). Neither driver is given the container's environment
# (gcplogs' env option, awslogs has none), so the secrets in --env-file never reach a log.
log_args() {
  case "$CLOUD" in
    gcp)
      # Entries land in projects/<project>/logs/gcplogs-docker-driver, with the instance's name, id and
      # zone from the metadata server; the VM's service account has roles/logging.logWriter.
      printf '%s\n' --log-driver gcplogs --log-opt gcp-log-cmd=false
      ;;
    aws)
      if [ -z "$LOG_GROUP" ]; then return 0; fi
      printf '%s\n' --log-driver awslogs --log-opt "awslogs-region=$REGION" \
        --log-opt "awslogs-group=$LOG_GROUP" --log-opt "awslogs-stream=$(aws_instance_id)"
      ;;
  esac
}

run_container() {
  resolve_image
  fetch_weights
  local -a docker_args=(
    run --name vllm --rm --gpus all --ipc=host --network host
    --env-file "$SECRETS_FILE"
    --volume "$HF_CACHE:/root/.cache/huggingface"
  )
  local -a logging
  mapfile -t logging < <(log_args)
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
      log "booting a vLLM $ROLE on $CLOUD with $IMAGE"
      install_health_agent
      wait_for_gpus
      ensure_container_runtime
      install_metrics_agent
      install_metrics_publisher
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
