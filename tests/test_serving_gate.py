"""The serving gate (components/gcp/serving_gate.py) against a local Compute API over real HTTP: a revision
gets more traffic only once every replica of it is healthy in the load balancer's check, and a gate that
sees it not serving records a refusal (the weight before, one line) rather than failing its provider."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from components.gcp.serving_gate import GateProvider, backend_health
from components.scripts.serving_wait import Health, NotServing, wait_until_serving
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


def gate(clock: Clock | None = None) -> GateProvider:
    clock = clock or Clock()
    return GateProvider(clock=clock, sleep=clock.sleep)


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


def test_an_expired_token_fails_at_once_naming_the_token(api):
    api.routes[("POST", HEALTH)] = (401, {"error": {"code": 401, "message": "expired"}})
    clock = Clock()
    with pytest.raises(NotServing, match="access token expired") as caught:
        wait(api, clock)
    assert clock.sleeps == [] and TOKEN not in str(caught.value)


def test_a_refused_look_fails_at_once_with_the_apis_reason(api):
    message = "Required 'compute.backendServices.get' permission"
    api.routes[("POST", HEALTH)] = (403, {"error": {"code": 403, "message": message}})
    clock = Clock()
    with pytest.raises(NotServing) as caught:
        wait(api, clock)
    assert clock.sleeps == []
    assert f"HTTP 403 ({message})" in str(caught.value) and "traffic not moved" in str(caught.value)


def test_a_server_error_is_asked_again_at_the_next_poll(api):
    api.routes[("POST", HEALTH)] = (503, {"error": {"code": 503, "message": "backend error"}})
    clock = Clock()

    def recovered(seconds: float) -> None:
        clock.sleep(seconds)
        api.routes[("POST", HEALTH)] = answer("HEALTHY", "HEALTHY")

    found = wait_until_serving(
        health_of(api),
        what="revision 2",
        minimum=2,
        deadline=600,
        poll_seconds=15,
        clock=clock,
        sleep=recovered,
    )
    assert found.serving == 2 and len(api.requests) == 2


def test_a_server_error_until_the_deadline_fails_naming_it_in_one_line(api):
    api.routes[("POST", HEALTH)] = (503, {"error": {"code": 503, "message": "backend\nerror"}})
    with pytest.raises(NotServing) as caught:
        wait(api, Clock(), deadline=60)
    message = str(caught.value)
    assert "\n" not in message and "HTTP 503 (backend error)" in message and "after 60 s" in message


def test_no_answer_at_all_is_asked_again_until_the_deadline():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    clock = Clock()
    with pytest.raises(NotServing, match="no answer from Compute's getHealth"):
        wait_until_serving(
            lambda: backend_health(f"http://127.0.0.1:{port}", PROJECT, BACKEND, GROUPS[:1], TOKEN),
            what="revision 2",
            minimum=1,
            deadline=30,
            poll_seconds=15,
            clock=clock,
            sleep=clock.sleep,
        )
    assert clock.sleeps == [15, 15]


# --- the provider: outcomes, never a raise for a revision not serving -----------------------------------


def test_a_weight_that_falls_moves_traffic_without_asking(api):
    result = gate().update("id", {"weight": 1000}, props(api, weight=0))
    assert api.requests == []
    assert result.outs is not None and (result.outs["weight"], result.outs["refused"]) == (0, "")


def test_a_weight_that_rises_onto_a_revision_not_serving_keeps_the_weight_before(api):
    api.routes[("POST", HEALTH)] = answer("HEALTHY", "UNHEALTHY")
    result = gate().update("id", {"weight": 0}, props(api, weight=1000))
    assert result.outs is not None and result.outs["weight"] == 0


def test_a_refusal_is_one_line_naming_the_revision_and_what_serves(api):
    api.routes[("POST", HEALTH)] = answer("HEALTHY", "UNHEALTHY")
    result = gate().update("id", {"weight": 0}, props(api, weight=1000, deadlineSeconds=60))
    assert result.outs is not None
    refused = result.outs["refused"]
    assert refused == (
        f"revision 2 ({BACKEND}): 1 of 2 replicas serving (healthy in the load balancer's check on /health) "
        "after 60 s; traffic not moved"
    )


def test_the_gate_waits_on_its_clock_until_the_revision_serves(api):
    api.routes[("POST", HEALTH)] = answer("UNHEALTHY", "UNHEALTHY")
    clock = Clock()

    def loaded(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.now >= 45:
            api.routes[("POST", HEALTH)] = answer("HEALTHY", "HEALTHY")

    result = GateProvider(clock=clock, sleep=loaded).update(
        "id", {"weight": 0}, props(api, weight=1000, deadlineSeconds=600)
    )
    assert result.outs is not None and (result.outs["weight"], result.outs["refused"]) == (1000, "")
    assert clock.now == 45


def test_a_rollback_onto_the_stable_revision_that_takes_requests_does_not_wait(api):
    result = gate().update("id", {"weight": 900}, props(api, weight=1000, stable=True))
    assert api.requests == [] and result.outs is not None and result.outs["weight"] == 1000


def test_a_promote_onto_a_revision_that_took_no_requests_waits(api):
    api.routes[("POST", HEALTH)] = answer("UNHEALTHY", "UNHEALTHY")
    result = gate().update("id", {"weight": 0}, props(api, weight=1000, stable=True))
    assert result.outs is not None and "0 of 2 replicas serving" in result.outs["refused"]


def test_a_promote_onto_a_revision_that_serves_passes(api):
    api.routes[("POST", HEALTH)] = answer("HEALTHY", "HEALTHY")
    result = gate().update("id", {"weight": 0}, props(api, weight=1000))
    assert result.outs is not None and (result.outs["weight"], result.outs["refused"]) == (1000, "")


def test_a_new_canary_at_weight_zero_does_not_wait(api):
    result = gate().create(props(api, weight=0))
    assert api.requests == [] and result.outs is not None and result.outs["refused"] == ""


def test_a_new_canary_with_traffic_not_serving_is_created_with_no_traffic(api):
    api.routes[("POST", HEALTH)] = answer("UNHEALTHY", "UNHEALTHY")
    result = gate().create(props(api, weight=1000))
    assert result.outs is not None and result.outs["weight"] == 0
    assert "0 of 2 replicas serving" in result.outs["refused"]


def test_a_server_error_is_a_refusal_not_a_failed_update(api):
    api.routes[("POST", HEALTH)] = (500, {"error": {"code": 500, "message": "internal"}})
    result = gate().update("id", {"weight": 0}, props(api, weight=1000))
    assert result.outs is not None and result.outs["weight"] == 0 and "HTTP 500" in result.outs["refused"]


def test_the_gates_outputs_keep_no_token_even_when_refused(api):
    api.routes[("POST", HEALTH)] = (401, {"error": {"code": 401, "message": "expired"}})
    created = gate().create(props(api, weight=0))
    refused = gate().update("id", {"weight": 0}, props(api, weight=1000))
    for outs in (created.outs, refused.outs):
        assert outs is not None and "token" not in outs and TOKEN not in json.dumps(outs)


def test_only_a_change_of_what_the_gate_compares_is_an_update(api):
    api.routes[("POST", HEALTH)] = answer("HEALTHY", "HEALTHY")
    outs = gate().create(props(api, weight=100)).outs
    assert outs is not None
    assert gate().diff("id", outs, props(api, weight=100, token="fresh")).changes is False
    assert gate().diff("id", outs, props(api, weight=200)).changes is True


def test_the_next_up_asks_again_after_a_refusal(api):
    api.routes[("POST", HEALTH)] = answer("UNHEALTHY", "UNHEALTHY")
    asked = props(api, weight=1000)
    refused = gate().update("id", {"weight": 0}, asked).outs
    assert refused is not None
    assert gate().diff("id", refused, {**asked, "token": "fresh"}).changes is True
    api.routes[("POST", HEALTH)] = answer("HEALTHY", "HEALTHY")
    retried = gate().update("id", refused, asked).outs
    assert retried is not None and (retried["weight"], retried["refused"]) == (1000, "")


def test_a_refusal_is_cleared_when_the_weight_asked_goes_back(api):
    api.routes[("POST", HEALTH)] = answer("UNHEALTHY", "UNHEALTHY")
    refused = gate().update("id", {"weight": 0}, props(api, weight=1000)).outs
    assert refused is not None
    back = props(api, weight=0)
    assert gate().diff("id", refused, back).changes is True
    cleared = gate().update("id", refused, back).outs
    assert cleared is not None and (cleared["weight"], cleared["refused"]) == (0, "")
