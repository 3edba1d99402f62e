# shellcheck shell=bash
# AWS's hooks of components/scripts/vm_bootstrap.sh (the functions it calls where VM platforms differ; its
# comment above its marker lists them), rendered by components/vm.py into the boot script of EC2
# instances only; they use the boot script's settings (ROLE, INSTALL_DIR, PYTHON) and its log function.

# REGION: the stack's region (its secrets and its log group). LOG_GROUP: the stack's CloudWatch Logs group
# the container's output goes to (one stream per instance); empty: docker's default json-file.
# METRICS_AGENT_ARGS: metrics_agent.py's flags (it reads /metrics on the host and sends vLLM's metrics to the
# stack's CloudWatch namespace); empty on Ray workers, which run no API server.
REGION={{region}}
LOG_GROUP={{log_group}}
METRICS_AGENT_ARGS=({{metrics_agent_args}})
# Fixed on an instance; overridable so the tests can run the script in a scratch directory.
IMDS_URL=${VLLM_IMDS_URL:-http://169.254.169.254/latest}
METRICS_UNIT=${VLLM_METRICS_UNIT_FILE:-/etc/systemd/system/vllm-metrics.service}

# Secrets Manager, with the instance role (GetSecretValue on the stack's secrets only).
platform_read_secret() {
  aws secretsmanager get-secret-value --region "$REGION" --secret-id "$1" \
    --query SecretString --output text
}

# The image is pulled as rendered (Docker Hub): no mirror to resolve.
platform_resolve_image() {
  return 0
}

# This instance's id, from IMDSv2 (a session token first: the launch template requires tokens).
aws_instance_id() {
  local token
  token=$(curl -fsS --retry 5 -X PUT "$IMDS_URL/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 60")
  curl -fsS --retry 5 -H "X-aws-ec2-metadata-token: $token" "$IMDS_URL/meta-data/instance-id"
}

# docker's awslogs driver into the stack's log group, one stream per instance (and, with docker's dual
# logging, still readable with `docker logs`). awslogs has no option to log the container's environment,
# so the secrets in --env-file never reach a log.
platform_log_args() {
  if [ -z "$LOG_GROUP" ]; then return 0; fi
  printf '%s\n' --log-driver awslogs --log-opt "awslogs-region=$REGION" \
    --log-opt "awslogs-group=$LOG_GROUP" --log-opt "awslogs-stream=$(aws_instance_id)"
}

# vLLM's metrics into CloudWatch by metrics_agent.py (its docstring says why not the CloudWatch agent),
# with the instance role's cloudwatch:PutMetricData on the stack's namespace only. Python's standard library
# and the DLAMI's AWS CLI: nothing to install (install_health_agent unpacked it). /metrics stays on the
# host: the agent reads 127.0.0.1. The instance id names this replica's own metric (empty: none sent).
platform_install_metrics() {
  if [ "${#METRICS_AGENT_ARGS[@]}" -eq 0 ]; then return 0; fi
  install_agent_service "$METRICS_UNIT" 30 "vLLM metrics to CloudWatch ($ROLE)" \
    "$PYTHON $INSTALL_DIR/metrics_agent.py ${METRICS_AGENT_ARGS[*]} --instance-id=$(aws_instance_id)"
}
