"""How a pod asks for a GPU type: node labels per labelling scheme, for every GPU type in the catalog.

The default, ``none``, selects no labels: the ``nvidia.com/gpu`` limit alone places the pod on a node
whose device plugin advertises GPUs, which works on every cluster. That is enough on a cluster with one
GPU type; with several, a scheme pins the type (``vllm:gpuNodeSelector``), provided the cluster's nodes
carry that scheme's labels: a selector no node matches leaves the pods Pending. Clusters label GPU nodes
in one of three common ways:

- ``gke``: GKE labels every GPU node ``cloud.google.com/gke-accelerator`` with the accelerator it
  attached (GKE "Run GPUs in node pools"; the values are GCP's accelerator type names). GKE sells neither
  L40S nor A10G.
- ``nvidia``: NVIDIA GPU Feature Discovery (GPU Operator, or the device plugin's GFD) labels
  ``nvidia.com/gpu.product`` with the NVML product name, spaces as ``-`` (``NVIDIA-H100-80GB-HBM3``; the
  names are what ``nvidia-smi --query-gpu=name`` prints for each board: SXM and PCIe variants listed).
  Only clusters running GFD have it: GKE's managed GPU nodes and a bare device plugin do not.
- ``karpenter``: Karpenter on EKS labels ``karpenter.k8s.aws/instance-gpu-name`` with the lower-cased
  GPU name from EC2 ``DescribeInstanceTypes`` (``h100``, ``a10g``) and ``instance-gpu-memory`` with MiB
  per GPU, which tells the two A100 sizes apart (p4d: 40960, p4de: 81920). Both keys are among the
  provider's well-known labels (aws/karpenter-provider-aws ``LabelInstanceGPUName``,
  ``LabelInstanceGPUMemory``; its e2e tests select ``t4`` / ``16384`` on g4dn).

Facts gathered in /work/shared/reference/kubernetes.md ("GPU node selection"), read 2026-11. Every
scheme also needs the toleration below: GPU node pools are tainted ``nvidia.com/gpu`` NoSchedule (GKE
does it itself; EKS and GPU Operator setups conventionally do).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from components import catalog
from components.config import PROJECT, SpecError

GPU_RESOURCE = "nvidia.com/gpu"
GKE_ACCELERATOR = "cloud.google.com/gke-accelerator"
NVIDIA_PRODUCT = "nvidia.com/gpu.product"
KARPENTER_GPU_NAME = "karpenter.k8s.aws/instance-gpu-name"
KARPENTER_GPU_MEMORY = "karpenter.k8s.aws/instance-gpu-memory"

#: One node requirement: (label key, accepted values). A GPU type's requirements must all hold.
Requirement = tuple[str, tuple[str, ...]]

GPU_NODE_LABELS: Mapping[str, Mapping[str, tuple[Requirement, ...]]] = MappingProxyType(
    {
        "gke": MappingProxyType(
            {
                "H100": ((GKE_ACCELERATOR, ("nvidia-h100-80gb", "nvidia-h100-mega-80gb")),),
                "H200": ((GKE_ACCELERATOR, ("nvidia-h200-141gb",)),),
                "B200": ((GKE_ACCELERATOR, ("nvidia-b200",)),),
                "A100": ((GKE_ACCELERATOR, ("nvidia-tesla-a100",)),),
                "A100-80GB": ((GKE_ACCELERATOR, ("nvidia-a100-80gb",)),),
                "L4": ((GKE_ACCELERATOR, ("nvidia-l4",)),),
                "T4": ((GKE_ACCELERATOR, ("nvidia-tesla-t4",)),),
                "V100": ((GKE_ACCELERATOR, ("nvidia-tesla-v100",)),),
            }
        ),
        "nvidia": MappingProxyType(
            {
                "H100": ((NVIDIA_PRODUCT, ("NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe")),),
                "H200": ((NVIDIA_PRODUCT, ("NVIDIA-H200", "NVIDIA-H200-NVL")),),
                "B200": ((NVIDIA_PRODUCT, ("NVIDIA-B200",)),),
                "A100": ((NVIDIA_PRODUCT, ("NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB")),),
                "A100-80GB": ((NVIDIA_PRODUCT, ("NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-80GB-PCIe")),),
                "L4": ((NVIDIA_PRODUCT, ("NVIDIA-L4",)),),
                "L40S": ((NVIDIA_PRODUCT, ("NVIDIA-L40S",)),),
                "A10G": ((NVIDIA_PRODUCT, ("NVIDIA-A10G",)),),
                "T4": ((NVIDIA_PRODUCT, ("Tesla-T4",)),),
                "V100": ((NVIDIA_PRODUCT, ("Tesla-V100-SXM2-16GB", "Tesla-V100-PCIE-16GB")),),
            }
        ),
        "karpenter": MappingProxyType(
            {
                "H100": ((KARPENTER_GPU_NAME, ("h100",)),),
                "H200": ((KARPENTER_GPU_NAME, ("h200",)),),
                "B200": ((KARPENTER_GPU_NAME, ("b200",)),),
                "A100": ((KARPENTER_GPU_NAME, ("a100",)), (KARPENTER_GPU_MEMORY, ("40960",))),
                "A100-80GB": ((KARPENTER_GPU_NAME, ("a100",)), (KARPENTER_GPU_MEMORY, ("81920",))),
                "L4": ((KARPENTER_GPU_NAME, ("l4",)),),
                "L40S": ((KARPENTER_GPU_NAME, ("l40s",)),),
                "A10G": ((KARPENTER_GPU_NAME, ("a10g",)),),
                "T4": ((KARPENTER_GPU_NAME, ("t4",)),),
                "V100": ((KARPENTER_GPU_NAME, ("v100",)),),
            }
        ),
        "none": MappingProxyType({gpu: () for gpu in catalog.GPU_TYPES}),
    }
)

GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


def node_requirements(scheme: str, gpu: str) -> tuple[Requirement, ...]:
    """The node labels a pod with ``gpu`` GPUs needs under ``scheme``; SpecError when the scheme's
    platform does not sell that GPU (GKE has no L40S or A10G nodes)."""
    labelled = GPU_NODE_LABELS[scheme]
    if gpu not in labelled:
        offered = ", ".join(sorted(labelled))
        raise SpecError(
            f"{PROJECT}:gpuNodeSelector",
            scheme,
            f"a scheme whose nodes carry {gpu}: {scheme} labels {offered}; use nvidia, karpenter or none",
        )
    return labelled[gpu]


def node_affinity(scheme: str, gpu: str) -> dict | None:
    """A required node affinity (``In`` lets one GPU type match several labels, e.g. H100 and H100 Mega)."""
    requirements = node_requirements(scheme, gpu)
    if not requirements:
        return None
    expressions = [{"key": key, "operator": "In", "values": list(values)} for key, values in requirements]
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": expressions}]
            }
        }
    }
