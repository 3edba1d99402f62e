"""The stack spec: ``load_spec`` assembles and checks a stack's whole configuration before any resource.

The effective configuration is the stack's preset overlaid with its own config (components/presets.py);
every key is a known one (components/keys.py). ``build_spec`` then checks each value with the rules of the
modules below it (images.py, autoscaling.py, extra_args.py, the platform's own) and assembles the
``ServiceSpec`` (components/service_spec.py); a bad value raises ``SpecError``, a ``pulumi.RunError``, so
Pulumi prints one message naming the key, the value and what is valid, and no traceback. ``stack_spec``
adds what the platform's resources can hold and the provider keys' types: every check ``load_spec`` makes,
callable without the Pulumi runtime. ``public_view`` is the spec as the stack's ``spec`` output shows it.

Before any resource, ``load_spec`` also checks the model against the Hugging Face Hub (weights against
GPU memory and disk, tensor parallel size against attention heads, ``maxModelLen`` against the context, in
components/model_fit.py; components/model_facts.py says how and why the answers are stable across runs).

Pulumi.yaml declares every key with an empty default (``""`` or ``[]``), because Pulumi treats a declared
key without a default as required and applies defaults to every stack; so "empty" here means "not set":
the preset's value, else the built-in default below, applies.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

import pulumi

from components import (
    canary,
    catalog,
    cost_warnings,
    images,
    keys,
    model_facts,
    model_fit,
    platforms,
    presets,
    provider_config,
    sdk_internals,
)
from components.autoscaling import read_autoscaling, replicas_output
from components.config import PROJECT, ConfigReader, SpecError, present, stack_config
from components.domain import parse_domain
from components.extra_args import (
    SECRET_FLAGS,
    ExtraArgError,
    check_flags,
    check_refused_flags,
    load_flags,
    option_value,
    refused_flags,
)
from components.model_facts import ModelFacts
from components.service_spec import (
    BLUE_GREEN_MODE,
    BUCKET_WEIGHT_CACHES,
    REVISIONS,
    Autoscaling,
    Canary,
    Gpu,
    ServiceSpec,
)

#: A configured API key shorter than this is refused: it is the only credential in front of a public
#: endpoint (a generated key, components/service.py API_KEY_LENGTH, is far longer).
MIN_API_KEY_LENGTH = 16
DEFAULT_DISK_SIZE_GB = 200
OPEN_TO_ALL = ("0.0.0.0/0",)


# --- reading config ------------------------------------------------------------------------------------


#: vllm:weightCache: ``bucket``, the stack's own bucket filled from the Hub once (the default where the
#: platform has one); ``stream``, the same bucket, from which vLLM streams the safetensors straight into
#: GPU memory (the Run:ai model streamer) instead of copying them to disk first; or ``hub``, every replica
#: downloads from the Hugging Face Hub.
WEIGHT_CACHES = ("bucket", "hub", "stream")
#: vLLM flags the streamed load sets itself (components/launch.py), which extraArgs may not change.
STREAM_FLAGS = ("--load-format", "--model-loader-extra-config")


def _weight_cache(read: ConfigReader, platform: platforms.Platform) -> str:
    instead = platform.refuse_unsupported(platforms.Feature.WEIGHT_CACHE_BUCKET)
    weight_cache = read.choice("weightCache", WEIGHT_CACHES, "hub" if instead else "bucket")
    if weight_cache in BUCKET_WEIGHT_CACHES and instead is not None:
        raise SpecError(f"{PROJECT}:weightCache", weight_cache, instead)
    return weight_cache


def check_streamable(spec: ServiceSpec) -> None:
    """``vllm:weightCache stream`` needs safetensors (the only format vLLM's Run:ai streamer loader reads)
    and leaves the loader's flags to the program. A model whose files are unknown (the Hub not reached, no
    facts cached) passes: build_spec has warned, and vLLM says so at load."""
    if spec.weight_cache != "stream":
        return
    key = f"{PROJECT}:weightCache"
    if spec.facts is not None and spec.facts.safetensors is False:
        raise SpecError(
            key,
            "stream",
            f"bucket or hub: {spec.model}@{spec.facts.revision[:12]} has no .safetensors weight files, the "
            f"only format vLLM's Run:ai model streamer loads",
        )
    for flag in STREAM_FLAGS:
        if option_value(spec.extra_args, flag) is not None:
            raise SpecError(
                f"{PROJECT}:extraArgs",
                flag,
                f"no {flag} with {key} stream (the program streams with --load-format runai_streamer)",
            )


# --- validation -----------------------------------------------------------------------------------------


GPU_PATTERN = re.compile(r"^(?P<type>[A-Za-z0-9][A-Za-z0-9-]*?):(?P<count>[0-9]+)$")
#: A Hugging Face repo id as huggingface_hub's ``validate_repo_id`` takes it (``REPO_ID_REGEX``: an optional
#: ``namespace/``, then 1-96 of ``[\w.-]`` between word boundaries; no ``--`` or ``..``), in ASCII: the Hub's
#: names are ASCII, where Python's ``\w`` would also match any letter of any script.
MODEL_PATTERN = re.compile(r"^(?!.*(--|\.\.))([A-Za-z0-9][\w.-]*\b/)?[A-Za-z0-9][\w.-]{0,95}\b$", re.ASCII)
SERVED_NAME_PATTERN = re.compile(r"^[\w./:-]+$", re.ASCII)


def _allowed_cidrs(read: ConfigReader, platform: platforms.Platform) -> tuple[str, ...]:
    """``vllm:allowedCidrs``: network ranges with no host bits set, IPv6 only where the platform's load
    balancer has an IPv6 address."""
    key, ipv6 = f"{PROJECT}:allowedCidrs", platform.refuse_unsupported(platforms.Feature.IPV6_CLIENTS)
    cidrs = read.string_list("allowedCidrs")
    for cidr in cidrs:
        try:
            network = ipaddress.ip_network(cidr, strict=True)
        except ValueError:
            try:
                network = ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise SpecError(key, cidr, "a CIDR such as 203.0.113.0/24 or 0.0.0.0/0") from None
            raise SpecError(
                key, cidr, f"a range without host bits set (did you mean {network.with_prefixlen}?)"
            ) from None
        if network.version == 6 and ipv6 is not None:
            raise SpecError(key, cidr, ipv6)
    return cidrs


def _parse_gpu(text: str | None, cloud: str) -> Gpu | None:
    if text is None or text.lower() == "none":
        instead = platforms.get(cloud).refuse_unsupported(platforms.Feature.CPU_REPLICAS)
        if instead is None:
            return None
        offered = ", ".join(catalog.gpus_offered(cloud))
        raise SpecError(f"{PROJECT}:gpu", text or "", f"{instead}; {cloud} offers {offered}")
    match = GPU_PATTERN.match(text)
    if not match:
        raise SpecError(f"{PROJECT}:gpu", text, "TYPE:COUNT as in SkyPilot, e.g. H100:8, L4:1, A100-80GB:4")
    canonical = catalog.canonical_gpu(match["type"])
    if canonical is None:
        raise SpecError(f"{PROJECT}:gpu", text, f"a known GPU type: {', '.join(sorted(catalog.GPU_TYPES))}")
    if canonical not in catalog.gpus_offered(cloud):
        raise SpecError(f"{PROJECT}:gpu", text, f"{cloud} offers {', '.join(catalog.gpus_offered(cloud))}")
    count = int(match["count"])
    if count not in catalog.counts_offered(cloud, canonical):
        counts = ", ".join(str(c) for c in catalog.counts_offered(cloud, canonical))
        raise SpecError(f"{PROJECT}:gpu", text, f"{cloud} sells {canonical} in counts {counts} per machine")
    return Gpu(canonical, count)


def _check_multi_node_split(cloud: str, gpu: Gpu, nodes: int, canary_revision: bool) -> None:
    """Tensor parallelism runs inside a node and pipeline parallelism across nodes (TP x PP = GPUs), so a
    group is only worth its network hops when each node is a whole machine: a split of a smaller count
    belongs on one bigger machine. A canary's revision inherits vllm:nodes (not one of its fields), so
    both revisions have the same node count and only its machine can change."""
    whole = max(catalog.counts_offered(cloud, gpu.type))
    if gpu.count == whole:
        return
    split = "tensor parallel inside a whole machine, pipeline parallel across machines"
    if canary_revision:
        valid = (
            f"{gpu.type}:{whole} per node: the canary runs on the stable revision's vllm:nodes ({nodes}), "
            f"{split}; a revision on another node count is another stack"
        )
    else:
        valid = (
            f"{gpu.type}:{whole} per node when vllm:nodes is {nodes} ({split}); or vllm:nodes 1 with "
            f"{gpu.type}:{gpu.count * nodes} if one machine holds it"
        )
    raise SpecError(f"{PROJECT}:gpu", str(gpu), valid)


#: A Hub commit id (``ModelInfo.sha``): 40 lowercase hex digits.
COMMIT_PATTERN = re.compile(r"^[0-9a-f]{40}$")
#: A revision the weight cache can be keyed by: a git branch, tag or commit name as the Hub serves them
#: (``refs/pr/1`` included), never ``..`` (git check-ref-format refuses it in a name; here it would also
#: climb out of the cache's paths).
REVISION_PATTERN = re.compile(r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._/-]*$")


def _check_revision(args: tuple[str, ...]) -> None:
    """``--revision`` names the model's files in the weight cache's paths (bucket and disk)."""
    revision = option_value(args, "--revision")
    if revision is not None and not REVISION_PATTERN.match(revision):
        raise SpecError(
            f"{PROJECT}:extraArgs",
            f"--revision {revision}",
            "a branch, tag or commit of the model: letters, digits and . _ - / (no ..), e.g. --revision main",
        )


def _check_extra_args(args: tuple[str, ...], image: str) -> None:
    """Check extraArgs as the image's ``vllm serve`` would read them (components/extra_args.py). An image of
    another vLLM version than the flag list's, whose flags are not known here, gets only the refusals."""
    tag = re.search(r":v?(\d+\.\d+\.\d+)[^:/@]*$", image)
    same_version = tag is not None and tag[1] == load_flags().vllm_version
    check = check_flags if same_version else check_refused_flags
    try:
        check(args, refused_flags(), frozenset(SECRET_FLAGS))
    except ExtraArgError as error:
        raise SpecError(f"{PROJECT}:extraArgs", error.shown, error.valid) from None


def build_spec(
    stack: str,
    config: Mapping[str, str],
    secret_keys: frozenset[str] = frozenset(),
    lookup: Callable[[str, str | None, str], ModelFacts | None] | None = None,
) -> ServiceSpec:
    """Validate ``config`` (the stack's raw config) over its preset; raise SpecError on the first bad key.

    ``lookup(model, hf_token, revision)`` fetches the model's facts (``model_facts.lookup``), once the config
    itself is valid; without it only what the config says (``vllm:modelSizeGb``) is checked. With
    ``vllm:canary``, its revision is built from the same config with the canary's overrides and passes the
    same checks (components/canary.py)."""
    request = canary.read_canary(present(config.get(canary.KEY)))
    stable_config = {key: value for key, value in config.items() if key != canary.KEY}
    spec = _build_revision(stack, stable_config, secret_keys, lookup)
    revision = canary.read_stable_revision(ConfigReader(stable_config))
    model_name = ConfigReader(stable_config).string("canaryModelName")
    if request is None:
        if model_name is not None:
            raise SpecError(canary.MODEL_NAME_KEY, model_name, f"set with {canary.KEY} (it picks the canary)")
        return spec if revision == REVISIONS[0] else replace(spec, revision=revision)
    if model_name is not None and (
        not SERVED_NAME_PATTERN.match(model_name) or model_name == spec.served_model_name
    ):
        valid = (
            f"letters, digits and . _ - / : only, other than vllm:servedModelName ({spec.served_model_name})"
        )
        raise SpecError(canary.MODEL_NAME_KEY, model_name, valid)
    instead = platforms.get(spec.cloud).refuse_unsupported(platforms.Feature.CANARY)
    if instead is not None:
        raise SpecError(canary.KEY, config[canary.KEY], instead)
    if present(presets.effective_config(stack, stable_config)[1].get(f"{PROJECT}:servedModelName")) is None:
        # Its default is the model id, which promoting changes: every replica of both would restart.
        valid = (
            f"set with {canary.KEY}: the model name clients send, which both revisions serve and promoting "
            f"keeps (e.g. pulumi config set {PROJECT}:servedModelName {spec.served_model_name})"
        )
        raise SpecError(f"{PROJECT}:servedModelName", "", valid)
    with _as_canary(tuple(request.overrides)):
        canary_spec = _build_revision(
            stack, _canary_config(stable_config, spec, request), secret_keys, lookup, canary_revision=True
        )
    other = REVISIONS[1 - REVISIONS.index(revision)]
    canary_spec = replace(canary_spec, revision=other)
    if _serving(canary_spec) == _serving(spec):
        raise SpecError(
            canary.KEY,
            config[canary.KEY],
            "a revision that differs from the stable one in model, image, extraArgs or gpu",
        )
    found = Canary(
        spec=canary_spec,
        weight=request.weight,
        mode=request.mode,
        overrides=tuple(request.overrides),
        model_name=model_name,
    )
    paired = replace(spec, revision=revision, canary=found)
    # The platform's rules across keys judge the two revisions together too (AWS: its queue metrics carry
    # no revision).
    platforms.get(spec.cloud).check_spec(paired)
    return paired


def _serving(spec: ServiceSpec) -> tuple:
    """What a revision serves and with what: two revisions alike here are one revision."""
    return (spec.model, spec.image, spec.extra_args, spec.gpu)


def _canary_config(config: Mapping[str, str], stable: ServiceSpec, request: canary.CanaryRequest) -> dict:
    """The stack's config with the canary's overrides: its own model, image, flags, GPU and replica count,
    the stable served model name (clients keep theirs), everything else inherited."""
    derived = {key: value for key, value in config.items() if key != canary.STABLE_REVISION_KEY}
    derived.update({f"{PROJECT}:{name}": value for name, value in request.overrides.items()})
    derived[f"{PROJECT}:servedModelName"] = stable.served_model_name
    if stable.autoscaling is not None:
        if "replicas" in request.overrides:
            valid = (
                "unset when the stack autoscales: the canary scales between the same vllm:minReplicas and "
            )
            raise SpecError(
                canary.field_key("replicas"), request.overrides["replicas"], f"{valid}maxReplicas"
            )
        return derived
    # A blue-green revision comes up at full size; a canary with one replica unless it says more.
    full = stable.replicas if request.mode == BLUE_GREEN_MODE else 1
    own = ConfigReader({canary.field_key("replicas"): request.overrides.get("replicas")})
    replicas = own.integer(canary.field_key("replicas"), full, minimum=1, maximum=1000)
    derived[f"{PROJECT}:replicas"] = str(replicas)
    if stable.spot and stable.on_demand_base_replicas:
        derived[f"{PROJECT}:onDemandBaseReplicas"] = str(min(stable.on_demand_base_replicas, replicas))
    return derived


@contextlib.contextmanager
def _as_canary(overrides: tuple[str, ...]) -> Iterator[None]:
    """A refusal of the canary's revision names the canary's field when the canary set the key, else the
    inherited key, saying it is the canary's revision that cannot hold it."""
    try:
        yield
    except SpecError as error:
        overridden = {f"{PROJECT}:{name}": name for name in overrides}
        if error.key in overridden:
            raise SpecError(canary.field_key(overridden[error.key]), error.value, error.valid) from None
        raise SpecError(error.key, error.value, f"{error.valid} (for the revision of {canary.KEY})") from None


def _build_revision(
    stack: str,
    config: Mapping[str, str],
    secret_keys: frozenset[str],
    lookup: Callable[[str, str | None, str], ModelFacts | None] | None,
    canary_revision: bool = False,
) -> ServiceSpec:
    """One revision's spec: the checks of every key but ``vllm:canary`` (``canary_revision``: a canary's,
    with the stable revision's node count)."""
    _check_secrets(config, secret_keys)
    preset, merged = presets.effective_config(stack, config)
    keys.check_unknown_keys(merged, secret_keys)
    read = ConfigReader(merged)

    cloud = read.choice("cloud", platforms.names())
    if cloud is None:
        clouds = ", ".join(platforms.names())
        if preset is None:
            known = ", ".join(presets.available_presets())
            raise SpecError(
                f"{PROJECT}:cloud",
                "",
                f"one of {clouds}: no preset is named {stack!r} (presets: {known}); "
                f"pick one with {PROJECT}:preset, or set {PROJECT}:cloud, {PROJECT}:gpu and {PROJECT}:model",
            )
        raise SpecError(f"{PROJECT}:cloud", "", f"one of {clouds}")
    platform = platforms.get(cloud)
    spot = read.boolean("spot", False)
    if spot and (instead := platform.refuse_unsupported(platforms.Feature.SPOT)) is not None:
        raise SpecError(f"{PROJECT}:spot", "true", instead)
    _refuse_unsupported_keys(read, platform)
    keys.refuse_other_platforms_keys(merged, secret_keys, platform)
    replicas = read.integer("replicas", 1, minimum=1, maximum=1000)
    nodes = read.integer("nodes", 1, minimum=1, maximum=64)
    autoscaling = read_autoscaling(read, platform, nodes)
    on_demand_base = _on_demand_base(read, spot, replicas, autoscaling)
    gpu = _parse_gpu(read.string("gpu"), cloud)
    offering = None
    if gpu is not None:
        most = autoscaling.max_replicas if autoscaling is not None else replicas
        try:
            offering = catalog.select(cloud, gpu.type, gpu.count, spot, on_demand_base / most)
        except catalog.CatalogError as error:
            raise SpecError(f"{PROJECT}:gpu", str(gpu), str(error)) from None
    elif nodes > 1:
        raise SpecError(f"{PROJECT}:nodes", nodes, "1 without a GPU (multi-node serving shards across GPUs)")
    if gpu is not None and nodes > 1:
        _check_multi_node_split(cloud, gpu, nodes, canary_revision)

    model = read.string("model")
    if model is None or not MODEL_PATTERN.match(model):
        raise SpecError(f"{PROJECT}:model", model or "", _model_valid(model or ""))
    served = read.string("servedModelName", model)
    if not SERVED_NAME_PATTERN.match(served):
        raise SpecError(f"{PROJECT}:servedModelName", served, "letters, digits and . _ - / : only")
    image = read.string("image", images.DEFAULT_IMAGE if gpu is not None else images.DEFAULT_CPU_IMAGE)
    images.check_image(image, gpu)
    extra_args = read.string_list("extraArgs")
    _check_extra_args(extra_args, image)
    _check_revision(extra_args)
    allowed = _allowed_cidrs(read, platform)
    domain, dns_zone = _read_domain(read, platform)

    placement = platform.read_placement(read, stack, offering)
    weight_cache = _weight_cache(read, platform)

    disk_size_gb = read.integer("diskSizeGb", None, minimum=20, maximum=65536)
    spec = ServiceSpec(
        stack=stack,
        preset=preset,
        cloud=cloud,
        gpu=gpu,
        offering=offering,
        model=model,
        served_model_name=served,
        replicas=(autoscaling.initial_replicas if autoscaling is not None else replicas),
        nodes=nodes,
        image=image,
        max_model_len=read.integer("maxModelLen", None, minimum=1),
        extra_args=extra_args,
        disk_size_gb=disk_size_gb or DEFAULT_DISK_SIZE_GB,
        model_size_gb=read.integer("modelSizeGb", None, minimum=1),
        spot=spot,
        allowed_cidrs=allowed or OPEN_TO_ALL,
        region=placement.region,
        regions=placement.regions or ((placement.region,) if placement.region else ()),
        on_demand_base_replicas=on_demand_base,
        platform=placement.settings,
        autoscaling=autoscaling,
        domain=domain,
        dns_zone=dns_zone,
        weight_cache=weight_cache,
    )
    if disk_size_gb is None and platform.weight_storage(spec).local:
        spec = replace(spec, boot_disk_from_image=True)
    hf_token = present(config.get(f"{PROJECT}:hfToken"))
    if lookup is not None:
        try:
            token = None if hf_token is None else str(hf_token)
            spec = replace(spec, facts=lookup(model, token, spec.pinned_revision or model_facts.REVISION))
        except model_facts.HubRefusal as refusal:
            raise SpecError(refusal.key, refusal.value, refusal.valid) from None
        if spec.facts is None and not COMMIT_PATTERN.match(name := spec.model_revision):
            pulumi.log.warn(
                f"no commit of {model}@{name} is known (the Hugging Face Hub was not reached and no facts "
                f"are cached): the weight cache is keyed by the name {name!r}, so the replicas load whatever "
                f"commit it names when the first one downloads it; an up that reaches the Hub (or --revision "
                f"<commit> in {PROJECT}:extraArgs) pins a commit"
            )
        hub_gb = spec.facts.weights_gb if spec.facts else None
        if hub_gb is not None and spec.model_size_gb is not None and hub_gb > spec.model_size_gb:
            pulumi.log.warn(
                f"{PROJECT}:modelSizeGb {spec.model_size_gb} is less than the {hub_gb} GB of {model}'s "
                f"weight files on the Hugging Face Hub; the health-check budget still sizes to it"
            )
    model_fit.check_disk_fits_model(spec)
    platform.check_spec(spec)
    model_fit.check_model_facts(spec, has_hf_token=hf_token is not None)
    check_streamable(spec)
    weights = model_fit.known_weights(spec)
    cost_warnings.warn_costly(spec, weights[0] if weights else None, pulumi.log.warn)
    return spec


def public_view(spec: ServiceSpec) -> dict[str, Any]:
    """The effective spec as plain data for stack outputs and plans: never holds a secret."""
    view: dict[str, Any] = {
        "stack": spec.stack,
        "preset": spec.preset,
        "cloud": spec.cloud,
        "gpu": str(spec.gpu) if spec.gpu else None,
        "machineType": spec.offering.machine_type if spec.offering else None,
        "model": spec.model,
        "servedModelName": spec.served_model_name,
        "replicas": replicas_output(spec),
        "autoscaling": (
            {
                **spec.autoscaling.public_view(),
                "scaleOut": [
                    {"step": step, "seconds": seconds}
                    for step, seconds in platforms.get(spec.cloud).scale_out_steps(spec)
                ],
            }
            if spec.autoscaling is not None
            else None
        ),
        "nodes": spec.nodes,
        "image": spec.image,
        "maxModelLen": spec.max_model_len,
        "extraArgs": list(spec.extra_args),
        "diskSizeGb": (
            f"boot image's minimum + {platforms.BOOT_DISK_KEPT_GB}"
            if spec.boot_disk_from_image
            else spec.disk_size_gb
        ),
        "modelSizeGb": spec.model_size_gb,
        "modelRevision": spec.facts.revision if spec.facts else None,
        "spot": spec.spot,
        "onDemandBaseReplicas": spec.on_demand_base_replicas if spec.spot else None,
        "allowedCidrs": list(spec.allowed_cidrs),
        "domain": spec.domain,
        "dnsZone": spec.dns_zone,
        "weightCache": spec.weight_cache,
    }
    view.update(platforms.get(spec.cloud).public_view(spec))
    if spec.revision != REVISIONS[0] or spec.canary is not None:
        view["stableRevision"] = spec.revision
    if spec.canary is not None:
        revision = spec.canary.spec
        view["canary"] = {
            "revision": revision.revision,
            "weight": spec.canary.weight,
            "mode": spec.canary.mode,
            "model": revision.model,
            "image": revision.image,
            "extraArgs": list(revision.extra_args),
            "gpu": str(revision.gpu) if revision.gpu else None,
            "machineType": revision.offering.machine_type if revision.offering else None,
            "replicas": replicas_output(revision),
            "modelRevision": revision.facts.revision if revision.facts else None,
            "modelName": spec.canary.model_name,
        }
    return view


def _model_valid(model: str) -> str:
    """What a Hugging Face model id is, and where a revision written into it goes instead."""
    valid = "a Hugging Face model id such as Qwen/Qwen3-8B (ASCII letters, digits and . _ -, one /)"
    name, at, revision = model.partition("@")
    if at and MODEL_PATTERN.match(name):
        return f'{name} alone, with the revision in {PROJECT}:extraArgs: ["--revision", "{revision}"]'
    return valid


def _read_domain(read: ConfigReader, platform: platforms.Platform) -> tuple[str | None, str | None]:
    """``vllm:domain`` (a bare host name) and ``vllm:dnsZone`` (only with a domain, where the platform
    writes DNS records; each platform's ``check_spec`` judges the zone's form)."""
    domain = parse_domain(read.string("domain"))
    dns_zone = read.string("dnsZone")
    if dns_zone is not None and (instead := platform.refuse_unsupported(platforms.Feature.DNS_ZONE)):
        raise SpecError(f"{PROJECT}:dnsZone", dns_zone, instead)
    if dns_zone is not None and domain is None:
        valid = f"unset without {PROJECT}:domain (its records go there)"
        raise SpecError(f"{PROJECT}:dnsZone", dns_zone, valid)
    return domain, dns_zone


def _refuse_unsupported_keys(read: ConfigReader, platform: platforms.Platform) -> None:
    """A key naming a feature the platform cannot do is refused with what to do there instead."""
    for feature in (platforms.Feature.REGIONS, platforms.Feature.RESERVATION):
        value = read.raw(feature.value)
        if value is not None and (instead := platform.refuse_unsupported(feature)) is not None:
            raise SpecError(feature.value, value, instead)


def _on_demand_base(read: ConfigReader, spot: bool, replicas: int, autoscaling: Autoscaling | None) -> int:
    """``vllm:onDemandBaseReplicas``: with spot, how many replicas stay on on-demand capacity (SkyServe's
    ``base_ondemand_fallback_replicas``), at most every replica. With autoscaling the base is a fixed floor
    inside the bounds (components/replica_shares.py): at most ``vllm:minReplicas``, and below
    ``vllm:maxReplicas`` so that the autoscaler has spot replicas to add."""
    key = f"{PROJECT}:onDemandBaseReplicas"
    base = read.integer("onDemandBaseReplicas", 0, minimum=0)
    if base and not spot:
        raise SpecError(key, base, "0 without vllm:spot true (without spot every replica is on-demand)")
    if autoscaling is not None:
        low, high = autoscaling.min_replicas, autoscaling.max_replicas
        if base and (base > low or base >= high):
            raise SpecError(
                key,
                base,
                f"<= vllm:minReplicas ({low}) and < vllm:maxReplicas ({high}) with autoscaling: the "
                "on-demand base is a fixed floor counted inside the bounds, and the autoscaler adds spot "
                "replicas above it",
            )
        return base
    if base > replicas:
        raise SpecError(key, base, f"<= vllm:replicas ({replicas}): the on-demand share of the replicas")
    return base


def _check_secrets(config: Mapping[str, Any], secret_keys: frozenset[str]) -> None:
    """Secrets are set with --secret (else they sit in plaintext in the stack file and in every plan), and
    a configured API key is long enough to guard a public endpoint. Values are never echoed."""
    for key in keys.SECRET_KEYS:
        full = f"{PROJECT}:{key}"
        if present(config.get(full)) is not None and full not in secret_keys:
            raise SpecError(full, "(plaintext)", f"a secret: pulumi config set --secret {full} <value>")
    api_key = present(config.get(f"{PROJECT}:apiKey"))
    if api_key is not None and len(str(api_key)) < MIN_API_KEY_LENGTH:
        raise SpecError(
            f"{PROJECT}:apiKey",
            f"(secret, {len(str(api_key))} characters)",
            f"at least {MIN_API_KEY_LENGTH} characters (e.g. openssl rand -hex 24); unset, one is generated",
        )


def load_spec() -> ServiceSpec:
    """The spec of the running stack, from Pulumi's config, checked by its platform's rules too."""
    config = stack_config()
    secret_keys = frozenset(key for key in config if sdk_internals.is_config_secret(key))
    return stack_spec(pulumi.get_stack(), config, secret_keys, lookup=model_facts.lookup)


def stack_spec(
    stack: str,
    config: Mapping[str, str],
    secret_keys: frozenset[str] = frozenset(),
    lookup: Callable[[str, str | None, str], ModelFacts | None] | None = None,
) -> ServiceSpec:
    """``build_spec``, then what the platform's resources can hold of it and the provider keys' types:
    every check the program makes before its first resource, without the Pulumi runtime."""
    spec = build_spec(stack, config, secret_keys, lookup)
    platform = platforms.get(spec.cloud)
    _check_deployment(spec, platform)
    if spec.canary is not None:
        with _as_canary(spec.canary.overrides):
            _check_deployment(spec.canary.spec, platform)
    # Each provider key set, of its SDK's type.
    provider_config.provider_args(platform, presets.effective_config(stack, config)[1], secret_keys)
    return spec


def _check_deployment(spec: ServiceSpec, platform: platforms.Platform) -> None:
    """What the platform's resources can hold of the spec (which GPUs GKE labels, how much memory a CPU pod
    needs, how long a rolling update waits): a platform's ``deployment`` module may define
    ``check_deployment(spec)``, which raises SpecError before any resource exists. Imported here, lazily,
    because the module loads that platform's SDK."""
    check = getattr(platform.module("deployment"), "check_deployment", None)
    if check is not None:
        check(spec)


def stack_provider_args(platform: platforms.Platform, stack: str) -> dict[str, Any]:
    """``provider_args`` of the running stack's config over its preset (Pulumi's view of the stack)."""
    config = stack_config()
    secret_keys = frozenset(key for key in config if sdk_internals.is_config_secret(key))
    return provider_config.provider_args(platform, presets.effective_config(stack, config)[1], secret_keys)


def load_secret(key: str) -> pulumi.Output[str] | None:
    """A secret key's value as a secret Output, or None when it is not set (empty counts as not set)."""
    if present(stack_config().get(f"{PROJECT}:{key}")) is None:
        return None
    return pulumi.Config(PROJECT).require_secret(key)
