"""AWS's serving gate: ``pulumi up`` moves ALB traffic toward a revision only once every replica serves.

With ``vllm:canary`` the listener rule that splits the public paths takes its weights from a Lambda
function the stack runs during ``up`` (components/scripts/alb_serving_gate.py): it reads the weights the
rule has now, and for a slot whose weight rises waits until every target of its target group is healthy
in the load balancer's check on vLLM's ``/health``. The program cannot look itself: the AWS provider hands
it no credentials, and the function runs with a role of its own that may only describe.

How the invocation behaves (terraform-provider-aws internal/service/lambda/invocation.go, read
2026-12-08; pulumi_aws 7.51 ``lambda_.Invocation``): synchronous (``RequestResponse``); under the default
``lifecycle_scope`` ``CREATE_ONLY`` a change of ``input`` forces a new invocation (so do ``triggers`` and
``function_name``), an unchanged one invokes nothing, and Read is a no-op; the payload returned is kept
in state as ``result``; a function error fails the create with the payload, and nothing is recorded. The
input holds the weights asked, so a weight change (a canary's step, a switch, a promote, a rollback)
invokes the gate again and nothing else does; a ``triggers`` copy of them would add nothing. A refusal is
the function's error (the next ``up`` asks again), so ``result`` holds only what was let through: the
weights and ARNs of the input, no secret.

The function: Python 3.13 (Lambda runtimes, Amazon Linux 2023, deprecated 2029-06-30;
docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html, read 2026-12-08), its run capped at Lambda's
900 s (pulumi_aws 7.51 ``Function.timeout``: 1-900): a revision not serving within its load budget or
that run, whichever ends first, fails ``up`` in one line, and ``up`` again waits anew. The create of a
canary's group has already waited for it to serve (machines.ServingWait), so a gate's wait is for a later
change: a replica replaced or added since, a promote onto a revision that took no traffic.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws.cloudwatch as cloudwatch
import pulumi_aws.iam as iam
import pulumi_aws.lambda_ as lambda_

from components import scripts
from components.aws.identity import logged_role, write_logs_statement
from components.aws.names import lambda_name
from components.scripts.alb_serving_gate import MARGIN_SECONDS, POLL_SECONDS
from components.service_spec import ServiceSpec
from components.traffic_gate import let_through

RUNTIME = "python3.13"
#: Lambda's longest run (pulumi_aws 7.51 ``lambda_.Function`` ``timeout``: "Valid between 1 and 900").
LAMBDA_MAX_SECONDS = 900
HANDLER = "components.scripts.alb_serving_gate.handler"
#: The files the function runs (components/scripts/), laid out under ``SHIPPED_UNDER`` so HANDLER imports
#: as in this repository (namespace packages: no ``__init__.py`` needed); serving_wait.py is the wait GCP's
#: gate runs too.
SHIPPED = ("alb_serving_gate.py", "serving_wait.py")
SHIPPED_UNDER = "components/scripts"
LAMBDA_TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)
#: What the gate reads, and all its role may do besides its own log: the listener's rules and a target
#: group's health. Neither supports resource-level permissions (Service Authorization Reference, Elastic
#: Load Balancing V2: DescribeRules and DescribeTargetHealth list no resource type, so ``Resource: "*"``;
#: docs.aws.amazon.com/service-authorization/latest/reference/list_elasticloadbalancingv2.html, read
#: 2026-12-08).
READ_ACTIONS = ("elasticloadbalancing:DescribeRules", "elasticloadbalancing:DescribeTargetHealth")


def deadline_seconds(budget_seconds: int) -> int:
    """A revision's wait: its load budget, within what Lambda's run leaves after the margin to answer."""
    return min(budget_seconds, LAMBDA_MAX_SECONDS - MARGIN_SECONDS)


@dataclass(frozen=True, kw_only=True)
class SlotGate:
    """One revision's part of the gate's input."""

    weight: int  # the percent asked in the forward action
    weight_before: int  # what the slot had before the stack's rule existed: all for the stable one, else 0
    stable: bool  # the slot holds the stable revision (vllm:stableRevision)
    target_group_arn: pulumi.Input[str]
    minimum: int  # the fewest replicas the revision runs (autoscaled: its lower bound)
    budget_seconds: int  # the revision's load budget and the checks after it


@dataclass(frozen=True, kw_only=True)
class ServingGateArgs:
    spec: ServiceSpec
    listener_arn: pulumi.Input[str]  # the listener holding the weighted rule
    priority: int  # the weighted rule's priority on it
    slots: Mapping[str, SlotGate]
    #: What the invocation waits for: the canary groups' creates and the rules that put each target group
    #: in use (a group no rule names has every target ``unused``, never healthy).
    after: Sequence[pulumi.Resource] = ()


class ServingGate(pulumi.ComponentResource):
    """The function, its role and log group, and the invocation whose answer weighs the listener rule.

    Attributes:
        function, role, policy, log_group: the gate's Lambda function, its own role, what that may do
            (READ_ACTIONS, its log streams), its CloudWatch Logs group (``/aws/lambda/<function>``).
        invocation: the run of the function during ``up`` (module docstring).
        weights: each slot's percent as the gate let it through (TrafficNotMoved in the apply otherwise).
    """

    function: lambda_.Function
    role: iam.Role
    policy: iam.RolePolicy
    log_group: cloudwatch.LogGroup
    invocation: lambda_.Invocation
    weights: pulumi.Output[dict[str, int]]

    def __init__(self, name: str, args: ServingGateArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm:aws:ServingGate", name, None, opts)
        spec = args.spec
        child = pulumi.ResourceOptions(parent=self)
        function_name = lambda_name(spec, "serving-gate")
        # Declared before the function, so Lambda never makes it itself (without a retention).
        logged = logged_role(
            (f"{name}-gate-logs", f"{name}-gate-role", f"{name}-gate-read-health"),
            log_group_name=f"/aws/lambda/{function_name}",
            trust_policy=LAMBDA_TRUST_POLICY,
            description=f"{spec.name} serving gate: read the load balancer's rules and target health",
            statements=lambda log_group_arn: [
                {"Effect": "Allow", "Action": list(READ_ACTIONS), "Resource": "*"},
                write_logs_statement(log_group_arn),
            ],
            opts=child,
        )
        self.log_group, self.role, self.policy = logged.log_group, logged.role, logged.policy
        self.function = lambda_.Function(
            f"{name}-gate",
            name=function_name,
            description=f"{spec.name}: let a revision's weight rise only once every replica serves",
            role=self.role.arn,
            runtime=RUNTIME,
            handler=HANDLER,
            code=pulumi.AssetArchive(
                {f"{SHIPPED_UNDER}/{file}": pulumi.FileAsset(str(scripts.path(file))) for file in SHIPPED}
            ),
            timeout=LAMBDA_MAX_SECONDS,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.log_group]),
        )
        self.invocation = lambda_.Invocation(
            f"{name}-gate",
            function_name=self.function.name,
            input=gate_input(args),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.policy, *args.after]),
        )
        self.weights = self.invocation.result.apply(lambda result: let_through(json.loads(result)))
        self.register_outputs({"function": self.function.name})


def gate_input(args: ServingGateArgs) -> pulumi.Output[str]:
    """The invocation's input: the listener and rule, and per slot what it asks and where to look (the
    handler's ``event``). Keys sorted: the same stack gives the same input, which invokes nothing."""
    slots = sorted(args.slots)
    return pulumi.Output.all(args.listener_arn, *[args.slots[slot].target_group_arn for slot in slots]).apply(
        lambda found: json.dumps(
            {
                "listener": found[0],
                "priority": args.priority,
                "pollSeconds": POLL_SECONDS,
                "slots": {
                    slot: {
                        "weight": args.slots[slot].weight,
                        "weightBefore": args.slots[slot].weight_before,
                        "stable": args.slots[slot].stable,
                        "targetGroup": arn,
                        "minimum": max(1, args.slots[slot].minimum),
                        "deadlineSeconds": deadline_seconds(args.slots[slot].budget_seconds),
                    }
                    for slot, arn in zip(slots, found[1:], strict=True)
                },
            },
            sort_keys=True,
        )
    )
