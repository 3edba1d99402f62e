"""Bad input refused before any resource, by rules built from what each key means, not from examples.

Every numeric key is finite and bounded; a key only another platform reads is refused; identifiers are
what the platform takes; messages say what was meant. ``build_spec`` is the program's own check (the
program runs it first), so these run it directly.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from typing import Any

import pytest

from components import cost_warnings, platforms
from components.autoscaling import KEYS as AUTOSCALING_KEYS
from components.config import NUMBER_MAX
from components.keys import COMMON_KEYS
from components.presets import available_presets
from components.spec import ServiceSpec, SpecError, build_spec
from tests.harness import ROOT

MODEL = "Qwen/Qwen3-8B"
MINIMAL = {
    "gcp": {"vllm:cloud": "gcp", "vllm:gpu": "L4:1", "vllm:model": MODEL},
    "aws": {"vllm:cloud": "aws", "vllm:gpu": "L4:1", "vllm:model": MODEL},
    "kubernetes": {"vllm:cloud": "kubernetes", "vllm:gpu": "L4:1", "vllm:model": MODEL},
}
#: Autoscaled, so that the autoscaling keys are read too.
AUTOSCALED = {"vllm:maxReplicas": "4", "vllm:targetQpsPerReplica": "2"}


def config(cloud: str, key: str, value: Any) -> dict[str, Any]:
    """The least ``cloud`` needs, autoscaled for an autoscaling key, with ``key`` set to ``value``."""
    scaling = AUTOSCALED if key in AUTOSCALING_KEYS else {}
    return {**MINIMAL[cloud], **scaling, f"vllm:{key}": value}


NOT_FINITE = ("nan", "NaN", "inf", "-inf", "Infinity", "1e400")
TOO_BIG = ("99999999999999999999", "2147483648")


def numbers_in(value: Any) -> list[float | int]:
    """Every number a validated spec holds, its platform settings included."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [n for field in dataclasses.fields(value) for n in numbers_in(getattr(value, field.name))]
    if isinstance(value, list | tuple):
        return [n for item in value for n in numbers_in(item)]
    if isinstance(value, dict):
        return [n for item in value.values() for n in numbers_in(item)]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [value]
    return []


def every_key() -> list[tuple[str, str]]:
    return [
        (platform.name, key)
        for platform in platforms.registered()
        for key in (*COMMON_KEYS, *platform.keys)
        if key not in ("preset", "cloud")
    ]


@pytest.mark.parametrize(("cloud", "key"), every_key())
def test_no_key_lets_a_non_finite_or_unbounded_number_into_the_spec(cloud, key):
    for text in (*NOT_FINITE, *TOO_BIG):
        try:
            spec = build_spec("bad-input", config(cloud, key, text))
        except SpecError:
            continue
        numbers = numbers_in(spec)
        assert all(math.isfinite(n) and abs(n) <= NUMBER_MAX for n in numbers), (key, text)


@pytest.mark.parametrize(
    ("cloud", "key"),
    [
        ("gcp", "targetQpsPerReplica"),
        ("kubernetes", "cpu"),
        ("kubernetes", "memoryGb"),
        ("gcp", "maxModelLen"),
        ("gcp", "modelSizeGb"),
        ("gcp", "replicas"),
        ("kubernetes", "maxSurge"),
        ("kubernetes", "downscaleDelaySeconds"),
    ],
)
@pytest.mark.parametrize("text", [*NOT_FINITE, *TOO_BIG, ".inf"])
def test_a_numeric_key_refuses_nan_inf_and_huge_values_naming_itself(cloud, key, text):
    with pytest.raises(SpecError) as caught:
        build_spec("bad-input", config(cloud, key, text))
    assert caught.value.key == f"vllm:{key}" and f"'{text}'" in str(caught.value)


@pytest.mark.parametrize("text", ["010", "0x10", "0o10", "1_000", "+0_1"])
def test_an_integer_spelled_as_yaml_tools_disagree_on_is_refused_as_written(text):
    with pytest.raises(SpecError, match="decimal digits") as caught:
        build_spec("bad-input", {**MINIMAL["gcp"], "vllm:replicas": text})
    assert f"'{text}'" in str(caught.value)


def keys_of_other_platforms() -> list[tuple[str, str, str]]:
    """(this platform, a key only another reads, that other): its vllm: keys and its provider's keys."""
    cases = []
    for platform in platforms.registered():
        for other in platforms.registered():
            if other is platform:
                continue
            cases += [
                (platform.name, f"vllm:{key}", other.name) for key in other.keys if key not in platform.keys
            ]
            cases.append((platform.name, other.provider_keys[0], other.name))
    return cases


@pytest.mark.parametrize(("cloud", "key", "reader"), keys_of_other_platforms())
def test_a_key_only_another_platform_reads_is_refused_naming_that_platform(cloud, key, reader):
    with pytest.raises(SpecError) as caught:
        build_spec("bad-input", {**MINIMAL[cloud], key: "x"})
    assert caught.value.key == key and f"vllm:cloud {reader}" in str(caught.value)


def test_a_provider_namespace_of_another_platform_is_refused_even_for_keys_the_program_never_reads():
    with pytest.raises(SpecError, match="only a stack on GCP") as caught:
        build_spec("bad-input", {**MINIMAL["aws"], "gcp:impersonateServiceAccount": "me@p.iam"})
    assert caught.value.key == "gcp:impersonateServiceAccount"


@pytest.mark.parametrize(
    "model", ["Qwen/Qwen3 8B", "Qwen/Qwén3-8B", "Qwen/Qwen3-8B/extra", "Qwen--x/y", "Qwen/Qwen3-"]
)
def test_a_model_id_the_hub_refuses_is_refused(model):
    with pytest.raises(SpecError, match="ASCII letters"):
        build_spec("bad-input", {**MINIMAL["gcp"], "vllm:model": model})


def test_a_model_id_with_a_revision_points_to_the_revision_flag():
    with pytest.raises(SpecError) as caught:
        build_spec("bad-input", {**MINIMAL["gcp"], "vllm:model": "Qwen/Qwen3-8B@main"})
    assert str(caught.value).endswith(
        'Qwen/Qwen3-8B alone, with the revision in vllm:extraArgs: ["--revision", "main"]'
    )


@pytest.mark.parametrize(
    ("key", "value"), [("domain", " llm.example.com"), ("model", "Qwen/Qwen3-8B "), ("gpu", "L4:1\t")]
)
def test_surrounding_whitespace_is_refused_not_silently_dropped(key, value):
    with pytest.raises(SpecError, match="without the surrounding whitespace") as caught:
        build_spec("bad-input", {**MINIMAL["gcp"], f"vllm:{key}": value})
    assert caught.value.key == f"vllm:{key}"


@pytest.mark.parametrize(
    ("cidr", "meant"), [("10.1.2.3/24", "10.1.2.0/24"), ("203.0.113.7/28", "203.0.113.0/28")]
)
def test_a_cidr_with_host_bits_set_says_so_and_names_the_range(cidr, meant):
    with pytest.raises(SpecError, match=f"host bits set \\(did you mean {meant}\\?\\)"):
        build_spec("bad-input", {**MINIMAL["gcp"], "vllm:allowedCidrs": [cidr]})


@pytest.mark.parametrize("cloud", [p.name for p in platforms.registered()])
def test_ipv6_ranges_are_refused_where_the_load_balancer_has_no_ipv6_address(cloud):
    instead = platforms.get(cloud).refuse_unsupported(platforms.Feature.IPV6_CLIENTS)
    config = {**MINIMAL[cloud], "vllm:allowedCidrs": ["203.0.113.0/24", "::/0"]}
    if instead is None:
        assert build_spec("bad-input", config).allowed_cidrs == ("203.0.113.0/24", "::/0")
    else:
        with pytest.raises(SpecError, match="IPv4"):
            build_spec("bad-input", config)


def test_gcps_global_address_is_ipv4_so_gcp_refuses_ipv6_ranges():
    assert platforms.get("gcp").refuse_unsupported(platforms.Feature.IPV6_CLIENTS) is not None


def test_a_stack_without_a_preset_or_a_cloud_says_no_preset_has_its_name_and_lists_them():
    with pytest.raises(SpecError) as caught:
        build_spec("gcp-h200", {})
    message = str(caught.value)
    assert "no preset is named 'gcp-h200'" in message
    assert all(preset in message for preset in available_presets())


# --- legal but costly -----------------------------------------------------------------------------------


def warnings_of(spec: ServiceSpec, weights_gb: int | None = None) -> list[str]:
    said: list[str] = []
    cost_warnings.warn_costly(spec, weights_gb, said.append)
    return said


def test_a_preset_at_its_own_size_warns_of_nothing():
    for preset in available_presets():
        assert warnings_of(build_spec(preset, {})) == [], preset


@pytest.mark.parametrize(
    "config",
    [
        {"vllm:preset": "gcp-h100", "vllm:replicas": "1000"},
        {
            "vllm:preset": "aws-h100",
            "vllm:replicas": "unset",
            "vllm:maxReplicas": "1000",
            "vllm:targetQpsPerReplica": "1",
        },
    ],
)
def test_a_top_cost_beyond_any_presets_is_warned_with_its_figure(config):
    said = warnings_of(build_spec("costly", config))
    assert len(said) == 1 and "cost up to $" in said[0] and "/h" in said[0]


def test_a_model_far_smaller_than_its_replicas_gpu_memory_is_warned():
    spec = build_spec(
        "costly", {"vllm:preset": "gcp-h100", "vllm:model": "Qwen/Qwen3-0.6B", "vllm:replicas": "1"}
    )
    (said,) = warnings_of(spec, weights_gb=2)
    assert "2 GB of weights" in said and "640 GB of GPU memory" in said


def test_spot_on_a_machine_without_a_spot_price_is_warned():
    spec = build_spec("costly", {"vllm:preset": "gcp-h100", "vllm:spot": "true", "vllm:replicas": "1"})
    unpriced = dataclasses.replace(
        spec.offering, spot_hourly=None, region_prices={}, price_region=spec.region
    )
    (said,) = warnings_of(dataclasses.replace(spec, offering=unpriced))
    assert "no spot price" in said and spec.region in said


@pytest.mark.parametrize("family", ["common-cu129-ubuntu-2204-nvidia-580", "ubuntu-2204-lts"])
def test_a_boot_image_family_name_is_refused_with_how_to_find_its_dated_image(family):
    with pytest.raises(SpecError) as caught:
        build_spec("bad-input", {**MINIMAL["gcp"], "vllm:bootImage": family})
    assert caught.value.key == "vllm:bootImage" and f"describe-from-family {family}" in str(caught.value)


def test_a_namespace_over_63_characters_says_63():
    with pytest.raises(SpecError, match="at most 63"):
        build_spec("bad-input", {**MINIMAL["kubernetes"], "vllm:namespace": "a" * 64})


# --- set-up that works as written -----------------------------------------------------------------------


def test_the_readmes_development_setup_installs_what_ci_installs():
    readme = (ROOT / "README.md").read_text()
    development = readme[readme.index("## Development") :]
    assert "pip install -r requirements-dev.txt -r requirements-tools.txt" in development
    assert "-r requirements-tools.txt" in (ROOT / ".ci" / "run").read_text()


def test_the_installed_requirements_are_consistent():
    # pulumi-policy pins protobuf~=5.29.5; the Google clients of requirements-tools.txt accept 6.x.
    checked = subprocess.run(
        [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


# --- no traceback, whatever the value ---------------------------------------------------------------------

#: Values of every shape a stack file or `pulumi config set` can hand over, for keys of every type.
ODD_VALUES = (
    "nan",
    "-1",
    "0",
    "1e400",
    "99999999999999999999",
    "true",
    "none",
    "unset",
    " ",
    "[]",
    "{}",
    '{"a": 1}',
    "[1, 2]",
    '["", " "]',
    "[null]",
    "x" * 300,
    "é",
    "a\nb",
    "../..",
)


@pytest.mark.parametrize(("cloud", "key"), every_key())
def test_any_value_of_any_key_is_accepted_or_refused_in_one_line_never_a_crash(cloud, key):
    for text in ODD_VALUES:
        try:
            build_spec("bad-input", config(cloud, key, text))
        except SpecError as error:
            assert "\n" not in error.valid, (key, text)


def test_a_value_is_quoted_as_written_in_its_message():
    with pytest.raises(SpecError) as caught:
        build_spec("bad-input", config("kubernetes", "upscaleDelaySeconds", "5:00"))
    assert "invalid value '5:00'" in str(caught.value)
