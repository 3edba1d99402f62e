"""What a Kubernetes cluster offers: any known GPU type, 1 to 8 per node. The cluster owns its nodes and
their price, so its offerings carry no machine type and no price."""

from __future__ import annotations

from dataclasses import dataclass

from components.offerings import GPU_TYPES, Offering

KUBERNETES_MAX_GPUS = 8  # one replica is one pod on one node; the largest common GPU nodes carry 8


def _kubernetes_offering(gpu: str, count: int) -> Offering:
    return Offering(
        cloud="kubernetes",
        gpu=gpu,
        gpu_count=count,
        machine_type=None,
        vcpus=None,
        memory_gb=None,
        accelerator_type=None,
        on_demand_hourly=None,
        spot_hourly=None,
        on_demand=True,
        price_source="the cluster owns the nodes and their cost; GPU memory from NVIDIA specifications",
    )


@dataclass(frozen=True)
class NodeCatalog:
    """Every known GPU type in counts 1..KUBERNETES_MAX_GPUS: which one the cluster has is its own."""

    verb: str = "runs one replica on one node with"

    def gpus(self) -> list[str]:
        return sorted(GPU_TYPES)

    def counts(self, gpu: str) -> list[int]:
        return list(range(1, KUBERNETES_MAX_GPUS + 1)) if gpu in GPU_TYPES else []

    def offerings(self, gpu: str, count: int) -> list[Offering]:
        return [_kubernetes_offering(gpu, count)] if count in self.counts(gpu) else []


CATALOG = NodeCatalog()
