"""The serving gate: ``pulumi up`` moves traffic toward a revision only once every replica of it serves.

With ``vllm:canary`` each revision (slot) has a gate, and the URL map's weights are the gates' outputs, so
an ``up`` that raises a slot's weight (a blue/green switch, a canary's step, a promote) reaches the map only
after that slot's gate has seen every replica of the revision healthy in the load balancer's own check on
vLLM's ``/health`` (READY). The managed instance group's ``wait_for_instances`` cannot do it: it judges the
autohealing check, the health agent's, which answers while the model is still loading (machine.py,
``autohealing_check``). A weight that stays or falls passes at once, and so does the stable revision's
when it already took requests: a rollback (the canary's weight back down) must never wait on it, while a
promote onto a revision that took none, or a blue/green switch back, still does.

A gate that runs out of time does not fail its own create or update: Pulumi's dynamic-provider host prints a
traceback for anything a provider raises. It records its outcome instead: ``weight``, the weight it let
through (the one asked, or the one before when refused), and ``refused``, one line (n of N serving after
T; traffic not moved) or empty. ``passed_weights`` turns a refusal into ``TrafficNotMoved``
(components/traffic_gate.py, shared with AWS's gate), a
``pulumi.RunError`` raised in the apply that feeds the URL map its weights: ``up`` fails in that one line
and the map keeps its old weights. A refused gate's recorded weight differs from the one asked, so the next
``up`` sees a change and asks Compute again.

The gate is a Pulumi dynamic resource: its provider runs in the ``pulumi up`` process, not on a machine,
and asks Compute's ``backendServices.getHealth`` (POST .../global/backendServices/{name}/getHealth with
``{"group": <instance group URI>}``, answering ``{"healthStatus": [{"instance", "healthState"}...]}``;
cloud.google.com/compute/docs/reference/rest/v1/backendServices/getHealth, read 2026-12-08; tools.status
reads READY the same way) with the access token of the stack's own provider
(``organizations.get_client_config``), passed as a secret input and never in the gate's outputs nor in a
message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.dynamic as dynamic

from components.scripts.serving_wait import Health, LookFailed, NotServing, must_wait, wait_until_serving
from components.traffic_gate import let_through

COMPUTE_API = "https://compute.googleapis.com/compute/v1"
#: An OAuth access token from Google lasts at most an hour (developers.google.com/identity/protocols/oauth2,
#: "Access tokens have limited lifetimes", 3600 s; read 2026-12-08), and the provider hands over the one it
#: holds, which may be older: the gate never waits past an hour, and a token that expires sooner fails it
#: with that reason (run ``up`` again: it starts with a fresh token).
TOKEN_LIFETIME_SECONDS = 3600
POLL_SECONDS = 15
REQUEST_TIMEOUT_SECONDS = 30
HEALTHY = "HEALTHY"
#: What a change of these makes an update of the gate (besides a refusal to retry); the token changes at
#: every run. ``weight``: the one asked, against the one the gate let through last.
COMPARED = ("project", "backend", "groups", "weight", "minimum")


@dataclass(frozen=True, kw_only=True)
class Outcome:
    weight: int  # the weight the gate let through: the one asked, or the one before when refused
    refused: str = ""  # why not the one asked, one line; empty when it was let through


def deadline_seconds(startup_seconds: int) -> int:
    """The revision's load budget (launch.py probes), capped by the token's lifetime."""
    return min(startup_seconds, TOKEN_LIFETIME_SECONDS)


def backend_health(api: str, project: str, backend: str, groups: Sequence[str], token: str) -> Health:
    """One look at the backend service's health of each group's instances (HEALTHY or not, each once)."""
    import requests  # here: the provider runs in its own process (pulumi.dynamic)

    states: dict[str, str] = {}
    for group in groups:
        try:
            answer = requests.post(
                f"{api}/projects/{project}/global/backendServices/{backend}/getHealth",
                json={"group": group},
                headers={"Authorization": f"Bearer {token}"},
                timeout=REQUEST_TIMEOUT_SECONDS,
            )
        except requests.RequestException as error:
            raise LookFailed(
                f"no answer from Compute's getHealth ({type(error).__name__})", transient=True
            ) from None
        if answer.status_code == 401:
            raise LookFailed(
                "the provider's access token expired (pulumi up again starts with a fresh one)",
                transient=False,
            )
        if answer.status_code >= 400:
            raise LookFailed(
                f"Compute's getHealth answered HTTP {answer.status_code} ({_api_message(answer)})",
                transient=answer.status_code >= 500,
            )
        for status in answer.json().get("healthStatus") or []:
            states[status.get("instance", "")] = status.get("healthState", "")
    return Health(serving=sum(state == HEALTHY for state in states.values()), listed=len(states))


def _api_message(answer: Any) -> str:
    """A Google API error's own message (``{"error": {"message"}}``), on one line and short."""
    try:
        message = str(answer.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = answer.reason or ""
    return " ".join(message.split())[:200]


def _kept(props: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
    """The gate's outputs: what it compares, with the weight it let through and why not the one asked;
    never the token."""
    kept = {key: props[key] for key in (*COMPARED, "slot", "deadlineSeconds")}
    return {**kept, "weight": outcome.weight, "refused": outcome.refused}


class GateProvider(dynamic.ResourceProvider):
    """Create: wait if the slot gets more than it had before any canary (``weightBefore``). Update (a change
    of COMPARED, or a refusal to retry): wait if the weight rises above the one let through last. Neither
    raises when the revision does not serve: the outcome says so (module docstring). Delete: nothing to
    remove. ``clock`` and ``sleep`` are the wait's time."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.clock, self.sleep = clock, sleep

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        outcome = self._gate(props, int(props["weightBefore"]))
        return dynamic.CreateResult(id_=f"{props['backend']}-gate", outs=_kept(props, outcome))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        """``olds`` are the recorded outputs: after a refusal their weight is the one before, so the asked
        one differs; and a refusal is retried even when the weight asked is back to the one let through."""
        changed = any(olds.get(key) != news.get(key) for key in COMPARED)
        return dynamic.DiffResult(changes=changed or bool(olds.get("refused")))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(outs=_kept(news, self._gate(news, int(olds["weight"]))))

    def _gate(self, props: dict[str, Any], weight_before: int) -> Outcome:
        """Wait when the slot's weight rises above ``weight_before`` (``must_wait``: never for a rollback);
        let it through at once otherwise."""
        asked = int(props["weight"])
        if not must_wait(asked, weight_before, stable=bool(props["stable"])):
            return Outcome(weight=asked)

        def health() -> Health:
            return backend_health(
                props["api"], props["project"], props["backend"], props["groups"], props["token"]
            )

        try:
            wait_until_serving(
                health,
                what=f"revision {props['slot']} ({props['backend']})",
                minimum=int(props["minimum"]),
                deadline=float(props["deadlineSeconds"]),
                poll_seconds=float(props["pollSeconds"]),
                clock=self.clock,
                sleep=self.sleep,
            )
        except NotServing as refusal:
            return Outcome(weight=weight_before, refused=str(refusal))
        return Outcome(weight=asked)


def passed_weights(gates: Mapping[str, ServingGate]) -> pulumi.Output[dict[str, int]]:
    """Each slot's weight as its gate let it through, for the URL map; TrafficNotMoved (the refusal's
    line) in the apply when a gate refused, so the map is not updated and ``up`` fails in one line."""
    slots = sorted(gates)

    def outcomes(found: list[Any]) -> dict[str, int]:
        weights, refusals = found[: len(slots)], found[len(slots) :]
        return let_through(
            {
                slot: {"weight": weight, "refused": refused or ""}
                for slot, weight, refused in zip(slots, weights, refusals, strict=True)
            }
        )

    ordered = [gates[slot] for slot in slots]
    return pulumi.Output.all(*[gate.weight for gate in ordered], *[gate.refused for gate in ordered]).apply(
        outcomes
    )


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
    ``pulumi-python:dynamic:ServingGate``.

    Attributes:
        weight: the weight let through (the one asked unless refused).
        refused: why the one asked was not, one line; empty (or absent) when it was.
    """

    weight: pulumi.Output[int]
    refused: pulumi.Output[str | None]

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
            "refused": None,  # an output only: the gate's outcome
        }
        super().__init__(GateProvider(), name, props, opts)
