"""The serving gate: ``pulumi up`` moves traffic toward a revision only once every replica of it serves.

With ``vllm:canary`` each revision (slot) has a gate, and the URL map depends on them all, so an ``up``
that raises a slot's weight (a blue/green switch, a canary's step, a promote) updates the map only after
that slot's gate has seen every replica of the revision healthy in the load balancer's own check on vLLM's
``/health`` (READY). The managed instance group's ``wait_for_instances`` cannot do it: it judges the
autohealing check, the health agent's, which answers while the model is still loading (machine.py,
``autohealing_check``). A gate that runs out of time fails ``up`` in one line (n of N serving after T) and
the map keeps its old weights. A weight that stays or falls passes at once, and so does the stable
revision's when it already took requests: a rollback (the canary's weight back down) must never wait on
it, while a promote onto a revision that took none, or a blue/green switch back, still does.

The gate is a Pulumi dynamic resource: its provider runs in the ``pulumi up`` process, not on a machine,
and asks Compute's ``backendServices.getHealth`` (POST .../global/backendServices/{name}/getHealth with
``{"group": <instance group URI>}``, answering ``{"healthStatus": [{"instance", "healthState"}...]}``;
cloud.google.com/compute/docs/reference/rest/v1/backendServices/getHealth, read 2026-12-08; tools.status
reads READY the same way) with the access token of the stack's own provider
(``organizations.get_client_config``), passed as a secret input and never written anywhere else.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.dynamic as dynamic

COMPUTE_API = "https://compute.googleapis.com/compute/v1"
#: An OAuth access token from Google lasts at most an hour (developers.google.com/identity/protocols/oauth2,
#: "Access tokens have limited lifetimes", 3600 s; read 2026-12-08), and the provider hands over the one it
#: holds, which may be older: the gate never waits past an hour, and a token that expires sooner fails it
#: with that reason (run ``up`` again: it starts with a fresh token).
TOKEN_LIFETIME_SECONDS = 3600
POLL_SECONDS = 15
REQUEST_TIMEOUT_SECONDS = 30
HEALTHY = "HEALTHY"
#: What a change of these (and only these) makes an update of the gate; the token changes at every run.
COMPARED = ("project", "backend", "groups", "weight", "minimum")


class NotServing(Exception):
    """A revision about to get more traffic is not fully serving: one line, the map keeps its weights."""


class TokenExpired(Exception):
    """Compute refused the provider's access token (401) while the gate waited."""


@dataclass(frozen=True, kw_only=True)
class Health:
    serving: int  # instances HEALTHY in the load balancer's check
    listed: int  # instances the backend service knows in the revision's groups


def deadline_seconds(startup_seconds: int) -> int:
    """The revision's load budget (launch.py probes), capped by the token's lifetime."""
    return min(startup_seconds, TOKEN_LIFETIME_SECONDS)


def wait_until_serving(
    health: Callable[[], Health],
    *,
    what: str,
    minimum: int,
    deadline: float,
    poll_seconds: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Health:
    """Poll ``health`` until every listed instance, and at least ``minimum``, serve; NotServing at
    ``deadline`` seconds. A surge or a replacement VM still loading counts against: every replica serves."""
    start = clock()
    while True:
        elapsed = clock() - start
        try:
            found = health()
        except TokenExpired:
            raise NotServing(
                f"{what}: the provider's access token expired after {elapsed:.0f} s, before every replica "
                f"was seen serving; traffic not moved (run pulumi up again)"
            ) from None
        total = max(found.listed, minimum)
        if found.serving >= total:
            return found
        if elapsed >= deadline:
            raise NotServing(
                f"{what}: {found.serving} of {total} replicas serving (healthy in the load balancer's check "
                f"on /health) after {elapsed:.0f} s; traffic not moved"
            )
        sleep(max(0.0, min(poll_seconds, deadline - elapsed)))


def backend_health(api: str, project: str, backend: str, groups: Sequence[str], token: str) -> Health:
    """One look at the backend service's health of each group's instances (HEALTHY or not, each once)."""
    import requests  # here: the provider runs in its own process (pulumi.dynamic)

    states: dict[str, str] = {}
    for group in groups:
        answer = requests.post(
            f"{api}/projects/{project}/global/backendServices/{backend}/getHealth",
            json={"group": group},
            headers={"Authorization": f"Bearer {token}"},
            timeout=REQUEST_TIMEOUT_SECONDS,
        )
        if answer.status_code == 401:
            raise TokenExpired
        answer.raise_for_status()
        for status in answer.json().get("healthStatus") or []:
            states[status.get("instance", "")] = status.get("healthState", "")
    return Health(serving=sum(state == HEALTHY for state in states.values()), listed=len(states))


def _gate(props: dict[str, Any], weight_before: int) -> None:
    """Wait when the slot's weight rises above ``weight_before``, unless it is the stable revision's and
    was above 0 (a rollback); pass at once otherwise."""
    if int(props["weight"]) <= weight_before or (props["stable"] and weight_before > 0):
        return

    def health() -> Health:
        return backend_health(
            props["api"], props["project"], props["backend"], props["groups"], props["token"]
        )

    wait_until_serving(
        health,
        what=f"revision {props['slot']} ({props['backend']})",
        minimum=int(props["minimum"]),
        deadline=float(props["deadlineSeconds"]),
        poll_seconds=float(props["pollSeconds"]),
    )


def _kept(props: dict[str, Any]) -> dict[str, Any]:
    """The state a gate keeps: what it compares, never the token."""
    return {key: props[key] for key in (*COMPARED, "slot", "deadlineSeconds")}


class GateProvider(dynamic.ResourceProvider):
    """Create: wait if the slot gets more than it had before any canary (``weightBefore``). Update (a change
    of COMPARED): wait if the weight rises. Delete: nothing to remove."""

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        _gate(props, int(props["weightBefore"]))
        return dynamic.CreateResult(id_=f"{props['backend']}-gate", outs=_kept(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        return dynamic.DiffResult(changes=any(olds.get(key) != news.get(key) for key in COMPARED))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        _gate(news, int(olds["weight"]))
        return dynamic.UpdateResult(outs=_kept(news))


@dataclass(frozen=True, kw_only=True)
class ServingGateArgs:
    slot: str
    project: pulumi.Input[str]
    backend: pulumi.Input[str]  # the backend service's name
    groups: Sequence[pulumi.Input[str]]  # the revision's instance group URIs
    weight: int  # the slot's URL map weight, 0-1000
    weight_before: int  # the slot's weight before the stack had a canary: all for the stable one, else 0
    stable: bool  # the slot holds the stable revision (vllm:stableRevision)
    minimum: int  # the fewest replicas the revision runs (autoscaled: its lower bound), at least 1
    startup_seconds: int  # the revision's load budget
    token: pulumi.Input[str]
    api: str = COMPUTE_API
    poll_seconds: float = POLL_SECONDS


class ServingGate(dynamic.Resource, name="ServingGate"):
    """The wait before a slot's weight rises (module docstring); registers as
    ``pulumi-python:dynamic:ServingGate``."""

    def __init__(self, name: str, args: ServingGateArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        props = {
            "slot": args.slot,
            "project": args.project,
            "backend": args.backend,
            "groups": list(args.groups),
            "weight": args.weight,
            "weightBefore": args.weight_before,
            "stable": args.stable,
            "minimum": max(1, args.minimum),
            "deadlineSeconds": deadline_seconds(args.startup_seconds),
            "pollSeconds": args.poll_seconds,
            "api": args.api,
            "token": pulumi.Output.secret(args.token),
        }
        super().__init__(GateProvider(), name, props, opts)
