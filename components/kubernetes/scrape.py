"""How often vLLM's metrics reach KEDA on Kubernetes, and so how fast it can react to a load step: the
PodMonitor's scrape interval, the queries' window, the HPA's sync period (no SDK: the platform's plan reads
it, monitoring.py and autoscaler.py build on it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from components.service_spec import ServiceSpec

#: How often Prometheus reads a serving pod's /metrics: a quarter of the 60 s over which SkyServe measures
#: QPS, so that a window of four scrapes is SkyServe's minute.
SCRAPE_INTERVAL_SECONDS = 15
#: Scrapes per query window: a rate needs two samples in its window, and a window of four scrape intervals
#: still holds two when a scrape fails or lands late. Grafana's ``$__rate_interval`` is at least four scrape
#: intervals for this reason (grafana.com/docs/grafana/latest/datasources/prometheus/template-variables/,
#: "Use $__rate_interval", read 2026-12).
WINDOW_SCRAPES = 4
#: How often the HPA controller reads the metrics KEDA serves: kube-controller-manager's
#: ``--horizontal-pod-autoscaler-sync-period`` default (Kubernetes docs, "Horizontal Pod Autoscaling":
#: 15 seconds, read 2026-12).
HPA_SYNC_SECONDS = 15


def window(scrape_seconds: int = SCRAPE_INTERVAL_SECONDS) -> str:
    """The PromQL range every autoscaling query uses: ``WINDOW_SCRAPES`` scrape intervals."""
    return f"{WINDOW_SCRAPES * scrape_seconds}s"


def scale_out_steps(spec: ServiceSpec) -> tuple[tuple[str, int], ...]:
    """From a load step to KEDA's HPA asking for another replica, at most: a scrape that sees it, a window
    that averages it in whole, an HPA sync, and the upscale stabilization window (the lowest recommendation
    of the window wins, so the load must hold for all of it)."""
    if spec.autoscaling is None:
        return ()
    return (
        ("scrape", SCRAPE_INTERVAL_SECONDS),
        ("query window", WINDOW_SCRAPES * SCRAPE_INTERVAL_SECONDS),
        ("HPA sync", HPA_SYNC_SECONDS),
        ("upscale delay", spec.autoscaling.upscale_delay_seconds),
    )
