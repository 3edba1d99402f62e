"""The Google APIs the stack calls, enabled on the project: a fresh project works on the first ``up``."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp.projects as projects

from components.gcp.platform import settings
from components.service_spec import ServiceSpec

#: Every API a resource of the stack or its VMs call. Service Usage itself (which enables the others) is on
#: in every new project; everything else may be off.
REQUIRED_APIS = (
    "compute.googleapis.com",  # VMs, groups, load balancer, firewall, NAT
    "iam.googleapis.com",  # the replicas' service account
    "cloudresourcemanager.googleapis.com",  # project IAM bindings (log and metric writers)
    "secretmanager.googleapis.com",  # HF token and API key; read by the VMs at boot
    "artifactregistry.googleapis.com",  # the Docker Hub remote repository the VMs pull through
    "storage.googleapis.com",  # the weight cache's bucket (vllm:weightCache bucket)
    "logging.googleapis.com",  # the boot log, shipped by the guest agent
    "monitoring.googleapis.com",  # the VMs' metrics
    "cloudquotas.googleapis.com",  # the quota preflight at up (components/gcp/quota.py)
)
#: Cloud DNS, for the domain's A record when vllm:dnsZone names a managed zone.
DNS_API = "dns.googleapis.com"


def required_apis(spec: ServiceSpec) -> tuple[str, ...]:
    return (*REQUIRED_APIS, DNS_API) if spec.dns_zone is not None else REQUIRED_APIS


@dataclass(frozen=True, kw_only=True)
class ProjectApisArgs:
    spec: ServiceSpec


class ProjectApis(pulumi.ComponentResource):
    """``projects.Service`` per required API. Destroying the stack leaves them on: other workloads of the
    project may use them, and turning an API off can delete their resources.

    Attributes:
        services: one ``projects.Service`` per API of ``REQUIRED_APIS``, keyed by the API's name.
    """

    services: dict[str, projects.Service]

    def __init__(self, name: str, args: ProjectApisArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm:gcp:ProjectApis", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.services = {
            api: projects.Service(
                f"{name}-{api.split('.')[0]}",
                project=settings(args.spec).project,
                service=api,
                disable_on_destroy=False,
                disable_dependent_services=False,
                opts=child,
            )
            for api in required_apis(args.spec)
        }
        self.register_outputs({"services": list(self.services)})
