"""vllm:cacheClaim: every pod of a Kubernetes stack shares one ReadWriteMany HF cache."""

from __future__ import annotations

import math
from typing import Any

import pytest

from components import launch, scripts
from components.kubernetes import pods
from components.launch import HF_CACHE_DIR, HF_TOKEN_ENV
from components.rates import HUB, SAFETENSORS_LOAD, SHARED_CLAIM
from components.scripts import health_agent
from components.spec import SpecError, build_spec
from tests.harness import Run, run_program
from tests.test_kubernetes import (
    DEPLOYMENT,
    SECRETS,
    SERVICE,
    k8s_stack,
    kubernetes_objects,
    manifest,
    progress_caps,
    registrations,
    seconds,
    start_budget,
    validate,
)
from tests.test_kubernetes_multinode import LWS

CLAIM = "shared-hf-cache"
#: A claim you made, in a namespace you made (the stack cannot adopt one: pulumi-kubernetes #4278).
EXISTING = {"vllm:cacheClaim": CLAIM, "vllm:createNamespace": "false"}
CONFIG = k8s_stack(**EXISTING)


@pytest.fixture(scope="module")
def shared() -> Run:
    return run_program("shared-test", CONFIG, SECRETS)


@pytest.fixture(scope="module")
def shared_group() -> Run:
    return run_program("shared-group", {"vllm:preset": "k8s-h100-multinode", **EXISTING}, SECRETS)


def pod(run: Run) -> dict[str, Any]:
    return run.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]


def timings(config: dict[str, Any]) -> launch.ProbeTimings:
    return launch.probe_timings(build_spec("shared-test", config))


def fill_container(run: Run) -> dict[str, Any]:
    (container,) = pod(run)["initContainers"]
    return container


def startup_budget(container: dict[str, Any]) -> int:
    probe = container["startupProbe"]
    return probe["failureThreshold"] * probe["periodSeconds"]


def test_every_pod_mounts_the_claim_as_its_hf_cache(shared):
    spec = pod(shared)
    (volume,) = [v for v in spec["volumes"] if "persistentVolumeClaim" in v]
    assert volume["persistentVolumeClaim"] == {"claimName": CLAIM}
    (container,) = spec["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts[HF_CACHE_DIR] == volume["name"]
    assert mounts["/root/.cache"] == "cache"  # the pod's own: vLLM's cache root moves onto the claim


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"] if "value" in item}


def test_vllms_compile_cache_is_on_the_claim_under_the_stacks_key(shared):
    (container,) = pod(shared)["containers"]
    key = launch.compile_cache_key(build_spec("shared-test", CONFIG))
    assert env_of(container)["VLLM_CACHE_ROOT"] == f"{HF_CACHE_DIR}/vllm-compile-cache/{key}"


def test_every_node_of_a_group_compiles_into_the_claim(shared_group):
    group = shared_group.one(LWS).inputs["spec"]["leaderWorkerTemplate"]
    roots = {
        env_of(container)["VLLM_CACHE_ROOT"]
        for template in (group["leaderTemplate"], group["workerTemplate"])
        for container in template["spec"]["containers"]
    }
    assert len(roots) == 1 and roots.pop().startswith(f"{HF_CACHE_DIR}/vllm-compile-cache/")


def test_pods_on_the_claim_reserve_node_disk_for_what_stays_local_only(shared):
    # The weights are on the claim: a request for them would keep the pods Pending on GPU nodes with
    # ordinary boot disks (the scheduler sums ephemeral-storage requests against the node's allocatable).
    (container,) = pod(shared)["containers"]
    assert container["resources"]["requests"]["ephemeral-storage"] == f"{pods.CACHE_HEADROOM_GB}Gi"
    (volume,) = [v for v in pod(shared)["volumes"] if v["name"] == pods.CACHE_VOLUME]
    assert volume["emptyDir"] == {"sizeLimit": f"{pods.CACHE_HEADROOM_GB}Gi"}


def test_multi_node_pods_on_the_claim_reserve_no_node_disk_for_the_weights(shared_group):
    group = shared_group.one(LWS).inputs["spec"]["leaderWorkerTemplate"]
    for template in (group["leaderTemplate"], group["workerTemplate"]):
        (container,) = template["spec"]["containers"]
        assert container["resources"]["requests"]["ephemeral-storage"] == f"{pods.CACHE_HEADROOM_GB}Gi"


def test_the_shared_cache_objects_validate_against_the_kubernetes_schema(shared):
    for resource in kubernetes_objects(shared):
        validate(manifest(resource))


def test_the_multi_node_groups_share_it_too(shared_group):
    text = str([r.inputs for r in shared_group.resources if r.type.startswith("kubernetes:leaderworkerset")])
    assert text.count(f"'claimName': '{CLAIM}'") >= 2  # the leader's and the workers' pod templates


def test_without_a_claim_each_pod_keeps_its_own_cache_and_downloads_in_vllm():
    run = run_program("own-test", k8s_stack(), SECRETS)
    assert not [v for v in pod(run)["volumes"] if "persistentVolumeClaim" in v]
    assert "initContainers" not in pod(run)
    (container,) = pod(run)["containers"]
    caps = timings(k8s_stack()).caps
    assert progress_caps(container) == caps.weights + caps.load  # the whole Hub path from the pull
    assert "VLLM_CACHE_ROOT" not in env_of(container)  # vLLM's default, in the pod's own cache


def test_the_fill_judges_its_download_by_the_vms_stall_window_and_progress_unit(shared):
    script = fill_container(shared)["command"][2]
    assert f"readonly STALL_SECONDS={launch.STALL_SECONDS}\n" in script
    assert f"readonly PROGRESS_BYTES={health_agent.PROGRESS_BYTES}\n" in script
    takeover = launch.STALL_SECONDS + pods.FILL_LOCK_GRACE_SECONDS  # a live filler stops itself first
    assert f"readonly TAKEOVER_SECONDS={takeover}\n" in script
    _, judge = scripts.without_comments(scripts.source(pods.PROGRESS_SCRIPT)).split("\n", 1)  # no shebang
    assert judge in script


def test_an_init_container_of_the_pinned_image_fills_the_claim_before_vllm_starts(shared):
    fill = fill_container(shared)
    (vllm,) = pod(shared)["containers"]
    assert fill["image"] == vllm["image"]
    assert fill["volumeMounts"] == [{"name": pods.SHARED_HF_CACHE_VOLUME, "mountPath": HF_CACHE_DIR}]
    spec = build_spec("shared-test", CONFIG)
    assert fill["command"] == ["/bin/bash", "-c", pods.fill_script(spec, launch.launch_spec(spec, True))]


def test_the_fill_downloads_the_commit_vllm_loads_into_the_hf_cache_vllm_reads():
    spec = build_spec("shared-test", {**CONFIG, "vllm:extraArgs": ["--revision", "a" * 40]})
    text = pods.fill_script(spec, launch.launch_spec(spec, True))
    assert f"readonly REVISION={'a' * 40}" in text and f"readonly MODEL={spec.model}" in text
    assert f"readonly CACHE_DIR={HF_CACHE_DIR}/hub" in text  # huggingface_hub's default hub cache


def test_the_fill_gets_the_hf_token_from_the_secret_never_as_a_value(shared):
    env = {variable["name"]: variable for variable in fill_container(shared)["env"]}
    assert env[HF_TOKEN_ENV]["valueFrom"]["secretKeyRef"]["key"] == HF_TOKEN_ENV
    assert "value" not in env[HF_TOKEN_ENV]
    assert SECRETS["vllm:hfToken"] not in str(fill_container(shared))
    assert "VLLM_API_KEY" not in env  # the fill needs the Hub's token alone


def test_the_fill_without_an_hf_token_asks_for_none():
    run = run_program("shared-public", CONFIG, {"vllm:apiKey": SECRETS["vllm:apiKey"]})
    assert HF_TOKEN_ENV not in {variable["name"] for variable in fill_container(run)["env"]}


def test_the_fill_is_cut_short_at_the_weights_phases_cap_onto_the_claim():
    spec = build_spec("shared-test", CONFIG)
    size = launch.weights_gb(spec)
    fetch = math.ceil(size * 1000 / min(HUB.expected_mbps, SHARED_CLAIM.write_mbps))
    assert timings(CONFIG).fill_seconds == fetch
    slowest = min(HUB.slowest_mbps, SHARED_CLAIM.write.slowest_mbps)
    assert timings(CONFIG).caps.weights == math.ceil(size * 1000 / slowest)
    text = pods.fill_script(spec, launch.launch_spec(spec, True))
    bound = pods.FILL_START_SECONDS + timings(CONFIG).caps.weights
    assert f"readonly FETCH_SECONDS={bound}\n" in text
    assert f"readonly LOCK_SECONDS={bound + pods.FILL_LOCK_GRACE_SECONDS}\n" in text


def test_vllms_startup_probe_budgets_the_claims_read_and_the_load_alone(shared):
    (vllm,) = pod(shared)["containers"]
    size = launch.weights_gb(build_spec("shared-test", CONFIG))
    read = min(SHARED_CLAIM.read_mbps, SAFETENSORS_LOAD.expected_mbps)
    load = timings(CONFIG).fixed_seconds + math.ceil(size * 1000 / read)
    assert timings(CONFIG).cached_startup_seconds == load
    cap = timings(CONFIG).caps.load  # the load phase's cap: the claim's read and vLLM's start, at the slowest
    assert cap == load - timings(CONFIG).caps.start  # a later pod's budget, past the boot and image pull
    assert cap <= startup_budget(vllm) < cap + vllm["startupProbe"]["periodSeconds"]


def test_a_pod_on_the_claim_is_declared_broken_sooner_than_one_downloading_from_the_hub(shared):
    (vllm,) = pod(shared)["containers"]
    hub = timings(k8s_stack()).caps
    assert startup_budget(vllm) < hub.weights + hub.load


def test_every_wait_on_the_workload_adds_the_fill_to_the_load(monkeypatch):
    run, recorded = registrations(monkeypatch, "k8s-l4", EXISTING)
    spec = build_spec("k8s-l4", EXISTING)
    probes = launch.launch_spec(spec, True).probes
    fill = pods.FILL_START_SECONDS + probes.caps.weights
    start = pods.POD_SCHEDULE_AND_PULL_SECONDS + fill + probes.caps.load
    assert start_budget(spec) == start
    assert run.one(DEPLOYMENT).inputs["spec"]["progressDeadlineSeconds"] == start
    assert seconds(recorded[run.one(DEPLOYMENT).name].timeouts["create"]) == start
    assert seconds(recorded[run.one(SERVICE).name].timeouts["create"]) == start


def test_the_replica_status_budget_counts_the_fill_from_the_pods_start(shared):
    probes = timings(CONFIG)
    fill = pods.FILL_START_SECONDS + probes.caps.weights
    assert shared.outputs["replicaSource"]["startupSeconds"] == fill + probes.caps.load


def test_time_to_ready_tells_the_first_pods_fill_and_the_later_pods_read(shared):
    ready = shared.outputs["timeToReady"]
    first, later = ready["firstReplica"], ready["laterReplicas"]
    assert (first["path"], later["path"]) == ("hub, into the shared cache", "shared cache")
    assert later["fetchSeconds"] == 0 and first["fetchSeconds"] == timings(CONFIG).fill_seconds
    assert later["seconds"] < first["seconds"]
    assert ready["assumed"]["storage"] == SHARED_CLAIM.name


def test_the_multi_node_leader_fills_the_claim_and_its_workers_do_not(shared_group):
    group = shared_group.one(LWS).inputs["spec"]["leaderWorkerTemplate"]
    (fill,) = group["leaderTemplate"]["spec"]["initContainers"]
    assert fill["name"] == pods.FILL_CONTAINER
    assert "initContainers" not in group["workerTemplate"]["spec"]


@pytest.mark.parametrize("claim", ["Shared_Cache", "-cache", "a" * 254])
def test_a_claim_name_that_is_no_dns_subdomain_is_refused(claim):
    with pytest.raises(SpecError) as refused:
        build_spec("bad", k8s_stack(**{"vllm:cacheClaim": claim}))
    assert refused.value.key == "vllm:cacheClaim" and "PersistentVolumeClaim" in refused.value.valid


def test_the_claim_shows_in_the_spec(shared):
    assert shared.outputs["spec"]["cacheClaim"] == CLAIM


def test_the_status_tool_knows_the_fill_container_by_its_name():
    from components.kubernetes import status

    assert status.FILL_CONTAINER == pods.FILL_CONTAINER


# --- a claim that can exist on the first `up` --------------------------------------------------------------

PVC = "kubernetes:core/v1:PersistentVolumeClaim"
NAMESPACE = "kubernetes:core/v1:Namespace"


def test_an_existing_claim_in_the_namespace_the_stack_creates_is_refused():
    # The namespace does not exist before `up`, so neither can the claim in it: the pods would wait on a
    # missing claim until the Deployment's deadline, and `pulumi destroy` would delete the cache with it.
    with pytest.raises(SpecError) as refused:
        build_spec("owned", k8s_stack(**{"vllm:cacheClaim": CLAIM}))
    assert refused.value.key == "vllm:cacheClaim"
    assert "vllm:createNamespace" in refused.value.valid and "vllm:cacheStorageClass" in refused.value.valid


def test_a_cache_storage_class_without_a_claim_name_is_refused():
    with pytest.raises(SpecError) as refused:
        build_spec("owned", k8s_stack(**{"vllm:cacheStorageClass": "standard-rwx"}))
    assert refused.value.key == "vllm:cacheStorageClass" and "vllm:cacheClaim" in refused.value.valid


def test_in_a_namespace_of_yours_the_stack_declares_no_namespace_and_uses_it(shared):
    assert not shared.of_type(NAMESPACE)
    assert {r.inputs["metadata"]["namespace"] for r in kubernetes_objects(shared)} == {"vllm-shared-test"}
    assert not shared.of_type(PVC)  # the claim is yours too


@pytest.fixture(scope="module")
def created() -> tuple[Run, dict]:
    monkeypatch = pytest.MonkeyPatch()
    try:
        yield registrations(
            monkeypatch, "k8s-l4", {"vllm:cacheClaim": CLAIM, "vllm:cacheStorageClass": "standard-rwx"}
        )
    finally:
        monkeypatch.undo()


def test_the_stack_creates_the_claim_from_the_storage_class_it_is_named(created):
    run, _ = created
    claim = run.one(PVC).inputs
    assert claim["metadata"]["name"] == CLAIM
    assert claim["metadata"]["namespace"] == run.one(NAMESPACE).inputs["metadata"]["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # every pod, on any node, mounts it
    assert claim["spec"]["storageClassName"] == "standard-rwx"
    spec = build_spec("k8s-l4", {"vllm:cacheClaim": CLAIM, "vllm:cacheStorageClass": "standard-rwx"})
    assert claim["spec"]["resources"]["requests"]["storage"] == f"{spec.disk_size_gb}Gi"
    validate(manifest(run.one(PVC)))


def test_the_created_claim_outlives_the_stack_and_is_not_awaited(created):
    # retainOnDelete: `pulumi destroy` leaves the cache. No await: a WaitForFirstConsumer class binds only
    # once a pod mounts the claim, which the pods (naming it) wait for themselves.
    run, recorded = created
    assert recorded[run.one(PVC).name].retain_on_delete is True
    assert run.one(PVC).inputs["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}
    (volume,) = [v for v in pod(run)["volumes"] if "persistentVolumeClaim" in v]
    assert volume["persistentVolumeClaim"] == {"claimName": CLAIM}
