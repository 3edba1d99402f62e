"""AWS's serving gate: a Lambda handler that lets a revision's ALB weight rise only once it fully serves.

The stack invokes it during ``pulumi up`` (components/aws/serving_gate.py: ``aws.lambda_.Invocation``,
synchronous) with the weights asked per slot (vllm:canary), before the listener rule that splits the
public paths takes them. It needs no memory of its own: the weights traffic has now are the rule's, read
from the listener (``DescribeRules``: the forward action's target groups and weights; no rule yet, a new
stack: each slot's ``weightBefore``). For each slot whose weight rises (``must_wait``: never for a
rollback) it polls ``DescribeTargetHealth`` on the slot's target group until every registered target, and
at least the revision's fewest replicas, is ``healthy`` in the load balancer's check on vLLM's ``/health``
(READY), within the revision's load budget and what Lambda leaves of its run (at most 900 s).

Answer: ``{slot: {"weight", "refused"}}`` when every slot's weight may go through; a refusal is raised
(NotServing, its one line), so the invocation fails and is not recorded: the next ``up`` asks again (an
answer kept in the stack's state would be replayed without a look). Python standard library and boto3
only, both in Lambda's Python runtime; shipped with serving_wait.py, laid out under components/scripts/.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from components.scripts.serving_wait import Health, LookFailed, NotServing, must_wait, wait_until_serving

POLL_SECONDS = 15
#: What the gate keeps of Lambda's run to answer, after its last look.
MARGIN_SECONDS = 30
HEALTHY = "healthy"
#: A target leaving its group (scale-in, a replaced machine) takes no new requests: not counted.
LEAVING = "draining"


def live_shares(elbv2: Any, listener: str, priority: int, target_groups: Mapping[str, str]) -> dict | None:
    """Each slot's percent of the requests the listener's rule at ``priority`` sends now: its target
    group's weight in the forward action over their sum (a plain forward: all to its one group). None when
    the listener has no rule at that priority yet."""
    rules: list[dict] = []
    marker: dict[str, str] = {}
    while True:
        page = elbv2.describe_rules(ListenerArn=listener, **marker)
        rules += page.get("Rules", [])
        if not page.get("NextMarker"):
            break
        marker = {"Marker": page["NextMarker"]}
    rule = next((rule for rule in rules if rule.get("Priority") == str(priority)), None)
    if rule is None:
        return None
    weights: dict[str, int] = {}
    for action in rule.get("Actions", []):
        if action.get("Type") != "forward":
            continue
        groups = (action.get("ForwardConfig") or {}).get("TargetGroups") or [
            {"TargetGroupArn": action.get("TargetGroupArn"), "Weight": 1}
        ]
        for group in groups:
            arn = str(group.get("TargetGroupArn"))
            weights[arn] = weights.get(arn, 0) + int(group.get("Weight", 1))
    total = sum(weights.values())
    return {slot: 100 * weights.get(arn, 0) / total if total else 0.0 for slot, arn in target_groups.items()}


def target_health(elbv2: Any, target_group: str) -> Health:
    """One look at the target group: its targets healthy, of those registered and not leaving."""
    from botocore.exceptions import BotoCoreError, ClientError  # Lambda's runtime ships botocore

    try:
        found = elbv2.describe_target_health(TargetGroupArn=target_group)
    except ClientError as error:
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        code = error.response.get("Error", {}).get("Code", "")
        raise LookFailed(
            f"DescribeTargetHealth answered {code or status}",
            transient=status >= 500 or code in ("Throttling", "ThrottlingException"),
        ) from None
    except BotoCoreError as error:
        raise LookFailed(
            f"no answer from DescribeTargetHealth ({type(error).__name__})", transient=True
        ) from None
    states = [
        target.get("TargetHealth", {}).get("State", "")
        for target in found.get("TargetHealthDescriptions", [])
    ]
    staying = [state for state in states if state != LEAVING]
    return Health(serving=staying.count(HEALTHY), listed=len(staying))


def group_name(target_group_arn: str) -> str:
    """A target group's name from its ARN (``...:targetgroup/<name>/<id>``)."""
    parts = target_group_arn.rsplit(":", 1)[-1].split("/")
    return parts[1] if len(parts) == 3 else target_group_arn


def gate(
    event: Mapping[str, Any],
    elbv2: Any,
    *,
    seconds_left: Callable[[], float],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, dict[str, Any]]:
    """Each slot's outcome: the weight let through (the one asked, or the one it has when refused) and why
    not, one line or empty. ``seconds_left``: what remains of the run, less the margin to answer."""
    slots: Mapping[str, Mapping[str, Any]] = event["slots"]
    target_groups = {slot: str(asked["targetGroup"]) for slot, asked in slots.items()}
    live = live_shares(elbv2, event["listener"], int(event["priority"]), target_groups)
    outcomes: dict[str, dict[str, Any]] = {}
    for slot in sorted(slots):
        asked = slots[slot]
        before = live[slot] if live is not None else float(asked["weightBefore"])
        weight = int(asked["weight"])
        outcomes[slot] = {"weight": weight, "refused": ""}
        if not must_wait(weight, before, stable=bool(asked["stable"])):
            continue
        try:
            wait_until_serving(
                partial(target_health, elbv2, target_groups[slot]),
                what=f"revision {slot} (target group {group_name(target_groups[slot])})",
                minimum=max(1, int(asked["minimum"])),
                deadline=max(0.0, min(float(asked["deadlineSeconds"]), seconds_left())),
                poll_seconds=float(event.get("pollSeconds", POLL_SECONDS)),
                clock=clock,
                sleep=sleep,
            )
        except NotServing as refusal:
            outcomes[slot] = {"weight": round(before), "refused": str(refusal)}
        print(json.dumps({"slot": slot, "from": before, "asked": weight, **outcomes[slot]}))  # to its log
    return outcomes


def handler(event: dict[str, Any], context: Any) -> dict[str, dict[str, Any]]:
    """Lambda's entry point (``components.scripts.alb_serving_gate.handler``): the outcomes, or NotServing
    with every refusal's line, which fails the invocation."""
    import boto3  # Lambda's runtime ships boto3; its region is the function's (AWS_REGION)

    outcomes = gate(
        event,
        boto3.client("elbv2"),
        seconds_left=lambda: context.get_remaining_time_in_millis() / 1000 - MARGIN_SECONDS,
    )
    refusals = [outcome["refused"] for outcome in outcomes.values() if outcome["refused"]]
    if refusals:
        raise NotServing("; ".join(refusals))
    return outcomes
