"""The Kubernetes platform, multi-node: a LeaderWorkerSet of Ray groups, as the program declares it."""

from __future__ import annotations

from typing import Any

import jsonschema
import pulumi
import pytest

from components import launch, scripts
from components.kubernetes import pods
from components.kubernetes.ray_replica import (
    LWS_GROUP_INDEX_LABEL,
    LWS_MANIFEST,
    LWS_NAME_LABEL,
    LWS_VERSION,
    RAY_WORKER,
    SCRIPT,
    SCRIPT_DIR,
    WAIT_FOR,
    ready_when_webhooks_serve,
)
from components.spec import build_spec
from tests.harness import Run, run_program
from tests.test_inference_gateway import crd_schema
from tests.test_kubernetes import (
    API_KEY,
    HF_TOKEN,
    SECRET,
    SECRETS,
    SERVICE,
    kubernetes_objects,
    manifest,
    plain,
    progress_caps,
    registrations,
    seconds,
    start_budget,
    validate,
)
from tools import mockrun

LWS = "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
CONFIG_FILE = "kubernetes:yaml/v2:ConfigFile"
PRESET = "k8s-h100-multinode"
SCRIPT_PATH = f"{SCRIPT_DIR}/{SCRIPT}"
LWS_SCHEMA = crd_schema("leaderworkerset.x-k8s.io_leaderworkersets.yaml")


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    return {
        "preset": run_program(PRESET, secrets=SECRETS),
        "installed": run_program(
            "lws-test",
            {"vllm:preset": PRESET, "vllm:replicas": 3, "vllm:installLeaderWorkerSet": True},
            SECRETS,
        ),
        "claimed": run_program(
            "lws-disk",
            {"vllm:preset": PRESET, "vllm:storageClass": "premium-rwo", "vllm:maxSurge": 1},
            SECRETS,
        ),
    }


def lws(run: Run) -> dict[str, Any]:
    return run.one(LWS).inputs


def templates(run: Run) -> dict[str, dict[str, Any]]:
    group = lws(run)["spec"]["leaderWorkerTemplate"]
    return {"leader": group["leaderTemplate"], "worker": group["workerTemplate"]}


def container(run: Run, role: str) -> dict[str, Any]:
    (only,) = templates(run)[role]["spec"]["containers"]
    return only


def env(run: Run, role: str) -> dict[str, Any]:
    return {item["name"]: item for item in container(run, role)["env"]}


def test_multi_node_builds_one_ray_replica_group_component(runs):
    run = runs["preset"]
    (group,) = run.of_type("vllm:kubernetes:RayReplicaGroup")
    assert run.by_urn(run.one(LWS).parent) == group
    assert not run.of_type("kubernetes:apps/v1:Deployment")


def test_lws_runs_replicas_groups_of_nodes_pods(runs):
    spec = lws(runs["installed"])["spec"]
    assert spec["replicas"] == 3
    assert spec["leaderWorkerTemplate"]["size"] == 2


def test_group_is_recreated_when_any_pod_restarts(runs):
    assert lws(runs["preset"])["spec"]["leaderWorkerTemplate"]["restartPolicy"] == "RecreateGroupOnPodRestart"


def test_a_single_group_surges_to_keep_serving(runs):
    assert lws(runs["preset"])["spec"]["rolloutStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdateConfiguration": {"maxSurge": 1, "maxUnavailable": 0},
    }


def test_several_groups_roll_in_place_so_a_full_gpu_cluster_cannot_deadlock(runs):
    configuration = lws(runs["installed"])["spec"]["rolloutStrategy"]["rollingUpdateConfiguration"]
    assert configuration == {"maxSurge": 0, "maxUnavailable": 1}


def test_max_surge_chooses_the_group_rollout():
    run = run_program("lws-surge", {"vllm:preset": PRESET, "vllm:replicas": 3, "vllm:maxSurge": 2}, SECRETS)
    configuration = lws(run)["spec"]["rolloutStrategy"]["rollingUpdateConfiguration"]
    assert configuration == {"maxSurge": 2, "maxUnavailable": 0}


def test_public_service_is_not_named_like_the_leader_worker_set(runs):
    """LWS creates a headless Service named after the LeaderWorkerSet, through which the leader address
    ``<lws>-<group>.<lws>.<namespace>`` resolves: the public Service must leave that name free."""
    run = runs["preset"]
    service_name = run.one(SERVICE).inputs["metadata"]["name"]
    assert service_name != lws(run)["metadata"]["name"]
    assert service_name == f"{lws(run)['metadata']['name']}-api"


def test_first_up_waits_for_every_group_to_serve(monkeypatch):
    run, recorded = registrations(monkeypatch, PRESET)
    leader_worker_set = run.one(LWS)
    assert (
        leader_worker_set.inputs["metadata"]["annotations"]
        == WAIT_FOR
        == {"pulumi.com/waitFor": "condition=Available"}
    )
    start = start_budget(build_spec(PRESET, {}))
    assert seconds(recorded[leader_worker_set.name].timeouts["create"]) == start
    service = recorded[run.one(SERVICE).name]
    assert leader_worker_set.urn in service.dependencies
    assert seconds(service.timeouts["create"]) == start


def test_group_rollouts_may_take_one_start_per_group(monkeypatch):
    run, recorded = registrations(monkeypatch, "lws-test", {"vllm:preset": PRESET, "vllm:replicas": 3})
    start = start_budget(build_spec(PRESET, {}))
    assert seconds(recorded[run.one(LWS).name].timeouts["update"]) == 3 * start


def test_leader_runs_the_ray_head_then_the_launch_argv(runs):
    spec = build_spec(PRESET, {}, frozenset(SECRETS))
    argv = pods.with_drain(launch.launch_spec(spec, has_hf_token=True)).argv
    assert container(runs["preset"], "leader")["command"] == [SCRIPT_PATH, "head", "--", *argv]
    assert "--pipeline-parallel-size" in argv


def test_worker_joins_as_a_ray_worker(runs):
    assert container(runs["preset"], "worker")["command"] == [SCRIPT_PATH, "worker"]


@pytest.mark.parametrize("role", ["leader", "worker"])
def test_ray_environment_follows_the_bootstrap_contract(runs, role):
    variables = env(runs["preset"], role)
    assert variables["RAY_HEAD_ADDRESS"]["value"] == "$(LWS_LEADER_ADDRESS)"
    assert variables["RAY_EXPECTED_NODES"]["value"] == "2"
    assert variables["RAY_GPUS_PER_NODE"]["value"] == "8"
    assert int(variables["RAY_WAIT_TIMEOUT_SECONDS"]["value"]) == launch.RAY_GROUP_WAIT_SECONDS
    assert variables["RAY_NODE_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}


@pytest.mark.parametrize("role", ["leader", "worker"])
def test_every_pod_gets_the_secrets_by_reference(runs, role):
    variables = env(runs["preset"], role)
    for name in (launch.API_KEY_ENV, launch.HF_TOKEN_ENV):
        assert "secretKeyRef" in variables[name]["valueFrom"]


def test_bootstrap_script_is_mounted_from_a_config_map(runs):
    run = runs["preset"]
    config_map = run.one(CONFIG_MAP)
    assert config_map.inputs["data"] == {SCRIPT: scripts.source(SCRIPT)}
    for role in ("leader", "worker"):
        volumes = {v["name"]: v for v in templates(run)[role]["spec"]["volumes"]}
        (volume,) = [v for v in volumes.values() if "configMap" in v]
        assert volume["configMap"]["name"] == config_map.outputs["metadata"]["name"]
        assert volume["configMap"]["defaultMode"] == 0o555
        assert {"name": volume["name"], "mountPath": SCRIPT_DIR, "readOnly": True} in container(run, role)[
            "volumeMounts"
        ]


def test_only_the_leader_serves_and_probes_health(runs):
    leader, worker = container(runs["preset"], "leader"), container(runs["preset"], "worker")
    caps = launch.probe_timings(build_spec(PRESET, {})).caps
    # the pod starts on a booted node with its image pulled: the download and the load are left
    assert progress_caps(leader) == caps.weights + caps.load
    assert leader["readinessProbe"]["httpGet"]["path"] == launch.HEALTH_PATH
    assert "livenessProbe" not in worker and "readinessProbe" not in worker and "ports" not in worker


def test_every_pod_has_its_gpus_and_shared_memory(runs):
    for role in ("leader", "worker"):
        assert container(runs["preset"], role)["resources"]["limits"]["nvidia.com/gpu"] == "8"
        volumes = {v["name"]: v for v in templates(runs["preset"])[role]["spec"]["volumes"]}
        assert volumes[pods.SHM_VOLUME]["emptyDir"]["medium"] == "Memory"


def test_service_selects_leaders_only(runs):
    run = runs["preset"]
    selector = run.one(SERVICE).inputs["spec"]["selector"]
    leader_labels = templates(run)["leader"]["metadata"]["labels"]
    worker_labels = templates(run)["worker"]["metadata"]["labels"]
    assert selector.items() <= leader_labels.items()
    assert not selector.items() <= worker_labels.items()
    assert worker_labels["app.kubernetes.io/component"] == RAY_WORKER


def test_ray_traffic_is_admitted_only_within_each_group(runs):
    run = runs["installed"]
    name = lws(run)["metadata"]["name"]
    group_policies = [p.inputs["spec"] for p in run.of_type(NETWORK_POLICY) if "ray-group" in p.name]
    assert len(group_policies) == 3
    for index, policy in enumerate(
        sorted(group_policies, key=lambda p: p["podSelector"]["matchLabels"][LWS_GROUP_INDEX_LABEL])
    ):
        group = {LWS_NAME_LABEL: name, LWS_GROUP_INDEX_LABEL: str(index)}
        assert policy["podSelector"]["matchLabels"] == group
        assert policy["policyTypes"] == ["Ingress"]
        assert policy["ingress"] == [{"from": [{"podSelector": {"matchLabels": group}}]}]


def group_policy_indices(run: Run) -> list[int]:
    return sorted(
        int(p.inputs["spec"]["podSelector"]["matchLabels"][LWS_GROUP_INDEX_LABEL])
        for p in run.of_type(NETWORK_POLICY)
        if "ray-group" in p.name
    )


def test_ray_traffic_is_admitted_within_the_surge_group_too(runs):
    """A rollout with maxSurge creates groups numbered from ``replicas``: their Ray ports must open too."""
    assert group_policy_indices(runs["preset"]) == [0, 1]  # one replica, surging one group
    run = run_program("lws-surge", {"vllm:preset": PRESET, "vllm:replicas": 3, "vllm:maxSurge": 2}, SECRETS)
    assert group_policy_indices(run) == [0, 1, 2, 3, 4]


def test_group_policies_stop_at_the_surge_lws_allows(runs):
    run = run_program("lws-surge", {"vllm:preset": PRESET, "vllm:maxSurge": 5}, SECRETS)
    assert group_policy_indices(run) == [0, 1]  # LWS caps maxSurge at replicas


def test_only_the_serving_port_is_admitted_from_anywhere(runs):
    run = runs["preset"]
    (serving,) = [p.inputs["spec"] for p in run.of_type(NETWORK_POLICY) if p.name.endswith("-serving")]
    assert serving["podSelector"]["matchLabels"] == {LWS_NAME_LABEL: lws(run)["metadata"]["name"]}
    assert serving["ingress"] == [{"ports": [{"port": pods.PORT_NAME, "protocol": "TCP"}]}]


def test_cache_claims_outlive_a_recreated_group_with_a_storage_class(runs):
    group = lws(runs["claimed"])["spec"]["leaderWorkerTemplate"]
    (claim,) = group["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == pods.CACHE_VOLUME
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": "premium-rwo",
        "resources": {"requests": {"storage": "1000Gi"}},
    }
    # The worker StatefulSet is deleted with its leader when the group is recreated: keep the claims.
    assert group["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    validate({"apiVersion": "v1", "kind": "PersistentVolumeClaim", **plain(claim)})


@pytest.mark.parametrize("role", ["leader", "worker"])
def test_pods_mount_the_claimed_cache_instead_of_a_pod_volume(runs, role):
    template = templates(runs["claimed"])[role]
    assert pods.CACHE_VOLUME not in {v["name"] for v in template["spec"]["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in container(runs["claimed"], role)["volumeMounts"]}
    assert mounts[pods.CACHE_VOLUME] == pods.CACHE_DIR
    assert "ephemeral-storage" not in container(runs["claimed"], role)["resources"]["requests"]


def test_without_a_storage_class_groups_cache_on_requested_node_disk(runs):
    group = lws(runs["preset"])["spec"]["leaderWorkerTemplate"]
    assert "volumeClaimTemplates" not in group
    for role in ("leader", "worker"):
        assert container(runs["preset"], role)["resources"]["requests"]["ephemeral-storage"] == "700Gi"


def test_lws_controller_is_installed_from_the_pinned_release_when_asked(runs):
    run = runs["installed"]
    config_file = run.one(CONFIG_FILE)
    assert config_file.inputs["file"] == LWS_MANIFEST
    assert f"/releases/download/{LWS_VERSION}/manifests.yaml" in LWS_MANIFEST
    assert run.by_urn(config_file.parent).type == "vllm:kubernetes:LeaderWorkerSetController"


def test_lws_waits_for_the_controller_it_installs(monkeypatch):
    dependencies: dict[str, list[str]] = {}
    register = mockrun._RecordingMonitor.RegisterResource

    def recording(monitor, request):
        dependencies[request.type] = list(request.dependencies)
        return register(monitor, request)

    monkeypatch.setattr(mockrun._RecordingMonitor, "RegisterResource", recording)
    run = run_program("lws-test", {"vllm:preset": PRESET, "vllm:installLeaderWorkerSet": True})
    config_file = run.one(CONFIG_FILE)
    assert config_file.provider.startswith(run.one("pulumi:providers:kubernetes").urn)
    assert config_file.urn in dependencies[LWS]


def test_the_installed_controller_is_transformed_to_be_ready_only_once_its_webhook_serves(monkeypatch):
    # The chain: the LeaderWorkerSet depends on the ConfigFile (above), whose children pulumi-kubernetes
    # awaits (the controller Deployment's ready replicas, the webhook Service's ready endpoints), and the
    # transform makes the controller's readiness the webhook's (test below).
    transforms: dict[str, int] = {}
    register = mockrun._RecordingMonitor.RegisterResource

    def recording(monitor, request):
        transforms[request.type] = len(request.transforms)
        return register(monitor, request)

    monkeypatch.setattr(mockrun._RecordingMonitor, "RegisterResource", recording)
    run_program("lws-test", {"vllm:preset": PRESET, "vllm:installLeaderWorkerSet": True})
    assert transforms[CONFIG_FILE] == 1


def released_controller() -> dict[str, Any]:
    """The controller Deployment of the v0.8.0 release manifest, as ConfigFile registers it (its probes:
    config/manager/manager.yaml; its webhook port: config/default/manager_webhook_patch.yaml)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "lws-controller-manager", "namespace": "lws-system"},
        "spec": {
            "selector": {"matchLabels": {"control-plane": "controller-manager"}},
            "template": {
                "metadata": {"labels": {"control-plane": "controller-manager"}},
                "spec": {
                    "containers": [
                        {
                            "name": "manager",
                            "image": "registry.k8s.io/lws/lws:v0.8.0",
                            "ports": [{"containerPort": 9443, "name": "webhook-server", "protocol": "TCP"}],
                            "readinessProbe": {
                                "httpGet": {"path": "/readyz", "port": 8081},
                                "initialDelaySeconds": 5,
                                "periodSeconds": 10,
                            },
                        }
                    ]
                },
            },
        },
    }


def transformed(type_: str, props: dict[str, Any]) -> Any:
    args = pulumi.ResourceTransformArgs(
        True, type_, "lws-manifest:lws-system/x", props, pulumi.ResourceOptions()
    )
    return ready_when_webhooks_serve(args)


def test_the_controller_is_ready_when_its_leader_worker_set_webhook_answers_over_https():
    # As released, readyz is healthz.Ping (cmd/main.go) while the webhooks are registered only after the
    # certificates (setupControllers waits on certsReady), and they fail closed: an LWS created when the
    # controller is merely Ready is refused "failed calling webhook".
    result = transformed("kubernetes:apps/v1:Deployment", released_controller())
    (manager,) = result.props["spec"]["template"]["spec"]["containers"]
    probe = manager["readinessProbe"]["httpGet"]
    assert probe == {
        "path": "/validate-leaderworkerset-x-k8s-io-v1-leaderworkerset",  # config/webhook/manifests.yaml
        "port": "webhook-server",
        "scheme": "HTTPS",
    }
    assert probe["port"] in {port["name"] for port in manager["ports"]}
    validate(result.props)


def test_the_transform_leaves_every_other_object_of_the_manifest_as_it_is():
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lws-webhook-service"}}
    assert transformed("kubernetes:core/v1:Service", service) is None
    other = released_controller()
    other["metadata"]["name"] = "someone-elses"
    assert transformed("kubernetes:apps/v1:Deployment", other) is None


def test_lws_controller_is_not_installed_by_default(runs):
    assert not runs["preset"].of_type(CONFIG_FILE)


def test_no_secret_value_appears_outside_the_secret(runs):
    for resource in runs["installed"].resources:
        if resource.type != SECRET:
            assert HF_TOKEN not in resource.text() and API_KEY not in resource.text(), resource.name


@pytest.mark.parametrize("scenario", ["installed", "claimed"])
def test_objects_and_pod_templates_validate_against_the_kubernetes_schema(runs, scenario):
    run = runs[scenario]
    for resource in kubernetes_objects(run):
        if resource.type in (LWS, CONFIG_FILE):
            continue
        validate(manifest(resource))
    for template in plain(templates(run)).values():
        validate({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": template})


@pytest.mark.parametrize("scenario", ["installed", "claimed"])
def test_the_leader_worker_set_validates_against_the_pinned_crd(runs, scenario):
    # tests/crds: kubernetes-sigs/lws v0.8.0 (fc19b9ae9) config/crd/bases, the CRD LWS_MANIFEST installs.
    jsonschema.validate(manifest(runs[scenario].one(LWS)), LWS_SCHEMA)
