"""The policy pack as Pulumi runs it: ``python -m pulumi.policy <engine> <pack dir>`` from policy/, in a venv
of policy/requirements.txt only, serving CrossGuard's Analyzer over gRPC. And the contract each platform's
``components/<platform>/policy.py`` fulfils (policy/validators.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from components import platforms
from policy import validators
from tests.harness import ROOT

pytestmark = pytest.mark.timeout(120)

PACK = ROOT / "policy"
CLOUD_SDKS = ("pulumi_gcp", "pulumi_aws", "pulumi_kubernetes")
POLICY_NAMES = [
    "secrets-only-in-secret-store",
    "no-ray-or-ssh-on-the-internet",
    "load-balancer-serves-only-openai-paths",
    "weight-cache-buckets-private",
    "aws-elb-names-aws-accepts",
    "aws-ec2-descriptions-aws-accepts",
    "aws-health-check-timeout-below-interval",
    "gcp-names-gcp-accepts",
    "gpu-vms-autoheal",
    "autoscaled-gpu-budget",
    "https-tls-1-2-or-later",
    "endpoint-serves-https",
    "aws-mixed-instances-template-asks-no-market",
]
#: Policies that only warn: a stack may stay on plain HTTP by choice.
ADVISORY = {"endpoint-serves-https"}

#: Loads the pack as pulumi/policy/__main__.py does (runpy.run_path of the pack directory) with a PolicyPack
#: that records its policies instead of serving them, runs every policy once over every resource type a
#: platform scans, and prints the policies' names and every module the process imported, with its file.
LOAD_AND_RUN_EVERY_POLICY = """
import json, runpy, sys, types
import pulumi_policy

pack = {}
pulumi_policy.PolicyPack = lambda **kwargs: pack.update(kwargs)
runpy.run_path(sys.argv[1], run_name="__main__")
validators = sys.modules["policy.validators"]
scanners = [scans for module in validators.platform_modules() for scans in module.SCANNERS.values()]
kinds = sorted({kind for scans in scanners for kind in scans})
for policy in pack["policies"]:
    if isinstance(policy, pulumi_policy.StackValidationPolicy):
        policy.validate(types.SimpleNamespace(resources=[], get_config=dict), print)
    else:
        for kind in kinds:
            policy.validate(types.SimpleNamespace(resource_type=kind, props={}), print)
modules = {name: getattr(module, "__file__", None) for name, module in sys.modules.items()}
print(json.dumps({"policies": [p.name for p in pack["policies"]], "modules": modules}))
"""


def pack_environment() -> dict[str, str]:
    """The environment Pulumi gives the pack: nothing of the test run's own sys.path."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}


@pytest.fixture(scope="module")
def loaded_pack() -> dict:
    result = subprocess.run(
        [sys.executable, "-c", LOAD_AND_RUN_EVERY_POLICY, str(PACK)],
        cwd=PACK,
        env=pack_environment(),
        capture_output=True,
        text=True,
        timeout=100,
        check=True,
    )
    return json.loads(result.stdout.splitlines()[-1])


def test_the_pack_declares_every_policy_under_its_name(loaded_pack):
    assert loaded_pack["policies"] == POLICY_NAMES


def test_running_every_policy_imports_no_cloud_sdk(loaded_pack):
    imported = {name.split(".")[0] for name in loaded_pack["modules"]}
    assert imported.isdisjoint(CLOUD_SDKS)
    assert {"components.platforms", "policy.validators"} <= set(loaded_pack["modules"])


def test_the_pack_loads_one_validators_module(loaded_pack):
    # the platforms' policy.py compare against policy.validators.UNKNOWN: a second copy would not match it
    assert "validators" not in loaded_pack["modules"]


def requirements_closure(requirements: Path) -> set[str]:
    """The distributions ``pip install -r requirements`` installs: those listed and their dependencies."""
    pending = [
        Requirement(line).name
        for line in requirements.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    found: set[str] = set()
    while pending:
        name = canonicalize_name(pending.pop())
        if name in found:
            continue
        found.add(name)
        for text in metadata.requires(name) or ():
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return found


#: Imported only when present, in `try: import ... except ImportError`: urllib3/util/request.py (brotli),
#: requests/compat.py (simplejson), opentelemetry/sdk/resources/__init__.py (psutil, under pulumi). The test
#: run's venv has them through requirements-tools.txt (aiperf's dependencies); the pack's own venv does not.
OPTIONAL_IMPORTS = {"brotli", "simplejson", "psutil"}


def owned(dist: metadata.Distribution) -> set[str]:
    """The real paths of a distribution's files: its folder resolved once (the venv may be a link), each
    file's path normalised under it (the cloud SDKs have tens of thousands of files each)."""
    root = Path(dist.locate_file("")).resolve()
    return {os.path.normpath(root / file) for file in dist.files or ()}


def test_what_the_pack_imports_is_installed_by_its_requirements(loaded_pack):
    files = {str(Path(file).resolve()) for file in loaded_pack["modules"].values() if file}
    needed = {
        canonicalize_name(dist.metadata["Name"]) for dist in metadata.distributions() if files & owned(dist)
    }
    assert needed - requirements_closure(PACK / "requirements.txt") - OPTIONAL_IMPORTS == set()


# --- As Pulumi serves it --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    """The pack served by Pulumi's own entry point; it prints the port it listens on."""
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", str(PACK)],
        cwd=PACK,
        env=pack_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()  # blocks until the pack serves, or exits
        assert port.isdigit(), process.stderr.read() if process.stderr else port
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_pulumi_serves_every_policy_as_mandatory_but_the_advisory(analyzer):
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert [policy.name for policy in info.policies] == POLICY_NAMES
    for policy in info.policies:
        expected = analyzer_pb2.ADVISORY if policy.name in ADVISORY else analyzer_pb2.MANDATORY
        assert policy.enforcementLevel == expected, policy.name


def analyze(analyzer: analyzer_pb2_grpc.AnalyzerStub, resource_type: str, props: dict) -> list[str]:
    """Each violation as ``policy: message`` (a diagnostic's message is the description, then the message)."""
    properties = struct_pb2.Struct()
    properties.update(props)
    request = analyzer_pb2.AnalyzeRequest(
        type=resource_type, properties=properties, urn=f"urn:pulumi:s::p::{resource_type}::r", name="r"
    )
    return [
        f"{d.policyName}: {d.message.splitlines()[-1]}"
        for d in analyzer.Analyze(request, timeout=60).diagnostics
    ]


def test_pulumi_reports_a_platforms_violation_through_the_registry(analyzer):
    firewall = {
        "direction": "INGRESS",
        "sourceRanges": ["0.0.0.0/0"],
        "allows": [{"protocol": "tcp", "ports": ["22"]}],
    }
    assert analyze(analyzer, "gcp:compute/firewall:Firewall", firewall) == [
        "no-ray-or-ssh-on-the-internet: firewall opens port 22 to 0.0.0.0/0, reaching SSH (22): only the "
        "load balancer faces the internet"
    ]


def test_pulumi_reports_a_platforms_own_policy(analyzer):
    assert analyze(analyzer, "aws:lb/loadBalancer:LoadBalancer", {"name": "internal-vllm"}) == [
        "aws-elb-names-aws-accepts: load balancer name 'internal-vllm' may not start with 'internal-'"
    ]


def stack_resource(resource_type: str, name: str, props: dict, **dependencies: str):
    properties = struct_pb2.Struct()
    properties.update(props)
    return analyzer_pb2.AnalyzerResource(
        type=resource_type,
        urn=f"urn:pulumi:s::p::{resource_type}::{name}",
        name=name,
        properties=properties,
        propertyDependencies={
            prop: analyzer_pb2.AnalyzerPropertyDependencies(urns=[urn]) for prop, urn in dependencies.items()
        },
    )


def test_pulumi_reports_a_platforms_own_stack_policy(analyzer):
    template = stack_resource(
        "aws:ec2/launchTemplate:LaunchTemplate", "t", {"instanceMarketOptions": {"marketType": "spot"}}
    )
    group = stack_resource(
        "aws:autoscaling/group:Group",
        "g",
        {"mixedInstancesPolicy": {"launchTemplate": {"launchTemplateSpecification": {}}}},
        mixedInstancesPolicy=template.urn,
    )
    response = analyzer.AnalyzeStack(
        analyzer_pb2.AnalyzeStackRequest(resources=[template, group]), timeout=60
    )
    assert [(d.policyName, d.urn) for d in response.diagnostics] == [
        ("aws-mixed-instances-template-asks-no-market", template.urn)
    ]


def test_pulumi_describes_a_shared_policy_with_every_platforms_part(analyzer):
    descriptions = {
        policy.name: policy.description for policy in analyzer.GetAnalyzerInfo(empty_pb2.Empty()).policies
    }
    parts = [
        (policy, part)
        for platform in platforms.registered()
        for policy, part in platform.module("policy").DESCRIPTIONS.items()
    ]
    assert {policy for policy, _ in parts} == {
        "weight-cache-buckets-private",
        "https-tls-1-2-or-later",
        "gpu-vms-autoheal",
    }
    for policy, part in parts:
        assert part in descriptions[policy], policy


# --- The contract of components/<platform>/policy.py --------------------------------------------------------

PLATFORMS = {platform.name: platform for platform in platforms.registered()}


@pytest.mark.parametrize("name", PLATFORMS)
def test_every_platform_has_a_policy_module_fulfilling_the_contract(name):
    module = PLATFORMS[name].module("policy")
    assert set(module.SCANNERS) <= set(validators.SHARED_POLICIES)
    assert set(module.DESCRIPTIONS) <= {*validators.SHARED_POLICIES, validators.AUTOHEALING_POLICY}
    assert all(isinstance(policy, validators.PlatformPolicy) for policy in module.POLICIES)
    assert all(isinstance(policy, validators.PlatformStackPolicy) for policy in module.STACK_POLICIES)
    assert module.AUTOHEALING is None or isinstance(module.AUTOHEALING, validators.Autohealing)
    assert module.PUBLIC_HTTP is None or callable(module.PUBLIC_HTTP)
    assert all(callable(bound) for bound in module.GPU_BUDGET.values())
    assert all(callable(bound) for bound in module.FIXED_GPUS.values())
    assert module.SECRET_REFERENCE is None or isinstance(module.SECRET_REFERENCE, re.Pattern)


@pytest.mark.parametrize("name", PLATFORMS)
def test_a_platform_scans_only_its_own_resource_types(name):
    platform = PLATFORMS[name]
    module = platform.module("policy")
    kinds = (
        {kind for scanners in module.SCANNERS.values() for kind in scanners}
        | set(module.GPU_BUDGET)
        | set(module.FIXED_GPUS)
    )
    if module.AUTOHEALING is not None:
        kinds |= {module.AUTOHEALING.template, *module.AUTOHEALING.groups, *module.AUTOHEALING.vms}
    assert {kind.split(":")[0] for kind in kinds} <= {platform.provider_namespace}


def test_policy_names_are_unique_across_platforms():
    names = [
        *validators.SHARED_POLICIES,
        validators.AUTOHEALING_POLICY,
        *(policy.name for policy in validators.platform_policies()),
        *(policy.name for policy in validators.platform_stack_policies()),
    ]
    assert len(names) == len(set(names))
