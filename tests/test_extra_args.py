"""vllm:extraArgs: read as the pinned vLLM's `vllm serve` reads them; refused where it or the spec would."""

import json
import re

import pytest

from components.extra_args import (
    FLAGS_FILE,
    MANAGED_FLAGS,
    NOT_SECRET_FLAGS,
    SECRET_FLAGS,
    SERVING_FLAGS,
    load_flags,
)
from components.images import DEFAULT_IMAGE
from components.spec import SpecError, build_spec
from tests.test_spec import MINIMAL_GCP, PLAIN_STACK, program_refusal

OTHER_VERSION_IMAGE = "vllm/vllm-openai:v0.34.0"


def with_args(*args: str, image: str = DEFAULT_IMAGE) -> tuple[str, ...]:
    """The spec's extraArgs for these arguments; raises SpecError as the program would."""
    config = {**MINIMAL_GCP, "vllm:extraArgs": json.dumps(list(args)), "vllm:image": image}
    return build_spec(PLAIN_STACK, config).extra_args


def refusal(*args: str, image: str = DEFAULT_IMAGE) -> SpecError:
    with pytest.raises(SpecError) as caught:
        with_args(*args, image=image)
    assert caught.value.key == "vllm:extraArgs"
    assert "\n" not in str(caught.value)
    return caught.value


# The flag list


def test_the_flag_list_is_of_the_vllm_version_the_default_image_runs():
    tag = DEFAULT_IMAGE.rsplit(":", 1)[1]
    assert tag == f"v{load_flags().vllm_version}"


def test_the_flag_list_names_its_generator_and_vllms_own_flags():
    data = json.loads(FLAGS_FILE.read_text())
    assert data["generated_by"].startswith("tools/vllm_flags.py")
    options = {o for flag in data["flags"] for o in flag["options"]}
    assert {"--enable-prefix-caching", "--gpu-memory-utilization", "--hf-token", "-tp"} <= options
    assert len(data["flags"]) > 200


def test_every_flag_named_like_a_secret_has_been_reviewed_by_hand():
    # A new vLLM release with a new --*token*/--*key* flag fails here until someone decides what it is.
    reviewed = set(SECRET_FLAGS) | set(NOT_SECRET_FLAGS)
    assert set(load_flags().secret_name_candidates) == reviewed


def test_managed_and_secret_flags_are_flags_of_the_pinned_vllm():
    options = load_flags().by_option
    for flag in (*MANAGED_FLAGS, *SECRET_FLAGS, *SERVING_FLAGS):
        assert options[flag].name == flag


@pytest.mark.parametrize(
    ("flag", "bounds"),
    [
        ("--gpu-memory-utilization", {"gt": 0, "le": 1}),
        ("--max-num-seqs", {"ge": 1}),
        ("--max-num-batched-tokens", {"ge": 1}),
        ("--block-size", {"gt": 0}),
        ("--cpu-offload-gb", {"ge": 0}),
    ],
)
def test_ranges_are_vllms_own_config_bounds_with_their_source(flag, bounds):
    recorded = dict(load_flags().by_option[flag].range)
    assert re.fullmatch(r"vllm/config/\w+\.py:\d+ \w+Config\.\w+", recorded.pop("source"))
    assert recorded == bounds


# Accepted spellings


def test_known_flags_pass_through_unchanged():
    args = ("--enable-prefix-caching", "--gpu-memory-utilization", "0.85", "--max-num-seqs=128")
    assert with_args(*args) == args


def test_underscores_in_a_flag_name_read_as_dashes():
    assert with_args("--gpu_memory_utilization=0.9", "--enable_prefix_caching")


def test_boolean_flags_accept_their_no_and_disable_forms():
    assert with_args("--no-enable-prefix-caching", "--disable-log-stats", "--no-enforce-eager")


def test_short_aliases_take_their_value_next_or_after_equals():
    assert with_args("-q", "awq", "-dp=2")


def test_optimization_level_short_forms_are_accepted():
    assert with_args("-O3", "-O=2", "-O", "1")


def test_list_valued_flags_take_the_items_up_to_the_next_flag():
    assert with_args("--lora-modules", "a=/loras/a", "b=/loras/b", "--enable-lora")


def test_lora_modules_take_name_equals_path_or_a_json_object():
    assert with_args("--lora-modules", "a=/loras/a", '{"name": "b", "path": "/loras/b"}')


def test_a_lora_module_that_is_neither_name_equals_path_nor_json_is_refused():
    assert "name=path or a JSON object with name, path" in str(refusal("--lora-modules", "/loras/a"))


def test_json_flags_take_a_json_object_or_dotted_keys():
    assert with_args("--compilation-config", '{"mode": 3}', "--speculative-config.method", "ngram")


def test_size_suffixes_are_read_as_vllm_reads_them():
    assert with_args("--max-num-batched-tokens", "8k")


def test_choices_are_compared_after_vllms_own_normalisation():
    assert with_args("--moe-backend", "FLASHINFER-CUTLASS")


def test_none_unsets_an_optional_flag():
    assert with_args("--quantization", "None")


# Refused: unknown flags and malformed uses


def test_an_unknown_flag_is_refused_with_the_closest_flag_suggested():
    error = refusal("--enable-prefix-cachng")
    assert "--enable-prefix-cachng" in str(error)
    assert "did you mean --enable-prefix-caching?" in str(error)


def test_an_abbreviation_argparse_would_accept_is_refused_with_the_full_name():
    assert "did you mean --enable-prefix-caching?" in str(refusal("--enable-prefix"))


def test_a_short_alias_glued_to_its_value_is_refused_with_the_spaced_form():
    assert "did you mean -q awq?" in str(refusal("-qawq"))


def test_a_flag_removed_from_the_pinned_vllm_is_refused():
    assert "a vllm serve flag of vLLM 0.33.0" in str(refusal("--swap-space", "4"))


def test_an_unknown_flag_never_echoes_its_value():
    error = refusal("--hf-tokn=hf_abcdef")
    assert "hf_abcdef" not in str(error)


def test_a_value_without_a_flag_is_refused():
    assert "a value follows the flag it sets" in str(refusal("--enforce-eager", "stray"))


def test_a_flag_that_needs_a_value_but_has_none_is_refused():
    error = refusal("--max-num-seqs", "--enforce-eager")
    assert error.value == "--max-num-seqs"
    assert "followed by its value" in str(error)


def test_a_list_flag_without_items_is_refused():
    assert "one or more values" in str(refusal("--lora-modules"))


def test_a_boolean_flag_given_a_value_is_refused():
    error = refusal("--enforce-eager=true")
    assert "takes no value (or --no-enforce-eager)" in str(error)


def test_a_value_outside_the_choices_is_refused_with_the_choices():
    error = refusal("--max-lora-rank", "7")
    assert error.value == "--max-lora-rank=7"
    assert "one of 1, 8, 16" in str(error)


def test_a_non_integer_for_an_integer_flag_is_refused():
    assert "an integer for --max-num-seqs" in str(refusal("--max-num-seqs", "many"))


def test_a_binary_size_suffix_with_decimals_is_refused_as_vllm_does():
    assert "an integer for --max-num-batched-tokens" in str(refusal("--max-num-batched-tokens", "1.5K"))


def test_a_non_number_for_a_float_flag_is_refused():
    assert "a number for --gpu-memory-utilization" in str(refusal("--gpu-memory-utilization", "nan"))


def test_invalid_json_for_a_json_flag_is_refused():
    assert "JSON for --compilation-config" in str(refusal("--compilation-config", "{mode: 3}"))


def test_a_json_config_that_is_not_an_object_is_refused():
    assert "a JSON object for --compilation-config" in str(refusal("--compilation-config", "[3]"))


def test_an_unknown_field_of_a_json_config_is_refused_with_the_closest_field():
    error = refusal("--compilation-config", '{"mdoe": 3}')
    assert "a field of --compilation-config; did you mean mode?" in str(error)


def test_an_unknown_dotted_field_of_a_json_config_is_refused():
    assert "did you mean mode?" in str(refusal("--compilation-config.mdoe", "3"))


def test_dotted_keys_on_a_flag_that_is_not_json_are_refused():
    assert "is not a JSON-valued flag" in str(refusal("--max-num-seqs.x", "1"))


# Refused: values outside vLLM's ranges


@pytest.mark.parametrize("value", ["0", "1.01", "-0.5"])
def test_gpu_memory_utilization_must_be_above_0_and_at_most_1(value):
    error = refusal(f"--gpu-memory-utilization={value}")
    assert "a number > 0 and <= 1" in str(error)
    assert "vllm/config/cache.py" in str(error)


def test_gpu_memory_utilization_of_exactly_1_is_accepted():
    assert with_args("--gpu-memory-utilization", "1")


def test_max_num_seqs_must_be_at_least_1():
    assert "a number >= 1 for --max-num-seqs" in str(refusal("--max-num-seqs", "0"))


def test_max_num_batched_tokens_must_be_at_least_1():
    assert "a number >= 1 for --max-num-batched-tokens" in str(refusal("--max-num-batched-tokens=0"))


def test_ranges_apply_to_every_spelling_of_a_flag():
    assert "a number > 0 and <= 1" in str(refusal("--device_memory_utilization", "2"))


# Refused: secrets and flags the spec owns


@pytest.mark.parametrize(
    "args",
    [
        ("--hf-token", "hf_secretvalue"),
        ("--hf-token=hf_secretvalue",),
        ("--hf_token", "hf_secretvalue"),
        ("--hf_token=hf_secretvalue",),
        ("--api-key", "hf_secretvalue"),
        ("--api_key=hf_secretvalue",),
    ],
)
def test_secret_flags_are_refused_in_any_spelling_without_echoing_the_secret(args):
    error = refusal(*args)
    assert "hf_secretvalue" not in str(error)
    assert error.value.endswith("=<redacted>")
    assert "vllm:hfToken / vllm:apiKey as secrets" in str(error)


def test_a_bare_hf_token_flag_is_refused_too():
    assert refusal("--hf-token").value == "--hf-token"


@pytest.mark.parametrize(
    "args", [("--port", "9000"), ("--port=9000",), ("--served_model_name", "x"), ("-tp", "2"), ("-pp=2",)]
)
def test_flags_the_spec_owns_are_refused_in_any_spelling(args):
    error = refusal(*args)
    assert error.value == args[0]
    assert "flags other than --host, --port" in str(error)


def test_a_refused_short_alias_is_named_with_its_full_flag():
    assert "-tp is --tensor-parallel-size" in str(refusal("-tp", "2"))


@pytest.mark.parametrize("flag", ["--uds", "--headless", "--grpc", "--config", "--help", "-h"])
def test_flags_that_take_vllm_off_its_http_port_or_past_these_checks_are_refused(flag):
    args = (flag, "/tmp/x") if flag in ("--uds", "--config") else (flag,)
    assert refusal(*args).value == flag


# Images of another vLLM version


def test_another_vllm_version_may_use_flags_the_pinned_one_lacks():
    assert with_args("--a-flag-of-a-later-release", image=OTHER_VERSION_IMAGE)


def test_another_vllm_version_still_refuses_secret_flags_without_echoing_them():
    error = refusal("--api_key=sk-secretvalue", image=OTHER_VERSION_IMAGE)
    assert error.value == "--api_key=<redacted>"


def test_another_vllm_version_refuses_abbreviations_of_secret_flags():
    assert refusal("--hf-tok", "hf_secretvalue", image=OTHER_VERSION_IMAGE).value == "--hf-tok=<redacted>"


def test_another_vllm_version_refuses_short_aliases_of_flags_the_spec_owns():
    assert refusal("-tp", "4", image=OTHER_VERSION_IMAGE).value == "-tp"


def test_a_tag_with_a_suffix_of_the_pinned_version_gets_the_full_check():
    assert "did you mean" in str(refusal("--enable-prefix-cachng", image="vllm/vllm-openai:v0.33.0-cu130"))


# Through the real program


def test_a_bad_flag_stops_the_program_before_any_resource():
    error = program_refusal(PLAIN_STACK, {**MINIMAL_GCP, "vllm:extraArgs": '["--max-num-seqs", "0"]'})
    assert error.key == "vllm:extraArgs"
