"""The service dashboard in Cloud Monitoring, over the vLLM metrics the VMs' Ops Agent writes.

Each serving VM's Ops Agent scrapes vLLM's ``/metrics`` as Prometheus job ``<service name>``
(``platform_install_metrics`` in vm_hooks.sh); Cloud Monitoring keeps them as Managed Service for
Prometheus metrics, which dashboards query with PromQL under their original names. The job label keeps
other stacks' series in the same project off this dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp.monitoring as monitoring

from components import dashboard
from components.service_spec import ServiceSpec

CONSOLE = "https://console.cloud.google.com/monitoring/dashboards/builder"


@dataclass(frozen=True, kw_only=True)
class ServiceDashboardArgs:
    spec: ServiceSpec


class ServiceDashboard(pulumi.ComponentResource):
    """A Cloud Monitoring dashboard of the shared panels (components/dashboard.py) for this stack."""

    dashboard: monitoring.Dashboard
    url: pulumi.Output[str]

    def __init__(
        self, name: str, args: ServiceDashboardArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("vllm:gcp:ServiceDashboard", name, None, opts)
        spec = args.spec
        self.dashboard = monitoring.Dashboard(
            f"{name}-dashboard",
            dashboard_json=dashboard.cloud_monitoring_dashboard(
                f"vLLM {spec.stack}", f'{{job="{spec.name}"}}'
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # The resource's id is projects/<number>/dashboards/<id>; the console addresses it by the last part.
        self.url = pulumi.Output.concat(
            CONSOLE,
            "/",
            self.dashboard.id.apply(lambda path: path.rsplit("/", 1)[-1]),
            "?project=",
            self.dashboard.project,
        )
        self.register_outputs({"dashboardUrl": self.url})
