# shellcheck shell=bash
# The Ray roles' part of components/scripts/vm_bootstrap.sh (one node of a Ray group: ray_bootstrap.sh is
# the container's command), rendered by components/vm.py into the boot script of Ray heads and workers only;
# it uses the boot script's settings (ROLE, IMAGE, INSTALL_DIR).

# RAY_ENV: ray_bootstrap.sh's settings. VLLM_ARGV: vllm serve ..., which the head runs once its group is
# whole; empty on a worker.
RAY_ENV=({{ray_env}})
VLLM_ARGV=({{vllm_argv}})

# Runs the node's Ray (and on the head, vLLM) in the foreground, with docker's run options as arguments.
role_exec() {
  local pair
  for pair in "${RAY_ENV[@]}"; do set -- "$@" --env "$pair"; done
  # Ray needs /dev/infiniband for EFA/RDMA when the machine has it.
  if [ -d /dev/infiniband ]; then set -- "$@" --device /dev/infiniband; fi
  set -- "$@" --volume "$INSTALL_DIR/ray_bootstrap.sh:/opt/vllm/ray_bootstrap.sh:ro" --entrypoint bash "$IMAGE"
  if [ "$ROLE" = ray-head ]; then
    exec docker "$@" /opt/vllm/ray_bootstrap.sh head -- "${VLLM_ARGV[@]}"
  fi
  exec docker "$@" /opt/vllm/ray_bootstrap.sh worker
}
