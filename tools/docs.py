"""Generate the key tables of docs/configuration.md from the program's key registry.

    .venv/bin/python -m tools.docs            # rewrite the tables between their markers
    .venv/bin/python -m tools.docs --check    # exit 1 when the committed tables are out of date

A key the program reads and these docs do not describe (or the reverse) is an error: a new key needs its
line in ``KEYS`` (tests/test_docs.py runs the check).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from components import platforms, spec

ROOT = Path(__file__).resolve().parent.parent
CONFIGURATION = ROOT / "docs" / "configuration.md"
BEGIN = "<!-- keys: generated from the key registry by .venv/bin/python -m tools.docs; edit tools/docs.py -->"
END = "<!-- end of the generated keys -->"


class DocsError(Exception):
    """The docs cannot be generated: one line saying what to fix."""


@dataclass(frozen=True)
class KeyDoc:
    meaning: str
    default: str


@dataclass(frozen=True)
class PlatformKeys:
    title: str
    keys: tuple[str, ...]  # the vllm: keys only this platform reads
    provider_keys: tuple[str, ...]  # its provider's keys the program reads itself


@dataclass(frozen=True)
class Registry:
    common: tuple[str, ...]  # vllm: keys every platform reads
    secret: tuple[str, ...]  # vllm: keys set with --secret, by the stack only
    platforms: tuple[PlatformKeys, ...]


def key_registry() -> Registry:
    """The program's key registry, read here and nowhere else in this module: the one place to repoint
    when the registry moves."""
    return Registry(
        common=spec.COMMON_KEYS,
        secret=spec.SECRET_KEYS,
        platforms=tuple(
            PlatformKeys(platform.title, platform.keys, platform.provider_keys)
            for platform in platforms.registered()
        ),
    )


#: What each vllm: key means and its default, one table row each; links are relative to docs/.
KEYS: dict[str, KeyDoc] = {
    "preset": KeyDoc(
        "a preset of `stacks/` to start from, see [Presets](#presets)",
        "the preset named like the stack, if any",
    ),
    "cloud": KeyDoc(
        "the platform: `gcp`, `aws` or `kubernetes`",
        "(required, or from a preset)",
    ),
    "gpu": KeyDoc(
        "GPUs per node, `TYPE:COUNT` as in SkyPilot: `H100:8`, `L4:1`, `A100-80GB:4`; `none` on "
        "kubernetes runs on CPU (an empty value keeps the preset's, see [Presets](#presets))",
        "(required on the clouds; on kubernetes, not set means CPU)",
    ),
    "model": KeyDoc(
        "Hugging Face model id",
        "(required)",
    ),
    "servedModelName": KeyDoc(
        "the name clients send as `model`",
        "the model id",
    ),
    "replicas": KeyDoc(
        "replicas behind the load balancer, 1 to 1000; unset with `maxReplicas`",
        "1",
    ),
    "maxReplicas": KeyDoc(
        "turns [autoscaling](autoscaling.md) on: the most replicas, >= `minReplicas`",
        "none (a fixed `replicas`)",
    ),
    "minReplicas": KeyDoc(
        "autoscaling: the fewest replicas, an on-demand base among them; 0 (scale to zero) on Kubernetes "
        "only; on GCP at least one per region beside the base",
        "1",
    ),
    "targetQpsPerReplica": KeyDoc(
        "autoscaling: requests per second one replica should serve, > 0",
        "(required with `maxReplicas`)",
    ),
    "upscaleDelaySeconds": KeyDoc(
        "autoscaling: how long load must stay high before replicas are added, <= 3600; what each platform"
        " honours is in [Autoscaling](autoscaling.md)",
        "300 (SkyServe's)",
    ),
    "downscaleDelaySeconds": KeyDoc(
        "autoscaling: how long load must stay low before replicas are removed, <= 3600; what each "
        "platform honours is in [Autoscaling](autoscaling.md)",
        "1200 (SkyServe's)",
    ),
    "nodes": KeyDoc(
        "machines per replica, 1 to 64; > 1 serves one replica from a Ray group",
        "1",
    ),
    "hfToken": KeyDoc(
        "Hugging Face token for gated models (`--secret`)",
        "none (open models)",
    ),
    "apiKey": KeyDoc(
        "the Bearer key clients send (`--secret`), at least 16 characters",
        "generated (pulumi-random)",
    ),
    "image": KeyDoc(
        "vLLM image, pinned; `latest` is refused. It must be built for the hardware: a CUDA build with "
        "`gpu`, a CPU build (repository or tag says `cpu`) without",
        "`vllm/vllm-openai:v0.33.0`; without `gpu`, `vllm/vllm-openai-cpu:v0.33.0`",
    ),
    "maxModelLen": KeyDoc(
        "`--max-model-len`; refused above the model's context length",
        "the model's",
    ),
    "extraArgs": KeyDoc(
        'more `vllm serve` flags, a list (`["--enable-prefix-caching", "--max-num-seqs", "128"]`), '
        "checked against the pinned vLLM's own flags ([Flags of the pinned "
        "vLLM](#flags-of-the-pinned-vllm)): unknown flags (with a suggestion), missing values, values "
        "outside vLLM's choices and ranges, secret flags (`--hf-token`, `--api-key`) and flags the spec "
        "owns (`--port`, `--tensor-parallel-size`, ...) are refused in any spelling",
        "none",
    ),
    "diskSizeGb": KeyDoc(
        "boot disk per VM, for the image and the weights (on machines with local NVMe the weights and "
        "Docker's data root go there and the boot disk holds the OS only: at least 30)",
        "200",
    ),
    "modelSizeGb": KeyDoc(
        "checkpoint size in GB; sizes the startup health-check budget (set it to pin the budget)",
        "the Hub's size of the model's weight files, else 90% of the replica's GPU memory",
    ),
    "spot": KeyDoc(
        "spot / preemptible capacity; preempted replicas are replaced. Kubernetes: with `gpuNodeSelector`"
        " `gke` or `karpenter`. See "
        "[Capacity](capacity.md)",
        "false",
    ),
    "onDemandBaseReplicas": KeyDoc(
        "with `spot: true`, how many replicas stay on on-demand capacity (SkyServe's "
        "`base_ondemand_fallback_replicas`), at most `replicas`; with autoscaling a fixed floor, at most "
        "`minReplicas` and below `maxReplicas`",
        "0",
    ),
    "regions": KeyDoc(
        "GCP: regions the replicas spread over behind the one global load balancer, a list "
        '(`["us-central1", "us-east4"]`); AWS and Kubernetes refuse it',
        "`gcp:region` alone",
    ),
    "reservation": KeyDoc(
        "reserved capacity the on-demand machines consume: a GCP reservation name (with `gcp:zone`), an "
        "AWS capacity reservation id `cr-...`, or `capacity-block:cr-...` for an AWS Capacity Block; "
        "Kubernetes refuses it",
        "none",
    ),
    "reservationZone": KeyDoc(
        "AWS: the Availability Zone of `reservation` (e.g. `us-east-1b`), required with it: the machines "
        "launch only there",
        "none",
    ),
    "weightCache": KeyDoc(
        "`bucket`: the stack owns a private bucket (GCS / S3) the first replica fills from the Hugging "
        "Face Hub under a lock; every later replica copies from it. `hub`: every replica downloads from "
        "the Hub. See [Cold start](cold-start.md)",
        "`bucket` on GCP and AWS, `hub` on Kubernetes",
    ),
    "cacheClaim": KeyDoc(
        "Kubernetes: a ReadWriteMany PVC in the namespace, mounted as every pod's HF cache: an init "
        "container fills it with the model's commit once (one pod downloads under a lock, the others "
        "wait), and vLLM's startup budget is the claim's read. Either yours, existing before `up` in a "
        "namespace of yours (`createNamespace: false`), or created by the stack (`cacheStorageClass`); an"
        " existing claim in the namespace the stack creates is refused (it cannot exist yet). See [Cold "
        "start](cold-start.md)",
        "none: a cache per pod",
    ),
    "cacheStorageClass": KeyDoc(
        "Kubernetes: a ReadWriteMany StorageClass (Filestore, EFS, NFS); the stack creates `cacheClaim` "
        "from it, of `diskSizeGb`, kept by `pulumi destroy` (`retainOnDelete`; in the stack's own "
        "namespace it still goes with the namespace)",
        "none: `cacheClaim` exists",
    ),
    "allowedCidrs": KeyDoc(
        "who may reach the endpoint, a list of CIDRs (network addresses, no host bits set); IPv4 only on "
        "GCP and AWS, whose load balancers have no IPv6 address",
        '`["0.0.0.0/0"]` (the API key still applies)',
    ),
    "domain": KeyDoc(
        "the host name clients use (`llm.example.com`): the endpoint becomes `https://<domain>`, see "
        "[HTTPS](https.md). A bare host name: no scheme, port, path or wildcard",
        "none: plain HTTP, and `up` warns",
    ),
    "dnsZone": KeyDoc(
        "where the program writes the domain's records: a Cloud DNS managed zone name (GCP), a Route 53 "
        "hosted zone id `Z...` (AWS); refused on Kubernetes",
        "none: the `dnsRecords` output lists them",
    ),
    "tlsSecretName": KeyDoc(
        "Kubernetes: a `kubernetes.io/tls` Secret in the namespace, for `domain`; vLLM serves it on 443",
        "none",
    ),
    "namespace": KeyDoc(
        "Kubernetes: the namespace the stack creates and owns",
        "`vllm-<stack>`, so two stacks on one cluster never share one",
    ),
    "createNamespace": KeyDoc(
        "Kubernetes: `false` uses `namespace` as it exists: you create it before `up`, with what the pods"
        " need from you (the `cacheClaim`, the `tlsSecretName` Secret), and `pulumi destroy` leaves it "
        "and them (pulumi-kubernetes 4.29+ refuses to adopt an existing namespace, #4278)",
        "`true`",
    ),
    "cpu": KeyDoc(
        "Kubernetes: the CPU request per pod, in cores. With GPUs at least one core per GPU + 1: H100:8 "
        "needs 9 cores",
        "half the catalog machine's share per GPU",
    ),
    "memoryGb": KeyDoc(
        "Kubernetes: the memory request per pod, in GB. With GPUs at least 4 GB per GPU + 3 GB (per GPU 2"
        " GB of memory-backed /dev/shm and a 2 GB worker process; 3 GB for the API server and engine): "
        "H100:8 needs 35 GB",
        "half the catalog machine's share per GPU",
    ),
    "gpuNodeSelector": KeyDoc(
        "Kubernetes: the node labels that pin the GPU type: `none` (only the `nvidia.com/gpu` limit "
        "places the pod), `gke`, `nvidia` or `karpenter`; `spot` needs `gke` or `karpenter`; see "
        "[Kubernetes](kubernetes.md)",
        "`none`",
    ),
    "storageClass": KeyDoc(
        "Kubernetes: a StorageClass for each pod's HF cache, a PVC of `diskSizeGb`; see "
        "[Kubernetes](kubernetes.md)",
        "none: node ephemeral storage (the weights + 10 GB requested)",
    ),
    "serviceType": KeyDoc(
        "Kubernetes: the Service's type: `LoadBalancer` (`allowedCidrs` becomes "
        "`loadBalancerSourceRanges`) or `ClusterIP` (behind your Ingress or Gateway); see "
        "[Kubernetes](kubernetes.md)",
        "`LoadBalancer`",
    ),
    "installLeaderWorkerSet": KeyDoc(
        "Kubernetes, `nodes` > 1: `true` installs the LeaderWorkerSet controller (v0.8.0) from its pinned"
        " release manifest; it is cluster-wide, so let one stack per cluster own it; see "
        "[Kubernetes](kubernetes.md)",
        "`false`",
    ),
    "maxSurge": KeyDoc(
        "Kubernetes: pods (multi-node: groups) a rollout adds above `replicas` at a time; 0 replaces them"
        " in place; see [Kubernetes](kubernetes.md)",
        "0 with `replicas` > 1, 1 with one replica",
    ),
    "prometheusOperator": KeyDoc(
        "Kubernetes: `true` adds a PodMonitor on the serving pods and the service dashboard as a Grafana "
        "ConfigMap (needs the Prometheus Operator's CRDs); see [Kubernetes](kubernetes.md)",
        "`false`",
    ),
    "prometheusUrl": KeyDoc(
        "Kubernetes autoscaling: the Prometheus that scrapes the vLLM pods' `/metrics`, where KEDA reads "
        "the request rate; required with `maxReplicas`; see [Autoscaling](autoscaling.md)",
        "none",
    ),
    "activationQuery": KeyDoc(
        "Kubernetes, `minReplicas` 0: a PromQL request rate measured in front of vLLM (your Ingress or "
        "Gateway) that wakes a service scaled to zero; see [Autoscaling](autoscaling.md)",
        "none",
    ),
    "vpcId": KeyDoc(
        "AWS: the VPC of `subnetIds` and `loadBalancerSubnetIds`; see [AWS](aws.md)",
        "the region's default VPC",
    ),
    "subnetIds": KeyDoc(
        "AWS: the instances' subnets in `vpcId`, a list; without `loadBalancerSubnetIds` the ALB's too, "
        "which must then be two or more in different zones and route to an internet gateway; see "
        "[AWS](aws.md)",
        "the default VPC's default subnets",
    ),
    "loadBalancerSubnetIds": KeyDoc(
        "AWS: public subnets for the ALB, two or more in different zones, in front of private instances "
        "in `subnetIds`; see [AWS](aws.md)",
        "`subnetIds`",
    ),
    "amiId": KeyDoc(
        "AWS: an `ami-...` every machine boots, with an NVIDIA driver >= 580; see [AWS](aws.md)",
        "the current Deep Learning AMI, resolved at each launch",
    ),
    "bootImage": KeyDoc(
        "GCP only: a dated Deep Learning VM image (driver >= 580), see [GCP](gcp.md)",
        "the family's newest image",
    ),
}

#: The provider keys the program reads itself (placement); every other key of a provider passes through.
PROVIDER_KEYS: dict[str, KeyDoc] = {
    "gcp:project": KeyDoc(
        "the GCP project the stack deploys into",
        "the provider's own default (gcloud's)",
    ),
    "gcp:region": KeyDoc(
        "the region; with `vllm:regions`, one of them, which keeps the stack's regional resources",
        "`us-central1`",
    ),
    "gcp:zone": KeyDoc(
        "pins every VM to one zone, which must sell the machine",
        "the region's zones that sell the machine",
    ),
    "aws:region": KeyDoc(
        "an AWS region that sells the instance type, per the catalog",
        "`us-east-1`",
    ),
    "kubernetes:context": KeyDoc(
        "the kubeconfig context the stack's `kubernetes` provider targets",
        "the kubeconfig's current context",
    ),
}


def _row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(keys: tuple[str, ...], docs: Mapping[str, KeyDoc], prefix: str) -> list[str]:
    missing = [key for key in keys if key not in docs]
    if missing:
        raise DocsError(f"tools/docs.py: no description of {', '.join(prefix + k for k in missing)}")
    return [
        _row(("key", "meaning", "default")),
        "|---|---|---|",
        *(_row((f"`{key}`", docs[key].meaning, docs[key].default)) for key in keys),
    ]


def render_tables(registry: Registry) -> str:
    """The markdown of every key table: the common keys, each platform's own, and the provider keys."""
    own = [key for group in registry.platforms for key in group.keys]
    described = (*registry.common, *registry.secret, *own)
    stale = sorted(set(KEYS) - set(described))
    if stale:
        raise DocsError(f"tools/docs.py: describes {', '.join(stale)}, which the program does not read")
    provider = tuple(key for group in registry.platforms for key in group.provider_keys)
    stale = sorted(set(PROVIDER_KEYS) - set(provider))
    if stale:
        raise DocsError(f"tools/docs.py: describes {', '.join(stale)}, which the program does not read")
    lines = [
        "### Every platform",
        "",
        *_table((*registry.common, *registry.secret), KEYS, "vllm:"),
    ]
    for group in registry.platforms:
        lines += ["", f"### {group.title} only", "", *_table(group.keys, KEYS, "vllm:")]
    lines += ["", "### Provider keys the program reads", "", *_table(provider, PROVIDER_KEYS, "")]
    return "\n".join(lines)


def render(text: str, registry: Registry) -> str:
    """``text`` (docs/configuration.md) with the tables between the markers regenerated."""
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise DocsError(f"{CONFIGURATION.relative_to(ROOT)}: one {BEGIN!r} then one {END!r} line")
    head, rest = text.split(BEGIN + "\n")
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{render_tables(registry)}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.docs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the tables are out of date")
    args = parser.parse_args(argv)
    text = CONFIGURATION.read_text()
    try:
        fresh = render(text, key_registry())
    except DocsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    name = CONFIGURATION.relative_to(ROOT)
    if args.check:
        if fresh != text:
            print(f"{name} is out of date: run .venv/bin/python -m tools.docs", file=sys.stderr)
            return 1
        return 0
    if fresh != text:
        CONFIGURATION.write_text(fresh)
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
