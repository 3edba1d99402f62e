"""The Google APIs the stack calls, enabled on the project: a fresh project works on the first ``up``."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp.projects as projects

from components.gcp.backend import settings
from components.spec import ServiceSpec

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
)


@dataclass
class ProjectApisArgs:
    spec: ServiceSpec
    provider: pulumi.ProviderResource  # a provider of its own: the stack's provider waits for these APIs


class ProjectApis(pulumi.ComponentResource):
    """``projects.Service`` per required API. Destroying the stack leaves them on: other workloads of the
    project may use them, and turning an API off can delete their resources."""

    services: dict[str, projects.Service]

    def __init__(self, name: str, args: ProjectApisArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm:gcp:ProjectApis", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        self.services = {
            api: projects.Service(
                f"{name}-{api.split('.')[0]}",
                project=settings(args.spec).project,
                service=api,
                disable_on_destroy=False,
                disable_dependent_services=False,
                opts=child,
            )
            for api in REQUIRED_APIS
        }
        self.register_outputs({"services": list(REQUIRED_APIS)})
