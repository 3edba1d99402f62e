"""The stack's namespace and the one Secret its pods read the API key and HF token from."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_kubernetes.core import v1 as core

from components.kubernetes.pods import labels
from components.kubernetes.settings import settings
from components.kubernetes.spot_pods import SKIP_AWAIT
from components.launch import API_KEY_ENV, HF_TOKEN_ENV
from components.service import Secrets
from components.service_spec import ServiceSpec


@dataclass(frozen=True, kw_only=True)
class ServiceNamespaceArgs:
    spec: ServiceSpec
    secrets: Secrets


class ServiceNamespace(pulumi.ComponentResource):
    """``vllm:namespace``, created and owned by the stack (pick one that does not exist yet), or with
    ``vllm:createNamespace: false`` used as it exists: then you create it before ``up`` (with what the
    pods need from you first: the ``vllm:cacheClaim``, the ``vllm:tlsSecretName`` Secret), and ``pulumi
    destroy`` leaves it and them. pulumi-kubernetes >= 4.29 refuses to create an object that exists
    (#4278), so the stack cannot adopt a namespace you made; it creates only what it owns.

    The Secret holds the keys the launch spec fills from the secret store, named as the environment
    variables. It is auto-named: the Kubernetes provider replaces a Secret whose data changes (Secrets are
    immutable to it unless ``enableSecretMutable``), so a new API key or token gets a new name, which
    changes the pod template and rolls the replicas: environment variables are read only at start.

    With ``vllm:cacheStorageClass`` the stack creates ``vllm:cacheClaim``: ReadWriteMany, of
    ``diskSizeGb``, kept by ``pulumi destroy`` (``retain_on_delete``) so the cache outlives the stack; in
    the stack's own namespace, deleting the namespace deletes it anyway (its volume then follows the
    class's reclaim policy). It is not awaited: a class that binds on first use
    (``WaitForFirstConsumer``) binds only once a pod mounts it, and the pods wait for it themselves.

    Attributes:
        namespace: the Namespace, None when it is yours.
        secret: the Secret of the API key (and HF token).
        cache_claim: the shared cache claim the stack creates, else None.
        name, secret_name: their names, for the pods.
    """

    namespace: core.Namespace | None
    secret: core.Secret
    cache_claim: core.PersistentVolumeClaim | None
    name: pulumi.Output[str]
    secret_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: ServiceNamespaceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("vllm:kubernetes:ServiceNamespace", name, None, opts)
        spec = args.spec
        k8s = settings(spec)
        child = pulumi.ResourceOptions(parent=self)
        self.namespace = None
        if k8s.create_namespace:
            self.namespace = core.Namespace(
                f"{name}-namespace",
                metadata={"name": k8s.namespace, "labels": labels(spec, "namespace")},
                opts=child,
            )
            self.name = self.namespace.metadata.name
        else:
            self.name = pulumi.Output.from_input(k8s.namespace)
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
        self.cache_claim = None
        if k8s.cache_claim is not None and k8s.cache_storage_class is not None:
            self.cache_claim = core.PersistentVolumeClaim(
                f"{name}-hf-cache",
                metadata={
                    "name": k8s.cache_claim,
                    "namespace": self.name,
                    "labels": labels(spec, "hf-cache"),
                    "annotations": SKIP_AWAIT,
                },
                spec={
                    "access_modes": ["ReadWriteMany"],
                    "storage_class_name": k8s.cache_storage_class,
                    "resources": {"requests": {"storage": f"{spec.disk_size_gb}Gi"}},
                },
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
            )
        self.register_outputs({"namespace": self.name, "secretName": self.secret_name})
