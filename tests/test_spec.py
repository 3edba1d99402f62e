"""The stack spec: presets, overrides, and one clear message for every bad value before any resource."""

import pulumi
import pytest
import yaml

from components import catalog
from components.spec import (
    DEFAULT_IMAGE,
    PRESETS_DIR,
    PROJECT,
    PROVIDER_KEYS,
    SECRET_KEYS,
    VLLM_KEYS,
    SpecError,
    available_presets,
    build_spec,
    read_preset,
)
from tests.harness import ROOT, run_program

# A stack name that matches no preset, with the least a GCP stack needs.
PLAIN_STACK = "staging"
MINIMAL_GCP = {"vllm:cloud": "gcp", "vllm:gpu": "L4:1", "vllm:model": "Qwen/Qwen3-8B"}


def spec_error(stack: str, config: dict, secrets: dict | None = None) -> SpecError:
    """Run the real program and return the SpecError it stops with, checking nothing was declared."""
    with pytest.raises(SpecError) as caught:
        run_program(stack, config, secrets)
    assert caught.value.declared_resources == [], "a bad value must fail before any resource is declared"
    return caught.value


def test_a_stack_named_like_a_preset_starts_from_it():
    spec = build_spec("gcp-h100", {})
    assert (spec.preset, spec.cloud, str(spec.gpu), spec.replicas) == ("gcp-h100", "gcp", "H100:8", 2)
    assert spec.model == "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8"


def test_stack_config_overrides_the_preset_key_by_key():
    spec = build_spec("gcp-h100", {"vllm:replicas": "3", "gcp:region": "us-east4"})
    assert (spec.replicas, spec.region, str(spec.gpu)) == (3, "us-east4", "H100:8")


def test_empty_stack_values_do_not_override_the_preset():
    # Pulumi.yaml gives every key an empty default, which Pulumi applies to every stack.
    spec = build_spec("gcp-h100", {"vllm:replicas": "", "vllm:extraArgs": "[]", "vllm:model": ""})
    assert spec.replicas == 2
    assert spec.model.startswith("meta-llama/")


def test_vllm_preset_names_a_preset_for_any_stack():
    spec = build_spec("prod", {"vllm:preset": "aws-h100"})
    assert (spec.preset, spec.cloud, spec.offering.machine_type) == ("aws-h100", "aws", "p5.48xlarge")


def test_an_unknown_preset_is_rejected_with_the_available_ones():
    error = spec_error(PLAIN_STACK, {"vllm:preset": "gcp-h999"})
    assert error.key == "vllm:preset"
    assert all(name in str(error) for name in available_presets())


def test_defaults_fill_what_neither_preset_nor_stack_sets():
    spec = build_spec(PLAIN_STACK, MINIMAL_GCP)
    assert spec.preset is None
    assert (spec.replicas, spec.nodes, spec.image, spec.spot) == (1, 1, DEFAULT_IMAGE, False)
    assert spec.served_model_name == "Qwen/Qwen3-8B"
    assert spec.allowed_cidrs == ("0.0.0.0/0",)
    assert spec.region == "us-central1"


def test_gpu_names_are_matched_case_insensitively():
    assert str(build_spec(PLAIN_STACK, {**MINIMAL_GCP, "vllm:gpu": "l4:2"}).gpu) == "L4:2"


def test_the_cheapest_machine_that_fits_is_chosen():
    spec = build_spec(PLAIN_STACK, {**MINIMAL_GCP, "vllm:gpu": "L4:1"})
    fitting = catalog.offerings("gcp", "L4", 1)
    assert spec.offering.on_demand_hourly == min(o.on_demand_hourly for o in fitting if o.on_demand)


def test_cost_per_hour_covers_every_node_of_every_replica():
    spec = build_spec("gcp-h100-multinode", {"vllm:replicas": "3"})
    assert spec.cost_per_hour() == round(spec.offering.on_demand_hourly * 2 * 3, 2)


def test_the_default_image_is_a_pinned_release():
    assert DEFAULT_IMAGE.startswith("vllm/vllm-openai:v")


@pytest.mark.parametrize(
    ("key", "value", "valid"),
    [
        ("vllm:cloud", "azure", "one of gcp, aws, kubernetes"),
        ("vllm:gpu", "H100x8", "TYPE:COUNT"),
        ("vllm:gpu", "X900:8", "a known GPU type"),
        ("vllm:gpu", "H100:3", "gcp sells H100 in counts 1, 2, 4, 8"),
        ("vllm:gpu", "A10G:1", "gcp offers"),
        ("vllm:gpu", "H100:4", "only as Spot"),
        ("vllm:replicas", "0", "an integer >= 1"),
        ("vllm:replicas", "-1", "an integer >= 1"),
        ("vllm:replicas", "two", "an integer >= 1"),
        ("vllm:replicas", "1.5", "an integer >= 1"),
        ("vllm:nodes", "0", "an integer >= 1"),
        ("vllm:spot", "yes", "true or false"),
        ("vllm:maxModelLen", "-4", "an integer >= 1"),
        ("vllm:diskSizeGb", "5", "an integer >= 20"),
        ("vllm:image", "vllm/vllm-openai:latest", "a pinned image"),
        ("vllm:image", "vllm/vllm-openai", "a pinned image"),
        ("vllm:extraArgs", ["--api-key", "abc"], "no secret in flags"),
        ("vllm:extraArgs", ["--tensor-parallel-size=4"], "flags other than"),
        ("vllm:extraArgs", ["enable-prefix-caching"], "vllm serve flags"),
        ("vllm:extraArgs", "--enable-prefix-caching", "a list of non-empty strings"),
        ("vllm:allowedCidrs", ["10.0.0.1/8"], "a CIDR"),
        ("vllm:allowedCidrs", ["everyone"], "a CIDR"),
        ("gcp:zone", "europe-west4-a", "a zone of gcp:region us-central1"),
        ("gcp:region", "mars-north1", "a region that sells"),
        ("vllm:replica", "2", "a known key"),
    ],
)
def test_each_bad_value_fails_with_one_message_naming_key_value_and_what_is_valid(key, value, valid):
    error = spec_error(PLAIN_STACK, {**MINIMAL_GCP, key: value})
    assert error.key == key
    assert str(value if not isinstance(value, list) else value[0]) in str(error)
    assert valid in str(error)


def test_an_empty_model_is_rejected_when_no_preset_names_one():
    error = spec_error(PLAIN_STACK, {"vllm:cloud": "gcp", "vllm:gpu": "L4:1", "vllm:model": ""})
    assert error.key == "vllm:model"
    assert "Hugging Face model id" in str(error)


def test_a_missing_cloud_is_rejected_with_the_choices():
    error = spec_error(PLAIN_STACK, {"vllm:model": "Qwen/Qwen3-8B"})
    assert error.key == "vllm:cloud"
    assert "gcp, aws, kubernetes" in str(error)


def test_a_gpu_is_required_on_the_clouds():
    error = spec_error(PLAIN_STACK, {"vllm:cloud": "aws", "vllm:model": "Qwen/Qwen3-8B"})
    assert error.key == "vllm:gpu"
    assert "H100" in str(error)


def test_a_gpu_count_the_cloud_does_not_sell_names_the_counts_it_does():
    error = spec_error(PLAIN_STACK, {"vllm:cloud": "aws", "vllm:gpu": "T4:3", "vllm:model": "m/x"})
    assert "1, 4, 8" in str(error)


def test_multi_node_needs_whole_machines():
    error = spec_error(PLAIN_STACK, {**MINIMAL_GCP, "vllm:gpu": "L4:4", "vllm:nodes": "2"})
    assert error.key == "vllm:gpu"
    assert "L4:8 per node" in str(error)


def test_multi_node_without_a_gpu_is_rejected():
    error = spec_error(PLAIN_STACK, {"vllm:cloud": "kubernetes", "vllm:model": "m/x", "vllm:nodes": "2"})
    assert error.key == "vllm:nodes"


def test_a_secret_set_in_plaintext_is_rejected():
    error = spec_error(PLAIN_STACK, {**MINIMAL_GCP, "vllm:hfToken": "hf_plain"})
    assert error.key == "vllm:hfToken"
    assert "--secret" in str(error)
    assert "hf_plain" not in str(error)


def test_a_spec_error_is_a_clean_pulumi_error_without_traceback():
    assert issubclass(SpecError, pulumi.RunError)


def test_the_disk_must_hold_the_declared_model():
    error = spec_error(PLAIN_STACK, {**MINIMAL_GCP, "vllm:modelSizeGb": "100", "vllm:diskSizeGb": "80"})
    assert error.key == "vllm:diskSizeGb"


@pytest.mark.parametrize("preset", available_presets())
def test_every_preset_is_a_valid_spec_of_known_keys(preset):
    known = {f"{PROJECT}:{key}" for key in VLLM_KEYS} | set(PROVIDER_KEYS)
    assert set(read_preset(preset)) <= known
    assert build_spec(preset, {}).preset == preset


@pytest.mark.parametrize("preset", available_presets())
def test_every_preset_says_what_it_is(preset):
    assert yaml.safe_load((PRESETS_DIR / f"{preset}.yaml").read_text())["description"]


def test_pulumi_yaml_declares_every_key_with_a_description_and_an_empty_default():
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    for key in (*VLLM_KEYS, *SECRET_KEYS):
        entry = declared[f"{PROJECT}:{key}"]
        assert entry["description"], key
        # Pulumi makes a declared key without a default required, and applies defaults to every stack:
        # only an empty default keeps presets and optional keys working.
        assert entry["default"] in ("", []), key
    assert set(declared) - {f"{PROJECT}:{key}" for key in (*VLLM_KEYS, *SECRET_KEYS)} == {
        "pulumi:disable-default-providers"
    }


K8S = {"vllm:cloud": "kubernetes", "vllm:gpu": "L4:1", "vllm:model": "Qwen/Qwen3-8B"}


@pytest.mark.parametrize("namespace", ["default", "kube-system"])
def test_a_kubernetes_stack_owns_its_namespace(namespace):
    assert spec_error(PLAIN_STACK, {**K8S, "vllm:namespace": namespace}).key == "vllm:namespace"


def test_allowed_cidrs_need_a_load_balancer_on_kubernetes():
    config = {**K8S, "vllm:serviceType": "ClusterIP", "vllm:allowedCidrs": ["203.0.113.0/24"]}
    assert spec_error(PLAIN_STACK, config).key == "vllm:allowedCidrs"


def test_platform_rules_also_fail_before_any_resource():
    # GKE labels no L40S nodes: the Kubernetes package's own table says so, before anything is declared.
    config = {**K8S, "vllm:gpu": "L40S:1", "vllm:gpuNodeSelector": "gke"}
    assert spec_error(PLAIN_STACK, config).key == "vllm:gpuNodeSelector"
