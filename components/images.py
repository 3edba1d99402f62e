"""The vLLM image a stack runs: pinned, and built for the hardware it runs on.

A stack's image is a pinned reference (a tag or a digest, never ``latest``: the tag is part of the
infrastructure diff); the default is vLLM's release this program is tested with, its CUDA build on GPUs and
its CPU build without. An image built for other hardware is refused before any resource.
"""

from __future__ import annotations

import re

from components.config import PROJECT, SpecError
from components.service_spec import Gpu

#: Pinned vLLM release (never ``latest``): the image tag is part of the infrastructure diff.
DEFAULT_IMAGE = "vllm/vllm-openai:v0.33.0"
#: The same release built for CPUs, the default of a Kubernetes stack without a GPU. vLLM publishes its CPU
#: builds as separate repositories (vLLM docs "CPU" and "Using Docker"): ``vllm/vllm-openai-cpu``,
#: ``public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo``, ``...vllm-arm64-cpu-release-repo``; a source build
#: is tagged ``vllm-cpu-env``.
DEFAULT_CPU_IMAGE = DEFAULT_IMAGE.replace("vllm/vllm-openai:", "vllm/vllm-openai-cpu:")
#: Words in an image's repository or tag that name the hardware it was built for (vLLM's own images:
#: ``*-cpu*``; ROCm ``vllm/vllm-openai:*-rocm``, ``rocm/vllm``; TPU ``vllm/vllm-tpu``; Intel XPU, Gaudi
#: HPU, AWS Neuron and Ascend builds). Anything else is taken for the CUDA build.
CPU_IMAGE_WORD = "cpu"
NON_CUDA_IMAGE_WORDS = ("cpu", "rocm", "tpu", "xpu", "hpu", "gaudi", "neuron", "ascend")
IMAGE_PATTERN = re.compile(
    r"^[a-z0-9][a-z0-9._/-]*(:[0-9]+)?[a-z0-9._/-]*(:[\w][\w.-]{0,127}|@sha256:[0-9a-f]{64})$"
)


def check_image(image: str, gpu: Gpu | None) -> None:
    """A pinned reference, built for ``gpu`` (None: CPU replicas); raises SpecError."""
    if not IMAGE_PATTERN.match(image) or image.endswith((":latest", ":nightly")):
        raise SpecError(f"{PROJECT}:image", image, f"a pinned image reference such as {DEFAULT_IMAGE}")
    _check_fits_hardware(image, gpu)


def image_hardware(image: str) -> str:
    """What an image was built for, from its repository's name and its tag (not the registry or the
    organisation): "cpu", "cuda", or another backend."""
    name = image.lower().split("@", 1)[0].rsplit("/", 1)[-1]
    words = set(re.findall(r"[a-z]+", name))  # "rocm6.4_vllm" -> rocm, vllm
    other = [word for word in NON_CUDA_IMAGE_WORDS if word in words]
    return other[0] if other else "cuda"


def _check_fits_hardware(image: str, gpu: Gpu | None) -> None:
    """A CPU build on GPUs leaves them idle; a CUDA build without a GPU fails at startup (no CUDA device);
    ROCm, TPU, XPU, Gaudi, Neuron and Ascend builds need their own hardware, and the catalog sells only
    NVIDIA GPUs."""
    built_for = image_hardware(image)
    if gpu is not None and built_for != "cuda":
        raise SpecError(
            f"{PROJECT}:image",
            image,
            f"a CUDA build of vLLM for {gpu} NVIDIA GPUs (not a {built_for} build), e.g. {DEFAULT_IMAGE}",
        )
    if gpu is None and built_for != CPU_IMAGE_WORD:
        raise SpecError(
            f"{PROJECT}:image",
            image,
            f"a CPU build of vLLM without vllm:gpu (its repository or tag says cpu), e.g. "
            f"{DEFAULT_CPU_IMAGE}; or set vllm:gpu",
        )
