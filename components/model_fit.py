"""Model-fit checks: will the model, as the Hugging Face Hub and the config describe it, fit the replica?

Weights against the GPUs' memory (at the share vLLM takes) and against the disk, the tensor parallel size
against the attention heads, ``maxModelLen`` against the context, a gated model against the token. Each
refusal is a ``SpecError`` raised before any resource is declared.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from components import catalog, platforms
from components.config import PROJECT, SpecError
from components.extra_args import gpu_memory_utilization

if TYPE_CHECKING:
    from components.model_facts import ModelFacts
    from components.service_spec import Gpu, ServiceSpec


def known_weights(spec: ServiceSpec) -> tuple[int, str] | None:
    """The larger of the weights' sizes the config and the Hub give, and where it comes from: the checks
    trust whichever says more (the budget prefers vllm:modelSizeGb, see components/launch.py)."""
    facts = spec.facts
    hub = facts.weights_gb if facts else None
    if facts is not None and hub is not None and (spec.model_size_gb is None or hub > spec.model_size_gb):
        return hub, f"{spec.model}@{facts.revision[:12]} on the Hugging Face Hub"
    if spec.model_size_gb is not None:
        return spec.model_size_gb, f"{PROJECT}:modelSizeGb"
    return None


def check_model_facts(spec: ServiceSpec, has_hf_token: bool) -> None:
    """Refuse a model the replica cannot serve: gated without a token, weights beyond the GPUs' memory,
    a tensor parallel size (GPUs per node) that does not split its heads, a context it does not have."""
    facts, gpu = spec.facts, spec.gpu
    if facts is not None and facts.gated and not has_hf_token:
        raise SpecError(
            f"{PROJECT}:hfToken",
            "(not set)",
            f"a token with access to {spec.model}, which is gated: accept its license on "
            f"https://huggingface.co/{spec.model}, then pulumi config set --secret {PROJECT}:hfToken hf_...",
        )
    weights = known_weights(spec)
    if weights is not None and spec.offering is not None:
        size, source = weights
        share = gpu_memory_utilization(spec.extra_args)
        # The catalog's "80 GB" GPUs hold 80 GiB less reserved memory, a little over 80 * 10^9 bytes: the
        # comparison with decimal GB errs by a few percent towards refusing, where no KV cache would fit.
        memory = spec.offering.gpu_memory_gb * spec.nodes
        if size > memory * share:
            raise SpecError(
                f"{PROJECT}:gpu",
                str(gpu),
                f"GPUs that hold the model's {size} GB of weights ({source}): {spec.nodes} x {gpu} has "
                f"{memory} GB, of which vLLM uses {share:.0%}; more or larger GPUs, or more vllm:nodes",
            )
    if facts is not None and gpu is not None:
        check_tensor_parallel(spec, facts, gpu)
    context = facts.max_context if facts else None
    if context is not None and spec.max_model_len is not None and spec.max_model_len > context:
        raise SpecError(
            f"{PROJECT}:maxModelLen",
            spec.max_model_len,
            f"<= {context}, the context length of {spec.model} (its config.json); unset means that",
        )


def check_tensor_parallel(spec: ServiceSpec, facts: ModelFacts, gpu: Gpu) -> None:
    """vLLM's tensor parallel size is the GPUs per node. It must divide the attention heads
    (``ModelConfig.verify_with_parallel_config``), and its QKVParallelLinear splits the KV heads over the
    ranks, or replicates them when there are fewer heads than ranks: one count must divide the other."""
    rules = (
        ("attention heads", facts.attention_heads, lambda heads, tp: heads % tp == 0),
        ("key/value heads", facts.kv_heads, lambda heads, tp: heads % tp == 0 or tp % heads == 0),
    )
    for what, heads, splits in rules:
        if heads and not splits(heads, gpu.count):
            counts = [str(c) for c in catalog.counts_offered(spec.cloud, gpu.type) if splits(heads, c)]
            raise SpecError(
                f"{PROJECT}:gpu",
                str(gpu),
                f"a GPU count per node that splits the {heads} {what} of {spec.model} (the tensor parallel "
                f"size is the GPUs per node): {gpu.type}:{'/'.join(counts) or ' none sold'}",
            )


def check_disk_fits_model(spec: ServiceSpec) -> None:
    """Refuse a disk the model cannot fit on: a VM's boot disk also holds the OS and the image (~30 GB);
    a pod's cache volume holds only the weights (and vLLM's compile cache). On a machine whose weights go
    on its local NVMe (the platform's ``weight_storage``), where Docker's data root goes too (local_nvme.sh),
    the boot disk holds the OS image alone:
    the NVMe arrays of the platforms' machine tables each exceed their GPUs' memory, which already bounds
    the weights (``check_model_facts``)."""
    platform = platforms.get(spec.cloud)
    overhead = platform.disk_overhead_gb
    if spec.boot_disk_from_image:  # sized at up from the image itself: at least its own minimum
        return
    if platform.weight_storage(spec).local:
        if spec.disk_size_gb < overhead:
            raise SpecError(
                f"{PROJECT}:diskSizeGb",
                spec.disk_size_gb,
                f">= {overhead} (the OS image; the weights and Docker's data root go on the machine's "
                "local NVMe)",
            )
        return
    weights = known_weights(spec)
    if weights is not None and spec.disk_size_gb < weights[0] + overhead:
        size, source = weights
        raise SpecError(
            f"{PROJECT}:diskSizeGb",
            spec.disk_size_gb,
            f">= {size + overhead} for a {size} GB model ({source}; weights + {overhead} GB)",
        )
