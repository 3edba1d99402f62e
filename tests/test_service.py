"""What every stack shares, whatever its platform: explicit providers, one component tree, the outputs."""

import subprocess
import sys

import pytest

from components.presets import available_presets
from tests.harness import ROOT, Run, run_program

SECRETS = {"vllm:hfToken": "hf_servicetesttoken0123456789", "vllm:apiKey": "sk-service-test-key"}


@pytest.fixture(scope="module", params=available_presets())
def preset_run(request) -> Run:
    return run_program(request.param)


def test_every_resource_uses_an_explicit_provider(preset_run):
    # Pulumi.yaml sets pulumi:disable-default-providers: a resource without one would fail `pulumi up`.
    providers = {r.urn for r in preset_run.resources if r.type.startswith("pulumi:providers:")}
    for resource in preset_run.resources:
        if resource.custom and not resource.type.startswith("pulumi:providers:"):
            assert resource.provider.rsplit("::", 1)[0] in providers, resource.type


def test_every_resource_sits_under_the_one_vllm_service(preset_run):
    (service,) = preset_run.of_type("vllm:index:VllmService")
    for resource in preset_run.resources:
        if resource is not service:
            assert service in preset_run.ancestors(resource), resource.type


def test_the_outputs_are_the_public_interface(preset_run):
    assert {"endpoint", "apiKey", "model", "spec"} <= preset_run.outputs.keys()


def test_a_given_api_key_is_used_instead_of_a_generated_one():
    run = run_program("k8s-l4", secrets=SECRETS)
    assert not run.of_type("random:index/randomPassword:RandomPassword")


@pytest.mark.parametrize(
    ("stack", "foreign"),
    [
        ("gcp-h100", ("pulumi_aws", "pulumi_kubernetes")),
        ("aws-h100", ("pulumi_gcp", "pulumi_kubernetes")),
        ("k8s-l4", ("pulumi_gcp", "pulumi_aws")),
    ],
)
def test_a_stack_loads_only_its_own_platforms_sdk(stack, foreign):
    probe = (
        f"import sys; from tests.harness import run_program; run_program({stack!r}); "
        f"print(sorted({{m.split('.')[0] for m in sys.modules if m.startswith({foreign!r})}}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
