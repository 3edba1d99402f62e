"""Kubernetes replicas for `tools.status`: the real kubernetes client against recorded API answers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, unquote

import pytest

from components.observe import (
    FAILED,
    INSTALL_TOOLS,
    NOT_READY,
    PREEMPTED,
    PROVISIONING,
    READY,
    ROUTER,
    SHUTTING_DOWN,
    STARTING,
    ListError,
    ReplicaSource,
    counted_groups,
)
from tests.fake_api import FakeApi, serving
from tests.harness import run_program

pytest.importorskip("kubernetes", reason=INSTALL_TOOLS)
from components.kubernetes import status as k8s_status

pytestmark = pytest.mark.timeout(120)
STARTED = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
SELECTOR = {
    "app.kubernetes.io/name": "vllm",
    "app.kubernetes.io/instance": "vllm-k8s-h100",
    "app.kubernetes.io/component": "server",
}


@pytest.fixture(scope="module")
def single() -> ReplicaSource:
    run = run_program("k8s-h100", secrets={"vllm:hfToken": "hf_testtoken123"})
    return ReplicaSource.from_output(run.outputs["replicaSource"])


@pytest.fixture(scope="module")
def multinode() -> ReplicaSource:
    run = run_program("k8s-h100-multinode", secrets={"vllm:hfToken": "hf_testtoken123"})
    return ReplicaSource.from_output(run.outputs["replicaSource"])


@pytest.fixture
def api(tmp_path: Path, monkeypatch) -> Iterator[FakeApi]:
    """The fake API server, named by a kubeconfig's current context."""
    with serving() as fake:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
            f"clusters: [{{name: test, cluster: {{server: '{fake.url}'}}}}]\n"
            "users: [{name: test, user: {token: test-token}}]\n"
            "contexts: [{name: test, context: {cluster: test, user: test}}]\n"
        )
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        fake.routes[("GET", "/api/v1/nodes/gpu-node-a")] = {
            "metadata": {"name": "gpu-node-a", "labels": {"topology.kubernetes.io/zone": "us-east4-b"}}
        }
        yield fake


def pod(
    name: str,
    *,
    phase: str = "Running",
    ready: bool = True,
    started: bool = True,
    labels: dict | None = None,
    waiting: str | None = None,
    conditions: list | None = None,
    deleting: bool = False,
) -> dict:
    state = (
        {"waiting": {"reason": waiting, "message": "back-off 5m0s restarting failed container"}}
        if waiting
        else {"running": {}}
    )
    metadata = {
        "name": name,
        "namespace": "ns",
        "labels": labels or SELECTOR,
        "creationTimestamp": STARTED.isoformat(),
    }
    if deleting:
        metadata["deletionTimestamp"] = (STARTED + timedelta(hours=1)).isoformat()
    return {
        "metadata": metadata,
        "spec": {
            "nodeName": "gpu-node-a",
            "containers": [
                {
                    "name": "vllm",
                    "image": "vllm/vllm-openai:v0.33.0",
                    "resources": {
                        "limits": {"nvidia.com/gpu": "8"},
                        "requests": {"cpu": "9", "memory": "35Gi"},
                    },
                }
            ],
        },
        "status": {
            "phase": phase,
            "podIP": "10.8.0.7",
            "startTime": STARTED.isoformat(),
            "conditions": conditions
            if conditions is not None
            else [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "True" if ready else "False"},
            ],
            "containerStatuses": [
                {
                    "name": "vllm",
                    "image": "x",
                    "imageID": "x",
                    "ready": ready,
                    "restartCount": 4 if waiting else 0,
                    "started": started,
                    "state": state,
                }
            ],
        },
    }


def deployment_with(api: FakeApi, source: ReplicaSource, pods: list[dict]) -> None:
    (group,) = source.groups
    api.routes[("GET", f"/apis/apps/v1/namespaces/{source.scope}/deployments/{group.name}")] = {
        "metadata": {"name": group.name},
        "spec": {"selector": {"matchLabels": SELECTOR}, "template": {}},
    }
    api.routes[("GET", f"/api/v1/namespaces/{source.scope}/pods")] = {"items": pods}


def statuses(source: ReplicaSource, now: datetime | None = None) -> list[tuple[str, str]]:
    return [(replica.name, replica.status) for replica in k8s_status.list_replicas(source, now=now)]


def test_program_exports_the_workload_namespace_and_service(single, multinode):
    assert (single.platform, single.scope, single.balancer) == (
        "kubernetes",
        "vllm-k8s-h100",
        "vllm-k8s-h100-api",
    )
    assert [(group.kind, group.name) for group in single.groups] == [("Deployment", "vllm-k8s-h100")]
    assert [group.kind for group in multinode.groups] == ["LeaderWorkerSet"]


def test_ready_pods_are_ready_replicas_with_ip_resources_and_zone(api, single):
    deployment_with(api, single, [pod("vllm-a"), pod("vllm-b")])
    replicas = k8s_status.list_replicas(single)
    assert [(r.id, r.status) for r in replicas] == [("1", READY), ("2", READY)]
    assert (replicas[0].ip, replicas[0].zone, replicas[0].launched) == ("10.8.0.7", "us-east4-b", STARTED)
    assert replicas[0].resources == "nvidia.com/gpu: 8, cpu: 9, memory: 35Gi"
    (query,) = {unquote(q) for method, path, q, _ in api.requests if path.endswith("/pods")}
    assert query == (
        "labelSelector=app.kubernetes.io/component=server,"
        "app.kubernetes.io/instance=vllm-k8s-h100,app.kubernetes.io/name=vllm"
    )


def test_a_pod_before_its_startup_probe_passes_is_starting(api, single):
    deployment_with(api, single, [pod("vllm-a", ready=False, started=False)])
    assert statuses(single) == [("vllm-a", STARTING)]


def test_a_started_pod_failing_readiness_past_its_budget_is_not_ready(api, single):
    deployment_with(api, single, [pod("vllm-a", ready=False)])
    assert statuses(single, now=STARTED + timedelta(seconds=single.startup_seconds + 1)) == [
        ("vllm-a", NOT_READY)
    ]


def test_a_crash_looping_pod_is_failed_with_the_reason(api, single):
    deployment_with(api, single, [pod("vllm-a", ready=False, waiting="CrashLoopBackOff")])
    (replica,) = k8s_status.list_replicas(single)
    assert replica.status == FAILED
    assert replica.detail.startswith("CrashLoopBackOff (4 restarts)")


def filling(pod_object: dict, waiting: str | None = None) -> dict:
    """``pod_object`` pending while its init container fills vllm:cacheClaim (or fails to)."""
    state = {"waiting": {"reason": waiting, "message": "back-off"}} if waiting else {"running": {}}
    pod_object["status"]["phase"] = "Pending"
    pod_object["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "PodInitializing"}}
    pod_object["status"]["initContainerStatuses"] = [
        {
            "name": k8s_status.FILL_CONTAINER,
            "image": "x",
            "imageID": "x",
            "ready": False,
            "restartCount": 2 if waiting else 0,
            "state": state,
        }
    ]
    return pod_object


def test_a_pod_filling_the_shared_cache_is_provisioning_and_says_so(api, single):
    deployment_with(api, single, [filling(pod("vllm-a", ready=False, started=False))])
    (replica,) = k8s_status.list_replicas(single)
    assert replica.status == PROVISIONING and "filling the shared HF cache" in replica.detail


def test_a_pod_whose_fill_keeps_failing_is_failed_with_the_reason(api, single):
    deployment_with(api, single, [filling(pod("vllm-a", ready=False, started=False), "CrashLoopBackOff")])
    (replica,) = k8s_status.list_replicas(single)
    assert replica.status == FAILED and replica.detail.startswith("CrashLoopBackOff (2 restarts)")


def test_an_unschedulable_pod_is_provisioning_with_the_schedulers_message(api, single):
    message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    unscheduled = pod(
        "vllm-a",
        phase="Pending",
        ready=False,
        conditions=[
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
        ],
    )
    deployment_with(api, single, [unscheduled])
    (replica,) = k8s_status.list_replicas(single)
    assert (replica.status, replica.detail) == (PROVISIONING, message)


def test_a_pod_on_a_node_shutting_down_is_preempted_and_a_deleted_one_shutting_down(api, single):
    disrupted = pod(
        "vllm-a",
        conditions=[
            {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "TerminationByKubelet",
                "message": "node shutdown",
            }
        ],
    )
    deployment_with(api, single, [disrupted, pod("vllm-b", deleting=True)])
    assert sorted(statuses(single)) == [("vllm-a", PREEMPTED), ("vllm-b", SHUTTING_DOWN)]


def test_leaderworkerset_pods_are_grouped_by_replica_with_the_leader_as_head(api, multinode):
    def lws_pod(name: str, group: str, worker: str) -> dict:
        labels = {
            "leaderworkerset.sigs.k8s.io/name": multinode.groups[0].name,
            "leaderworkerset.sigs.k8s.io/group-index": group,
            "leaderworkerset.sigs.k8s.io/worker-index": worker,
        }
        return pod(name, labels=labels)

    api.routes[("GET", f"/api/v1/namespaces/{multinode.scope}/pods")] = {
        "items": [
            lws_pod("lws-1-1", "1", "1"),
            lws_pod("lws-0", "0", "0"),
            lws_pod("lws-1", "1", "0"),
            lws_pod("lws-0-1", "0", "1"),
        ]
    }
    replicas = k8s_status.list_replicas(multinode)
    assert [(r.id, r.name, r.role) for r in replicas] == [
        ("0", "lws-0", "ray-head"),
        ("0", "lws-0-1", "ray-worker"),
        ("1", "lws-1", "ray-head"),
        ("1", "lws-1-1", "ray-worker"),
    ]


def test_a_forbidden_namespace_is_a_list_error(api, single):
    (group,) = single.groups
    api.routes[("GET", f"/apis/apps/v1/namespaces/{single.scope}/deployments/{group.name}")] = (
        403,
        {"kind": "Status", "code": 403, "reason": "Forbidden"},
    )
    with pytest.raises(ListError, match=f"Kubernetes namespace {single.scope}: 403"):
        k8s_status.list_replicas(single)


def test_desired_replicas_are_the_deployments_spec_replicas_keda_sets(api, single):
    deployment_with(api, single, [])
    (group,) = single.groups
    path = f"/apis/apps/v1/namespaces/{single.scope}/deployments/{group.name}"
    api.routes[("GET", path)]["spec"]["replicas"] = 3  # pyright: ignore[reportIndexIssue]
    assert k8s_status.desired_replicas(single) == 3


def test_desired_replicas_of_a_leaderworkerset_are_its_groups(api, multinode):
    (group,) = multinode.groups
    path = f"/apis/leaderworkerset.x-k8s.io/v1/namespaces/{multinode.scope}/leaderworkersets/{group.name}"
    api.routes[("GET", path)] = {"metadata": {"name": group.name}, "spec": {"replicas": 2}}
    assert k8s_status.desired_replicas(multinode) == 2


def test_a_forbidden_workload_is_a_list_error_for_the_desired_count(api, single):
    (group,) = single.groups
    api.routes[("GET", f"/apis/apps/v1/namespaces/{single.scope}/deployments/{group.name}")] = (
        403,
        {"kind": "Status", "code": 403, "reason": "Forbidden"},
    )
    with pytest.raises(ListError, match=f"Kubernetes namespace {single.scope}: 403"):
        k8s_status.desired_replicas(single)


def test_an_on_demand_base_beside_spot_exports_both_deployments() -> None:
    run = run_program(
        "k8s-h100",
        config={
            "vllm:spot": "true",
            "vllm:gpuNodeSelector": "gke",
            "vllm:replicas": "3",
            "vllm:onDemandBaseReplicas": "1",
        },
        secrets={"vllm:hfToken": "hf_testtoken123"},
    )
    source = ReplicaSource.from_output(run.outputs["replicaSource"])
    deployments = {
        resource.inputs["metadata"]["name"] for resource in run.of_type("kubernetes:apps/v1:Deployment")
    }
    assert {group.name for group in source.groups} == deployments
    assert len(deployments) == 2
    assert all(group.role == "serve" for group in source.groups)


def _container(name: str, state: str, exit_code: int | None = None, last_exit: int | None = None) -> Any:
    terminated = SimpleNamespace(exit_code=exit_code)
    return SimpleNamespace(
        name=name,
        state=SimpleNamespace(
            running=SimpleNamespace() if state == "running" else None,
            waiting=SimpleNamespace(reason="CrashLoopBackOff") if state == "waiting" else None,
            terminated=terminated if state == "terminated" else None,
        ),
        last_state=SimpleNamespace(terminated=SimpleNamespace(exit_code=last_exit) if last_exit else None),
    )


def _pod(inits: list[Any], containers: list[Any]) -> Any:
    return SimpleNamespace(
        status=SimpleNamespace(init_container_statuses=inits, container_statuses=containers)
    )


def test_the_log_of_a_pod_whose_fill_failed_is_the_fills():
    # A failed fill is retried by the kubelet (CrashLoopBackOff) and vLLM never starts: its log is empty,
    # and asking for it gets 400 "waiting to start: PodInitializing"; the fill's says why.
    pod_object = _pod(
        [_container("fill-hf-cache", "waiting", last_exit=1)],
        [SimpleNamespace(name="vllm", state=SimpleNamespace(running=None, terminated=None, waiting=None),
                         last_state=SimpleNamespace(terminated=None))],
    )  # fmt: skip
    assert k8s_status.log_container(pod_object) == "fill-hf-cache"


def test_the_log_of_a_pod_past_its_fill_is_vllms():
    pod_object = _pod(
        [_container("fill-hf-cache", "terminated", exit_code=0)], [_container("vllm", "running")]
    )
    assert k8s_status.log_container(pod_object) == "vllm"


# --- the inference gateway's router ---------------------------------------------------------------------

EPP_SELECTOR = {
    "app.kubernetes.io/name": "vllm",
    "app.kubernetes.io/instance": "vllm-k8s-h100",
    "app.kubernetes.io/component": "router",
}


@pytest.fixture(scope="module")
def gateway() -> ReplicaSource:
    run = run_program(
        "k8s-h100",
        {"vllm:router": "inference-gateway", "vllm:gatewayClassName": "istio"},
        secrets={"vllm:hfToken": "hf_testtoken123"},
    )
    return ReplicaSource.from_output(run.outputs["replicaSource"])


def router_only(source: ReplicaSource) -> ReplicaSource:
    """The source with its router group alone (the fake answers every pod list with the same pods)."""
    return replace(source, groups=[group for group in source.groups if group.role == ROUTER])


def accepted(gateway_name: str = "vllm-k8s-h100", resolved: dict | None = None) -> dict:
    """A Gateway's entry in an InferencePool's status.parents: Accepted, and ResolvedRefs unless told."""
    resolved = resolved or {"type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs", "message": ""}
    conditions = [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": ""}, resolved]
    return {"parentRef": {"name": gateway_name}, "conditions": conditions}


def pool_with(api: FakeApi, source: ReplicaSource, parents: list[dict], pods: list[dict]) -> None:
    (group,) = router_only(source).groups
    pools = f"/apis/inference.networking.k8s.io/v1/namespaces/{source.scope}/inferencepools/{group.name}"
    api.routes[("GET", pools)] = {
        "metadata": {"name": group.name},
        "spec": {"endpointPickerRef": {"name": "vllm-k8s-h100-epp", "port": {"number": 9002}}},
        "status": {"parents": parents},
    }
    api.routes[("GET", f"/api/v1/namespaces/{source.scope}/services/vllm-k8s-h100-epp")] = {
        "metadata": {"name": "vllm-k8s-h100-epp"},
        "spec": {"selector": EPP_SELECTOR},
    }
    api.routes[("GET", f"/api/v1/namespaces/{source.scope}/pods")] = {"items": pods}


def test_the_program_exports_the_pool_as_a_router_beside_the_deployment(gateway):
    assert [(group.kind, group.name, group.role) for group in gateway.groups] == [
        ("Deployment", "vllm-k8s-h100", "serve"),
        ("InferencePool", "vllm-k8s-h100", ROUTER),
    ]


def test_the_router_is_ready_when_its_pod_is_and_a_gateway_accepted_the_pool(api, gateway):
    pool_with(api, gateway, [accepted()], [pod("vllm-k8s-h100-epp-a", labels=EPP_SELECTOR)])
    (router,) = k8s_status.list_replicas(router_only(gateway))
    assert (router.role, router.name, router.status, router.extra["container"]) == (
        ROUTER,
        "vllm-k8s-h100-epp-a",
        READY,
        "epp",
    )
    (query,) = {unquote(q) for method, path, q, _ in api.requests if path.endswith("/pods")}
    assert query == (
        "labelSelector=app.kubernetes.io/component=router,"
        "app.kubernetes.io/instance=vllm-k8s-h100,app.kubernetes.io/name=vllm"
    )


def test_a_pool_no_gateway_took_leaves_the_router_not_ready(api, gateway):
    pool_with(api, gateway, [], [pod("vllm-k8s-h100-epp-a", labels=EPP_SELECTOR)])
    (router,) = k8s_status.list_replicas(router_only(gateway))
    assert router.status == NOT_READY and "no Gateway has taken it" in router.detail


def test_a_pool_whose_endpoint_picker_is_unresolved_names_the_condition(api, gateway):
    unresolved = {
        "type": "ResolvedRefs",
        "status": "False",
        "reason": "InvalidExtensionRef",
        "message": "no epp",
    }
    pool_with(
        api, gateway, [accepted(resolved=unresolved)], [pod("vllm-k8s-h100-epp-a", labels=EPP_SELECTOR)]
    )
    (router,) = k8s_status.list_replicas(router_only(gateway))
    assert router.status == NOT_READY
    assert router.detail == (
        "InferencePool vllm-k8s-h100 on Gateway vllm-k8s-h100: not ResolvedRefs (InvalidExtensionRef: no epp)"
    )


def test_the_router_counts_in_no_replica_total(gateway):
    assert [group.role for group in counted_groups(gateway.groups)] == ["serve"]


# --- vllm:canary: each pod's revision ---------------------------------------------------------------------

CANARY_SELECTOR = {**SELECTOR, "app.kubernetes.io/instance": "vllm-k8s-h100-rev2"}


def canary_source(stack: str) -> ReplicaSource:
    """The replicaSource of ``stack`` behind the inference gateway with a canary of another image."""
    run = run_program(
        stack,
        {
            "vllm:router": "inference-gateway",
            "vllm:gatewayClassName": "istio",
            "vllm:servedModelName": "chat",
            "vllm:canary": {"image": "vllm/vllm-openai:v0.32.0", "weight": 10},
        },
        secrets={"vllm:hfToken": "hf_testtoken123"},
    )
    return ReplicaSource.from_output(run.outputs["replicaSource"])


@pytest.fixture(scope="module")
def canary() -> ReplicaSource:
    return canary_source("k8s-h100")


def test_a_canary_pod_shows_its_revision_slot(api, canary):
    (group,) = [g for g in canary.groups if g.role != ROUTER and g.revision == "2"]
    api.routes[("GET", f"/apis/apps/v1/namespaces/{canary.scope}/deployments/{group.name}")] = {
        "metadata": {"name": group.name},
        "spec": {"selector": {"matchLabels": CANARY_SELECTOR}, "template": {}},
    }
    api.routes[("GET", f"/api/v1/namespaces/{canary.scope}/pods")] = {
        "items": [pod("vllm-k8s-h100-rev2-6c9d7f8b5-q7k2m", labels=CANARY_SELECTOR)]
    }
    (replica,) = k8s_status.list_replicas(replace(canary, groups=[group]))
    assert (replica.name, replica.revision, replica.status) == (
        "vllm-k8s-h100-rev2-6c9d7f8b5-q7k2m",
        "2",
        READY,
    )
    (query,) = {unquote(q) for method, path, q, _ in api.requests if path.endswith("/pods")}
    assert "app.kubernetes.io/instance=vllm-k8s-h100-rev2" in query


def test_a_canary_pools_router_shows_its_revision_slot(api, canary):
    (group,) = [g for g in canary.groups if g.role == ROUTER and g.revision == "2"]
    pools = f"/apis/inference.networking.k8s.io/v1/namespaces/{canary.scope}/inferencepools/{group.name}"
    api.routes[("GET", pools)] = {
        "metadata": {"name": group.name},
        "spec": {"endpointPickerRef": {"name": "vllm-k8s-h100-rev2-epp", "port": {"number": 9002}}},
        "status": {"parents": [accepted()]},
    }
    api.routes[("GET", f"/api/v1/namespaces/{canary.scope}/services/vllm-k8s-h100-rev2-epp")] = {
        "metadata": {"name": "vllm-k8s-h100-rev2-epp"},
        "spec": {"selector": {**EPP_SELECTOR, "app.kubernetes.io/instance": "vllm-k8s-h100-rev2"}},
    }
    api.routes[("GET", f"/api/v1/namespaces/{canary.scope}/pods")] = {
        "items": [pod("vllm-k8s-h100-rev2-epp-a", labels=EPP_SELECTOR)]
    }
    (router,) = k8s_status.list_replicas(replace(canary, groups=[group]))
    assert (router.role, router.revision, router.status) == (ROUTER, "2", READY)


@pytest.fixture(scope="module")
def multinode_canary() -> ReplicaSource:
    return canary_source("k8s-h100-multinode")


def test_each_revisions_ray_groups_are_listed_together_with_its_slot(api, multinode_canary):
    # Each slot's LeaderWorkerSet is asked for its own pods (LWS labels them with its name); the rows of
    # slot 1's groups come before slot 2's, each group's head first.
    groups = [g for g in multinode_canary.groups if g.role != ROUTER]
    assert [(g.name, g.revision) for g in groups] == [
        ("vllm-k8s-h100-multinode", "1"),
        ("vllm-k8s-h100-multinode-rev2", "2"),
    ]

    def lws_pod(lws: str, group: str, worker: str) -> dict:
        labels = {
            "leaderworkerset.sigs.k8s.io/name": lws,
            "leaderworkerset.sigs.k8s.io/group-index": group,
            "leaderworkerset.sigs.k8s.io/worker-index": worker,
        }
        return pod(f"{lws}-{group}" + (f"-{worker}" if worker != "0" else ""), labels=labels)

    every_pod = [
        lws_pod(lws, "0", worker)
        for lws in ("vllm-k8s-h100-multinode-rev2", "vllm-k8s-h100-multinode")
        for worker in ("1", "0")
    ]

    def pods_of(query: str) -> dict:
        """The pods a label selector of ``key=value`` terms matches, as the API server answers."""
        (selector,) = parse_qs(query)["labelSelector"]
        terms = dict(term.split("=", 1) for term in selector.split(","))
        return {"items": [p for p in every_pod if terms.items() <= p["metadata"]["labels"].items()]}

    api.routes[("GET", f"/api/v1/namespaces/{multinode_canary.scope}/pods")] = pods_of
    replicas = k8s_status.list_replicas(replace(multinode_canary, groups=groups))
    assert [(r.revision, r.id, r.name, r.role) for r in replicas] == [
        ("1", "0", "vllm-k8s-h100-multinode-0", "ray-head"),
        ("1", "0", "vllm-k8s-h100-multinode-0-1", "ray-worker"),
        ("2", "0", "vllm-k8s-h100-multinode-rev2-0", "ray-head"),
        ("2", "0", "vllm-k8s-h100-multinode-rev2-0-1", "ray-worker"),
    ]
