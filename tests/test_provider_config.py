"""Stack config reaches the explicit providers: every ``gcp:*``, ``aws:*`` and ``kubernetes:*`` key of the
provider's schema that a stack sets is found on each of its providers.

Pulumi passes a provider namespace's stack config to default providers only, never to an explicit one
(pulumi/pulumi#12176; pulumi/pulumi-aws#3259, closed by design), and Pulumi.yaml disables the default
providers: without components/provider_config.py, ``gcp:credentials``, ``aws:profile``,
``kubernetes:kubeconfig``... would be accepted and silently ignored.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from components import platforms
from components.provider_config import provider_config_keys, provider_parameters
from components.spec import SpecError
from tests.harness import Run, run_program

SECRETS = {"vllm:hfToken": "hf_testtoken123"}
#: A preset of each platform, run once with every key of its provider set.
PRESETS = {"gcp": "gcp-h100", "aws": "aws-h100", "kubernetes": "k8s-l4"}
SECRET_SIGNATURE = "4dabf18193072939515e22adb298388d"


def sample(key: str, scalar: type | None) -> Any:
    """A value of the provider's type for ``key``: text, a flag, a number, or (for lists, maps and
    objects) a JSON object, which the provider receives as it is."""
    if scalar is str:
        return f"test-{key}"
    if scalar is bool:
        return True
    if scalar in (int, float):
        return 3
    return {"sample": key}


def passed_keys(platform: platforms.Platform) -> dict[str, Any]:
    """Every key the provider's schema defines (the spec's registry, as the SDK's Provider takes it) but
    those the program sets itself from the spec, with a sample value."""
    registry = provider_config_keys(platform.provider_sdk) or frozenset()
    return {
        f"{platform.provider_namespace}:{key}": sample(key, scalar)
        for key, (_, scalar) in provider_parameters(platform.provider_sdk).items()
        if key in registry and f"{platform.provider_namespace}:{key}" not in platform.provider_keys
    }


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    return {
        name: run_program(preset, passed_keys(platforms.get(name)), secrets=SECRETS)
        for name, preset in PRESETS.items()
    }


def received(value: Any) -> Any:
    """A provider input as it was meant: the SDK sends non-text values as JSON text, and keys its schema
    marks secret (gcp:accessToken, aws:secretKey...) as secrets."""
    if isinstance(value, dict) and SECRET_SIGNATURE in value:
        value = value["value"]
    try:
        return json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return value


@pytest.mark.parametrize("name", PRESETS)
def test_every_provider_key_the_stack_sets_is_on_each_of_its_providers(runs, name):
    platform = platforms.get(name)
    providers = runs[name].of_type(f"pulumi:providers:{platform.provider_namespace}")
    assert providers
    keys = passed_keys(platform)
    assert len(keys) > 10  # the SDK's whole schema, not a hand-picked few
    for provider in providers:
        missing = [
            key
            for key, value in keys.items()
            if received(provider.inputs.get(key.partition(":")[2])) not in (value, str(value))
            and not _merged(provider, key, value)
        ]
        assert not missing, f"{provider.name} lacks {missing}"


def _merged(provider, key: str, value: Any) -> bool:
    """aws:defaultTags joins the stack's own tags rather than replacing them."""
    got = received(provider.inputs.get(key.partition(":")[2]))
    return isinstance(got, dict) and isinstance(value, dict) and value.items() <= got.items()


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("gcp", "gcp:impersonateServiceAccount"),
        ("aws", "aws:profile"),
        ("kubernetes", "kubernetes:kubeconfig"),
    ],
)
def test_the_keys_users_set_most_are_among_them(name, key):
    assert key in passed_keys(platforms.get(name))


def test_aws_default_tags_join_the_stacks_own_tags():
    run = run_program("aws-h100", {"aws:defaultTags": {"tags": {"team": "ml"}}}, secrets=SECRETS)
    (provider,) = run.of_type("pulumi:providers:aws")
    tags = json.loads(provider.inputs["defaultTags"])["tags"]
    assert tags["team"] == "ml" and len(tags) > 1


def test_a_secret_provider_key_stays_secret_on_the_provider():
    run = run_program("gcp-h100", secrets={**SECRETS, "gcp:credentials": '{"type": "service_account"}'})
    for provider in run.of_type("pulumi:providers:gcp"):
        credentials = provider.inputs["credentials"]
        assert SECRET_SIGNATURE in credentials and credentials["value"] == '{"type": "service_account"}'


def test_a_value_not_of_the_providers_type_is_refused_before_any_resource():
    with pytest.raises(SpecError) as raised:
        run_program("gcp-h100", {"gcp:userProjectOverride": "yes"}, secrets=SECRETS)
    assert raised.value.key == "gcp:userProjectOverride" and "true or false" in raised.value.valid
    assert raised.value.declared_resources == []
