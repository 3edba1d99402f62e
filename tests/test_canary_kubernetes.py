"""vllm:canary on Kubernetes: a second revision's pods, InferencePool and endpoint picker, named by slot,
behind the inference gateway's HTTPRoute with weighted ``backendRefs`` and header rules that pick one."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest

from components.config import SpecError
from components.kubernetes import platform as k8s_platform
from components.kubernetes.ray_replica import LWS_NAME_LABEL, WAIT_FOR
from components.kubernetes.replica_group import TRAFFIC, TRAFFIC_OFF
from components.kubernetes.spot_pods import SKIP_AWAIT
from components.observe import ROUTER, SERVE, ReplicaSource
from tests.harness import Run, checked_spec, run_program
from tests.test_inference_gateway import DEPLOYMENT, POOL, ROUTE, SCALED_OBJECT, SCHEMAS, SERVICE
from tests.test_kubernetes import SECRETS, manifest, registrations
from tests.test_kubernetes_multinode import LWS, LWS_SCHEMA, NETWORK_POLICY

STACK = "k8s-l4"
NAME = "vllm-k8s-l4"
STABLE_MODEL, CANARY_MODEL = "Qwen/Qwen3-8B", "Qwen/Qwen3-4B"
ROUTER_KEYS = {
    "vllm:router": "inference-gateway",
    "vllm:gatewayClassName": "istio",
    "vllm:model": STABLE_MODEL,
    "vllm:replicas": "2",
    "vllm:servedModelName": "chat",
}
CANARY = {**ROUTER_KEYS, "vllm:canary": {"model": CANARY_MODEL, "weight": 10}}
#: The same two revisions after promotion: the stable keys take the canary's values and slot (2), the
#: canary object the old stable's (slot 1) and what is left of the weight.
PROMOTED = {
    **ROUTER_KEYS,
    "vllm:model": CANARY_MODEL,
    "vllm:replicas": "1",
    "vllm:stableRevision": "2",
    "vllm:canary": {"model": STABLE_MODEL, "replicas": 2, "weight": 90},
}
BLUE_GREEN = {**ROUTER_KEYS, "vllm:canary": {"model": CANARY_MODEL, "mode": "blue-green"}}
SWITCHED = {**ROUTER_KEYS, "vllm:canary": {"model": CANARY_MODEL, "mode": "blue-green", "weight": 100}}
#: After the switch, the promote: slot 2 stable with every request, slot 1 the canary at weight 0.
SWITCHED_PROMOTED = {
    **ROUTER_KEYS,
    "vllm:model": CANARY_MODEL,
    "vllm:stableRevision": "2",
    "vllm:canary": {"model": STABLE_MODEL, "mode": "blue-green", "weight": 0},
}
SPOT_BASE = {
    "vllm:gpuNodeSelector": "gke",
    "vllm:spot": True,
    "vllm:onDemandBaseReplicas": 1,
    "vllm:replicas": 3,
}
AUTOSCALED = {
    "vllm:replicas": "unset",
    "vllm:maxReplicas": "4",
    "vllm:targetQpsPerReplica": "2.5",
    "vllm:targetQueuePerReplica": "8",
    "vllm:prometheusUrl": "http://prometheus.monitoring:9090",
}
MONITORED = {"vllm:prometheusOperator": True}
PODMONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
PDB_SELECTOR = ("spec", "selector", "matchLabels")


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    configs = {
        "stable": ROUTER_KEYS,
        "canary": CANARY,
        "promoted": PROMOTED,
        "blue_green": BLUE_GREEN,
        "switched": SWITCHED,
        "switched+promoted": SWITCHED_PROMOTED,
        "rolled_back": {**ROUTER_KEYS, "vllm:canary": {"model": CANARY_MODEL, "weight": 0}},
        "spot+base+blue_green": {**BLUE_GREEN, **SPOT_BASE},
        "spot+base+switched": {**SWITCHED, **SPOT_BASE},
        "named": {**CANARY, "vllm:canaryModelName": "chat-next"},
        "spot+base": {**CANARY, **SPOT_BASE},
        "autoscaled": {**CANARY, **AUTOSCALED, **MONITORED},
        "spot+base+autoscaled": {**CANARY, **SPOT_BASE, **AUTOSCALED},
        "gke": {**CANARY, "vllm:gatewayClassName": "gke-l7-regional-external-managed"},
    }
    return {key: run_program(STACK, config, SECRETS) for key, config in configs.items()}


SCENARIOS = ["canary", "named", "spot+base", "autoscaled", "spot+base+autoscaled", "gke", "blue_green"]


def named(run: Run, type_: str) -> dict[str, Any]:
    """The objects of a type by their Kubernetes name."""
    return {r.inputs["metadata"]["name"]: r for r in run.of_type(type_)}


def serving(run: Run) -> dict[str, dict[str, Any]]:
    """The vLLM Deployments' pod templates, by Deployment name (the endpoint pickers' aside)."""
    return {
        name: d.inputs["spec"]["template"]
        for name, d in named(run, DEPLOYMENT).items()
        if not name.endswith("-epp")
    }


def selects(selector: dict[str, str], template: dict[str, Any]) -> bool:
    return selector.items() <= template["metadata"]["labels"].items()


def rules(run: Run) -> list[dict[str, Any]]:
    return run.one(ROUTE).inputs["spec"]["rules"]


def weights(run: Run) -> dict[str, int]:
    """The last rule's split: each pool's weight, by pool name."""
    (*_, split) = rules(run)
    assert all("headers" not in match for match in split["matches"])
    return {ref["name"]: ref["weight"] for ref in split["backendRefs"]}


def picked(run: Run) -> list[tuple[str, str, str]]:
    """The rules before the split: (header, value, pool) each, every public path matched with the header."""
    found = []
    for rule in rules(run)[:-1]:
        headers = {(h["type"], h["name"], h["value"]) for m in rule["matches"] for h in m["headers"]}
        ((kind, header, value),) = headers
        assert kind == "Exact"  # Gateway API: Exact is Core; RegularExpression implementation-specific
        (backend,) = rule["backendRefs"]
        assert "weight" not in backend  # one backend: every request of the rule
        found.append((header, value, backend["name"]))
    return found


# --- the resources, against their CRDs -------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("kind", [POOL, ROUTE])
def test_the_route_and_both_pools_validate_against_the_pinned_crds(runs, scenario, kind):
    for resource in runs[scenario].of_type(kind):
        jsonschema.validate(manifest(resource), SCHEMAS[kind])


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_route_keeps_within_gateway_apis_limits(runs, scenario):
    # HTTPRoute (Gateway API v1.5.1): at most 16 rules and 64 matches per rule (schema), and the CEL rule
    # "the total number of matches across all rules in a route must be less than 128" (not in jsonschema).
    found = rules(runs[scenario])
    assert len(found) <= 16 and sum(len(rule["matches"]) for rule in found) <= 128


# --- each revision's pods, pool and endpoint picker, named by slot ---------------------------------------


def test_each_revision_has_its_own_deployment_named_by_its_slot(runs):
    templates = serving(runs["canary"])
    assert sorted(templates) == [NAME, f"{NAME}-rev2"]
    args = {name: " ".join(t["spec"]["containers"][0]["command"]) for name, t in templates.items()}
    assert CANARY_MODEL in args[f"{NAME}-rev2"] and CANARY_MODEL not in args[NAME]
    replicas = {name: d.inputs["spec"]["replicas"] for name, d in named(runs["canary"], DEPLOYMENT).items()}
    assert (replicas[NAME], replicas[f"{NAME}-rev2"]) == (2, 1)


@pytest.mark.parametrize("scenario", ["canary", "spot+base", "autoscaled"])
def test_each_pool_selects_its_revisions_pods_alone(runs, scenario):
    run = runs[scenario]
    templates = serving(run)
    for name, pool in named(run, POOL).items():
        selector = pool.inputs["spec"]["selector"]["matchLabels"]
        chosen = {deployment for deployment, template in templates.items() if selects(selector, template)}
        assert chosen == {d for d in templates if d == name or d.startswith(f"{name}-spot")}, name
    assert sorted(named(run, POOL)) == [NAME, f"{NAME}-rev2"]


@pytest.mark.parametrize("scenario", ["canary", "spot+base"])
def test_no_deployment_or_disruption_budget_takes_the_other_revisions_pods(runs, scenario):
    # Overlapping selectors would let one revision's controller adopt the other's pods, and the eviction
    # API refuses a pod that two PodDisruptionBudgets cover.
    run = runs[scenario]
    templates = serving(run)
    for name, deployment in named(run, DEPLOYMENT).items():
        if name in templates:
            selector = deployment.inputs["spec"]["selector"]["matchLabels"]
            assert [d for d, t in templates.items() if selects(selector, t)] == [name]
    for budget in run.of_type(PDB):
        selector = budget.inputs["spec"]["selector"]["matchLabels"]
        assert len([d for d, t in templates.items() if selects(selector, t)]) == 1


def test_each_pool_has_its_own_endpoint_picker_reading_it(runs):
    # An EPP serves the one pool its --pool-name names (GIE v1.5.0 pkg/epp/server/options.go).
    run = runs["canary"]
    deployments, services = named(run, DEPLOYMENT), named(run, SERVICE)
    for name, pool in named(run, POOL).items():
        picker = pool.inputs["spec"]["endpointPickerRef"]["name"]
        args = deployments[picker].inputs["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[args.index("--pool-name") + 1] == name
        epp_selector = services[picker].inputs["spec"]["selector"]
        pickers = [
            d for d, each in deployments.items() if selects(epp_selector, each.inputs["spec"]["template"])
        ]
        assert pickers == [picker]


def test_on_gke_each_pool_gets_its_backend_timeout_and_health_check(runs):
    run = runs["gke"]
    for kind in ("GCPBackendPolicy", "HealthCheckPolicy"):
        targets = sorted(
            p.inputs["spec"]["targetRef"]["name"]
            for p in run.of_type(f"kubernetes:networking.gke.io/v1:{kind}")
        )
        assert targets == [NAME, f"{NAME}-rev2"]


def test_each_revision_has_its_own_service(runs):
    services = named(runs["canary"], SERVICE)
    templates = serving(runs["canary"])
    for name in (NAME, f"{NAME}-rev2"):
        selector = services[f"{name}-api"].inputs["spec"]["selector"]
        assert [d for d, t in templates.items() if selects(selector, t)] == [name]


# --- the route: weights and header rules -----------------------------------------------------------------


def test_the_route_splits_the_public_paths_by_the_canary_weight(runs):
    # Gateway API: a backend gets weight / (sum of the rule's weights) of its requests (each 0-1000000).
    assert weights(runs["canary"]) == {NAME: 90, f"{NAME}-rev2": 10}


def test_a_request_naming_a_revision_reaches_its_pool_alone(runs):
    assert picked(runs["canary"]) == [
        ("x-vllm-revision", "1", NAME),
        ("x-vllm-revision", "2", f"{NAME}-rev2"),
    ]


def test_a_request_naming_a_revisions_model_reaches_its_pool_alone(runs):
    assert picked(runs["named"])[2:] == [
        ("x-vllm-model", "chat", NAME),
        ("x-vllm-model", "chat-next", f"{NAME}-rev2"),
    ]
    assert weights(runs["named"]) == {NAME: 90, f"{NAME}-rev2": 10}


def test_a_header_rule_covers_every_public_path_the_split_does(runs):
    # A header rule outranks the split only on the paths it matches (Gateway API match precedence: path
    # first, then the number of header matches).
    *picks, split = rules(runs["named"])
    for rule in picks:
        assert [m["path"] for m in rule["matches"]] == [m["path"] for m in split["matches"]]


def test_a_stack_of_one_revision_keeps_its_one_unweighted_rule(runs):
    (rule,) = rules(runs["stable"])
    assert rule["backendRefs"] == [
        {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": NAME}
    ]


# --- adding, promoting, blue/green ------------------------------------------------------------------------


def kubernetes_objects(run: Run) -> dict[str, Any]:
    return {r.urn: r.inputs for r in run.resources if r.custom and r.type.startswith("kubernetes:")}


def test_adding_a_canary_leaves_the_stable_revisions_objects_untouched(runs):
    before, after = kubernetes_objects(runs["stable"]), kubernetes_objects(runs["canary"])
    changed = {urn.rsplit("::", 1)[-1] for urn, inputs in before.items() if after.get(urn) != inputs}
    assert changed == {f"{NAME}-route"}


def test_promoting_replaces_nothing_and_changes_nothing(runs):
    # Each slot keeps its model, count and name; the weights by slot are the same (90 / 10).
    assert kubernetes_objects(runs["canary"]) == kubernetes_objects(runs["promoted"])


def test_blue_green_comes_up_at_full_size_and_unexposed(runs):
    run = runs["blue_green"]
    assert named(run, DEPLOYMENT)[f"{NAME}-rev2"].inputs["spec"]["replicas"] == 2
    assert weights(run) == {NAME: 100, f"{NAME}-rev2": 0}


def test_blue_green_switches_every_request_at_once(runs):
    assert weights(runs["switched"]) == {NAME: 0, f"{NAME}-rev2": 100}


def test_the_route_changes_after_both_revisions_workloads(monkeypatch):
    # pulumi-kubernetes reports a Deployment created or updated once every current replica is ready
    # (provider/pkg/await/deployment.go; replica_group.traffic_annotations), so a weight that comes with
    # a new or changed revision, or that turns a revision's traffic on, reaches the Gateway only after
    # that revision's pods all serve.
    run, recorded = registrations(
        monkeypatch,
        STACK,
        {**ROUTER_KEYS, "vllm:canary": {"model": CANARY_MODEL, "mode": "blue-green", "weight": 100}},
    )
    workloads = {d.urn for name, d in named(run, DEPLOYMENT).items() if not name.endswith("-epp")}
    assert len(workloads) == 2 and workloads <= set(recorded[run.one(ROUTE).name].dependencies)


# --- the switch waits for every replica of the revision that gets traffic --------------------------------


def deployment_annotations(run: Run) -> dict[str, dict[str, str]]:
    """The vLLM Deployments' annotations, by Deployment name."""
    return {
        name: d.inputs["metadata"].get("annotations", {})
        for name, d in named(run, DEPLOYMENT).items()
        if not name.endswith("-epp")
    }


OFF = {TRAFFIC: TRAFFIC_OFF, **SKIP_AWAIT}


@pytest.mark.parametrize(
    ("scenario", "stable", "canary"),
    [
        ("stable", {}, None),
        ("canary", {}, {}),  # 90 / 10: both take requests
        ("blue_green", {}, OFF),  # 100 / 0
        ("switched", OFF, {}),  # 0 / 100
        ("rolled_back", {}, OFF),  # a canary back to 0
    ],
)
def test_a_revisions_deployment_says_whether_it_takes_traffic(runs, scenario, stable, canary):
    found = deployment_annotations(runs[scenario])
    assert found[NAME] == stable
    assert found.get(f"{NAME}-rev2") == canary


def test_a_stack_without_a_canary_has_no_traffic_annotation(runs):
    # Its Deployment's inputs are the ones it always had (the plan snapshots keep them).
    assert "annotations" not in named(runs["stable"], DEPLOYMENT)[NAME].inputs["metadata"]


def test_turning_a_revisions_traffic_on_is_an_awaited_update_of_its_metadata_alone(runs):
    # The switch removes skipAwait: pulumi-kubernetes awaits the update until every current replica is
    # ready, and the route (which depends on the Deployment) moves after. Nothing in the spec changes, so
    # no pod restarts.
    before = named(runs["blue_green"], DEPLOYMENT)[f"{NAME}-rev2"].inputs
    after = named(runs["switched"], DEPLOYMENT)[f"{NAME}-rev2"].inputs
    assert before["metadata"]["annotations"] == OFF and "annotations" not in after["metadata"]
    assert before["spec"] == after["spec"]
    assert {**before["metadata"], "annotations": None} == {**after["metadata"], "annotations": None}


def test_taking_a_revisions_traffic_away_never_waits_on_its_pods(runs):
    # The switch away from slot 1 and a rollback of the canary both carry skipAwait in the new inputs;
    # the revision that keeps its traffic is not changed at all (no update, so no await either).
    switched, rolled_back, canary = runs["switched"], runs["rolled_back"], runs["canary"]
    assert named(switched, DEPLOYMENT)[NAME].inputs["metadata"]["annotations"] == OFF
    assert named(rolled_back, DEPLOYMENT)[f"{NAME}-rev2"].inputs["metadata"]["annotations"] == OFF
    assert named(rolled_back, DEPLOYMENT)[NAME].inputs == named(canary, DEPLOYMENT)[NAME].inputs


def test_promoting_after_the_switch_changes_nothing(runs):
    # Slot 2 keeps every request and slot 1 none: each Deployment keeps its annotations.
    assert kubernetes_objects(runs["switched"]) == kubernetes_objects(runs["switched+promoted"])


@pytest.mark.parametrize(
    ("scenario", "base", "spot"),
    [("spot+base+blue_green", OFF, OFF), ("spot+base+switched", {}, SKIP_AWAIT)],
)
def test_a_spot_deployment_beside_its_base_is_never_awaited(runs, scenario, base, spot):
    # Spot capacity may never come: the gate of the switch is the on-demand base's replicas.
    found = deployment_annotations(runs[scenario])
    assert (found[f"{NAME}-rev2"], found[f"{NAME}-rev2-spot"]) == (base, spot)


# --- autoscaling, metrics, status -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "scaled"),
    [("autoscaled", ""), ("spot+base+autoscaled", "-spot")],  # beside a fixed base, the spot Deployment
)
def test_each_revision_scales_its_own_deployment(runs, scenario, scaled):
    run = runs[scenario]
    targets = {
        s.inputs["metadata"]["name"]: s.inputs["spec"]["scaleTargetRef"]["name"]
        for s in run.of_type(SCALED_OBJECT)
    }
    assert targets == {NAME: f"{NAME}{scaled}", f"{NAME}-rev2": f"{NAME}-rev2{scaled}"}


def revision_of(deployment: str) -> str:
    """The slot name a serving Deployment belongs to (``<slot>`` or ``<slot>-spot``)."""
    return deployment.removesuffix("-spot")


@pytest.mark.parametrize("scenario", ["autoscaled", "spot+base+autoscaled"])
@pytest.mark.parametrize("slot_name", [NAME, f"{NAME}-rev2"])
def test_each_revision_scales_on_its_own_pods_load(runs, scenario, slot_name):
    # Both revisions serve vllm:servedModelName: the pod label tells their series apart. A Deployment's pod
    # is named <deployment>-<pod-template-hash>-<suffix>; PromQL regex matchers are fully anchored.
    run = runs[scenario]
    (scaled,) = [s for s in run.of_type(SCALED_OBJECT) if s.inputs["metadata"]["name"] == slot_name]
    queries = [t["metadata"]["query"] for t in scaled.inputs["spec"]["triggers"] if t["type"] == "prometheus"]
    assert len(queries) == 2
    for query in queries:
        matchers = re.findall(r'pod(!~|=~)"([^"]+)"', query)
        assert matchers
        for deployment in serving(run):
            pod = f"{deployment}-7d9f8b6c5d-x2x4z"
            counted = all(
                (re.fullmatch(pattern, pod) is not None) == (op == "=~") for op, pattern in matchers
            )
            assert counted == (revision_of(deployment) == slot_name), (query, pod)


def test_each_revisions_pods_are_scraped(runs):
    run = runs["autoscaled"]
    templates = serving(run)
    for monitor in run.of_type(PODMONITOR):
        selector = monitor.inputs["spec"]["selector"]["matchLabels"]
        assert len([d for d, t in templates.items() if selects(selector, t)]) == 1
    assert len(run.of_type(PODMONITOR)) == 2


def test_status_finds_each_revisions_deployments_and_pool(runs):
    source = ReplicaSource.from_output(runs["canary"].outputs["replicaSource"])
    assert [(g.kind, g.name, g.role, g.revision, g.balancer) for g in source.groups] == [
        ("Deployment", NAME, SERVE, "1", ""),
        ("InferencePool", NAME, ROUTER, "1", ""),
        ("Deployment", f"{NAME}-rev2", SERVE, "2", f"{NAME}-rev2-api"),
        ("InferencePool", f"{NAME}-rev2", ROUTER, "2", ""),
    ]
    assert source.replicas == 3


# --- refusals ----------------------------------------------------------------------------------------------


def test_without_the_inference_gateway_a_canary_is_refused_saying_why():
    config = {
        key: value for key, value in CANARY.items() if key not in ("vllm:router", "vllm:gatewayClassName")
    }
    with pytest.raises(SpecError) as caught:
        run_program(STACK, config, SECRETS)
    error = caught.value
    assert error.key == "vllm:canary" and "\n" not in str(error)
    assert "vllm:router inference-gateway" in error.valid and "ready-pod count" in error.valid
    assert error.declared_resources == []


def test_a_canary_of_multi_node_replicas_is_accepted_on_kubernetes():
    spec = checked_spec(MULTI_NODE, MULTI_NODE_CANARY, SECRETS)
    assert spec.nodes == 2 and spec.canary is not None
    k8s_platform.check_spec(spec)


# --- multi-node revisions: a LeaderWorkerSet per slot, its leaders in its pool ---------------------------

MULTI_NODE = "k8s-h100-multinode"
MULTI_NODE_NAME = "vllm-k8s-h100-multinode"
MULTI_NODE_MODEL, MULTI_NODE_CANARY_MODEL = "deepseek-ai/DeepSeek-R1-0528", "deepseek-ai/DeepSeek-V3-0324"
MULTI_NODE_ROUTER = {
    "vllm:router": "inference-gateway",
    "vllm:gatewayClassName": "istio",
    "vllm:servedModelName": "chat",
}
MULTI_NODE_CANARY = {**MULTI_NODE_ROUTER, "vllm:canary": {"model": MULTI_NODE_CANARY_MODEL, "weight": 10}}
MULTI_NODE_PROMOTED = {
    **MULTI_NODE_ROUTER,
    "vllm:model": MULTI_NODE_CANARY_MODEL,
    "vllm:stableRevision": "2",
    "vllm:canary": {"model": MULTI_NODE_MODEL, "weight": 90},
}
MULTI_NODE_SCALED = {
    "vllm:replicas": "unset",
    "vllm:maxReplicas": "3",
    "vllm:targetQueuePerReplica": "8",
    "vllm:prometheusUrl": "http://prometheus.monitoring:9090",
}


@pytest.fixture(scope="module")
def multi_node() -> dict[str, Run]:
    def blue_green(weight: int) -> dict[str, Any]:
        canary = {"model": MULTI_NODE_CANARY_MODEL, "mode": "blue-green", "weight": weight}
        return {**MULTI_NODE_ROUTER, "vllm:canary": canary}

    configs = {
        "stable": MULTI_NODE_ROUTER,
        "canary": MULTI_NODE_CANARY,
        "promoted": MULTI_NODE_PROMOTED,
        "blue_green": blue_green(0),
        "switched": blue_green(100),
        "autoscaled": {**MULTI_NODE_CANARY, **MULTI_NODE_SCALED, **MONITORED},
    }
    return {key: run_program(MULTI_NODE, config, SECRETS) for key, config in configs.items()}


def leader_worker_sets(run: Run) -> dict[str, dict[str, Any]]:
    """The LeaderWorkerSets' inputs, by Kubernetes name."""
    return {name: resource.inputs for name, resource in named(run, LWS).items()}


def group_templates(run: Run) -> dict[tuple[str, str], dict[str, Any]]:
    """Every LeaderWorkerSet's pod templates, by (LWS name, "leader" or "worker")."""
    found = {}
    for name, lws in leader_worker_sets(run).items():
        group = lws["spec"]["leaderWorkerTemplate"]
        found[(name, "leader")], found[(name, "worker")] = group["leaderTemplate"], group["workerTemplate"]
    return found


@pytest.mark.parametrize("scenario", ["canary", "blue_green", "autoscaled"])
def test_each_leader_worker_set_validates_against_the_pinned_crd(multi_node, scenario):
    # tests/crds: kubernetes-sigs/lws v0.8.0 (fc19b9ae9), config/crd/bases, the CRD its release installs.
    for resource in multi_node[scenario].of_type(LWS):
        jsonschema.validate(manifest(resource), LWS_SCHEMA)


def test_each_multi_node_revision_has_its_own_leader_worker_set_named_by_its_slot(multi_node):
    found = leader_worker_sets(multi_node["canary"])
    assert sorted(found) == [MULTI_NODE_NAME, f"{MULTI_NODE_NAME}-rev2"]
    for name, lws in found.items():
        assert lws["metadata"]["labels"]["app.kubernetes.io/instance"] == name
    argv = {
        name: " ".join(
            lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]["command"]
        )
        for name, lws in found.items()
    }
    assert MULTI_NODE_CANARY_MODEL in argv[f"{MULTI_NODE_NAME}-rev2"]
    assert MULTI_NODE_CANARY_MODEL not in argv[MULTI_NODE_NAME]


@pytest.mark.parametrize("scenario", ["canary", "autoscaled"])
def test_each_multi_node_pool_selects_its_revisions_leaders_alone(multi_node, scenario):
    # Only a leader serves; a worker in the pool would be sent requests it cannot answer.
    run = multi_node[scenario]
    templates = group_templates(run)
    for name, pool in named(run, POOL).items():
        selector = pool.inputs["spec"]["selector"]["matchLabels"]
        assert [key for key, template in templates.items() if selects(selector, template)] == [
            (name, "leader")
        ]
    assert sorted(named(run, POOL)) == [MULTI_NODE_NAME, f"{MULTI_NODE_NAME}-rev2"]


def test_each_multi_node_revisions_budget_and_policies_select_its_own_groups(multi_node):
    # LWS labels every pod of a set with its name (leaderworkerset.sigs.k8s.io/name): a selector on it
    # takes that set's pods alone. Two budgets over one pod would make the eviction API refuse it.
    run = multi_node["canary"]
    names = set(leader_worker_sets(run))
    budgets = [b.inputs["spec"]["selector"]["matchLabels"][LWS_NAME_LABEL] for b in run.of_type(PDB)]
    assert sorted(budgets) == sorted(names)
    for policy in run.of_type(NETWORK_POLICY):
        selected = policy.inputs["spec"]["podSelector"]["matchLabels"][LWS_NAME_LABEL]
        instance = policy.inputs["metadata"]["labels"]["app.kubernetes.io/instance"]
        assert selected == instance and selected in names


def test_adding_a_multi_node_canary_leaves_the_stable_revisions_objects_untouched(multi_node):
    before, after = kubernetes_objects(multi_node["stable"]), kubernetes_objects(multi_node["canary"])
    changed = {urn.rsplit("::", 1)[-1] for urn, inputs in before.items() if after.get(urn) != inputs}
    assert changed == {f"{MULTI_NODE_NAME}-route"}


def test_promoting_multi_node_revisions_replaces_nothing_and_changes_nothing(multi_node):
    assert kubernetes_objects(multi_node["canary"]) == kubernetes_objects(multi_node["promoted"])


def lws_annotations(run: Run) -> dict[str, dict[str, str]]:
    return {name: lws["metadata"]["annotations"] for name, lws in leader_worker_sets(run).items()}


@pytest.mark.parametrize(
    ("scenario", "stable", "canary"),
    [("stable", {}, None), ("canary", {}, {}), ("blue_green", {}, OFF), ("switched", OFF, {})],
)
def test_a_revisions_leader_worker_set_says_whether_it_takes_traffic(multi_node, scenario, stable, canary):
    # Every LeaderWorkerSet keeps its await (condition=Available); a slot at weight 0 skips it.
    found = lws_annotations(multi_node[scenario])
    assert found[MULTI_NODE_NAME] == {**WAIT_FOR, **stable}
    assert found.get(f"{MULTI_NODE_NAME}-rev2") == (None if canary is None else {**WAIT_FOR, **canary})


def test_turning_a_leader_worker_sets_traffic_on_is_an_awaited_update_of_its_metadata_alone(multi_node):
    # The switch removes skipAwait: the provider awaits condition=Available on the update (every live
    # group ready and updated, LWS v0.8.0 updateConditions) before the route, which depends on it, moves.
    before = leader_worker_sets(multi_node["blue_green"])[f"{MULTI_NODE_NAME}-rev2"]
    after = leader_worker_sets(multi_node["switched"])[f"{MULTI_NODE_NAME}-rev2"]
    assert (before["metadata"]["annotations"], after["metadata"]["annotations"]) == (
        {**WAIT_FOR, **OFF},
        WAIT_FOR,
    )
    assert before["spec"] == after["spec"]
    assert {**before["metadata"], "annotations": None} == {**after["metadata"], "annotations": None}


def test_the_route_changes_after_both_revisions_leader_worker_sets(monkeypatch):
    run, recorded = registrations(
        monkeypatch,
        MULTI_NODE,
        {**MULTI_NODE_ROUTER, "vllm:canary": {"model": MULTI_NODE_CANARY_MODEL, "weight": 50}},
    )
    sets = {resource.urn for resource in run.of_type(LWS)}
    assert len(sets) == 2 and sets <= set(recorded[run.one(ROUTE).name].dependencies)


def test_each_multi_node_revision_scales_its_own_leader_worker_set(multi_node):
    run = multi_node["autoscaled"]
    targets = {
        s.inputs["metadata"]["name"]: s.inputs["spec"]["scaleTargetRef"] for s in run.of_type(SCALED_OBJECT)
    }
    assert {name: (target["kind"], target["name"]) for name, target in targets.items()} == {
        MULTI_NODE_NAME: ("LeaderWorkerSet", MULTI_NODE_NAME),
        f"{MULTI_NODE_NAME}-rev2": ("LeaderWorkerSet", f"{MULTI_NODE_NAME}-rev2"),
    }


@pytest.mark.parametrize("slot_name", [MULTI_NODE_NAME, f"{MULTI_NODE_NAME}-rev2"])
def test_each_multi_node_revision_scales_on_its_own_leaders_load(multi_node, slot_name):
    # LWS names a group's pods <lws>-<group> (the leader) and <lws>-<group>-<worker>.
    run = multi_node["autoscaled"]
    (scaled,) = [s for s in run.of_type(SCALED_OBJECT) if s.inputs["metadata"]["name"] == slot_name]
    queries = [t["metadata"]["query"] for t in scaled.inputs["spec"]["triggers"] if t["type"] == "prometheus"]
    assert queries
    for query in queries:
        matchers = re.findall(r'pod(!~|=~)"([^"]+)"', query)
        assert matchers
        for lws in leader_worker_sets(run):
            for pod in (f"{lws}-0", f"{lws}-12", f"{lws}-0-1"):
                counted = all(
                    (re.fullmatch(pattern, pod) is not None) == (op == "=~") for op, pattern in matchers
                )
                assert counted == (lws == slot_name), (query, pod)


def test_each_multi_node_revisions_leaders_are_scraped(multi_node):
    run = multi_node["autoscaled"]
    templates = group_templates(run)
    for monitor in run.of_type(PODMONITOR):
        selector = monitor.inputs["spec"]["selector"]["matchLabels"]
        name = monitor.inputs["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"]
        assert {lws for (lws, _), t in templates.items() if selects(selector, t)} == {name}
    assert len(run.of_type(PODMONITOR)) == 2


def test_status_finds_each_revisions_leader_worker_set_and_pool(multi_node):
    source = ReplicaSource.from_output(multi_node["canary"].outputs["replicaSource"])
    assert [(g.kind, g.name, g.role, g.revision, g.balancer) for g in source.groups] == [
        ("LeaderWorkerSet", MULTI_NODE_NAME, "ray-group", "1", ""),
        ("InferencePool", MULTI_NODE_NAME, ROUTER, "1", ""),
        ("LeaderWorkerSet", f"{MULTI_NODE_NAME}-rev2", "ray-group", "2", f"{MULTI_NODE_NAME}-rev2-api"),
        ("InferencePool", f"{MULTI_NODE_NAME}-rev2", ROUTER, "2", ""),
    ]
