"""Generate the key tables of docs/configuration.md from the program's key registry.

    .venv/bin/python -m tools.docs            # rewrite the tables between their markers
    .venv/bin/python -m tools.docs --check    # exit 1 when the committed tables are out of date

A key the program reads and these docs do not describe (or the reverse) is an error: a new key needs its
line in ``KEYS`` here, or for a platform's own key in that platform's ``key_docs.py`` (tests/test_docs.py
runs the check).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from components import keys, platforms

ROOT = Path(__file__).resolve().parent.parent
CONFIGURATION = ROOT / "docs" / "configuration.md"
BEGIN = (
    "<!-- keys: generated from the key registry by .venv/bin/python -m tools.docs; edit tools/docs.py or "
    "components/<platform>/key_docs.py -->"
)
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
    docs: Mapping[str, KeyDoc]  # what each of them means: its package's key_docs.py


@dataclass(frozen=True)
class Registry:
    common: tuple[str, ...]  # vllm: keys every platform reads
    secret: tuple[str, ...]  # vllm: keys set with --secret, by the stack only
    platforms: tuple[PlatformKeys, ...]


def key_registry() -> Registry:
    """The program's key registry, read here and nowhere else in this module: the one place to repoint
    when the registry moves."""
    return Registry(
        common=keys.COMMON_KEYS,
        secret=keys.SECRET_KEYS,
        platforms=tuple(
            PlatformKeys(
                platform.title,
                platform.keys,
                platform.provider_keys,
                {key: KeyDoc(*row) for key, row in platform.module("key_docs").KEYS.items()},
            )
            for platform in platforms.registered()
        ),
    )


#: What each vllm: key every platform reads means, and its default, one table row each (links are relative
#: to docs/). A platform's own keys and its provider keys are described in its folder (its ``key_docs.py``).
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
    "nodes": KeyDoc(
        "machines per replica, 1 to 64; > 1 serves one replica from a Ray group",
        "1",
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
        "200; on machines with local NVMe, the boot image's own minimum + 20, read at `up` (see "
        "[Cold start](cold-start.md#boot-disk-on-local-nvme-machines))",
    ),
    "modelSizeGb": KeyDoc(
        "checkpoint size in GB; sizes the startup health-check budget (set it to pin the budget)",
        "the Hub's size of the model's weight files, else 90% of the replica's GPU memory",
    ),
    "spot": KeyDoc(
        "spot / preemptible capacity; preempted replicas are replaced. Kubernetes: with `gpuNodeSelector`"
        " `gke` or `karpenter`. See [Capacity](capacity.md)",
        "false",
    ),
    "onDemandBaseReplicas": KeyDoc(
        "with `spot: true`, how many replicas stay on on-demand capacity (SkyServe's "
        "`base_ondemand_fallback_replicas`), at most `replicas`; with autoscaling a fixed floor, at most "
        "`minReplicas` and below `maxReplicas`",
        "0",
    ),
    "reservation": KeyDoc(
        "reserved capacity the on-demand machines consume: a GCP reservation name (with `gcp:zone`), an "
        "AWS capacity reservation id `cr-...`, or `capacity-block:cr-...` for an AWS Capacity Block; "
        "Kubernetes refuses it",
        "none",
    ),
    "allowedCidrs": KeyDoc(
        "who may reach the endpoint, a list of CIDRs (network addresses, no host bits set); IPv4 only on "
        "GCP and AWS, whose load balancers have no IPv6 address",
        '`["0.0.0.0/0"]` (the API key still applies)',
    ),
    "minReplicas": KeyDoc(
        "autoscaling: the fewest replicas, an on-demand base among them; 0 (scale to zero) on Kubernetes "
        "only; on GCP at least one per region beside the base",
        "1",
    ),
    "maxReplicas": KeyDoc(
        "turns [autoscaling](autoscaling.md) on: the most replicas, >= `minReplicas`",
        "none (a fixed `replicas`)",
    ),
    "targetQpsPerReplica": KeyDoc(
        "autoscaling: requests per second one replica should serve, > 0",
        "(this or `targetQueuePerReplica` is required with `maxReplicas`)",
    ),
    "targetQueuePerReplica": KeyDoc(
        "autoscaling on queue depth: requests one replica should hold, running + waiting, > 0; alone or "
        "beside `targetQpsPerReplica`; Kubernetes and AWS ([Autoscaling signals]"
        "(autoscaling.md#autoscaling-signals-and-reaction-time))",
        "none",
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
    "weightCache": KeyDoc(
        "`bucket`: the stack owns a private bucket (GCS / S3) the first replica fills from the Hugging "
        "Face Hub under a lock; every later replica copies from it. `stream`: the same bucket, from which "
        "later replicas stream the safetensors into GPU memory (Run:ai model streamer). `hub`: every "
        "replica downloads from the Hub. See [Cold start](cold-start.md)",
        "`bucket` on GCP and AWS, `hub` on Kubernetes",
    ),
    "canary": KeyDoc(
        "a second revision beside the stable one behind the same endpoint, an object set with `--path` "
        "(`vllm:canary.model`, `.image`, `.extraArgs`, `.gpu`, `.replicas`, `.weight` 0-100, `.mode` "
        "`canary` or `blue-green`); GCP, AWS, and Kubernetes with `router: inference-gateway`. See "
        "[Upgrades](upgrades.md)",
        "none: one revision",
    ),
    "stableRevision": KeyDoc(
        "with `canary`: which revision slot (`1` or `2`) is stable; promoting swaps it with the canary's "
        "values and restarts nothing. See [Upgrades](upgrades.md#slots-why-promoting-restarts-nothing)",
        "`1`",
    ),
    "canaryModelName": KeyDoc(
        "with `canary`: a name a client sends in the `x-vllm-model` header to reach the canary revision "
        "alone. See [Upgrades](upgrades.md)",
        "none",
    ),
    "hfToken": KeyDoc(
        "Hugging Face token for gated models (`--secret`)",
        "none (open models)",
    ),
    "apiKey": KeyDoc(
        "the Bearer key clients send (`--secret`), at least 16 characters",
        "generated (pulumi-random)",
    ),
}


def _row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(keys: tuple[str, ...], docs: Mapping[str, KeyDoc], where: str) -> list[str]:
    missing = [key for key in keys if key not in docs]
    if missing:
        raise DocsError(f"{where}: no description of {', '.join(missing)}")
    stale = sorted(set(docs) - set(keys))
    if stale:
        raise DocsError(f"{where}: describes {', '.join(stale)}, which the program does not read")
    return [
        _row(("key", "meaning", "default")),
        "|---|---|---|",
        *(_row((f"`{key}`", docs[key].meaning, docs[key].default)) for key in keys),
    ]


def render_tables(registry: Registry) -> str:
    """The markdown of every key table: the common keys, each platform's own, and the provider keys."""
    lines = ["### Every platform", "", *_table((*registry.common, *registry.secret), KEYS, "tools/docs.py")]
    provider = []
    for group in registry.platforms:
        where = f"{group.title}'s key_docs.py"
        own = {key: doc for key, doc in group.docs.items() if key not in group.provider_keys}
        lines += ["", f"### {group.title} only", "", *_table(group.keys, own, where)]
        theirs = {key: doc for key, doc in group.docs.items() if key in group.provider_keys}
        provider.append(_table(group.provider_keys, theirs, where)[2:])
    header = _table((), {}, "")
    lines += [
        "",
        "### Provider keys the program reads",
        "",
        *header,
        *(row for rows in provider for row in rows),
    ]
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
