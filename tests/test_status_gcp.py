"""GCP replicas for `tools.status`: the lister's real Compute Engine client against recorded API answers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from components.observe import (
    FAILED,
    INSTALL_TOOLS,
    NOT_READY,
    PREEMPTED,
    PROVISIONING,
    READY,
    STARTING,
    ListError,
    ReplicaSource,
)
from tests.fake_api import FakeApi, serving
from tests.harness import run_program

compute_v1 = pytest.importorskip("google.cloud.compute_v1", reason=INSTALL_TOOLS)
from google.auth.credentials import AnonymousCredentials  # noqa: E402

from components.gcp import status as gcp_status  # noqa: E402

pytestmark = pytest.mark.timeout(120)
PROJECT, REGION = "test-project", "us-central1"
LAUNCHED = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
BASE = f"/compute/v1/projects/{PROJECT}"


@pytest.fixture(scope="module")
def single() -> ReplicaSource:
    run = run_program("gcp-h100", secrets={"vllm:hfToken": "hf_testtoken123"})
    return ReplicaSource.from_output(run.outputs["replicaSource"])


@pytest.fixture(scope="module")
def multinode() -> ReplicaSource:
    run = run_program("gcp-h100-multinode", secrets={"vllm:hfToken": "hf_testtoken123"})
    return ReplicaSource.from_output(run.outputs["replicaSource"])


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with serving() as fake:
        yield fake


def lister(api: FakeApi, source: ReplicaSource, now: datetime | None = None):
    return gcp_status.list_replicas(
        source, now=now, credentials=AnonymousCredentials(), client_options={"api_endpoint": api.url}
    )


def vm(
    api: FakeApi, name: str, zone: str, status: str = "RUNNING", spot: bool = False, ip: str = "10.0.0.2"
) -> dict:
    """A managed instance and the VM it points to, as the API answers them."""
    link = f"https://www.googleapis.com{BASE}/zones/{zone}/instances/{name}"
    api.routes[("GET", f"{BASE}/zones/{zone}/instances/{name}")] = {
        "name": name,
        "status": status,
        "creationTimestamp": LAUNCHED.astimezone().isoformat(),
        "machineType": f"https://www.googleapis.com{BASE}/zones/{zone}/machineTypes/a3-highgpu-8g",
        "guestAccelerators": [
            {
                "acceleratorType": f"{BASE}/zones/{zone}/acceleratorTypes/nvidia-h100-80gb",
                "acceleratorCount": 8,
            }
        ],
        "networkInterfaces": [{"networkIP": ip}],
        "scheduling": {"provisioningModel": "SPOT" if spot else "STANDARD"},
    }
    return {"name": name, "id": "4242", "instance": link, "instanceStatus": status, "currentAction": "NONE"}


def regional_group(api: FakeApi, source: ReplicaSource, managed: list[dict], healthy: list[str]) -> None:
    (group,) = source.groups
    api.routes[
        ("POST", f"{BASE}/regions/{REGION}/instanceGroupManagers/{group.name}/listManagedInstances")
    ] = {"managedInstances": managed}
    api.routes[("POST", f"{BASE}/global/backendServices/{source.balancer}/getHealth")] = {
        "healthStatus": [
            {"instance": f"{BASE}/zones/us-central1-a/instances/{name}", "healthState": "HEALTHY"}
            for name in healthy
        ]
        + [{"instance": "elsewhere/x", "healthState": "UNHEALTHY"}]
    }


def test_program_exports_the_managed_group_backend_and_project(single, multinode):
    assert (single.platform, single.location, single.scope) == ("gcp", REGION, PROJECT)
    assert [(group.kind, group.role) for group in single.groups] == [("regionInstanceGroupManager", "serve")]
    assert single.balancer.endswith("-backend")
    assert [(group.kind, group.role, group.replica, group.zone) for group in multinode.groups] == [
        ("instanceGroupManager", "ray-head", 0, "us-central1-a"),
        ("instanceGroupManager", "ray-worker", 0, "us-central1-a"),
    ]


def test_healthy_backends_are_ready_with_ip_machine_gpus_and_zone(api, single):
    regional_group(
        api,
        single,
        [vm(api, "vllm-a", "us-central1-a"), vm(api, "vllm-b", "us-central1-b", ip="10.0.0.3")],
        ["vllm-a", "vllm-b"],
    )
    replicas = lister(api, single)
    assert [(r.id, r.name, r.status) for r in replicas] == [("1", "vllm-a", READY), ("2", "vllm-b", READY)]
    assert replicas[0].resources == "a3-highgpu-8g (8 x nvidia-h100-80gb)"
    assert (replicas[1].ip, replicas[1].zone, replicas[1].launched) == ("10.0.0.3", "us-central1-b", LAUNCHED)
    group_link = f"projects/{PROJECT}/regions/{REGION}/instanceGroups/{single.groups[0].name}"
    assert any(
        group_link.encode() in body for method, path, _, body in api.requests if path.endswith("getHealth")
    )


def test_an_unhealthy_backend_is_starting_within_the_load_budget_and_not_ready_after(api, single):
    regional_group(api, single, [vm(api, "vllm-a", "us-central1-a")], [])
    assert lister(api, single, now=LAUNCHED + timedelta(minutes=5))[0].status == STARTING
    later = LAUNCHED + timedelta(seconds=single.startup_seconds + 1)
    assert lister(api, single, now=later)[0].status == NOT_READY


def test_a_starting_vm_shows_the_phase_its_health_agent_wrote_in_its_guest_attributes(api, single):
    regional_group(api, single, [vm(api, "vllm-a", "us-central1-a")], [])
    attributes = {"phase": "weights 41", "timings": "boot=1764061200 docker=1764061260 weights=1764061300"}
    api.routes[("GET", f"{BASE}/zones/us-central1-a/instances/vllm-a/getGuestAttributes")] = {
        "queryPath": "vllm/",
        "queryValue": {
            "items": [{"namespace": "vllm", "key": key, "value": value} for key, value in attributes.items()]
        },
    }
    # long past the estimate: the agent keeps it while its download progresses, so it is STARTING
    later = LAUNCHED + timedelta(seconds=single.startup_seconds + 1)
    (replica,) = lister(api, single, now=later)
    assert (replica.status, replica.detail) == (STARTING, "weights 41%")
    assert list(replica.as_json()["phaseTimings"]) == ["boot", "docker", "weights"]
    assert any(
        "queryPath=vllm%2F" in query for _, path, query, _ in api.requests if "GuestAttributes" in path
    )


def test_a_vm_without_guest_attributes_has_no_phase(api, single):
    regional_group(api, single, [vm(api, "vllm-a", "us-central1-a")], ["vllm-a"])
    (replica,) = lister(api, single)
    assert (replica.status, replica.phase, replica.as_json()["phaseTimings"]) == (READY, "", {})


def test_a_vm_being_created_is_provisioning_with_the_groups_last_error(api, single):
    creating = {
        "name": "vllm-c",
        "instance": f"https://www.googleapis.com{BASE}/zones/us-central1-c/instances/vllm-c",
        "currentAction": "CREATING",
        "lastAttempt": {
            "errors": {
                "errors": [{"code": "ZONE_RESOURCE_POOL_EXHAUSTED", "message": "no H100 in us-central1-c"}]
            }
        },
    }
    regional_group(api, single, [creating], [])
    (replica,) = lister(api, single)
    assert (replica.status, replica.detail, replica.zone) == (
        PROVISIONING,
        "no H100 in us-central1-c",
        "us-central1-c",
    )


def test_a_vm_autohealing_judges_unhealthy_is_failed(api, single):
    managed = vm(api, "vllm-a", "us-central1-a")
    managed["instanceHealth"] = [{"detailedHealthState": "UNHEALTHY"}]
    regional_group(api, single, [managed], [])
    assert lister(api, single)[0].status == FAILED


def test_a_terminated_spot_vm_is_preempted(api, single):
    managed = vm(api, "vllm-a", "us-central1-a", status="TERMINATED", spot=True)
    managed["currentAction"] = "RECREATING"
    regional_group(api, single, [managed], [])
    (replica,) = lister(api, single)
    assert replica.status == PREEMPTED
    assert replica.resources.endswith("[Spot]")


def test_a_ray_group_lists_its_head_from_the_backend_and_its_workers_from_autohealing(api, multinode):
    head, workers = multinode.groups
    zone = head.zone
    api.routes[("POST", f"{BASE}/zones/{zone}/instanceGroupManagers/{head.name}/listManagedInstances")] = {
        "managedInstances": [vm(api, "r0-head", zone)]
    }
    api.routes[("POST", f"{BASE}/zones/{zone}/instanceGroupManagers/{workers.name}/listManagedInstances")] = {
        "managedInstances": [vm(api, "r0-worker", zone)]
    }
    api.routes[("POST", f"{BASE}/global/backendServices/{multinode.balancer}/getHealth")] = {
        "healthStatus": [{"instance": f"{BASE}/zones/{zone}/instances/r0-head", "healthState": "HEALTHY"}]
    }
    replicas = lister(api, multinode)
    assert [(r.id, r.name, r.role, r.status) for r in replicas] == [
        ("0", "r0-head", "ray-head", READY),
        ("0", "r0-worker", "ray-worker", READY),
    ]


def test_an_api_error_is_a_list_error_naming_the_project(api, single):
    api.routes[("POST", f"{BASE}/global/backendServices/{single.balancer}/getHealth")] = (
        403,
        {
            "error": {
                "code": 403,
                "message": "Required 'compute.backendServices.get' permission",
                "status": "PERMISSION_DENIED",
            }
        },
    )
    with pytest.raises(ListError, match=f"GCP project {PROJECT}.*compute.backendServices.get"):
        lister(api, single)


def desired(api: FakeApi, source: ReplicaSource) -> int:
    return gcp_status.desired_replicas(
        source, credentials=AnonymousCredentials(), client_options={"api_endpoint": api.url}
    )


def test_desired_replicas_are_the_regional_groups_target_size_the_autoscaler_sets(api, single):
    (group,) = single.groups
    api.routes[("GET", f"{BASE}/regions/{REGION}/instanceGroupManagers/{group.name}")] = {
        "name": group.name,
        "targetSize": 3,
        "status": {"autoscaler": f"{BASE}/regions/{REGION}/autoscalers/vllm-autoscaler"},
    }
    assert desired(api, single) == 3


def test_desired_replicas_of_ray_groups_count_the_head_groups_only(api, multinode):
    head, workers = multinode.groups
    for group, size in ((head, 1), (workers, 1)):
        api.routes[("GET", f"{BASE}/zones/{group.zone}/instanceGroupManagers/{group.name}")] = {
            "name": group.name,
            "targetSize": size,
        }
    assert desired(api, multinode) == 1
    assert not any(path.endswith(workers.name) for _, path, _, _ in api.requests)


def test_a_missing_group_is_a_list_error_naming_the_project(api, single):
    with pytest.raises(ListError, match=f"GCP project {PROJECT}"):
        desired(api, single)


def test_an_autoscaled_program_exports_its_bounds() -> None:
    run = run_program(
        "gcp-h100",
        config={"vllm:maxReplicas": "4", "vllm:minReplicas": "2", "vllm:targetQpsPerReplica": "2"},
        secrets={"vllm:hfToken": "hf_testtoken123"},
    )
    source = ReplicaSource.from_output(run.outputs["replicaSource"])
    assert (source.bounds, source.replicas) == ((2, 4), 2)


# --- several regions (vllm:regions) ---------------------------------------------------------------------

REGIONS = ("us-central1", "us-east4")


@pytest.fixture(scope="module")
def two_regions() -> ReplicaSource:
    config = {
        "vllm:cloud": "gcp",
        "vllm:gpu": "L4:1",
        "vllm:model": "Qwen/Qwen3-8B",
        "vllm:replicas": 2,
        "vllm:regions": list(REGIONS),
    }
    run = run_program("two-regions", config, secrets={"vllm:hfToken": "hf_testtoken123"})
    return ReplicaSource.from_output(run.outputs["replicaSource"])


def test_each_regional_group_is_exported_with_its_own_region(two_regions):
    assert two_regions.location == REGIONS[0]
    assert sorted(group.region for group in two_regions.groups) == sorted(REGIONS)


def test_replicas_of_every_region_are_listed_from_their_own_regions_group(api, two_regions):
    # Each group answers only in its own region: asking us-central1 for the us-east4 group is a 404.
    for group in two_regions.groups:
        zone = f"{group.region}-a"
        api.routes[
            ("POST", f"{BASE}/regions/{group.region}/instanceGroupManagers/{group.name}/listManagedInstances")
        ] = {"managedInstances": [vm(api, f"vm-{group.region}", zone)]}
    api.routes[("POST", f"{BASE}/global/backendServices/{two_regions.balancer}/getHealth")] = {
        "healthStatus": [
            {"instance": f"{BASE}/zones/{region}-a/instances/vm-{region}", "healthState": "HEALTHY"}
            for region in REGIONS
        ]
    }
    replicas = lister(api, two_regions)
    assert sorted((r.name, r.zone, r.status) for r in replicas) == [
        (f"vm-{region}", f"{region}-a", READY) for region in REGIONS
    ]
    asked = [body for _, path, _, body in api.requests if path.endswith("getHealth")]
    for group in two_regions.groups:
        assert any(f"regions/{group.region}/instanceGroups/{group.name}".encode() in body for body in asked)


def test_the_desired_count_adds_each_regions_group_read_in_its_region(api, two_regions):
    for group, size in zip(two_regions.groups, (2, 3), strict=True):
        api.routes[("GET", f"{BASE}/regions/{group.region}/instanceGroupManagers/{group.name}")] = {
            "name": group.name,
            "targetSize": size,
        }
    assert desired(api, two_regions) == 5
