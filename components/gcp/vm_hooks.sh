# shellcheck shell=bash
# GCP's hooks of components/scripts/vm_bootstrap.sh (the functions it calls where VM platforms differ; its
# comment above its marker lists them), rendered by components/vm.py into the boot script of GCP
# VMs only; they use the boot script's settings (ROLE, IMAGE, INSTALL_DIR) and its log function.

# IMAGE_METADATA_KEY: the instance metadata key naming IMAGE in the stack's Artifact Registry mirror of
# Docker Hub (its address holds the project id, known once deployed); empty: pull IMAGE as rendered.
# METRICS_JOB, METRICS_PORT: the Ops Agent's Prometheus receiver scrapes vLLM's /metrics on METRICS_PORT
# into Cloud Monitoring as job METRICS_JOB (the stack's name: what its dashboard selects).
IMAGE_METADATA_KEY={{image_metadata_key}}
METRICS_JOB={{metrics_job}}
METRICS_PORT={{metrics_port}}
# Fixed on a VM; overridable so the tests can run the script in a scratch directory.
METADATA_URL=${VLLM_METADATA_URL:-http://metadata.google.internal/computeMetadata/v1}
OPS_AGENT_CONFIG=${VLLM_OPS_AGENT_CONFIG:-/etc/google-cloud-ops-agent/config.yaml}

# Secret Manager, with the VM's service account (secretAccessor on the stack's secrets only).
platform_read_secret() {
  gcloud secrets versions access latest --secret="$1" --quiet
}

# Points IMAGE at the Artifact Registry mirror named in the instance metadata, and lets docker pull from it
# with the VM's service account (reader on that repository only).
platform_resolve_image() {
  local mirrored
  if [ -z "$IMAGE_METADATA_KEY" ]; then return 0; fi
  mirrored=$(curl -fsS --retry 5 -H "Metadata-Flavor: Google" "$METADATA_URL/instance/attributes/$IMAGE_METADATA_KEY")
  gcloud auth configure-docker "${mirrored%%/*}" --quiet >/dev/null
  log "pulling $IMAGE through $mirrored"
  IMAGE=$mirrored
}

# docker's gcplogs driver: entries land in projects/<project>/logs/gcplogs-docker-driver, with the
# instance's name, id and zone from the metadata server; the VM's service account has
# roles/logging.logWriter. Not given the container's environment (no env option), so the secrets in
# --env-file never reach a log.
platform_log_args() {
  printf '%s\n' --log-driver gcplogs --log-opt gcp-log-cmd=false
}

# vLLM's Prometheus metrics into Cloud Monitoring (Managed Service for Prometheus) through the Ops Agent's
# prometheus receiver; the VM's service account has roles/monitoring.metricWriter. /metrics stays on the
# VM: the agent scrapes localhost. Serving roles only (a Ray worker runs no API server). Best effort: a VM
# that cannot install the agent still serves.
platform_install_metrics() {
  if [ "$ROLE" = ray-worker ]; then return 0; fi
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
  cat >"$OPS_AGENT_CONFIG" <<YAML
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
YAML
  systemctl restart google-cloud-ops-agent
}
