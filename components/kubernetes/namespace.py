"""The stack's namespace and the one Secret its pods read the API key and HF token from."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_kubernetes.core import v1 as core

from components.kubernetes.backend import settings
from components.kubernetes.pods import labels
from components.launch import API_KEY_ENV, HF_TOKEN_ENV
from components.service import Secrets
from components.spec import ServiceSpec


@dataclass(frozen=True, kw_only=True)
class ServiceNamespaceArgs:
    spec: ServiceSpec
    secrets: Secrets


class ServiceNamespace(pulumi.ComponentResource):
    """``vllm:namespace``, created and owned by the stack (pick one that does not exist yet), and a Secret
    whose keys are the environment variable names the launch spec fills from the secret store.

    The Secret is auto-named. The Kubernetes provider replaces a Secret whose data changes (Secrets are
    immutable to it unless ``enableSecretMutable``), so a new API key or token gets a new name, which
    changes the pod template and rolls the replicas: environment variables are read only at start.

    Attributes:
        namespace, secret: the Namespace and the Secret of the API key (and HF token).
        name, secret_name: their names, for the pods' ``secretKeyRef``.
    """

    namespace: core.Namespace
    secret: core.Secret
    name: pulumi.Output[str]
    secret_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: ServiceNamespaceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("vllm:kubernetes:ServiceNamespace", name, None, opts)
        spec = args.spec
        child = pulumi.ResourceOptions(parent=self)
        self.namespace = core.Namespace(
            f"{name}-namespace",
            metadata={"name": settings(spec).namespace, "labels": labels(spec, "namespace")},
            opts=child,
        )
        self.name = self.namespace.metadata.name
        values = {API_KEY_ENV: args.secrets.api_key}
        if args.secrets.hf_token is not None:
            values[HF_TOKEN_ENV] = args.secrets.hf_token
        self.secret = core.Secret(
            f"{name}-secrets",
            metadata={"namespace": self.name, "labels": labels(spec, "secrets")},
            type="Opaque",
            string_data={key: pulumi.Output.secret(value) for key, value in values.items()},
            opts=child,
        )
        self.secret_name = self.secret.metadata.name
        self.register_outputs({"namespace": self.name, "secretName": self.secret_name})
