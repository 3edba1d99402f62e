"""The cloud-agnostic service: secrets, then the chosen cloud's replicas and load balancer."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_random as random

from components.service_spec import ServiceSpec

API_KEY_LENGTH = 48


@dataclass(frozen=True)
class Secrets:
    """Secret values on their way into the cloud's secret store; never rendered into anything else."""

    api_key: pulumi.Output[str]
    hf_token: pulumi.Output[str] | None  # None for open models


@dataclass(frozen=True, kw_only=True)
class VllmServiceArgs:
    spec: ServiceSpec
    hf_token: pulumi.Output[str] | None = None  # vllm:hfToken
    api_key: pulumi.Output[str] | None = None  # vllm:apiKey; generated when absent


class VllmService(pulumi.ComponentResource):
    """One vLLM service: ``replicas`` replicas of ``nodes`` machines each, behind one load balancer.

    The cloud module (``components.<cloud>``) is imported only for the stack's cloud, so a Kubernetes
    stack never loads the GCP or AWS SDK. Its ``build`` declares everything under this component and
    returns the native components for callers who need them (the escape hatch).
    """

    endpoint: pulumi.Output[str]
    api_key: pulumi.Output[str]
    dns_records: pulumi.Output[list[dict[str, str]]] | None

    def __init__(self, name: str, args: VllmServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm:index:VllmService", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if args.api_key is None:
            # Pulumi.yaml disables default providers, so every provider is explicit, this one included.
            provider = random.Provider("random", opts=child)
            generated = random.RandomPassword(
                f"{name}-api-key",
                length=API_KEY_LENGTH,
                special=False,
                opts=pulumi.ResourceOptions(parent=self, provider=provider),
            )
            self.api_key = pulumi.Output.secret(generated.result)
        else:
            self.api_key = pulumi.Output.secret(args.api_key)
        hf_token = pulumi.Output.secret(args.hf_token) if args.hf_token is not None else None
        cloud = importlib.import_module(f"components.{args.spec.cloud}.deployment")
        self.deployment = cloud.build(args.spec, Secrets(api_key=self.api_key, hf_token=hf_token), self)
        self.endpoint = self.deployment.endpoint
        self.dns_records = self.deployment.dns_records
        self.register_outputs({"endpoint": self.endpoint})


@dataclass
class Deployment:
    """What a cloud module built: the public endpoint and its native components (the escape hatch)."""

    endpoint: pulumi.Output[str]
    load_balancer: pulumi.ComponentResource
    #: What runs the replicas (a replica is one vLLM server behind the load balancer): one ``ReplicaGroup``
    #: of single-node replicas; when nodes > 1, one ``RayReplica`` per replica (GCP, AWS) or one
    #: ``RayReplicaGroup`` of them all (Kubernetes: a LeaderWorkerSet).
    replicas: Sequence[pulumi.ComponentResource]
    network: pulumi.ComponentResource | None = None
    autoscaler: pulumi.ComponentResource | None = None  # with vllm:maxReplicas: the platform's autoscaler
    #: With vllm:domain and no vllm:dnsZone: the DNS records to create by hand (the dnsRecords output).
    dns_records: pulumi.Output[list[dict[str, str]]] | None = None
    #: The stack output ``replicaSource`` (``components.observe.ReplicaSource``): where tools.status and
    #: tools.logs find the replicas, the same shape on every platform.
    replica_source: pulumi.Output[dict] | None = None
    #: The stack output ``dashboardUrl``: the platform's dashboard of the service, None where it has no URL.
    dashboard_url: pulumi.Output[str] | None = None
