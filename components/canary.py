"""``vllm:canary``: the object that asks for a second revision of the service, read and checked as config.

The object is set key by key with ``pulumi config set --path 'vllm:canary.model' ...`` and reaches the
program as the JSON of the whole object (a scalar set with ``--path`` may arrive as a YAML number or
boolean, so each field is read as ConfigReader reads any value). Its revision is the stable spec with these
overrides; ``components/spec.py`` builds and checks it with the same rules as the stable one.

Slots, not roles, name the resources: the stable revision occupies ``vllm:stableRevision`` (default 1)
and a canary the other slot, so promoting a canary is the config change that swaps the two (the stable
keys take the canary's values, the canary object the old stable's, ``vllm:stableRevision`` names the other
slot) and neither revision's resources change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from components.config import PROJECT, ConfigReader, SpecError
from components.service_spec import BLUE_GREEN_MODE, CANARY_MODE, REVISIONS, ServiceSpec

KEY = f"{PROJECT}:canary"
STABLE_REVISION_KEY = f"{PROJECT}:stableRevision"
MODEL_NAME_KEY = f"{PROJECT}:canaryModelName"
#: The request header whose value picks one revision explicitly: vllm:servedModelName the stable one,
#: vllm:canaryModelName the canary. The load balancer matches it (a request body is not something it can
#: read), and the body's ``model`` stays vllm:servedModelName, which both revisions serve.
MODEL_HEADER = "x-vllm-model"
#: The header naming a revision by its slot (1, 2): GCP adds it to every answer of a weighted route, and a
#: request carrying it reaches that revision alone.
REVISION_HEADER = "x-vllm-revision"
#: The stable keys a canary may set for itself; every other key is inherited from the stable revision.
OVERRIDES = ("model", "image", "extraArgs", "gpu", "replicas")
FIELDS = (*OVERRIDES, "weight", "mode")
MODES = (CANARY_MODE, BLUE_GREEN_MODE)
#: Percent of requests: the platforms' load balancers split by integer weights (GCP 0-1000, AWS 0-999,
#: Gateway API 0-1000000), each of which holds a percentage exactly.
MAX_WEIGHT = 100


@dataclass(frozen=True, kw_only=True)
class CanaryRequest:
    """What ``vllm:canary`` asks for, before its revision is built: the overrides as config values (the
    stable keys' forms), the weight and the mode."""

    overrides: dict[str, Any]
    weight: int
    mode: str


def field_key(name: str) -> str:
    """The full name of a canary field, as errors and the docs name it: ``vllm:canary.weight``."""
    return f"{KEY}.{name}"


def read_stable_revision(read: ConfigReader) -> str:
    return read.choice("stableRevision", REVISIONS, REVISIONS[0])


def read_canary(raw: Any) -> CanaryRequest | None:
    """The canary the stack asks for, or None; SpecError naming ``vllm:canary.<field>`` on a bad one."""
    if raw is None:
        return None
    fields = raw
    if isinstance(raw, str):
        try:
            fields = json.loads(raw)
        except json.JSONDecodeError:
            fields = None
    if not isinstance(fields, dict) or not fields:
        raise SpecError(
            KEY,
            raw,
            f"an object of {', '.join(FIELDS)}, set field by field: pulumi config set --path "
            f"'{KEY}.model' <model id>",
        )
    for name in fields:
        if name not in FIELDS:
            raise SpecError(field_key(name), fields[name], f"not a canary field: one of {', '.join(FIELDS)}")
    read = ConfigReader({field_key(name): _as_config(value) for name, value in fields.items()})
    mode = read.choice(field_key("mode"), MODES, CANARY_MODE)
    weight = read.integer(field_key("weight"), 0, minimum=0, maximum=MAX_WEIGHT)
    if mode == BLUE_GREEN_MODE and weight not in (0, MAX_WEIGHT):
        raise SpecError(
            field_key("weight"),
            weight,
            f"0 or {MAX_WEIGHT} with mode {BLUE_GREEN_MODE} (all requests switch at once, once up has "
            f"seen every replica of the new revision READY); a share between them is mode {CANARY_MODE}",
        )
    overrides = {
        name: read.raw(field_key(name)) for name in OVERRIDES if read.raw(field_key(name)) is not None
    }
    if not {"model", "image", "extraArgs", "gpu"} & set(overrides):
        raise SpecError(
            KEY,
            raw,
            "a revision with its own model, image, extraArgs or gpu (vllm:canary.model, .image, .extraArgs, "
            ".gpu); the number of replicas alone is vllm:replicas",
        )
    return CanaryRequest(overrides=overrides, weight=weight, mode=mode)


def _as_config(value: Any) -> Any:
    """A field's value as Pulumi hands a stack key's to the program: text, lists as JSON."""
    if isinstance(value, list | dict):
        return json.dumps(value)
    if isinstance(value, bool):
        return str(value).lower()
    return value


def picked_headers(spec: ServiceSpec) -> list[tuple[str, str, str]]:
    """(header, value, slot): the request headers that send a public request to one revision alone, with a
    canary: ``x-vllm-revision: <slot>``, and with vllm:canaryModelName ``x-vllm-model: <name>``."""
    if spec.canary is None:
        return []
    slots = (spec.revision, spec.canary.spec.revision)
    picks = [(REVISION_HEADER, slot, slot) for slot in sorted(slots)]
    if spec.canary.model_name is not None:
        names = {spec.revision: spec.served_model_name, spec.canary.spec.revision: spec.canary.model_name}
        picks += [(MODEL_HEADER, names[slot], slot) for slot in sorted(slots)]
    return picks
