"""Model facts from the Hugging Face Hub: what is refused, what happens when the Hub cannot answer, and why
the resource inputs do not change with the Hub's mood. Every request goes to a fake Hub on 127.0.0.1."""

import json
import socket
import subprocess
import sys

import pytest

from components import launch, model_facts
from components.model_facts import ModelFacts, config_facts, lookup
from components.presets import available_presets
from components.spec import DEFAULT_DISK_SIZE_GB, SpecError, build_spec
from tests.harness import ROOT, run_program
from tools.fakes_hub import PRESET_MODELS, FakeModel

QWEN = "Qwen/Qwen3-8B"
MAVERICK = "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8"
HF_TOKEN = "hf_modelfactstesttoken0123456789"
SECRETS = {"vllm:hfToken": HF_TOKEN, "vllm:apiKey": "sk-model-facts-test"}
GCP_L4 = {"vllm:cloud": "gcp", "vllm:gpu": "L4:1", "vllm:model": QWEN}


def quiet_lookup(model: str, token: str | None = None, warnings: list[str] | None = None):
    return lookup(model, token, warn=(warnings if warnings is not None else []).append)


def facts(**overrides) -> ModelFacts:
    values = dict(
        model=QWEN,
        revision="a" * 40,
        gated=False,
        weights_gb=17,
        attention_heads=32,
        kv_heads=8,
        max_context=40960,
    )
    return ModelFacts(**{**values, **overrides})


def stub(found: ModelFacts | None):
    return lambda model, token, revision="main": found


def refusal(config: dict, found: ModelFacts | None = None) -> SpecError:
    """The SpecError build_spec stops with for ``config`` when the Hub answers ``found``."""
    with pytest.raises(SpecError) as caught:
        build_spec("s", config, lookup=stub(found))
    return caught.value


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- what the Hub says ----------------------------------------------------------------------------------


def test_the_endpoint_is_hf_endpoint_without_its_trailing_slash_else_huggingface_co(monkeypatch):
    assert model_facts.endpoint() == "https://huggingface.co"
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.example/")
    assert model_facts.endpoint() == "https://hf-mirror.example"


def test_a_models_facts_come_from_its_info_and_its_config(fake_hub):
    found = quiet_lookup(QWEN)
    assert found == ModelFacts(QWEN, PRESET_MODELS[QWEN].sha(QWEN), False, 17, 32, 8, 40960, True)


def test_llama_4_is_read_from_its_text_config(fake_hub):
    found = quiet_lookup(MAVERICK, HF_TOKEN)
    assert (found.gated, found.attention_heads, found.kv_heads, found.max_context) == (True, 40, 8, 1048576)
    assert found.weights_gb == 422


@pytest.mark.parametrize(
    ("model", "context"), [("deepseek-ai/DeepSeek-R1-0528", 163840), ("moonshotai/Kimi-K2-Instruct", 131072)]
)
def test_yarn_scaling_gives_deepseek_v3_models_their_context(model, context):
    assert config_facts(PRESET_MODELS[model].config)[2] == context


def test_a_rope_factor_multiplies_the_context_but_llama3_scaling_does_not():
    base = {"num_attention_heads": 32, "max_position_embeddings": 32768}
    assert config_facts({**base, "rope_scaling": {"rope_type": "dynamic", "factor": 4.0}})[2] == 131072
    assert config_facts({**base, "rope_scaling": {"rope_type": "llama3", "factor": 8.0}})[2] == 32768


def test_kv_heads_default_to_the_attention_heads():
    assert config_facts({"num_attention_heads": 16, "max_position_embeddings": 2048})[:2] == (16, 16)


def test_consolidated_copies_of_a_sharded_checkpoint_are_not_counted(fake_hub):
    fake_hub.models["mistralai/M"] = FakeModel(
        config={"num_attention_heads": 32},
        weights_bytes=14 * 10**9,
        extra_files={"consolidated.safetensors": 14 * 10**9},
    )
    assert quiet_lookup("mistralai/M").weights_gb == 14


def test_without_file_sizes_the_size_comes_from_the_safetensors_parameter_counts():
    info = {
        "siblings": [{"rfilename": "model.safetensors"}],
        "safetensors": {"parameters": {"BF16": 8 * 10**9}},
    }
    assert model_facts._weights_gb(info) == 16


def test_the_token_is_sent_as_a_bearer_token_only_when_configured(fake_hub):
    quiet_lookup(QWEN)
    quiet_lookup(MAVERICK, HF_TOKEN)
    sent = {path.split("?")[0]: auth for path, auth in fake_hub.requests}
    assert sent[f"/api/models/{QWEN}/revision/main"] is None
    assert (
        sent[f"/{MAVERICK}/resolve/{PRESET_MODELS[MAVERICK].sha(MAVERICK)}/config.json"]
        == f"Bearer {HF_TOKEN}"
    )


# --- refusals -------------------------------------------------------------------------------------------


def program_error(stack: str, config: dict, secrets: dict | None = None) -> SpecError:
    with pytest.raises(SpecError) as caught:
        run_program(stack, config, secrets)
    assert caught.value.declared_resources == [], "a refusal must come before any resource"
    return caught.value


def test_a_model_the_hub_does_not_know_is_refused_naming_vllm_model(fake_hub):
    error = program_error("staging", {**GCP_L4, "vllm:model": "Qwen/Qwen3-8B-typo"})
    assert error.key == "vllm:model" and "Qwen/Qwen3-8B-typo" in str(error)


def test_a_gated_model_without_a_token_is_refused_naming_vllm_hf_token(fake_hub):
    error = program_error("gcp-h100", {}, {"vllm:apiKey": "sk-model-facts-test"})
    assert error.key == "vllm:hfToken" and "gated" in str(error)


def test_a_token_without_access_to_a_gated_model_is_refused_naming_vllm_hf_token(fake_hub):
    fake_hub.denied_tokens.add(HF_TOKEN)
    error = program_error("gcp-h100", {}, SECRETS)
    assert error.key == "vllm:hfToken"
    assert HF_TOKEN not in str(error)


def test_weights_beyond_the_replicas_gpu_memory_are_refused_naming_vllm_gpu():
    error = refusal(GCP_L4, facts(weights_gb=30))
    assert error.key == "vllm:gpu" and "30 GB" in str(error) and "Hugging Face Hub" in str(error)


def test_a_model_size_given_by_hand_is_checked_against_gpu_memory_without_the_hub():
    error = refusal({**GCP_L4, "vllm:modelSizeGb": "30", "vllm:diskSizeGb": "100"})
    assert error.key == "vllm:gpu" and "vllm:modelSizeGb" in str(error)


def test_more_gpu_memory_utilization_in_extra_args_leaves_more_room_for_weights():
    config = {**GCP_L4, "vllm:extraArgs": ["--gpu-memory-utilization=0.95"]}
    assert build_spec("s", config, lookup=stub(facts(weights_gb=22))).facts.weights_gb == 22
    with pytest.raises(SpecError):
        build_spec("s", GCP_L4, lookup=stub(facts(weights_gb=22)))


@pytest.mark.parametrize(
    "extra_args",
    [
        ["--gpu_memory_utilization=0.5"],
        ["--gpu-memory-utilization", "0.95", "--gpu-memory-utilization", "0.5"],
    ],
    ids=["underscore-spelling", "last-occurrence-wins"],
)
def test_the_fit_check_uses_the_gpu_memory_utilization_vllm_reads(extra_args):
    """vLLM normalises underscores and keeps the last value (argparse): half an L4's 24 GB holds no 20 GB."""
    with pytest.raises(SpecError) as caught:
        build_spec("s", {**GCP_L4, "vllm:extraArgs": extra_args}, lookup=stub(facts(weights_gb=20)))
    assert caught.value.key == "vllm:gpu" and "50%" in str(caught.value)


def test_a_tensor_parallel_size_that_does_not_divide_the_attention_heads_is_refused():
    config = {**GCP_L4, "vllm:gpu": "L4:8"}
    error = refusal(config, facts(attention_heads=14, kv_heads=2))
    assert error.key == "vllm:gpu"
    assert "14 attention heads" in str(error) and "L4:1/2" in str(error)


def test_a_tensor_parallel_size_that_neither_divides_nor_is_divided_by_the_kv_heads_is_refused():
    config = {**GCP_L4, "vllm:gpu": "L4:4"}
    error = refusal(config, facts(attention_heads=24, kv_heads=6))
    assert error.key == "vllm:gpu" and "6 key/value heads" in str(error)


def test_max_model_len_beyond_the_models_context_is_refused():
    config = {**GCP_L4, "vllm:maxModelLen": "65536"}
    error = refusal(config, facts())
    assert error.key == "vllm:maxModelLen" and "40960" in str(error)


def test_a_disk_smaller_than_the_hubs_weights_is_refused():
    config = {**GCP_L4, "vllm:gpu": "A100:8", "vllm:diskSizeGb": "200"}  # a2-highgpu-8g: no local SSD
    error = refusal(config, facts(weights_gb=250))
    assert error.key == "vllm:diskSizeGb" and ">= 280" in str(error)


@pytest.mark.parametrize("preset", available_presets())
def test_every_preset_passes_the_hubs_checks(fake_hub, preset):
    run = run_program(preset, secrets=SECRETS)
    assert run.outputs["spec"]["modelRevision"] == PRESET_MODELS[run.outputs["spec"]["model"]].sha(
        run.outputs["spec"]["model"]
    )


# --- when the Hub cannot answer -------------------------------------------------------------------------


@pytest.mark.parametrize("failure", ["500", "malformed", "slow"])
def test_a_failing_hub_gives_a_warning_and_the_config_fallback(fake_hub, monkeypatch, failure):
    monkeypatch.setattr(model_facts, "TIMEOUT", (0.5, 0.5))
    fake_hub.failure, fake_hub.slow_seconds = failure, 2
    warnings: list[str] = []
    assert quiet_lookup(QWEN, warnings=warnings) is None
    assert len(warnings) == 1 and "unreachable" in warnings[0] and "vllm:modelSizeGb" in warnings[0]


def test_a_config_of_unexpected_shape_gives_a_warning_not_a_crash(fake_hub):
    config = {"num_attention_heads": 32, "max_position_embeddings": 4096, "rope_scaling": {"factor": "x"}}
    fake_hub.models["odd/model"] = FakeModel(config=config, weights_bytes=10**9)
    warnings: list[str] = []
    assert quiet_lookup("odd/model", warnings=warnings) is None
    assert "malformed config.json" in warnings[0]


def test_a_refused_connection_gives_a_warning_and_the_config_fallback(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    warnings: list[str] = []
    assert quiet_lookup(QWEN, warnings=warnings) is None
    assert "ConnectionError" in warnings[0]


def test_the_program_runs_on_the_config_when_the_hub_is_down(fake_hub):
    fake_hub.failure = "500"
    run = run_program("k8s-l4", secrets=SECRETS)
    assert "modelRevision" not in run.outputs["spec"]  # the engine drops null outputs


def test_an_unreachable_hub_reuses_the_facts_cached_for_the_model(fake_hub):
    online = quiet_lookup(QWEN)
    fake_hub.failure = "500"
    warnings: list[str] = []
    assert quiet_lookup(QWEN, warnings=warnings) == online
    assert online.revision[:12] in warnings[0]


def test_the_config_is_read_again_only_when_main_moves_to_another_commit(fake_hub):
    quiet_lookup(QWEN)
    quiet_lookup(QWEN)
    assert sum(path.endswith("config.json") for path, _ in fake_hub.requests) == 1
    fake_hub.models[QWEN] = FakeModel(
        config={**PRESET_MODELS[QWEN].config, "max_position_embeddings": 32768},
        weights_bytes=PRESET_MODELS[QWEN].weights_bytes,
    )
    assert quiet_lookup(QWEN).max_context == 32768


def test_facts_cached_before_the_safetensors_fact_are_read_again_once(fake_hub, tmp_path):
    """A cache written before ``safetensors`` was a fact (vllm:weightCache stream) lacks it: the next lookup
    that reaches the Hub reads the commit again and caches it, then reuses the cache as before."""
    quiet_lookup(QWEN)
    (cached,) = (tmp_path / "model-facts").iterdir()
    older = json.loads(cached.read_text())
    del older["safetensors"]
    cached.write_text(json.dumps(older))
    assert quiet_lookup(QWEN).safetensors is True
    assert json.loads(cached.read_text())["safetensors"] is True
    quiet_lookup(QWEN)
    assert sum(path.endswith("config.json") for path, _ in fake_hub.requests) == 2


def test_hf_hub_offline_uses_the_cache_without_asking_the_hub(fake_hub, monkeypatch):
    online = quiet_lookup(QWEN)
    asked = len(fake_hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert quiet_lookup(QWEN) == online
    assert len(fake_hub.requests) == asked


def test_the_cache_never_holds_the_token(fake_hub, tmp_path):
    quiet_lookup(MAVERICK, HF_TOKEN)
    (cached,) = (tmp_path / "model-facts").iterdir()
    assert HF_TOKEN not in cached.read_text()
    assert json.loads(cached.read_text())["revision"] == PRESET_MODELS[MAVERICK].sha(MAVERICK)


# --- stable resource inputs -----------------------------------------------------------------------------


def startup_budget(run) -> int:
    (deployment,) = run.of_type("kubernetes:apps/v1:Deployment")
    (container,) = deployment.inputs["spec"]["template"]["spec"]["containers"]
    judge = container["livenessProbe"]["exec"]["command"]  # the progress probe's caps (pods.progress_probe)
    caps = judge.index("--caps")
    return int(judge[caps + 1]) + int(judge[caps + 2])


def test_the_hubs_size_sizes_the_health_budget_when_model_size_gb_is_unset():
    spec = build_spec("k8s-h100", {}, lookup=stub(facts(model=MAVERICK, weights_gb=422, max_context=1048576)))
    assert launch.weights_gb(spec) == 422
    assert (
        launch.probe_timings(spec).startup_seconds
        > launch.probe_timings(build_spec("k8s-h100", {"vllm:modelSizeGb": "421"})).startup_seconds
    )


def test_model_size_gb_pins_the_health_budget_whatever_the_hub_says():
    spec = build_spec("k8s-l4", {}, lookup=stub(facts(weights_gb=16)))
    assert (spec.model_size_gb, launch.weights_gb(spec)) == (17, 17)


def test_a_model_size_below_the_hubs_is_warned_about(fake_hub, caplog):
    run_program("k8s-l4", {"vllm:modelSizeGb": "10"}, SECRETS)
    assert "vllm:modelSizeGb 10 is less than the 17 GB" in caplog.text


def test_the_health_budget_stays_the_same_when_the_hub_stops_answering(fake_hub):
    online = run_program("k8s-h100", secrets=SECRETS)
    fake_hub.failure = "500"
    offline = run_program("k8s-h100", secrets=SECRETS)
    assert startup_budget(online) == startup_budget(offline)


def test_a_plan_without_network_warns_and_falls_back_to_the_config(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    result = subprocess.run(
        [sys.executable, "-m", "tools.plan", "--stack", "k8s-l4"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Hugging Face Hub unreachable" in result.stderr and "Traceback" not in result.stderr


# --- presets do not leak into another model -------------------------------------------------------------


def test_another_model_on_a_preset_drops_the_presets_model_keys():
    spec = build_spec("gcp-h100-multinode", {"vllm:model": QWEN})
    assert (spec.model_size_gb, spec.max_model_len, spec.extra_args) == (None, None, ())
    assert (spec.served_model_name, spec.disk_size_gb) == (QWEN, DEFAULT_DISK_SIZE_GB)
    assert (str(spec.gpu), spec.nodes) == ("H100:8", 2)  # the hardware stays


def test_the_stacks_own_model_keys_apply_over_another_model():
    spec = build_spec("gcp-h100-multinode", {"vllm:model": QWEN, "vllm:maxModelLen": "8192"})
    assert spec.max_model_len == 8192


def test_the_presets_own_model_keeps_its_keys():
    spec = build_spec("gcp-h100-multinode", {"vllm:model": "deepseek-ai/DeepSeek-R1-0528"})
    assert (spec.model_size_gb, spec.max_model_len) == (690, 32768)


def test_unset_removes_a_presets_value_so_the_default_applies():
    spec = build_spec("k8s-l4", {"vllm:maxModelLen": "unset", "vllm:diskSizeGb": "unset"})
    assert (spec.max_model_len, spec.disk_size_gb) == (None, DEFAULT_DISK_SIZE_GB)


def test_an_unknown_key_set_to_unset_is_still_refused():
    with pytest.raises(SpecError) as caught:
        build_spec("k8s-l4", {"vllm:maxModelLenn": "unset"})
    assert caught.value.key == "vllm:maxModelLenn"
