"""The serving gate's wait (components/gcp/serving_gate.py) against a local Compute API over real HTTP: a
revision gets more traffic only once every replica of it is healthy in the load balancer's check."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from components.gcp.serving_gate import (
    GateProvider,
    Health,
    NotServing,
    backend_health,
    wait_until_serving,
)
from tests.fake_api import FakeApi, serving

pytestmark = pytest.mark.timeout(60)
PROJECT, BACKEND = "p", "vllm-prod-rev2-backend"
GROUPS = [
    f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/regions/r/instanceGroups/g{i}" for i in (1, 2)
]
TOKEN = "ya29.an-access-token"
HEALTH = f"/projects/{PROJECT}/global/backendServices/{BACKEND}/getHealth"


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with serving() as fake:
        yield fake


def answer(*states: str) -> dict:
    return {"healthStatus": [{"instance": f"vm-{i}", "healthState": state} for i, state in enumerate(states)]}


class Clock:
    """Time that passes only when the gate sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def health_of(api: FakeApi, groups: list[str] | None = None):
    return lambda: backend_health(api.url, PROJECT, BACKEND, groups or GROUPS[:1], TOKEN)


def wait(api: FakeApi, clock: Clock, minimum: int = 2, deadline: float = 600) -> Health:
    return wait_until_serving(
        health_of(api),
        what="revision 2",
        minimum=minimum,
        deadline=deadline,
        poll_seconds=15,
        clock=clock,
        sleep=clock.sleep,
    )


def props(api: FakeApi, weight: int, **more: object) -> dict:
    return {
        "slot": "2",
        "project": PROJECT,
        "backend": BACKEND,
        "groups": GROUPS[:1],
        "weight": weight,
        "weightBefore": 0,
        "stable": False,
        "minimum": 2,
        "deadlineSeconds": 0,
        "pollSeconds": 15,
        "api": api.url,
        "token": TOKEN,
        **more,
    }


def test_every_replica_healthy_passes_at_once(api):
    api.routes[("POST", HEALTH)] = answer("HEALTHY", "HEALTHY")
    clock = Clock()
    assert wait(api, clock) == Health(serving=2, listed=2) and clock.sleeps == []


def test_the_gate_asks_with_the_providers_token_for_each_group(api):
    api.routes[("POST", HEALTH)] = answer("HEALTHY")
    backend_health(api.url, PROJECT, BACKEND, GROUPS, TOKEN)
    assert [json.loads(body)["group"] for _, _, _, body in api.requests] == GROUPS


def test_the_gate_waits_until_the_last_replica_serves(api):
    api.routes[("POST", HEALTH)] = answer("HEALTHY", "UNHEALTHY")
    clock = Clock()

    def loaded(seconds: float) -> None:
        clock.sleep(seconds)
        api.routes[("POST", HEALTH)] = answer("HEALTHY", "HEALTHY")

    found = wait_until_serving(
        health_of(api), what="revision 2", minimum=2, deadline=600, poll_seconds=15, clock=clock, sleep=loaded
    )
    assert found.serving == 2 and clock.now == 15


def test_not_every_replica_serving_by_the_deadline_fails_in_one_line(api):
    api.routes[("POST", HEALTH)] = answer("HEALTHY", "UNHEALTHY")
    with pytest.raises(NotServing) as caught:
        wait(api, Clock(), deadline=60)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("revision 2: 1 of 2 replicas serving") and "after 60 s" in message
    assert "traffic not moved" in message


def test_a_replica_the_backend_does_not_list_yet_counts_as_not_serving(api):
    api.routes[("POST", HEALTH)] = answer("HEALTHY")
    with pytest.raises(NotServing, match="1 of 2 replicas serving"):
        wait(api, Clock(), minimum=2, deadline=0)


def test_a_surge_vm_still_loading_counts_against(api):
    api.routes[("POST", HEALTH)] = answer("HEALTHY", "HEALTHY", "UNKNOWN")
    with pytest.raises(NotServing, match="2 of 3 replicas serving"):
        wait(api, Clock(), minimum=2, deadline=0)


def test_an_expired_token_fails_naming_the_token(api):
    api.routes[("POST", HEALTH)] = (401, {"error": {"code": 401, "message": "expired"}})
    with pytest.raises(NotServing, match="access token expired") as caught:
        wait(api, Clock())
    assert TOKEN not in str(caught.value)


def test_a_weight_that_falls_moves_traffic_without_asking(api):
    GateProvider().update("id", {"weight": 1000}, props(api, weight=0))
    assert api.requests == []


def test_a_weight_that_rises_waits_for_the_revision(api):
    api.routes[("POST", HEALTH)] = answer("HEALTHY", "UNHEALTHY")
    with pytest.raises(NotServing, match=r"revision 2 .*1 of 2 replicas serving"):
        GateProvider().update("id", {"weight": 0}, props(api, weight=1000))


def test_a_rollback_onto_the_stable_revision_that_takes_requests_does_not_wait(api):
    GateProvider().update("id", {"weight": 900}, props(api, weight=1000, stable=True))
    assert api.requests == []


def test_a_promote_onto_a_revision_that_took_no_requests_waits(api):
    api.routes[("POST", HEALTH)] = answer("UNHEALTHY", "UNHEALTHY")
    with pytest.raises(NotServing, match="0 of 2 replicas serving"):
        GateProvider().update("id", {"weight": 0}, props(api, weight=1000, stable=True))


def test_a_promote_onto_a_revision_that_serves_passes(api):
    api.routes[("POST", HEALTH)] = answer("HEALTHY", "HEALTHY")
    result = GateProvider().update("id", {"weight": 0}, props(api, weight=1000))
    assert result.outs is not None and result.outs["weight"] == 1000


def test_a_new_canary_at_weight_zero_does_not_wait(api):
    GateProvider().create(props(api, weight=0))
    assert api.requests == []


def test_a_new_canary_with_traffic_waits_for_every_replica(api):
    api.routes[("POST", HEALTH)] = answer("UNHEALTHY", "UNHEALTHY")
    with pytest.raises(NotServing, match="0 of 2 replicas serving"):
        GateProvider().create(props(api, weight=1000))


def test_the_gates_state_keeps_no_token(api):
    result = GateProvider().create(props(api, weight=0))
    assert result.outs is not None and "token" not in result.outs


def test_only_a_change_of_what_the_gate_compares_is_an_update(api):
    old = props(api, weight=100)
    assert GateProvider().diff("id", old, {**old, "token": "fresh"}).changes is False
    assert GateProvider().diff("id", old, {**old, "weight": 200}).changes is True
