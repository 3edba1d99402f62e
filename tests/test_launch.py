"""The vLLM launch spec every platform shares: argv, secret env, and probe budgets sized to the model."""

from components.launch import (
    API_KEY_ENV,
    HEALTH_PATH,
    HF_TOKEN_ENV,
    PORT,
    RAY_GROUP_WAIT_SECONDS,
    launch_spec,
    probe_timings,
    weights_gb,
)
from components.spec import build_spec

SMALL = {"vllm:cloud": "gcp", "vllm:gpu": "L4:1", "vllm:model": "Qwen/Qwen3-8B"}


def flag(args: tuple[str, ...], name: str) -> str:
    return args[args.index(name) + 1]


def test_vllm_serves_the_model_under_its_served_name_on_all_interfaces():
    launch = launch_spec(build_spec("s", {**SMALL, "vllm:servedModelName": "qwen"}), has_hf_token=False)
    assert launch.command == ("vllm", "serve")
    assert launch.args[0] == "Qwen/Qwen3-8B"
    assert flag(launch.args, "--served-model-name") == "qwen"
    assert (flag(launch.args, "--host"), flag(launch.args, "--port")) == ("0.0.0.0", str(PORT))


def test_tensor_parallel_size_is_the_gpus_per_node():
    launch = launch_spec(build_spec("gcp-h100", {}), has_hf_token=True)
    assert flag(launch.args, "--tensor-parallel-size") == "8"
    assert "--pipeline-parallel-size" not in launch.args


def test_multi_node_adds_pipeline_parallel_across_nodes_on_ray():
    launch = launch_spec(build_spec("gcp-h100-multinode", {}), has_hf_token=True)
    assert flag(launch.args, "--tensor-parallel-size") == "8"
    assert flag(launch.args, "--pipeline-parallel-size") == "2"
    assert flag(launch.args, "--distributed-executor-backend") == "ray"


def test_max_model_len_and_extra_args_are_passed_through_last():
    spec = build_spec(
        "s", {**SMALL, "vllm:maxModelLen": "8192", "vllm:extraArgs": '["--enable-prefix-caching"]'}
    )
    launch = launch_spec(spec, has_hf_token=False)
    assert flag(launch.args, "--max-model-len") == "8192"
    assert launch.args[-1] == "--enable-prefix-caching"


def test_secrets_arrive_by_environment_never_on_the_command_line():
    launch = launch_spec(build_spec("s", SMALL), has_hf_token=True)
    assert set(launch.secret_env) == {API_KEY_ENV, HF_TOKEN_ENV}
    assert "--api-key" not in launch.argv
    assert not set(launch.env) & {API_KEY_ENV, HF_TOKEN_ENV}


def test_open_models_need_no_hf_token():
    assert launch_spec(build_spec("s", SMALL), has_hf_token=False).secret_env == (API_KEY_ENV,)


def test_health_is_judged_on_the_health_path():
    assert launch_spec(build_spec("s", SMALL), has_hf_token=False).health_path == HEALTH_PATH == "/health"


def test_a_larger_checkpoint_gets_a_longer_startup_budget():
    small = probe_timings(build_spec("s", {**SMALL, "vllm:modelSizeGb": "16"}))
    large = probe_timings(build_spec("gcp-h100", {"vllm:modelSizeGb": "400"}))
    assert small.fixed_seconds < small.startup_seconds < large.startup_seconds


def test_without_a_model_size_the_budget_assumes_weights_fill_the_gpus():
    spec = build_spec("gcp-h100", {})
    assert weights_gb(spec) == int(spec.offering.gpu_memory_gb * 0.9)
    assert probe_timings(spec).startup_seconds >= 1200  # never below SkyServe's default initial delay here


def test_a_multi_node_replica_budgets_for_the_weights_of_every_node():
    single = weights_gb(build_spec("gcp-h100", {}))
    assert weights_gb(build_spec("gcp-h100", {"vllm:nodes": "2"})) == 2 * single


def test_a_multi_node_head_also_budgets_for_its_workers_to_join():
    sized = {"vllm:modelSizeGb": "300"}
    single = probe_timings(build_spec("gcp-h100", sized))
    group = probe_timings(build_spec("gcp-h100", {**sized, "vllm:nodes": "2"}))
    assert group.fixed_seconds == single.fixed_seconds + RAY_GROUP_WAIT_SECONDS


def test_vllm_keeps_idle_connections_open_longer_than_any_load_balancer():
    from components.aws.load_balancer import IDLE_TIMEOUT_SECONDS
    from components.launch import LOAD_BALANCER_IDLE_SECONDS

    env = launch_spec(build_spec("s", SMALL), has_hf_token=False).env
    keep_alive = int(env["VLLM_HTTP_TIMEOUT_KEEP_ALIVE"])
    assert keep_alive > LOAD_BALANCER_IDLE_SECONDS >= IDLE_TIMEOUT_SECONDS
    assert keep_alive > 600  # GCP's external Application Load Balancer keeps backend connections 600 s


def test_downloads_use_what_huggingface_hub_1_honours_not_hf_transfer():
    env = launch_spec(build_spec("s", SMALL), has_hf_token=False).env
    assert env["HF_XET_HIGH_PERFORMANCE"] == "1"
    assert "HF_HUB_ENABLE_HF_TRANSFER" not in env
