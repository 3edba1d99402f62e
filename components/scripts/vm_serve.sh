# shellcheck shell=bash
# The serve role's part of components/scripts/vm_bootstrap.sh (a single-node replica: vLLM's API server is
# the container's command), rendered by components/vm.py into the boot script of single-node replicas only;
# it uses the boot script's settings (IMAGE, INSTALL_DIR, WEIGHT_CACHE_*, VLLM_CACHE) and its log function.

# VLLM_ARGV: vllm serve ... WEIGHT_STREAM_URL: with vllm:weightCache stream, the model's files in the bucket,
# which vLLM streams (--load-format runai_streamer) in place of its local model path once weight_cache.sh
# records "stream" as the weights' path; else empty. COMPILE_CACHE_ENV: compile_cache.sh's settings (vLLM's
# torch.compile artifacts in the same bucket) with a weight cache; else empty.
VLLM_ARGV=({{vllm_argv}})
WEIGHT_STREAM_URL={{weight_stream_url}}
COMPILE_CACHE_ENV=({{compile_cache_env}})

# vLLM's compile cache from the bucket before it starts, and into it once it serves (in the background,
# ending with the unit): a failure only means vLLM compiles, as without the cache.
compile_cache() {
  if [ ${#COMPILE_CACHE_ENV[@]} -eq 0 ]; then return 0; fi
  env "${COMPILE_CACHE_ENV[@]}" COMPILE_CACHE_URL="$WEIGHT_CACHE_URL" COMPILE_CACHE_DIR="$VLLM_CACHE" \
    "$INSTALL_DIR/compile_cache.sh" restore || log "vLLM's compile cache was not restored: vLLM compiles"
  env "${COMPILE_CACHE_ENV[@]}" COMPILE_CACHE_URL="$WEIGHT_CACHE_URL" COMPILE_CACHE_DIR="$VLLM_CACHE" \
    "$INSTALL_DIR/compile_cache.sh" save-when-serving &
}

# vLLM's argv, with the bucket in place of the local model path when the weights are streamed from it.
vllm_argv() {
  local arg local_path="/root/.cache/huggingface/$WEIGHT_CACHE_DIR"
  for arg in "${VLLM_ARGV[@]}"; do
    if [ -n "$WEIGHT_STREAM_URL" ] && [ "$arg" = "$local_path" ] \
      && [ "$(cat "$WEIGHT_PATH_FILE" 2>/dev/null)" = stream ]; then
      arg=$WEIGHT_STREAM_URL
    fi
    printf '%s\0' "$arg"
  done
}

# Runs vLLM's API server in the foreground, with docker's run options as arguments.
role_exec() {
  mapfile -d '' -t VLLM_ARGV < <(vllm_argv)
  compile_cache
  exec docker "$@" --entrypoint "${VLLM_ARGV[0]}" "$IMAGE" "${VLLM_ARGV[@]:1}"
}
