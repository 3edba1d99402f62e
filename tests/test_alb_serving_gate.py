"""AWS's serving gate (components/scripts/alb_serving_gate.py), the handler the stack's Lambda function
runs, against botocore's Stubber: real ELBv2 request and answer shapes, a clock that moves only when the
gate sleeps. The weights traffic has now come from the listener's rule; a revision whose weight rises gets
it only once every target of its target group is healthy; a refusal fails the invocation in one line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from components import scripts
from components.aws.serving_gate import HANDLER, SHIPPED, SHIPPED_UNDER
from components.scripts import alb_serving_gate
from components.scripts.alb_serving_gate import MARGIN_SECONDS, gate, handler
from components.scripts.serving_wait import NotServing

pytestmark = pytest.mark.timeout(60)
ELB = "arn:aws:elasticloadbalancing:us-east-1:123456789012"
LISTENER = f"{ELB}:listener/app/vllm-alb/50dc6c495c0c9188/f2f7dc8efc522ab2"
TG = {
    "1": f"{ELB}:targetgroup/vllm-tg-1/73e2d6bc24d8a067",
    "2": f"{ELB}:targetgroup/vllm-tg2-2/73e2d6bc24d8a068",
}
PRIORITY = 10


class Clock:
    """Time that passes only when the gate sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def elbv2() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "elbv2", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def weighted_rule(*weights: int) -> dict:
    """The listener's answer with the weighted rule (each slot's target group and weight) and the default."""
    groups = [{"TargetGroupArn": TG[slot], "Weight": w} for slot, w in zip(("1", "2"), weights, strict=True)]
    return {
        "Rules": [
            {
                "RuleArn": f"{ELB}:listener-rule/app/vllm-alb/1/10",
                "Priority": str(PRIORITY),
                "Actions": [{"Type": "forward", "ForwardConfig": {"TargetGroups": groups}}],
                "IsDefault": False,
            },
            {
                "RuleArn": f"{ELB}:listener-rule/app/vllm-alb/1/default",
                "Priority": "default",
                "IsDefault": True,
            },
        ]
    }


def plain_rule() -> dict:
    """The rule of a stack before its canary: every request to the first slot's target group."""
    return {
        "Rules": [
            {
                "RuleArn": f"{ELB}:listener-rule/app/vllm-alb/1/10",
                "Priority": str(PRIORITY),
                "Actions": [{"Type": "forward", "TargetGroupArn": TG["1"]}],
                "IsDefault": False,
            }
        ]
    }


def health(*states: str) -> dict:
    return {
        "TargetHealthDescriptions": [
            {"Target": {"Id": f"i-0{i}", "Port": 8000}, "TargetHealth": {"State": state}}
            for i, state in enumerate(states)
        ]
    }


def event(weights: dict[str, int], *, stable: str = "1", minimum: int = 1, deadline: int = 600) -> dict:
    return {
        "listener": LISTENER,
        "priority": PRIORITY,
        "pollSeconds": 15,
        "slots": {
            slot: {
                "weight": weight,
                "weightBefore": 100 if slot == stable else 0,
                "stable": slot == stable,
                "targetGroup": TG[slot],
                "minimum": minimum,
                "deadlineSeconds": deadline,
            }
            for slot, weight in weights.items()
        },
    }


def rules_asked(stubber: Stubber, answer: dict) -> None:
    stubber.add_response("describe_rules", answer, {"ListenerArn": LISTENER})


def health_looked(stubber: Stubber, slot: str, answer: dict) -> None:
    stubber.add_response("describe_target_health", answer, {"TargetGroupArn": TG[slot]})


def run(client: Any, asked: dict, clock: Clock | None = None, seconds_left: float = 840) -> dict:
    clock = clock or Clock()
    return gate(asked, client, seconds_left=lambda: seconds_left, clock=clock, sleep=clock.sleep)


def test_a_rising_weight_waits_until_every_target_is_healthy(elbv2):
    client, stubber = elbv2
    rules_asked(stubber, weighted_rule(90, 10))
    health_looked(stubber, "2", health("healthy", "initial"))
    health_looked(stubber, "2", health("healthy", "healthy"))
    clock = Clock()
    outcomes = run(client, event({"1": 50, "2": 50}), clock)
    assert outcomes == {"1": {"weight": 50, "refused": ""}, "2": {"weight": 50, "refused": ""}}
    assert clock.now == 15


def test_a_revision_not_healthy_by_the_deadline_is_refused_in_one_line(elbv2):
    client, stubber = elbv2
    rules_asked(stubber, weighted_rule(100, 0))
    for _ in range(3):  # at 0, 15 and 30 s
        health_looked(stubber, "2", health("unhealthy"))
    outcomes = run(client, event({"1": 75, "2": 25}, deadline=30))
    refused = outcomes["2"]["refused"]
    assert outcomes["2"]["weight"] == 0 and "\n" not in refused
    assert refused.startswith("revision 2 (target group vllm-tg2-2): 0 of 1 replicas serving")
    assert refused.endswith("after 30 s; traffic not moved")
    assert outcomes["1"] == {"weight": 75, "refused": ""}


def test_a_falling_weight_passes_at_once(elbv2):
    client, stubber = elbv2
    rules_asked(stubber, weighted_rule(75, 25))
    assert run(client, event({"1": 90, "2": 10})) == {
        "1": {"weight": 90, "refused": ""},
        "2": {"weight": 10, "refused": ""},
    }


def test_a_rollback_to_the_stable_revision_that_had_traffic_never_waits(elbv2):
    client, stubber = elbv2
    rules_asked(stubber, weighted_rule(50, 50))
    outcomes = run(client, event({"1": 100, "2": 0}))
    assert {slot: outcome["weight"] for slot, outcome in outcomes.items()} == {"1": 100, "2": 0}


def test_a_promote_onto_a_revision_that_took_no_traffic_and_does_not_serve_is_refused(elbv2):
    client, stubber = elbv2
    # blue/green: slot 2 came up unexposed; promoting makes it stable and gives it everything.
    rules_asked(stubber, weighted_rule(100, 0))
    health_looked(stubber, "2", health("healthy", "unhealthy"))
    outcomes = run(client, event({"1": 0, "2": 100}, stable="2", minimum=2, deadline=0))
    assert "1 of 2 replicas serving" in outcomes["2"]["refused"]


def test_a_canary_new_to_the_listener_starts_from_no_traffic(elbv2):
    client, stubber = elbv2
    rules_asked(stubber, plain_rule())
    health_looked(stubber, "2", health("healthy"))
    assert run(client, event({"1": 75, "2": 25}))["2"] == {"weight": 25, "refused": ""}


def test_a_new_stack_lets_the_stable_revision_through_and_waits_for_the_canary(elbv2):
    client, stubber = elbv2
    rules_asked(stubber, {"Rules": []})
    health_looked(stubber, "2", health("healthy"))
    assert run(client, event({"1": 75, "2": 25}))["1"] == {"weight": 75, "refused": ""}


def test_fewer_targets_than_the_revision_runs_count_as_not_serving(elbv2):
    client, stubber = elbv2
    rules_asked(stubber, weighted_rule(100, 0))
    health_looked(stubber, "2", health("healthy", "draining"))
    outcomes = run(client, event({"1": 0, "2": 100}, minimum=2, deadline=0))
    assert "1 of 2 replicas serving" in outcomes["2"]["refused"]


def test_the_wait_ends_within_what_lambda_leaves_of_its_run(elbv2):
    client, stubber = elbv2
    rules_asked(stubber, weighted_rule(100, 0))
    for _ in range(2):  # at 0 and 15 s
        health_looked(stubber, "2", health("initial"))
    outcomes = run(client, event({"1": 50, "2": 50}, deadline=1200), seconds_left=15)
    assert "after 15 s" in outcomes["2"]["refused"]


def test_a_throttled_look_is_tried_again_at_the_next_poll(elbv2):
    client, stubber = elbv2
    rules_asked(stubber, weighted_rule(100, 0))
    stubber.add_client_error("describe_target_health", "Throttling", http_status_code=400)
    health_looked(stubber, "2", health("healthy"))
    assert run(client, event({"1": 50, "2": 50}))["2"]["refused"] == ""


def test_a_look_the_role_may_not_make_fails_at_once_naming_it(elbv2):
    client, stubber = elbv2
    rules_asked(stubber, weighted_rule(100, 0))
    stubber.add_client_error("describe_target_health", "AccessDenied", http_status_code=403)
    clock = Clock()
    outcomes = run(client, event({"1": 50, "2": 50}), clock)
    assert "DescribeTargetHealth answered AccessDenied" in outcomes["2"]["refused"] and clock.now == 0


class Context:
    """Lambda's context: what remains of the run."""

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_the_handler_answers_the_weights_let_through(elbv2, monkeypatch):
    client, stubber = elbv2
    monkeypatch.setattr(boto3, "client", lambda service: client)
    rules_asked(stubber, weighted_rule(75, 25))
    assert handler(event({"1": 90, "2": 10}), Context(900_000)) == {
        "1": {"weight": 90, "refused": ""},
        "2": {"weight": 10, "refused": ""},
    }


def test_the_handler_fails_the_invocation_with_the_refusals_line(elbv2, monkeypatch):
    # An answer kept in state would be replayed by the next up; a failed invocation is asked again.
    client, stubber = elbv2
    monkeypatch.setattr(boto3, "client", lambda service: client)
    monkeypatch.setattr(alb_serving_gate.time, "sleep", lambda seconds: pytest.fail("waited past its run"))
    rules_asked(stubber, weighted_rule(100, 0))
    health_looked(stubber, "2", health("unhealthy"))
    with pytest.raises(
        NotServing, match=r"^revision 2 \(.*\): 0 of 1 replicas serving .*; traffic not moved$"
    ):
        handler(event({"1": 50, "2": 50}), Context(MARGIN_SECONDS * 1000))


def test_the_functions_archive_imports_its_handler_with_nothing_else_of_the_repository(tmp_path):
    # Lambda's Python runtime puts the archive's root on sys.path and imports HANDLER's module.
    for file in SHIPPED:
        (tmp_path / SHIPPED_UNDER).mkdir(parents=True, exist_ok=True)
        shutil.copy(scripts.path(file), tmp_path / SHIPPED_UNDER / file)
    module, _, function = HANDLER.rpartition(".")
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); "
    code += f"import {module} as m; print(callable(m.{function}))"
    found = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=30, cwd=tmp_path
    )
    assert (found.returncode, found.stdout.strip()) == (0, "True"), found.stderr
