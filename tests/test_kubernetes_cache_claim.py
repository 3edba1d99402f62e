"""vllm:cacheClaim: every pod of a Kubernetes stack shares one ReadWriteMany HF cache."""

from __future__ import annotations

from typing import Any

import pytest

from components.launch import HF_CACHE_DIR
from components.spec import SpecError, build_spec
from tests.harness import Run, run_program
from tests.test_kubernetes import (
    DEPLOYMENT,
    SECRETS,
    k8s_stack,
    kubernetes_objects,
    manifest,
    validate,
)

CLAIM = "shared-hf-cache"


@pytest.fixture(scope="module")
def shared() -> Run:
    return run_program("shared-test", k8s_stack(**{"vllm:cacheClaim": CLAIM}), SECRETS)


def pod(run: Run) -> dict[str, Any]:
    return run.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]


def test_every_pod_mounts_the_claim_as_its_hf_cache(shared):
    spec = pod(shared)
    (volume,) = [v for v in spec["volumes"] if "persistentVolumeClaim" in v]
    assert volume["persistentVolumeClaim"] == {"claimName": CLAIM}
    (container,) = spec["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts[HF_CACHE_DIR] == volume["name"]
    assert mounts["/root/.cache"] == "cache"  # vLLM's compile cache stays the pod's own


def test_the_shared_cache_objects_validate_against_the_kubernetes_schema(shared):
    for resource in kubernetes_objects(shared):
        validate(manifest(resource))


def test_the_multi_node_groups_share_it_too():
    run = run_program(
        "shared-group", {"vllm:preset": "k8s-h100-multinode", "vllm:cacheClaim": CLAIM}, SECRETS
    )
    text = str([r.inputs for r in run.resources if r.type.startswith("kubernetes:leaderworkerset")])
    assert text.count(f"'claimName': '{CLAIM}'") >= 2  # the leader's and the workers' pod templates


def test_without_a_claim_each_pod_keeps_its_own_cache():
    run = run_program("own-test", k8s_stack(), SECRETS)
    assert not [v for v in pod(run)["volumes"] if "persistentVolumeClaim" in v]


@pytest.mark.parametrize("claim", ["Shared_Cache", "-cache", "a" * 254])
def test_a_claim_name_that_is_no_dns_subdomain_is_refused(claim):
    with pytest.raises(SpecError) as refused:
        build_spec("bad", k8s_stack(**{"vllm:cacheClaim": claim}))
    assert refused.value.key == "vllm:cacheClaim" and "PersistentVolumeClaim" in refused.value.valid


def test_the_claim_shows_in_the_spec(shared):
    assert shared.outputs["spec"]["cacheClaim"] == CLAIM
