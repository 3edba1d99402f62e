"""``vllm:installGateway``: a Gateway implementation that supports InferencePool, installed by the stack for a
cluster that has none, with the CRDs the inference gateway's objects need.

GIE v1.5.0's getting-started guide (site-src/guides/index.md, "Install the Gateway", tag of 2026-04-18, read
2026-12-07) installs, besides GKE's built-in classes (nothing to install), Istio, agentgateway and NGINX
Gateway Fabric, each after "Gateway API CRDs installed"; its conformance reports (conformance/reports/) list
the versions that passed its suite. The stack offers two of them, each pinned to the release GIE tested:

- ``agentgateway`` v1.0.0: the guide's ``AGW_VERSION`` and the report for GIE v1.4.0
  (conformance/reports/v1.4.0/gateway/agentgateway, Gateway profile, 12 of 12 core tests passed). Two OCI
  Helm charts in ``agentgateway-system``: ``agentgateway-crds`` and ``agentgateway`` with
  ``inferenceExtension.enabled=true``. Its controller creates the GatewayClass ``agentgateway``
  (controller/pkg/kgateway/wellknown/controller.go ``DefaultAgwClassName``, agentgateway v1.0.0).
- ``istio`` 1.28.3: the report for GIE v1.0.1 (conformance/reports/v1.0.1/gateway/istio, PASS); the guide
  asks for 1.28.0 or later with ``ENABLE_GATEWAY_API_INFERENCE_EXTENSION=true`` in istiod's environment.
  Istio's Helm charts ``base`` (its CRDs, the DestinationRule among them) and ``istiod`` (that variable as
  the chart's top-level ``env``: manifests/charts/istio-control/istio-discovery/values.yaml says "just set
  --set foo=bar") in ``istio-system``, from Istio's chart repository. istiod creates the GatewayClass
  ``istio`` and deploys a proxy per Gateway of that class.

Both need the Gateway API CRDs (Gateway API v1.5.1's ``standard-install.yaml``, the release the tests
validate the Gateway and HTTPRoute against; agentgateway v1.0.0 was tested on v1.5.0) and GIE v1.5.0's
CRDs (its release asset ``manifests.yaml``: ``kustomize build config/crd``, its Makefile's ``artifacts``
target; the InferencePool, InferenceObjective and InferenceModelRewrite CRDs). The controllers start after
the CRDs they watch, and the stack's Gateway, HTTPRoute and InferencePool after the installer.

Cluster-wide, like ``vllm:installKedaHttpAddOn``: one stack per cluster should own it (another stack sets
``vllm:gatewayClassName`` to the class it installed). GKE's classes are GKE's and need no install.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

GATEWAY_API_VERSION = "v1.5.1"
GATEWAY_API_CRDS = (
    "https://github.com/kubernetes-sigs/gateway-api/releases/download/"
    f"{GATEWAY_API_VERSION}/standard-install.yaml"
)
#: GIE's release the inference gateway pins (inference_gateway.py ``GIE_VERSION``).
GIE_VERSION = "v1.5.0"
GIE_CRDS = (
    f"https://github.com/kubernetes-sigs/gateway-api-inference-extension/releases/download/{GIE_VERSION}/"
    "manifests.yaml"
)


@dataclass(frozen=True)
class HelmChart:
    """One Helm chart of an implementation's release: an OCI reference, or a chart in a repository."""

    release: str
    chart: str
    values: dict[str, Any]
    repository: str | None = None


@dataclass(frozen=True)
class Implementation:
    """A Gateway implementation's pinned release: its charts in install order (CRDs first), in a namespace
    of its own."""

    version: str
    namespace: str
    charts: tuple[HelmChart, ...]
    gateway_class: str  # the GatewayClass its controller creates


AGENTGATEWAY_CHARTS = "oci://cr.agentgateway.dev/charts"
ISTIO_CHARTS = "https://istio-release.storage.googleapis.com/charts"
IMPLEMENTATIONS: dict[str, Implementation] = {
    "agentgateway": Implementation(
        version="v1.0.0",
        namespace="agentgateway-system",
        charts=(
            HelmChart("agentgateway-crds", f"{AGENTGATEWAY_CHARTS}/agentgateway-crds", {}),
            HelmChart(
                "agentgateway",
                f"{AGENTGATEWAY_CHARTS}/agentgateway",
                {"inferenceExtension": {"enabled": True}},
            ),
        ),
        gateway_class="agentgateway",
    ),
    "istio": Implementation(
        version="1.28.3",
        namespace="istio-system",
        charts=(
            HelmChart("istio-base", "base", {}, ISTIO_CHARTS),
            HelmChart(
                "istiod", "istiod", {"env": {"ENABLE_GATEWAY_API_INFERENCE_EXTENSION": "true"}}, ISTIO_CHARTS
            ),
        ),
        gateway_class="istio",
    ),
}


class GatewayInstall(pulumi.ComponentResource):
    """The Gateway API and GIE CRDs, then the implementation's charts in order (``vllm:installGateway``).

    Attributes:
        crds: the two CRD release manifests (``ConfigFile``), Gateway API's then GIE's.
        charts: the implementation's Helm releases, each after the one before and after the CRDs.
    """

    crds: list[pulumi.ComponentResource]  # pulumi_kubernetes.yaml.v2.ConfigFile
    charts: list[pulumi.ComponentResource]  # pulumi_kubernetes.helm.v4.Chart

    def __init__(self, name: str, implementation: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm:kubernetes:GatewayInstall", name, None, opts)
        # Imported here: platform.py reads IMPLEMENTATIONS without the SDK, and pulumi_kubernetes.yaml and
        # .helm load every API group's module (cold_start.py).
        from pulumi_kubernetes.core import v1 as core
        from pulumi_kubernetes.helm import v4 as helm
        from pulumi_kubernetes.yaml import v2 as k8s_yaml

        release = IMPLEMENTATIONS[implementation]
        child = pulumi.ResourceOptions(parent=self)
        self.crds = [
            k8s_yaml.ConfigFile(f"{name}-gateway-api-crds", file=GATEWAY_API_CRDS, opts=child),
            k8s_yaml.ConfigFile(f"{name}-inference-crds", file=GIE_CRDS, opts=child),
        ]
        self.namespace = core.Namespace(f"{name}-namespace", metadata={"name": release.namespace}, opts=child)
        self.charts = []
        previous: list[pulumi.Resource] = [*self.crds, self.namespace]
        for chart in release.charts:
            installed = helm.Chart(
                f"{name}-{chart.release}",
                chart=chart.chart,
                version=release.version,
                name=chart.release,
                namespace=release.namespace,
                values=chart.values,
                repository_opts={"repo": chart.repository} if chart.repository is not None else None,
                opts=pulumi.ResourceOptions(parent=self, depends_on=previous),
            )
            self.charts.append(installed)
            previous = [installed]
        self.register_outputs({"implementation": implementation, "version": release.version})
