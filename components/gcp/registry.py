"""Images from Google's network: an Artifact Registry remote repository that caches Docker Hub.

Every VM reaches the internet through the stack's one Cloud NAT address, and Docker Hub allows few anonymous
pulls per address per hour; a fleet pulling vLLM's multi-GB image through one address hits that limit. The
remote repository pulls each image once and serves the VMs over Private Google Access.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp.artifactregistry as artifactregistry

from components.gcp.identity import ServiceIdentity
from components.service_spec import ServiceSpec

READER = "roles/artifactregistry.reader"
DOCKER_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")


def docker_hub_path(image: str) -> str | None:
    """The image's path on Docker Hub (``vllm/vllm-openai:v0.33.0``; official images under ``library/``),
    or None for an image of another registry (its first component names a host: a dot, a port, localhost)."""
    first, _, rest = image.partition("/")
    if rest and first in DOCKER_HUB_HOSTS:
        return docker_hub_path(rest)
    if rest and ("." in first or ":" in first or first == "localhost"):
        return None
    return image if rest else f"library/{image}"


def repository_id(spec: ServiceSpec) -> str:
    """Artifact Registry ids: lowercase letters, digits and hyphens, up to 63 characters (the stack's base
    name has at most 40)."""
    return f"{spec.name}-dockerhub"


@dataclass(frozen=True, kw_only=True)
class ImageMirrorArgs:
    spec: ServiceSpec
    identity: ServiceIdentity


class ImageMirror(pulumi.ComponentResource):
    """A Docker Hub remote repository in the stack's region, readable by the replicas' service account only.

    ``pulled(image)`` is where the VMs pull a Docker Hub image from:
    ``<region>-docker.pkg.dev/<project>/<repo>/<path>`` (each revision's own image, with vllm:canary).

    Attributes:
        repository: the Artifact Registry remote repository in front of Docker Hub.
        reader: its ``artifactregistry.reader`` grant to the replicas' service account.
    """

    repository: artifactregistry.Repository
    reader: artifactregistry.RepositoryIamMember

    def __init__(self, name: str, args: ImageMirrorArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm:gcp:ImageMirror", name, None, opts)
        spec = args.spec
        child = pulumi.ResourceOptions(parent=self)
        self.repository = artifactregistry.Repository(
            f"{name}-dockerhub",
            repository_id=repository_id(spec),
            location=spec.region,
            format="DOCKER",
            mode="REMOTE_REPOSITORY",
            description=f"Docker Hub, cached for the VMs of vLLM stack {spec.stack}",
            remote_repository_config={
                "description": "Docker Hub",
                "docker_repository": {"public_repository": "DOCKER_HUB"},
            },
            labels={"app": "vllm", "stack": spec.name},
            opts=child,
        )
        self.reader = artifactregistry.RepositoryIamMember(
            f"{name}-dockerhub-reader",
            location=self.repository.location,
            repository=self.repository.name,
            role=READER,
            member=args.identity.account.member,
            opts=child,
        )
        self.register_outputs({"registryUri": self.repository.registry_uri})

    def pulled(self, image: str) -> pulumi.Output[str]:
        """Where the VMs pull ``image``, a Docker Hub image, from."""
        path = docker_hub_path(image)
        if path is None:
            raise ValueError(f"{image} is not a Docker Hub image")
        return pulumi.Output.concat(self.repository.registry_uri, "/", path)
