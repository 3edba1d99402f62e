"""vLLM serving HTTPS itself from ``vllm:tlsSecretName`` (docs/https.md).

A ``kubernetes.io/tls`` Secret holds ``tls.crt`` and ``tls.key`` (Kubernetes docs, "Secrets": TLS
Secrets); mounted read-only into the serving container, vLLM serves them with ``--ssl-certfile`` and
``--ssl-keyfile`` and, with ``--enable-ssl-refresh``, reloads them when the files change (the kubelet
updates a mounted Secret in place, so a renewal by cert-manager reaches vLLM without a restart). All three
are flags of the pinned vLLM (components/vllm_flags.json), set by the spec; extraArgs may not set them.

The Service exposes 443 to the pods' port; the probes use ``scheme: HTTPS``, for which the kubelet skips
certificate verification (Kubernetes docs, "Configure Liveness, Readiness and Startup Probes").
"""

from __future__ import annotations

import dataclasses
import posixpath
from typing import Any

from components.kubernetes.settings import settings
from components.launch import LaunchSpec
from components.service_spec import ServiceSpec

VOLUME = "tls"
MOUNT_DIR = "/etc/vllm/tls"
#: The keys of a kubernetes.io/tls Secret, as files under the mount.
CERT_FILE, KEY_FILE = "tls.crt", "tls.key"
#: Owner-read only: the private key is for vLLM's process alone (the image runs as root).
FILE_MODE = 0o400
SERVE_FLAGS = ("--ssl-certfile", "--ssl-keyfile", "--enable-ssl-refresh")


def serves_tls(spec: ServiceSpec) -> bool:
    """vLLM serves the certificate itself, unless the inference gateway's listener does: an InferencePool
    reaches its pods over plain HTTP or h2c only (``appProtocol``, GIE v1.5.0's CRD)."""
    k8s = settings(spec)
    return k8s.tls_secret_name is not None and not k8s.inference_gateway


def with_tls(spec: ServiceSpec, launch: LaunchSpec) -> LaunchSpec:
    """The launch spec with vLLM serving the mounted certificate, when ``vllm:tlsSecretName`` is set."""
    if not serves_tls(spec):
        return launch
    flags = (
        "--ssl-certfile",
        posixpath.join(MOUNT_DIR, CERT_FILE),
        "--ssl-keyfile",
        posixpath.join(MOUNT_DIR, KEY_FILE),
        "--enable-ssl-refresh",
    )
    return dataclasses.replace(launch, args=(*launch.args, *flags))


def volume(spec: ServiceSpec) -> dict[str, Any]:
    return {
        "name": VOLUME,
        "secret": {"secretName": settings(spec).tls_secret_name, "defaultMode": FILE_MODE},
    }


def mount() -> dict[str, Any]:
    return {"name": VOLUME, "mountPath": MOUNT_DIR, "readOnly": True}


def https_probes(probes: dict[str, Any]) -> dict[str, Any]:
    """The container's HTTP probes, asking over HTTPS (an exec probe names its own URL)."""
    return {
        name: {**probe, "httpGet": {**probe["httpGet"], "scheme": "HTTPS"}} if "httpGet" in probe else probe
        for name, probe in probes.items()
    }
