"""The public door: an Application Load Balancer that routes only the OpenAI API and /health to vLLM."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws.lb as lb

from components.aws.https import HttpsFrontend, HttpsFrontendArgs, redirect_to_https
from components.aws.names import elb_name
from components.aws.network import HTTP_PORT, Network
from components.aws.serving_gate import ServingGate, ServingGateArgs, SlotGate
from components.canary import picked_headers
from components.launch import LOAD_BALANCER_IDLE_SECONDS, PUBLIC_EXACT_PATHS, PUBLIC_PATH_PREFIXES, LaunchSpec
from components.service_spec import ServiceSpec
from components.traffic_gate import fewest_replicas

#: Longest silence allowed on a connection. A non-streamed completion of a long answer sends nothing until
#: it is done (minutes at tens of tokens per second); streamed ones send every token. ALB's default is 60 s.
#: vLLM's keep-alive is set above it in the shared launch spec.
IDLE_TIMEOUT_SECONDS = LOAD_BALANCER_IDLE_SECONDS
#: How long a replica leaving the target group (rollout, scale-in) may finish requests already running:
#: as long as the longest silent request. Deregistration ends early once the replica has none in flight.
DRAIN_SECONDS = IDLE_TIMEOUT_SECONDS
#: ALB health-check thresholds must lie in 2..10.
ALB_THRESHOLDS = (2, 10)


def public_path_patterns() -> list[str]:
    """ALB path patterns for the public paths: ``/v1/*`` for each prefix, the exact paths as they are."""
    return [f"{prefix}*" for prefix in PUBLIC_PATH_PREFIXES] + list(PUBLIC_EXACT_PATHS)


def serving_budget_seconds(launch: LaunchSpec) -> int:
    """How long a revision's replica may take to be healthy in its target group: its load budget, then the
    most healthy checks in a row the target group may ask for."""
    return launch.probes.startup_seconds + ALB_THRESHOLDS[1] * launch.probes.period_seconds


def _threshold(count: int) -> int:
    low, high = ALB_THRESHOLDS
    return min(max(count, low), high)


#: The public paths' rule; the rules picking one revision by header (vllm:canaryModelName) come before it.
API_RULE_PRIORITY = 10
#: An ALB forward action's weight of one target group: 0 to 999 (pulumi_aws 7.51
#: ListenerRuleActionForwardTargetGroup ``weight``, read 2026-12-07); the share of requests is the weight
#: over the action's sum, so a percent is a weight as it is.
MAX_TARGET_GROUP_WEIGHT = 999


@dataclass(frozen=True, kw_only=True)
class LoadBalancerArgs:
    spec: ServiceSpec
    launch: LaunchSpec
    network: Network
    #: With vllm:canary: the canary revision's launch spec (its health budget), for its own target group.
    canary_launch: LaunchSpec | None = None


def target_group_weights(spec: ServiceSpec) -> dict[str, int]:
    """Each revision's weight in the forward action, by slot: the canary's percent and the rest."""
    if spec.canary is None:
        return {spec.revision: 100}
    return {spec.revision: 100 - spec.canary.weight, spec.canary.spec.revision: spec.canary.weight}


class LoadBalancer(pulumi.ComponentResource):
    """Internet-facing ALB -> listener (80; with vllm:domain 443, and 80 redirects to it) -> one rule for
    the public paths -> the replicas' target group.

    Everything else (``/metrics``, ``/tokenize``, ``/invocations``, ``/pause`` ... which vLLM's API key does
    not guard) gets a fixed 404 from the listener and never reaches a replica. The target group health-
    checks ``/health`` on every replica and routes each request to the replica with the fewest in flight.

    Attributes:
        alb: the internet-facing Application Load Balancer.
        target_group: the replicas' target group (health check on ``/health``).
        canary_target_group: with vllm:canary, the canary revision's (the forward action splits by weight).
        listener: the port-80 listener, answering 404 to every path not routed.
        api_rule: the listener rule that forwards the public paths to ``target_group`` (declared by
            ``route``, after the groups it waits for); with vllm:canary, by the weights ``serving_gate``
            let through.
        serving_gate: with vllm:canary, the Lambda function that waits for a revision to serve before its
            weight rises (serving_gate.py).
        picked_rules: with vllm:canary, the rules sending a request whose ``x-vllm-revision`` (or, with
            vllm:canaryModelName, ``x-vllm-model``) header names a revision to its target group alone.
        dns_name, endpoint: the ALB's DNS name, and ``http://<dns_name>``.
    """

    alb: lb.LoadBalancer
    target_group: lb.TargetGroup
    canary_target_group: lb.TargetGroup | None
    listener: lb.Listener
    api_rule: lb.ListenerRule
    picked_rules: list[lb.ListenerRule]
    serving_gate: ServingGate | None
    https: HttpsFrontend | None  # with vllm:domain: the 443 listener holds the rule, 80 redirects to it
    dns_name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    dns_records: pulumi.Output[list[dict[str, str]]] | None

    def __init__(self, name: str, args: LoadBalancerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm:aws:LoadBalancer", name, None, opts)
        spec, launch, network = args.spec, args.launch, args.network
        child = pulumi.ResourceOptions(parent=self)
        self.alb = lb.LoadBalancer(
            f"{name}-alb",
            name=elb_name(spec, "alb", "application", "internet-facing"),
            load_balancer_type="application",
            internal=False,
            subnets=network.load_balancer_subnet_ids,
            security_groups=[network.load_balancer_security_group.id],
            idle_timeout=IDLE_TIMEOUT_SECONDS,
            drop_invalid_header_fields=True,
            tags={"Name": spec.name},
            opts=child,
        )
        self.target_group = self._target_group(name, spec, launch, network)
        self.canary_target_group = None
        groups = {spec.revision: self.target_group}
        launches = {spec.revision: launch}
        if spec.canary is not None and args.canary_launch is not None:
            canary = spec.canary.spec
            self.canary_target_group = self._target_group(name, canary, args.canary_launch, network)
            groups[canary.revision] = self.canary_target_group
            launches[canary.revision] = args.canary_launch
        not_found: list[lb.ListenerDefaultActionArgsDict] = [
            {
                "type": "fixed-response",
                "fixed_response": {
                    "content_type": "text/plain",
                    "message_body": "not found",
                    "status_code": "404",
                },
            }
        ]
        self.https = None
        if spec.domain is not None:
            self.https = HttpsFrontend(
                name,
                HttpsFrontendArgs(spec=spec, alb=self.alb, default_actions=not_found),
                pulumi.ResourceOptions(parent=self),
            )
        self.listener = lb.Listener(
            f"{name}-http",
            load_balancer_arn=self.alb.arn,
            port=HTTP_PORT,
            protocol="HTTP",
            default_actions=[redirect_to_https()] if self.https is not None else not_found,
            opts=child,
        )
        self.dns_name = self.alb.dns_name
        if self.https is not None:
            self.endpoint, self.dns_records = self.https.endpoint, self.https.dns_records
        else:
            self.endpoint, self.dns_records = pulumi.Output.concat("http://", self.alb.dns_name), None
        self._name, self._spec, self._groups, self._launches = name, spec, groups, launches

    def route(self, after: Sequence[pulumi.Resource] = ()) -> None:
        """The listener rules that send the public paths to the replicas, by weight with a canary; declared
        once the groups are (``build`` calls it). ``after``: the canary revision's groups, whose create
        returns only once it serves (machines.ServingWait). With a canary the weighted rule takes its
        weights from the serving gate (serving_gate.py), which waits for them and for the rules picking a
        revision by header: those come first, as they put each revision's target group in use, and a
        target group no rule names has its targets ``unused``, never healthy (ELBv2 TargetHealth,
        ``Target.NotInUse``), which neither wait would ever see end. A request naming a revision still
        loading gets the load balancer's error; one naming none never reaches it before the gate."""
        name, spec, groups = self._name, self._spec, self._groups
        child = pulumi.ResourceOptions(parent=self)
        serving = self.https.listener if self.https is not None else self.listener
        # With a canary, a public request whose header picks a revision reaches it alone (picked_headers).
        # A rule takes at most 5 condition values (ALB quotas, "Condition values per rule"): the public
        # paths and one header value are 3; rules match from the lowest priority up, 1-50000, one per
        # number (pulumi_aws 7.51 ListenerRule ``priority``, read 2026-12-07).
        self.picked_rules: list[lb.ListenerRule] = []
        picks = picked_headers(spec)
        for offset, (header, value, slot) in enumerate(reversed(picks), start=1):
            self.picked_rules.append(
                lb.ListenerRule(
                    f"{name}-api-{header.removeprefix('x-vllm-')}-{slot}",
                    listener_arn=serving.arn,
                    priority=API_RULE_PRIORITY - offset,
                    conditions=[
                        {"path_pattern": {"values": public_path_patterns()}},
                        {"http_header": {"http_header_name": header, "values": [value]}},
                    ],
                    actions=[{"type": "forward", "target_group_arn": groups[slot].arn}],
                    opts=child,
                )
            )
        forward: pulumi.Input[lb.ListenerRuleActionArgsDict] = {
            "type": "forward",
            "target_group_arn": self.target_group.arn,
        }
        self.serving_gate = None
        if len(groups) > 1:
            # One forward action over both revisions' target groups, split by weight (ALB weighted target
            # groups): each request picks a group by weight, then a replica within it. The weights are the
            # ones the gate let through; a refusal fails up before the rule is declared.
            self.serving_gate = self._gate(serving.arn, [*after, *self.picked_rules])
            slots = sorted(groups)

            def weighted(found: list[Any]) -> lb.ListenerRuleActionArgsDict:
                weights, arns = found[0], found[1:]
                return {
                    "type": "forward",
                    "forward": {
                        "target_groups": [
                            {"arn": arn, "weight": weights[slot]}
                            for slot, arn in zip(slots, arns, strict=True)
                        ]
                    },
                }

            arns = [groups[slot].arn for slot in slots]
            forward = pulumi.Output.all(self.serving_gate.weights, *arns).apply(weighted)
        self.api_rule = lb.ListenerRule(
            f"{name}-api",
            listener_arn=serving.arn,
            priority=API_RULE_PRIORITY,
            conditions=[{"path_pattern": {"values": public_path_patterns()}}],
            actions=[forward],
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(after)),
        )
        self.register_outputs({"endpoint": self.endpoint, "targetGroup": self.target_group.arn})

    def _gate(self, listener_arn: pulumi.Input[str], after: Sequence[pulumi.Resource]) -> ServingGate:
        """The serving gate over each revision's target group, from its weight in the forward action."""
        spec, groups = self._spec, self._groups
        assert spec.canary is not None
        weights = target_group_weights(spec)
        revisions = {spec.revision: spec, spec.canary.spec.revision: spec.canary.spec}
        slots = {}
        for slot, revision in revisions.items():
            slots[slot] = SlotGate(
                weight=weights[slot],
                # Before the stack had a canary its stable revision took every request.
                weight_before=100 if revision is spec else 0,
                stable=revision is spec,
                target_group_arn=groups[slot].arn,
                minimum=fewest_replicas(revision),
                budget_seconds=serving_budget_seconds(self._launches[slot]),
            )
        return ServingGate(
            self._name,
            ServingGateArgs(
                spec=spec, listener_arn=listener_arn, priority=API_RULE_PRIORITY, slots=slots, after=after
            ),
            pulumi.ResourceOptions(parent=self),
        )

    def _target_group(
        self, name: str, spec: ServiceSpec, launch: LaunchSpec, network: Network
    ) -> lb.TargetGroup:
        """One revision's target group, named by its slot (the first slot's keeps the name every stack had),
        so promoting a canary renames nothing."""
        probes, suffix = launch.probes, spec.revision_suffix
        return lb.TargetGroup(
            f"{name}{suffix}-replicas",
            name=network.vpc_id.apply(
                lambda vpc_id: elb_name(spec, f"tg{suffix}", launch.port, "HTTP", "instance", vpc_id)
            ),
            target_type="instance",
            port=launch.port,
            protocol="HTTP",
            vpc_id=network.vpc_id,
            load_balancing_algorithm_type="least_outstanding_requests",
            deregistration_delay=DRAIN_SECONDS,
            health_check={
                "enabled": True,
                "path": launch.health_path,
                "port": "traffic-port",
                "protocol": "HTTP",
                "matcher": "200",
                "interval": probes.period_seconds,
                "timeout": probes.timeout_seconds,
                "healthy_threshold": _threshold(probes.healthy_threshold),
                "unhealthy_threshold": _threshold(probes.unhealthy_threshold),
            },
            tags={"Name": f"{spec.name}{suffix}-replicas"},
            opts=pulumi.ResourceOptions(parent=self),
        )
