"""The only public entry: a global external Application LB serving ``/v1/*`` and ``/health`` alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import pulumi
import pulumi_gcp
import pulumi_gcp.compute as compute

from components import launch as launch_module
from components.canary import REVISION_HEADER, picked_headers
from components.gcp.autoscaler import serving_backend
from components.gcp.https import HttpsFrontend, HttpsFrontendArgs
from components.gcp.machine import PORT_NAME
from components.gcp.names import autoname
from components.gcp.platform import settings
from components.gcp.serving_gate import ServingGate, ServingGateArgs, passed_weights
from components.launch import LaunchSpec, launch_spec
from components.service_spec import ServiceSpec
from components.spec import OPEN_TO_ALL
from components.traffic_gate import fewest_replicas

#: For a global external ALB the backend timeout bounds the whole response, streamed (SSE) or not; it is
#: no idle timeout. One hour covers a long reasoning completion (32k tokens at ~10 tokens/s under load).
RESPONSE_TIMEOUT_SECONDS = 3600
#: A VM leaving the group (a roll, scale-in) keeps its in-flight completions as long as the backend timeout
#: lets any response last, so no stream is cut; GCP's bound for connection draining is 3600 s (compute API,
#: ConnectionDraining.drainingTimeoutSec 0-3600).
CONNECTION_DRAINING_SECONDS = RESPONSE_TIMEOUT_SECONDS
MAX_CONNECTION_DRAINING_SECONDS = 3600
#: Everything the path matcher does not route: answered by the proxy itself, never forwarded to vLLM.
NOT_ROUTED_STATUS = 404
#: Cloud Armor's basic source-IP match takes at most 10 ranges per rule.
CIDRS_PER_RULE = 10
DEFAULT_RULE_PRIORITY = 2147483647
PATH_MATCHER = "openai-api"


def public_paths() -> list[str]:
    """URL map path patterns for the public API: ``/v1/*`` and ``/health`` (from the launch spec)."""
    prefixes = [f"{prefix.rstrip('/')}/*" for prefix in launch_module.PUBLIC_PATH_PREFIXES]
    return [*prefixes, *launch_module.PUBLIC_EXACT_PATHS]


def _example_path(pattern: str) -> str:
    return pattern.replace("/*", "/models") if pattern.endswith("/*") else pattern


@dataclass(frozen=True)
class Balancing:
    locality_lb_policy: str
    session_affinity: str | None = None
    consistent_hash: compute.BackendServiceConsistentHashArgsDict | None = None


def balancing(spec: ServiceSpec) -> Balancing:
    """How the backend service picks a replica. By default ``LEAST_REQUEST``: completions vary 1000x in
    length, so it balances in-flight work. With ``vllm:affinityHeader``, a consistent hash of that header
    (``RING_HASH``, header field affinity): requests carrying one value (a conversation's id) go to one
    replica while it stays healthy, where its prefix cache holds the conversation so far. That is affinity,
    not load- or prefix-aware routing: it ignores how busy the replica is, and adding or removing a replica
    moves about 1/N of the values (the ring hash's property, pulumi_gcp BackendService docstring).

    Session affinity takes effect only with ``locality_lb_policy`` MAGLEV, WEIGHTED_MAGLEV or RING_HASH
    (pulumi_gcp 10.2 BackendService ``locality_lb_policy``); ``consistent_hash.http_header_name`` "is
    applicable if the sessionAffinity is set to HEADER_FIELD" (its ConsistentHash docstring). "With header
    field affinity, requests are routed to the backends based on the value of the HTTP header in the
    consistentHash.httpHeaderName field of the backend service", which the global external Application
    Load Balancer (EXTERNAL_MANAGED) offers (cloud.google.com/load-balancing/docs/backend-service
    #header_field_affinity, read 2026-12-07). The Compute API's own reference agrees: localityLbPolicy
    applies to "a global backend service with the load_balancing_scheme set to INTERNAL_SELF_MANAGED,
    INTERNAL_MANAGED, or EXTERNAL_MANAGED" (v1 BackendService.localityLbPolicy, as the client libraries
    generated from it print it, read 2026-12-08). The provider's docstrings, older, still name
    INTERNAL_SELF_MANAGED alone, which would rule out the LEAST_REQUEST every stack's EXTERNAL_MANAGED
    backend service takes too; the provider does not check it, the API does."""
    header = settings(spec).affinity_header
    if header is None:
        return Balancing("LEAST_REQUEST")
    return Balancing("RING_HASH", "HEADER_FIELD", {"http_header_name": header})


def restricts_sources(spec: ServiceSpec) -> bool:
    return not set(OPEN_TO_ALL) & set(spec.allowed_cidrs)


def security_policy_rules(cidrs: Sequence[str]) -> list[compute.SecurityPolicyRuleArgsDict]:
    """Allow the given CIDRs (in rules of at most 10 ranges), deny everyone else with 403."""
    allow: list[compute.SecurityPolicyRuleArgsDict] = [
        {
            "priority": 1000 + index,
            "action": "allow",
            "description": "vllm:allowedCidrs",
            "match": {"versioned_expr": "SRC_IPS_V1", "config": {"src_ip_ranges": list(chunk)}},
        }
        for index, chunk in enumerate(
            cidrs[start : start + CIDRS_PER_RULE] for start in range(0, len(cidrs), CIDRS_PER_RULE)
        )
    ]
    deny: compute.SecurityPolicyRuleArgsDict = {
        "priority": DEFAULT_RULE_PRIORITY,
        "action": "deny(403)",
        "description": "everyone outside vllm:allowedCidrs",
        "match": {"versioned_expr": "SRC_IPS_V1", "config": {"src_ip_ranges": ["*"]}},
    }
    return [*allow, deny]


#: GCP's weight of one weighted backend service: 0 to 1000, the share of requests being weight / (sum of the
#: route's weights), with at least one weight above 0 (pulumi_gcp 10.2
#: URLMapPathMatcherPathRuleRouteActionWeightedBackendService ``weight``, and its route action's
#: ``weighted_backend_services``, read 2026-12-07). A percent times 10 keeps the sum at 1000.
MAX_BACKEND_WEIGHT = 1000


@dataclass(frozen=True, kw_only=True)
class LoadBalancerArgs:
    spec: ServiceSpec
    launch: LaunchSpec
    instance_groups: Sequence[pulumi.Input[str]]  # one per serving group (a regional MIG or a Ray head)
    #: The canary revision's serving groups (vllm:canary), behind a backend service of their own.
    canary_groups: Sequence[pulumi.Input[str]] = ()


def backend_weights(spec: ServiceSpec) -> dict[str, int]:
    """Each revision's weight in the URL map, by slot: the canary's percent of 1000 and the rest."""
    if spec.canary is None:
        return {spec.revision: MAX_BACKEND_WEIGHT}
    share = spec.canary.weight * MAX_BACKEND_WEIGHT // 100
    return {spec.revision: MAX_BACKEND_WEIGHT - share, spec.canary.spec.revision: share}


class LoadBalancer(pulumi.ComponentResource):
    """Global external ALB (EXTERNAL_MANAGED) on port 80 in front of the serving instance groups.

    The URL map routes ``/v1/*`` and ``/health`` to vLLM. Every other path (``/metrics``, ``/tokenize``,
    ``/invocations``, ``/pause``, ``/update_weights``...) hits a route action that aborts 100% of
    requests with 404 in the proxy: GCP requires a service behind every route, but a fault-injection abort
    answers before any backend is chosen, so those requests never reach a VM.

    Attributes:
        health_check: the readiness check on vLLM's ``/health`` that routes requests.
        security_policy: the Cloud Armor policy admitting ``vllm:allowedCidrs`` (None when open to all).
        backend_service: the serving instance groups, balanced by requests in flight.
        serving_gates: with vllm:canary, each slot's wait for every replica to serve before its weight rises
            (serving_gate.py), by slot; the URL map's weights are the ones they let through.
        url_map, proxy: the routing of the public paths, and the HTTP proxy that applies it.
        address, forwarding_rule: the public IPv4 address and its port-80 rule, the stack's only public door.
        endpoint: ``http://<address>``.
    """

    health_check: compute.HealthCheck
    security_policy: compute.SecurityPolicy | None
    backend_service: compute.BackendService
    serving_gates: dict[str, ServingGate]
    url_map: compute.URLMap
    proxy: compute.TargetHttpProxy
    address: compute.GlobalAddress
    forwarding_rule: compute.GlobalForwardingRule
    https: HttpsFrontend | None  # with vllm:domain: port 443, and port 80 redirecting to it
    endpoint: pulumi.Output[str]
    dns_records: pulumi.Output[list[dict[str, str]]] | None

    def __init__(self, name: str, args: LoadBalancerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm:gcp:LoadBalancer", name, None, opts)
        spec, probes = args.spec, args.launch.probes
        child = pulumi.ResourceOptions(parent=self)
        self.health_check = compute.HealthCheck(
            autoname(name, "health"),
            description="vLLM readiness for the load balancer: route only to replicas whose /health is 200",
            check_interval_sec=probes.period_seconds,
            timeout_sec=probes.timeout_seconds,
            healthy_threshold=probes.healthy_threshold,
            unhealthy_threshold=probes.unhealthy_threshold,
            http_health_check={"port": args.launch.port, "request_path": args.launch.health_path},
            opts=child,
        )
        self.security_policy = None
        if restricts_sources(spec):
            self.security_policy = compute.SecurityPolicy(
                autoname(name, "allowed-cidrs"),
                description=f"vLLM stack {spec.stack}: only vllm:allowedCidrs",
                type="CLOUD_ARMOR",
                rules=security_policy_rules(spec.allowed_cidrs),
                opts=child,
            )
        balance = balancing(spec)
        self.backend_service = self._backend_service(name, spec, args.instance_groups, balance)
        self.canary_backend_service = None
        services = {spec.revision: self.backend_service}
        if spec.canary is not None:
            canary = spec.canary.spec
            self.canary_backend_service = self._backend_service(name, canary, args.canary_groups, balance)
            services[canary.revision] = self.canary_backend_service
        self.serving_gates = self._gates(name, spec, args, services)
        backend = self.backend_service.id
        not_routed: compute.URLMapDefaultRouteActionArgsDict = {
            "fault_injection_policy": {"abort": {"http_status": NOT_ROUTED_STATUS, "percentage": 100}}
        }
        routing: compute.URLMapPathMatcherArgsDict = {
            "name": PATH_MATCHER,
            "default_service": backend,
            "default_route_action": {
                "fault_injection_policy": {"abort": {"http_status": NOT_ROUTED_STATUS, "percentage": 100}}
            },
            "path_rules": [{"paths": public_paths(), "service": backend}],
        }
        tests: list[compute.URLMapTestArgsDict] = [
            {"host": "vllm.example.com", "path": _example_path(path), "service": backend}
            for path in public_paths()
        ]
        if spec.canary is not None and self.canary_backend_service is not None:
            # A request whose header picks a revision reaches it alone, the rest by weight.
            del routing["path_rules"]
            # A slot's weight rises only once every replica of it serves; a refusal fails up in one line
            # before the map is touched (serving_gate.py).
            split = weighted(passed_weights(self.serving_gates), services)
            routing["route_rules"] = picked_routes(picked_headers(spec), services, split)
            # A map test names the one service a path reaches; a weighted route reaches two.
            tests = []
        self.url_map = compute.URLMap(
            autoname(name, "urls"),
            description="Only the OpenAI API (/v1/*) and /health reach vLLM",
            default_service=backend,
            default_route_action=not_routed,
            host_rules=[{"hosts": ["*"], "path_matcher": PATH_MATCHER}],
            path_matchers=[routing],
            # GCP refuses an update of the map that would break these.
            tests=tests,
            opts=child,
        )
        self.address = compute.GlobalAddress(
            autoname(name, "address"), address_type="EXTERNAL", ip_version="IPV4", opts=child
        )
        self.https = None
        port_80_map = self.url_map
        if spec.domain is not None:
            self.https = HttpsFrontend(
                name,
                HttpsFrontendArgs(spec=spec, url_map=self.url_map, address=self.address),
                pulumi.ResourceOptions(parent=self),
            )
            port_80_map = self.https.redirect_map
        self.proxy = compute.TargetHttpProxy(autoname(name, "proxy"), url_map=port_80_map.id, opts=child)
        self.forwarding_rule = compute.GlobalForwardingRule(
            autoname(name, "http"),
            target=self.proxy.id,
            ip_address=self.address.address,
            ip_protocol="TCP",
            port_range="80",
            load_balancing_scheme="EXTERNAL_MANAGED",
            opts=child,
        )
        if self.https is not None:
            self.endpoint, self.dns_records = self.https.endpoint, self.https.dns_records
        else:
            self.endpoint, self.dns_records = pulumi.Output.concat("http://", self.address.address), None
        self.register_outputs({"endpoint": self.endpoint})

    def _gates(
        self,
        name: str,
        spec: ServiceSpec,
        args: LoadBalancerArgs,
        services: dict[str, compute.BackendService],
    ) -> dict[str, ServingGate]:
        """With vllm:canary, one serving gate per slot (serving_gate.py), on its backend service's health of
        its groups, by the provider's own credentials. A stack of one revision has none: nothing moves."""
        if spec.canary is None:
            return {}
        client = pulumi_gcp.organizations.get_client_config_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        )
        revisions = {
            spec.revision: (spec, args.instance_groups),
            spec.canary.spec.revision: (spec.canary.spec, args.canary_groups),
        }
        weights = backend_weights(spec)
        gates = {}
        for slot, (revision, groups) in sorted(revisions.items()):
            gates[slot] = ServingGate(
                autoname(name + revision.revision_suffix, "serving"),
                ServingGateArgs(
                    slot=slot,
                    project=services[slot].project,
                    backend=services[slot].name,
                    groups=groups,
                    weight=weights[slot],
                    # Before the stack had a canary its stable revision took every request.
                    weight_before=MAX_BACKEND_WEIGHT if revision is spec else 0,
                    stable=revision is spec,
                    minimum=fewest_replicas(revision),
                    startup_seconds=launch_spec(revision, has_hf_token=False).probes.startup_seconds,
                    token=client.access_token,
                ),
                pulumi.ResourceOptions(parent=self),
            )
        return gates

    def _backend_service(
        self, name: str, spec: ServiceSpec, groups: Sequence[pulumi.Input[str]], balance: Balancing
    ) -> compute.BackendService:
        """One revision's serving groups behind a backend service named by the revision's slot (the first
        slot's keeps the name every stack had), so promoting a canary renames nothing."""
        return compute.BackendService(
            autoname(name + spec.revision_suffix, "backend"),
            description=f"vLLM stack {spec.stack}",
            load_balancing_scheme="EXTERNAL_MANAGED",
            protocol="HTTP",
            port_name=PORT_NAME,
            timeout_sec=RESPONSE_TIMEOUT_SECONDS,
            connection_draining_timeout_sec=CONNECTION_DRAINING_SECONDS,
            locality_lb_policy=balance.locality_lb_policy,
            session_affinity=balance.session_affinity,
            consistent_hash=balance.consistent_hash,
            health_checks=self.health_check.id,
            # UTILIZATION (the default mode) needs no per-replica request rate, which the spec cannot know
            # unless it autoscales on one (vllm:targetQpsPerReplica: RATE, see autoscaler.py).
            backends=[serving_backend(spec, group) for group in groups],
            security_policy=self.security_policy.id if self.security_policy is not None else None,
            log_config={"enable": True, "sample_rate": 1.0},
            opts=pulumi.ResourceOptions(parent=self),
        )


def weighted(
    weights: pulumi.Output[dict[str, int]], services: dict[str, compute.BackendService]
) -> compute.URLMapPathMatcherPathRuleRouteActionArgsDict:
    """The public paths split between the revisions' backend services (by slot) by vllm:canary.weight; each
    answer carries the revision that served it. GCP picks a backend service for new traffic only: with
    vllm:affinityHeader a conversation stays with the revision its first request reached (the weight's
    docstring)."""
    return {
        "weighted_backend_services": [
            {
                "backend_service": services[slot].id,
                "weight": weights.apply(lambda by_slot, slot=slot: by_slot[slot]),
                "header_action": {
                    "response_headers_to_adds": [
                        {"header_name": REVISION_HEADER, "header_value": slot, "replace": True}
                    ]
                },
            }
            for slot in sorted(services)
        ]
    }


def picked_routes(
    picks: list[tuple[str, str, str]],
    services: dict[str, compute.BackendService],
    split: compute.URLMapPathMatcherPathRuleRouteActionArgsDict,
) -> list[compute.URLMapPathMatcherRouteRuleArgsDict]:
    """Route rules: a public request whose header picks a revision (``picks``: header, value, slot; see
    canary.picked_headers) goes to that revision alone, any other public request by the weights. A path
    matcher holds path rules or route rules, not both; route rules match in order of priority, 0 to
    2147483647, none shared (pulumi_gcp 10.2 URLMapPathMatcher ``route_rules`` and its RouteRule
    ``priority``, read 2026-12-07). The global external Application Load Balancer (EXTERNAL_MANAGED) takes
    them; the docstring's "not supported for External load balancers" is the classic one (EXTERNAL)."""

    def matches(header: tuple[str, str] | None) -> list[compute.URLMapPathMatcherRouteRuleMatchRuleArgsDict]:
        headers: list[compute.URLMapPathMatcherRouteRuleMatchRuleHeaderMatchArgsDict] = (
            [{"header_name": header[0], "exact_match": header[1]}] if header is not None else []
        )
        prefixes: list[compute.URLMapPathMatcherRouteRuleMatchRuleArgsDict] = [
            {"prefix_match": prefix, "header_matches": headers}
            for prefix in launch_module.PUBLIC_PATH_PREFIXES
        ]
        return prefixes + [
            {"full_path_match": path, "header_matches": headers} for path in launch_module.PUBLIC_EXACT_PATHS
        ]

    rules: list[compute.URLMapPathMatcherRouteRuleArgsDict] = [
        {
            "priority": priority,
            "match_rules": matches((header, value)),
            "service": services[slot].id,
            "header_action": {
                "response_headers_to_adds": [
                    {"header_name": REVISION_HEADER, "header_value": slot, "replace": True}
                ]
            },
        }
        for priority, (header, value, slot) in enumerate(picks, start=1)
    ]
    weighted_rule: compute.URLMapPathMatcherRouteRuleArgsDict = {
        "priority": len(rules) + 1,
        "match_rules": matches(None),
        "route_action": cast(compute.URLMapPathMatcherRouteRuleRouteActionArgsDict, split),
    }
    return [*rules, weighted_rule]
