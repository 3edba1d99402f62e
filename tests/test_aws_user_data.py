"""AWS user data: the largest variants the program renders, every feature that adds to a machine's boot
script at once, for each role, stay under EC2's 16 KB with room to spare, so that the next addition to the
boot script or to a script it ships fails here rather than at a user's ``pulumi up`` (machines.user_data's
ValueError)."""

from __future__ import annotations

import base64
import gzip

import pytest

from components import vm
from components.aws import machines
from tests.harness import Run, run_program

#: Room kept under EC2's limit in the largest variants. An addition to what machines run costs ~50-600
#: bytes compressed (a metric, an image pull beside the copy, a reporting path); the margin takes a couple
#: of them before anyone must win bytes back, and a stack's own values beyond the variants' (a longer model
#: id, more vllm:extraArgs) still fit.
MARGIN_BYTES = 1024
#: A stack name whose ``spec.name`` is at its 40-character cap (a hash replaces the rest): it is in the
#: secrets' names, the log group, the metrics namespace, the target group and the head's address.
LONG_STACK = "production-inference-kimi-k2-us-east-1-blue"
#: A pinned commit, as the Hub resolves every revision to one: in the weights' path, vLLM's argv and the
#: weight cache's settings (a run without the Hub would key the cache by the short name "main").
REVISION = ["--revision", "0123456789abcdef0123456789abcdef01234567"]
#: What every variant turns on: streamed weights (the weight cache and its settings; a single-node
#: replica's stream URL and compile cache), HTTPS, a canary revision (another slot's longer names), the
#: HF token's secret, a served model name.
EVERYTHING = {
    "vllm:weightCache": "stream",
    "vllm:domain": "llm.example.com",
    "vllm:dnsZone": "Z0123456789ABCDEFGHIJ",
    "vllm:servedModelName": "served-model",
    "vllm:canary": {"weight": 10, "image": "vllm/vllm-openai:v0.99.0"},
}
SECRETS = {"vllm:hfToken": "hf_testtoken123", "vllm:apiKey": "sk-test-key-4567890"}
#: Spot (a spot machine's agent drains its target group) or a reservation, which exclude each other, for a
#: Ray replica (head and worker) and an autoscaled single-node replica.
VARIANTS = {
    "multi-node-spot": {
        "vllm:preset": "aws-h200-multinode",
        "vllm:spot": True,
        "vllm:extraArgs": ["--trust-remote-code", *REVISION],
    },
    "multi-node-reservation": {
        "vllm:preset": "aws-h200-multinode",
        "vllm:reservation": "cr-0123456789abcdef0",
        "vllm:reservationZone": "us-east-1c",
        "vllm:extraArgs": ["--trust-remote-code", *REVISION],
    },
    "single-node-spot-autoscaled": {
        "vllm:preset": "aws-h100",
        "vllm:spot": True,
        "vllm:minReplicas": 1,
        "vllm:maxReplicas": 4,
        "vllm:targetQpsPerReplica": 5,
        "vllm:extraArgs": REVISION,
    },
    "single-node-reservation": {
        "vllm:preset": "aws-h100",
        "vllm:reservation": "cr-0123456789abcdef0",
        "vllm:reservationZone": "us-east-1c",
        "vllm:extraArgs": REVISION,
    },
}
#: Every script a machine of each role may carry (vm.bootstrap_script): the variants carry them all.
ROLE_SCRIPTS = {
    "serve": {"health_agent.py", "metrics_agent.py", "weight_cache.sh", "local_nvme.sh", "compile_cache.sh"},
    "ray-head": {
        "health_agent.py",
        "metrics_agent.py",
        "ray_bootstrap.sh",
        "weight_cache.sh",
        "local_nvme.sh",
    },
    "ray-worker": {"health_agent.py", "ray_bootstrap.sh", "weight_cache.sh", "local_nvme.sh"},
}
TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    return {
        name: run_program(LONG_STACK, config={**EVERYTHING, **config}, secrets=SECRETS)
        for name, config in VARIANTS.items()
    }


def user_data(template) -> bytes:
    return base64.b64decode(template.inputs["userData"])


def role(template) -> str:
    return template.inputs["tags"]["vllm:role"]


def test_the_largest_variants_leave_the_margin_under_ec2s_limit(runs):
    sizes = {
        template.name: len(user_data(template)) for run in runs.values() for template in run.of_type(TEMPLATE)
    }
    over = {name: size for name, size in sizes.items() if size > machines.USER_DATA_LIMIT - MARGIN_BYTES}
    assert sizes and not over, (
        f"user data within {MARGIN_BYTES} B of EC2's {machines.USER_DATA_LIMIT} B: {over}; win bytes back "
        "(components/vm.py ships each script without what the machine never runs)"
    )


def test_the_largest_variants_ship_every_script_their_role_may_carry(runs):
    """The variants are the worst case: each machine carries everything its role can."""
    for run in runs.values():
        for template in run.of_type(TEMPLATE):
            script = gzip.decompress(user_data(template)).decode()
            assert set(vm.scripts_in(script)) == ROLE_SCRIPTS[role(template)], template.name


def test_the_variants_cover_every_role_in_both_revisions(runs):
    templates = [template for run in runs.values() for template in run.of_type(TEMPLATE)]
    for slot in (lambda name: "rev2" not in name, lambda name: "rev2" in name):
        assert {role(template) for template in templates if slot(template.name)} == set(vm.VM_ROLES)
