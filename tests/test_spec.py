"""The stack spec: presets, overrides, and one clear message for every bad value before any resource."""

import re
import subprocess
import sys

import pulumi
import pytest
import yaml

from components import catalog, platforms, replica_shares
from components.keys import SECRET_KEYS, vllm_keys
from components.kubernetes.platform import default_namespace
from components.kubernetes.settings import settings as k8s_settings
from components.presets import PRESETS_DIR, available_presets, read_preset
from components.provider_config import provider_config_keys
from components.spec import (
    DEFAULT_CPU_IMAGE,
    DEFAULT_IMAGE,
    MIN_API_KEY_LENGTH,
    PROJECT,
    SpecError,
    build_spec,
    image_hardware,
)
from tests.harness import ROOT, checked_spec, run_program

VLLM_KEYS = vllm_keys()
PROVIDER_KEYS = tuple(key for platform in platforms.registered() for key in platform.provider_keys)

# A stack name that matches no preset, with the least a GCP stack needs.
PLAIN_STACK = "staging"
MINIMAL_GCP = {"vllm:cloud": "gcp", "vllm:gpu": "L4:1", "vllm:model": "Qwen/Qwen3-8B"}


def spec_error(stack: str, config: dict, secrets: dict | None = None) -> SpecError:
    """The SpecError the program's checks stop ``config`` with (``checked_spec``: the program's own checks,
    without running it)."""
    with pytest.raises(SpecError) as caught:
        checked_spec(stack, config, secrets)
    return caught.value


def program_refusal(stack: str, config: dict, secrets: dict | None = None) -> SpecError:
    """Run the real program and return the SpecError it stops with, checking nothing was declared: one
    test per family of rules goes through the program (the others through ``spec_error``)."""
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
    error = program_refusal(PLAIN_STACK, {"vllm:preset": "gcp-h999"})
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
    assert replica_shares.cost_per_hour(spec) == round(spec.offering.on_demand_hourly * 2 * 3, 2)


def test_the_default_image_is_a_pinned_release():
    assert DEFAULT_IMAGE.startswith("vllm/vllm-openai:v")


@pytest.mark.parametrize(
    ("key", "value", "valid"),
    [
        ("vllm:cloud", "azure", "one of aws, gcp, kubernetes"),
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
        ("vllm:allowedCidrs", ["10.0.0.1/8"], "host bits set (did you mean 10.0.0.0/8?)"),
        ("vllm:allowedCidrs", ["everyone"], "a CIDR"),
        ("gcp:zone", "europe-west4-a", "a zone of gcp:region us-central1"),
        ("gcp:region", "mars-north1", "a region that sells"),
        ("vllm:replica", "2", "did you mean vllm:replicas?"),
        ("gcp:regoin", "us-east1", "did you mean gcp:region?"),
        ("gcp:projet", "my-proj", "did you mean gcp:project?"),
        ("vllm:image", "vllm/vllm-openai-cpu:v0.33.0", "a CUDA build of vLLM"),
    ],
)
def test_each_bad_value_fails_with_one_message_naming_key_value_and_what_is_valid(key, value, valid):
    error = spec_error(PLAIN_STACK, {**MINIMAL_GCP, key: value})
    assert error.key == key
    assert str(value if not isinstance(value, list) else value[0]) in str(error)
    assert valid in str(error)


def test_an_empty_model_is_rejected_when_no_preset_names_one():
    error = program_refusal(PLAIN_STACK, {"vllm:cloud": "gcp", "vllm:gpu": "L4:1", "vllm:model": ""})
    assert error.key == "vllm:model"
    assert "Hugging Face model id" in str(error)


def test_a_missing_cloud_is_rejected_with_the_choices():
    error = spec_error(PLAIN_STACK, {"vllm:model": "Qwen/Qwen3-8B"})
    assert error.key == "vllm:cloud"
    assert "aws, gcp, kubernetes" in str(error)


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
    error = program_refusal(PLAIN_STACK, {**MINIMAL_GCP, "vllm:hfToken": "hf_plain"})
    assert error.key == "vllm:hfToken"
    assert "--secret" in str(error)
    assert "hf_plain" not in str(error)


def test_a_configured_api_key_shorter_than_16_characters_is_refused_by_length_never_by_value():
    error = spec_error(PLAIN_STACK, MINIMAL_GCP, {"vllm:apiKey": "sk-too-short"})
    assert error.key == "vllm:apiKey"
    assert "12 characters" in str(error) and f"at least {MIN_API_KEY_LENGTH}" in str(error)
    assert "sk-too-short" not in str(error)


def test_an_api_key_of_16_characters_is_accepted():
    run = run_program(PLAIN_STACK, MINIMAL_GCP, {"vllm:apiKey": "k" * MIN_API_KEY_LENGTH})
    assert run.resources


# --- typos ----------------------------------------------------------------------------------------------


def test_an_unknown_vllm_key_names_the_nearest_key_not_the_whole_list():
    error = program_refusal(PLAIN_STACK, {**MINIMAL_GCP, "vllm:maxModelLength": "4096"})
    assert str(error).endswith("did you mean vllm:maxModelLen?")
    assert "vllm:allowedCidrs" not in str(error)


def test_an_unknown_vllm_key_like_no_other_says_where_the_keys_are_declared_in_one_short_line():
    error = spec_error(PLAIN_STACK, {**MINIMAL_GCP, "vllm:flavour": "x"})
    assert error.key == "vllm:flavour"
    assert "Pulumi.yaml" in str(error) and len(str(error)) < 160


@pytest.mark.parametrize(
    ("key", "meant"), [("vllm:GPU", "vllm:gpu"), ("VLLM:MaxModelLEN", "vllm:maxModelLen")]
)
def test_a_key_in_the_wrong_case_is_suggested_in_the_right_case(key, meant):
    error = spec_error(PLAIN_STACK, {**MINIMAL_GCP, key: "x"})
    assert str(error).endswith(f"did you mean {meant}?")


@pytest.mark.parametrize(
    ("key", "suggested"),
    [
        ("gcp:regoin", "gcp:region"),
        ("gcp:zonee", "gcp:zone"),
        ("aws:regin", "aws:region"),
        ("aws:profle", "aws:profile"),
        ("kubernetes:contxt", "kubernetes:context"),
        ("kubernetes:namspace", "kubernetes:namespace"),
    ],
)
def test_a_typo_in_a_provider_key_is_refused_with_the_key_meant(key, suggested):
    error = spec_error(PLAIN_STACK, {**MINIMAL_GCP, key: "x"})
    assert error.key == key
    assert f"did you mean {suggested}?" in str(error)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("gcp:credentials", "/home/me/key.json"),
        ("gcp:impersonateServiceAccount", "deployer@my-proj.iam.gserviceaccount.com"),
        ("gcp:defaultLabels", '{"team": "ml"}'),
        ("aws:profile", "prod"),
        ("aws:defaultTags", '{"tags": {"team": "ml"}}'),
        ("aws:assumeRoles", '[{"roleArn": "arn:aws:iam::123456789012:role/deploy"}]'),
        ("aws:skipCredentialsValidation", "true"),
        ("kubernetes:namespace", "tools"),
        ("kubernetes:kubeconfig", "/home/me/.kube/config"),
        ("kubernetes:enableServerSideApply", "true"),
        # the legacy ``<ns>:config:<key>`` spelling and the root of a --path key
        ("aws:config:region", "us-east-1"),
        ("aws:defaultTags.tags.team", "ml"),
    ],
)
def test_provider_keys_the_program_does_not_read_are_still_valid(key, value):
    namespace = key.partition(":")[0]
    minimal = {"gcp": MINIMAL_GCP, "aws": AWS, "kubernetes": K8S}[namespace]
    assert build_spec(PLAIN_STACK, {**minimal, key: value}).cloud == namespace


def test_provider_keys_come_from_the_installed_sdks_without_importing_them():
    probe = (
        "import sys; from components.provider_config import provider_config_keys as keys; "
        "print(len(keys('pulumi_gcp')), len(keys('pulumi_aws')), len(keys('pulumi_kubernetes')), "
        "sorted(m for m in ('pulumi_gcp', 'pulumi_aws', 'pulumi_kubernetes') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    gcp, aws, kubernetes, imported = result.stdout.split(" ", 3)
    assert int(gcp) > 100 and int(aws) > 20 and int(kubernetes) > 10
    assert imported.strip() == "[]"


def test_every_provider_key_the_program_reads_is_a_key_of_its_provider():
    for platform in platforms.registered():
        for key in platform.provider_keys:
            namespace, name = key.split(":")
            assert namespace == platform.provider_namespace, key
            assert name in provider_config_keys(platform.provider_sdk), key


@pytest.mark.parametrize("key", ["vlm:replicas", "VLLM:replicas", "vllmm:replicas"])
def test_a_typo_in_the_vllm_namespace_is_refused_with_the_key_meant(key):
    error = spec_error(PLAIN_STACK, {**MINIMAL_GCP, key: "2"})
    assert error.key == key
    assert "did you mean vllm:replicas?" in str(error)


def test_namespaces_of_other_providers_are_left_to_them():
    assert build_spec(PLAIN_STACK, {**MINIMAL_GCP, "random:seed": "1", "pulumi:tags": "{}"}).cloud == "gcp"


def test_a_secret_under_an_unknown_key_is_not_echoed():
    error = spec_error(PLAIN_STACK, MINIMAL_GCP, {"vllm:hfTokn": "hf_secret_value"})
    assert error.key == "vllm:hfTokn"
    assert "hf_secret_value" not in str(error)
    assert "did you mean vllm:hfToken?" in str(error)


# --- hardware and image ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "built_for"),
    [
        ("vllm/vllm-openai:v0.33.0", "cuda"),
        ("registry.example.com/team/vllm-openai:v0.33.0-patched", "cuda"),
        ("vllm/vllm-openai-cpu:v0.33.0", "cpu"),
        ("public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:v0.33.0", "cpu"),
        ("public.ecr.aws/q9t5s3a7/vllm-arm64-cpu-release-repo:v0.33.0", "cpu"),
        ("vllm-cpu-env:v0.33.0", "cpu"),
        ("vllm/vllm-openai:v0.33.0-rocm", "rocm"),
        ("rocm/vllm:rocm6.4_vllm_0.9.1", "rocm"),
        ("cpu-team.example.com/cpu-infra/vllm-openai:v0.33.0", "cuda"),
        ("vllm/vllm-tpu:v0.33.0", "tpu"),
    ],
)
def test_the_image_names_the_hardware_it_was_built_for(image, built_for):
    assert image_hardware(image) == built_for


@pytest.mark.parametrize(
    "image", ["vllm/vllm-openai-cpu:v0.33.0", "vllm/vllm-openai:v0.33.0-rocm", "vllm/vllm-tpu:v0.33.0"]
)
def test_a_non_cuda_image_on_gpus_is_refused(image):
    error = spec_error(PLAIN_STACK, {**MINIMAL_GCP, "vllm:image": image})
    assert error.key == "vllm:image"
    assert DEFAULT_IMAGE in str(error)


CPU_POD = {"vllm:cloud": "kubernetes", "vllm:model": "Qwen/Qwen2.5-0.5B-Instruct"}


def test_a_gpu_image_on_a_cpu_pod_is_refused():
    error = program_refusal(PLAIN_STACK, {**CPU_POD, "vllm:image": DEFAULT_IMAGE})
    assert error.key == "vllm:image"
    assert DEFAULT_CPU_IMAGE in str(error)


def test_a_cpu_pod_defaults_to_the_cpu_build_of_the_same_release():
    spec = build_spec(PLAIN_STACK, CPU_POD)
    assert spec.image == DEFAULT_CPU_IMAGE
    assert DEFAULT_CPU_IMAGE.split(":")[1] == DEFAULT_IMAGE.split(":")[1]


@pytest.mark.parametrize(
    ("key", "value", "valid"),
    [("vllm:memoryGb", "20", ">= 35 for H100:8"), ("vllm:cpu", "4", ">= 9 for H100:8")],
)
def test_gpu_pod_requests_below_what_the_pod_runs_are_refused(key, value, valid):
    error = spec_error(PLAIN_STACK, {**CPU_POD, "vllm:gpu": "H100:8", key: value})
    assert error.key == key
    assert valid in str(error)


def test_gpu_pod_minimums_grow_with_the_gpu_count():
    one = spec_error(PLAIN_STACK, {**CPU_POD, "vllm:gpu": "L4:1", "vllm:memoryGb": "1"})
    four = spec_error(PLAIN_STACK, {**CPU_POD, "vllm:gpu": "L4:4", "vllm:memoryGb": "1"})
    assert ">= 7 for L4:1" in str(one) and ">= 19 for L4:4" in str(four)


@pytest.mark.parametrize("gpu", sorted(catalog.GPU_TYPES))
def test_the_default_gpu_pod_requests_meet_the_minimums(gpu):
    from components.kubernetes import pods

    for count in (1, 2, 4, 8):
        spec = build_spec(PLAIN_STACK, {**CPU_POD, "vllm:gpu": f"{gpu}:{count}"})
        cpus, memory = pods.requests(spec)
        configured = {**CPU_POD, "vllm:gpu": f"{gpu}:{count}", "vllm:cpu": cpus, "vllm:memoryGb": memory}
        assert k8s_settings(build_spec(PLAIN_STACK, configured)).memory_gb == memory


# --- AWS regions ----------------------------------------------------------------------------------------

AWS = {"vllm:cloud": "aws", "vllm:gpu": "H100:8", "vllm:model": "Qwen/Qwen3-8B"}


def test_an_aws_region_that_does_not_exist_is_refused_with_the_nearest():
    error = program_refusal(PLAIN_STACK, {**AWS, "aws:region": "us-est-1"})
    assert error.key == "aws:region"
    assert "an AWS region" in str(error)


def test_an_aws_region_that_does_not_sell_the_gpu_names_the_regions_that_do():
    error = spec_error(PLAIN_STACK, {**AWS, "vllm:gpu": "A100-80GB:8", "aws:region": "eu-west-1"})
    assert error.key == "aws:region"
    assert "a region that sells p4de.24xlarge: us-east-1, us-west-2" in str(error)


def test_an_aws_region_that_sells_the_gpu_is_accepted():
    assert build_spec(PLAIN_STACK, {**AWS, "aws:region": "eu-west-2"}).region == "eu-west-2"


# --- Kubernetes namespaces ------------------------------------------------------------------------------


def test_each_kubernetes_stack_gets_its_own_namespace():
    first = build_spec("team-a", {**CPU_POD})
    second = build_spec("team-b", {**CPU_POD})
    assert (k8s_settings(first).namespace, k8s_settings(second).namespace) == ("vllm-team-a", "vllm-team-b")


@pytest.mark.parametrize(("first", "second"), [("Prod_EU", "prod-eu"), ("a.b", "a-b"), ("x" * 70, "x" * 71)])
def test_stack_names_that_slug_alike_still_get_distinct_valid_namespaces(first, second):
    one, other = default_namespace(first), default_namespace(second)
    assert one != other
    assert all(len(n) <= 63 and re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", n) for n in (one, other))


def test_a_configured_namespace_wins_over_the_stack_default():
    assert k8s_settings(build_spec("team-a", {**CPU_POD, "vllm:namespace": "llm"})).namespace == "llm"


def test_a_spec_error_is_a_clean_pulumi_error_without_traceback():
    assert issubclass(SpecError, pulumi.RunError)


def test_the_disk_must_hold_the_declared_model():
    error = program_refusal(PLAIN_STACK, {**MINIMAL_GCP, "vllm:modelSizeGb": "100", "vllm:diskSizeGb": "80"})
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
    assert program_refusal(PLAIN_STACK, config).key == "vllm:gpuNodeSelector"


@pytest.mark.parametrize(
    ("config", "secrets"),
    [
        ({**MINIMAL_GCP, "vllm:replicas": "0"}, None),  # build_spec
        ({**MINIMAL_GCP, "vllm:replica": "2"}, None),  # the key registry
        (MINIMAL_GCP, {"vllm:apiKey": "sk-too-short"}),  # a secret
        ({**K8S, "vllm:gpu": "L40S:1", "vllm:gpuNodeSelector": "gke"}, None),  # check_deployment
        ({**MINIMAL_GCP, "gcp:userProjectOverride": "yes"}, None),  # a provider key's type
    ],
)
def test_the_checks_refusal_tables_call_refuse_exactly_what_the_program_refuses(config, secrets):
    checked, program = spec_error(PLAIN_STACK, config, secrets), program_refusal(PLAIN_STACK, config, secrets)
    assert (checked.key, checked.value, checked.valid) == (program.key, program.value, program.valid)
