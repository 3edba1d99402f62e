"""The revision the replicas load: the commit the Hub resolves (main, or the stack's pinned --revision) keys
the weight cache's paths and pins vLLM's own download; without a known commit, the name keys it, with a
warning."""

from __future__ import annotations

import shlex
from dataclasses import replace

import pulumi
import pytest

from components import model_facts, vm
from components.launch import HF_CACHE_DIR, launch_spec, vllm_args
from components.spec import SpecError, build_spec
from tests.test_vm_bootstrap import health_report
from tools.fakes_hub import PRESET_MODELS

QWEN = "Qwen/Qwen3-8B"
QWEN_COMMIT = PRESET_MODELS[QWEN].sha(QWEN)
GCP_L4 = {"vllm:cloud": "gcp", "gcp:project": "p", "vllm:gpu": "L4:1", "vllm:model": QWEN}
AWS_P5 = {"vllm:cloud": "aws", "vllm:gpu": "H100:8", "vllm:model": QWEN}


def rendered(spec) -> str:
    serving = launch_spec(spec, has_hf_token=False)
    return vm.bootstrap_script(
        spec,
        serving,
        api_key_secret="k",
        hf_token_secret=None,
        health_report=health_report(spec, serving),
        weight_cache_url="gs://b",
    )


def script_value(script: str, name: str) -> str:
    (line,) = [line for line in script.splitlines() if line.startswith(f"{name}=")]
    return line.split("=", 1)[1]


def online(config: dict) -> object:
    return build_spec("s", config, lookup=model_facts.lookup)


@pytest.mark.parametrize("config", [GCP_L4, AWS_P5])
def test_the_bucket_prefix_and_the_local_copy_are_keyed_by_the_commit_the_hub_resolves(fake_hub, config):
    spec = online(config)
    script = rendered(spec)
    cache_env = shlex.split(script_value(script, "WEIGHT_CACHE_ENV")[1:-1])
    assert f"WEIGHT_CACHE_REVISION={QWEN_COMMIT}" in cache_env
    assert script_value(script, "WEIGHT_CACHE_DIR") == f"weights/{QWEN}/{QWEN_COMMIT}"
    argv = shlex.split(script_value(script, "VLLM_ARGV")[1:-1])
    assert argv[2] == f"{HF_CACHE_DIR}/weights/{QWEN}/{QWEN_COMMIT}"


def test_a_model_updated_on_the_hub_moves_the_cache_to_a_new_prefix(fake_hub):
    before = vm.weight_cache_env(online(GCP_L4), launch_spec(online(GCP_L4), False))["WEIGHT_CACHE_REVISION"]
    published = fake_hub.models[QWEN]
    fake_hub.models[QWEN] = replace(published, config={**published.config, "max_position_embeddings": 65536})
    after = vm.weight_cache_env(online(GCP_L4), launch_spec(online(GCP_L4), False))["WEIGHT_CACHE_REVISION"]
    assert before == QWEN_COMMIT and after == fake_hub.models[QWEN].sha(QWEN) != before


def test_a_pinned_tag_is_resolved_to_its_commit(fake_hub):
    fake_hub.models[QWEN] = replace(fake_hub.models[QWEN], tags=("v1.0",))
    spec = online({**GCP_L4, "vllm:extraArgs": '["--revision", "v1.0"]'})
    assert spec.pinned_revision == "v1.0" and spec.model_revision == QWEN_COMMIT
    assert any(path.split("?")[0].endswith("/revision/v1.0") for path, _ in fake_hub.requests)


def test_a_revision_the_hub_does_not_have_is_refused_naming_extra_args(fake_hub):
    with pytest.raises(SpecError) as refused:
        online({**GCP_L4, "vllm:extraArgs": '["--revision=nope"]'})
    assert refused.value.key == "vllm:extraArgs" and refused.value.value == "--revision nope"


def test_a_revision_that_would_climb_out_of_the_cache_is_refused():
    with pytest.raises(SpecError) as refused:
        build_spec("s", {**GCP_L4, "vllm:extraArgs": '["--revision", "../../etc"]'})
    assert refused.value.key == "vllm:extraArgs"


def test_vllm_downloading_from_the_hub_loads_the_resolved_commit(fake_hub):
    args = vllm_args(online({**GCP_L4, "vllm:weightCache": "hub"}))
    assert args[args.index("--revision") + 1] == QWEN_COMMIT


def test_vllm_loading_the_buckets_local_copy_gets_no_revision(fake_hub):
    assert "--revision" not in vllm_args(online(GCP_L4))


def test_a_pinned_revision_stays_the_stacks_own_flag(fake_hub):
    fake_hub.models[QWEN] = replace(fake_hub.models[QWEN], tags=("v1.0",))
    args = vllm_args(
        online({**GCP_L4, "vllm:weightCache": "hub", "vllm:extraArgs": '["--revision", "v1.0"]'})
    )
    assert args.count("--revision") == 1 and args[args.index("--revision") + 1] == "v1.0"


def test_without_a_known_commit_the_cache_is_keyed_by_main_and_says_so(monkeypatch):
    said: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *args, **kwargs: said.append(message))
    spec = build_spec("s", GCP_L4, lookup=model_facts.lookup)  # offline, nothing cached
    assert spec.facts is None and spec.model_revision == "main"
    assert vm.weight_cache_env(spec, launch_spec(spec, False))["WEIGHT_CACHE_REVISION"] == "main"
    assert "--revision" not in vllm_args(spec)
    assert any("keyed by the name 'main'" in message for message in said)


def test_a_pinned_commit_needs_no_hub_and_no_warning(monkeypatch):
    said: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *args, **kwargs: said.append(message))
    spec = build_spec(
        "s", {**GCP_L4, "vllm:extraArgs": f'["--revision", "{QWEN_COMMIT}"]'}, lookup=model_facts.lookup
    )
    assert spec.model_revision == QWEN_COMMIT
    assert not any("keyed by the name" in message for message in said)
