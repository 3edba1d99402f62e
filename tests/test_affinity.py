"""``vllm:affinityHeader`` on the VM platforms: a conversation's requests stay on one replica where the load
balancer can hash a header (GCP), and a clear refusal where it cannot (AWS's ALB sticks by cookie only)."""

from __future__ import annotations

import pytest

from components.spec import SpecError, build_spec
from tests.harness import Run, run_program

BACKEND_SERVICE = "gcp:compute/backendService:BackendService"
HEADER = "x-session-id"


@pytest.fixture(scope="module")
def gcp() -> Run:
    return run_program("gcp-l4", {"vllm:affinityHeader": HEADER})


def test_gcp_hashes_the_header_onto_a_ring_of_replicas(gcp):
    backend = gcp.one(BACKEND_SERVICE).inputs
    assert backend["localityLbPolicy"] == "RING_HASH"
    assert backend["sessionAffinity"] == "HEADER_FIELD"
    assert backend["consistentHash"] == {"httpHeaderName": HEADER}


def test_gcp_hashes_on_a_global_external_managed_backend_service_where_the_api_takes_a_locality_policy(gcp):
    """The Compute API takes localityLbPolicy on a global backend service of INTERNAL_SELF_MANAGED,
    INTERNAL_MANAGED or EXTERNAL_MANAGED (platform-rules.md): the hash must not land on another scheme."""
    backend = gcp.one(BACKEND_SERVICE).inputs
    assert backend["loadBalancingScheme"] == "EXTERNAL_MANAGED" and "region" not in backend


def test_gcp_without_the_header_balances_by_least_request():
    backend = run_program("gcp-l4").one(BACKEND_SERVICE).inputs
    assert backend["localityLbPolicy"] == "LEAST_REQUEST"
    assert "sessionAffinity" not in backend and "consistentHash" not in backend


def refusal(stack: str, config: dict) -> SpecError:
    with pytest.raises(SpecError) as raised:
        build_spec(stack, config)
    return raised.value


def test_aws_refuses_the_header_because_alb_stickiness_is_cookie_based():
    error = refusal("aws-l4", {"vllm:affinityHeader": HEADER})
    assert error.key == "vllm:affinityHeader" and "cookie-based" in error.valid


def test_kubernetes_refuses_the_header_and_names_the_inference_gateway():
    error = refusal("k8s-l4", {"vllm:affinityHeader": HEADER})
    assert error.key == "vllm:affinityHeader" and "vllm:router inference-gateway" in error.valid


@pytest.mark.parametrize("header", ["x session", "x-session:"])
def test_gcp_refuses_a_header_that_is_not_a_header_name(header):
    error = refusal("gcp-l4", {"vllm:affinityHeader": header})
    assert error.key == "vllm:affinityHeader" and "header name" in error.valid


@pytest.mark.parametrize("header", ["Authorization", "host"])
def test_gcp_refuses_a_header_every_request_carries_with_one_value(header):
    # One API key and one host name per stack: hashing on them puts every conversation on one replica.
    error = refusal("gcp-l4", {"vllm:affinityHeader": header})
    assert error.key == "vllm:affinityHeader" and "differs between conversations" in error.valid
