"""What GCP and AWS share for GPU VMs: the boot script that turns a VM into a vLLM replica."""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from components import platforms, scripts
from components.launch import (
    BUCKET,
    HF_CACHE_DIR,
    MAX_HUB_DOWNLOADERS,
    RAY_GROUP_WAIT_SECONDS,
    STALL_SECONDS,
    VLLM_CACHE_DIR,
    LaunchSpec,
    cold_starts,
    compile_cache_key,
    weights_gb,
)
from components.offerings import Offering
from components.service_spec import ServiceSpec

VM_ROLES = ("serve", "ray-head", "ray-worker")
RAY_GCS_PORT = 6379
#: How many times the vLLM unit may restart without ever becoming ready before the agent calls the replica
#: broken (a crash loop). A Ray head legitimately restarts when a worker boots slower than its group wait.
MAX_FAILED_STARTS = 3
#: The longest request a VM replica finishes once told to stop (a reboot, a stop, a preemption or the end
#: of a spot notice, a unit restart): the longest the VM backends' load balancers let one run (GCP's
#: backend service timeout and connection draining, 3,600 s). vLLM aborts every request in flight on
#: SIGTERM unless ``--shutdown-timeout SECONDS`` (0 by default; vLLM 0.18+, vllm-project/vllm#36666): then
#: it refuses new requests and waits up to SECONDS for those it has. A platform that powers the machine
#: off sooner (EC2 at the end of its two-minute spot notice, GCP's 30 s preemption) cuts it short.
DRAIN_SECONDS = 3600
#: ``docker stop --time`` of vllm.service: the drain, then vLLM's engine shutdown (workers exit, GPU memory
#: is released), before docker's SIGKILL; systemd's stop timeout is longer still (vm_bootstrap.sh).
STOP_SECONDS = DRAIN_SECONDS + 30
#: Where weight_cache.sh records the path the weights take (wait, hub, bucket, local, stream) for the health
#: agent (its --weight-path-file default) and for vm_bootstrap.sh, which streams on "stream".
WEIGHT_PATH_FILE = "/run/vllm/weight-path"
#: The HF cache on the host (vm_bootstrap.sh's HF_CACHE), mounted into the container at HF_CACHE_DIR.
HOST_HF_CACHE = "/var/lib/vllm/hf-cache"


def vm_offering(spec: ServiceSpec) -> Offering:
    """The catalog machine a GPU VM stack runs on: ``spec.build_spec`` selects one for every GCP and AWS
    stack, so a missing one is a bug in the caller, said plainly rather than as an ``AttributeError``."""
    if spec.offering is None:
        raise ValueError(f"stack {spec.stack}: a VM platform needs a catalog machine, the spec has none")
    return spec.offering


def machine_type(spec: ServiceSpec) -> str:
    """The VM's machine (GCP) or instance (AWS) type: every VM platform's catalog row names one."""
    machine = vm_offering(spec).machine_type
    if machine is None:
        raise ValueError(
            f"stack {spec.stack}: the {spec.cloud} catalog row for {spec.gpu} has no machine type"
        )
    return machine


def vm_region(spec: ServiceSpec) -> str:
    """The VMs' region: the VM platforms' ``read_placement`` always sets one (gcp:region, aws:region)."""
    if spec.region is None:
        raise ValueError(f"stack {spec.stack}: a VM platform needs a region, the spec has none")
    return spec.region


def ray_env(spec: ServiceSpec, head_address: str) -> dict[str, str]:
    """``ray_bootstrap.sh`` settings of one group: the head waits for every node and GPU before vLLM starts.

    A worker slower than ``RAY_GROUP_WAIT_SECONDS`` makes the head's container exit, restart and wait
    again, within the head's health budget (which includes one such wait).
    """
    if spec.gpu is None:
        raise ValueError("a Ray group shards a model over GPUs: the spec has none")
    return {
        "RAY_HEAD_ADDRESS": head_address,
        "RAY_PORT": str(RAY_GCS_PORT),
        "RAY_EXPECTED_NODES": str(spec.nodes),
        "RAY_GPUS_PER_NODE": str(spec.gpu.count),
        "RAY_WAIT_TIMEOUT_SECONDS": str(RAY_GROUP_WAIT_SECONDS),
    }


def health_agent_args(
    spec: ServiceSpec,
    launch: LaunchSpec,
    role: str,
    ray_env: Mapping[str, str],
    report: Sequence[str],
    weight_cache: bool = False,
) -> list[str]:
    """``health_agent.py`` flags: each phase's hard cap and the stall window (``launch.health_caps``), and
    where the weights land, so that the agent sees their bytes arrive.

    ``report`` is how the platform learns the verdict and where the phase is published, in the agent's own
    flags (``--report http --port ...`` for a health check that reads it; ``--report autoscaling-group`` to
    mark the instance itself): each platform's package says which. A Ray worker is judged on its connection
    to its head's GCS port instead of vLLM's /health (vLLM serves on the head only).
    """
    args = [*report, "--role", role, *launch.probes.caps.as_args(), "--stall", str(STALL_SECONDS)]
    args += ["--weights-dir", weights_dir(spec, weight_cache)]
    known = spec.model_size_gb is not None or (spec.facts is not None and spec.facts.weights_gb is not None)
    if known:  # a percentage only of a known size, never of the GPU-memory guess
        args += ["--weights-bytes", f"{weights_gb(spec)}e9"]
    args += ["--max-failed-starts", str(MAX_FAILED_STARTS)]
    args += ["--health-url", f"http://127.0.0.1:{launch.port}{launch.health_path}"]
    if role == "ray-worker":
        args += [
            "--ray-head",
            ray_env["RAY_HEAD_ADDRESS"],
            "--ray-port",
            ray_env.get("RAY_PORT", str(RAY_GCS_PORT)),
        ]
    return args


def weights_dir(spec: ServiceSpec, weight_cache: bool) -> str:
    """Where the model's files land on the host: weight_cache.sh's directory, else the Hub cache's folder of
    the model (huggingface_hub's ``models--<org>--<name>``), where vLLM's own download writes."""
    if weight_cache:
        return f"{HOST_HF_CACHE}/{cached_model_dir(spec)}"
    return f"{HOST_HF_CACHE}/hub/models--{spec.model.replace('/', '--')}"


def bootstrap_script(
    spec: ServiceSpec,
    launch: LaunchSpec,
    *,
    api_key_secret: str,
    hf_token_secret: str | None,
    role: str = "serve",
    ray_env: Mapping[str, str] | None = None,
    health_report: Sequence[str],
    image_metadata_key: str = "",
    weight_cache_url: str = "",
    log_group: str = "",
    metrics_agent: Sequence[str] = (),
) -> str:
    """``vm_bootstrap.sh`` rendered for one VM role; secrets appear only as the names of store entries.
    ``health_report``: how the platform learns the health agent's verdict (``health_agent_args``).

    With ``weight_cache_url`` (the stack's bucket), every node fetches the model's files into
    ``cached_model_dir`` before vLLM starts and vLLM loads them from there (``--served-model-name`` keeps
    the API's model name); without it, vLLM downloads from the Hub as usual. ``log_group``: the CloudWatch
    Logs group of the container's output (AWS). ``metrics_agent``: ``metrics_agent.py``'s flags, where a
    platform publishes vLLM's metrics with it (AWS); run on the machines that serve /metrics (a Ray
    worker runs no API server).

    The script carries its platform's hooks only (``platform_hooks``), as plain text: what differs between
    VM platforms lives in their folders, not in branches of the shared script, and plain text costs AWS's
    gzip'd user data less than another gzip + base64 blob (about 460 bytes on a Ray head). Likewise its
    role's hooks only (``role_hooks``) and the scripts its role runs: a Ray node carries no streaming or
    compile cache, a single-node replica no Ray, within EC2's 16 KB of user data."""
    if role not in VM_ROLES:
        raise ValueError(f"role must be one of {VM_ROLES}, not {role!r}")
    multi_node = role != "serve"
    publishes_metrics = bool(metrics_agent) and role != "ray-worker"
    argv = [*launch.argv, "--shutdown-timeout", str(DRAIN_SECONDS)]  # last: it wins over vllm:extraArgs
    if weight_cache_url:
        argv[argv.index(spec.model)] = f"{HF_CACHE_DIR}/{cached_model_dir(spec)}"
    stream_url = weight_stream_url(spec, weight_cache_url, role)
    compiled = compile_cache_env(spec, launch, role) if weight_cache_url else {}
    container_env = {**launch.env, **streamer_env(stream_url, spec)}
    hooks = platform_hooks(
        spec,
        region=spec.region or "",
        image_metadata_key=image_metadata_key,
        log_group=log_group,
        metrics_job=spec.name,
        metrics_port=launch.port,
        metrics_agent_args=list(metrics_agent) if publishes_metrics else [],
    )
    cache_settings = weight_cache_env(spec, launch, role)
    agent_args = health_agent_args(
        spec, launch, role, ray_env or {}, health_report, weight_cache=bool(weight_cache_url)
    )
    return scripts.render(
        "vm_bootstrap.sh",
        platform=platforms.get(spec.cloud).title,
        image=spec.image,
        role=role,
        api_key_secret=api_key_secret,
        hf_token_secret=hf_token_secret or "",
        container_env=[f"{name}={value}" for name, value in sorted(container_env.items())],
        health_agent_args=agent_args,
        stop_seconds=STOP_SECONDS,
        shipped_scripts=_heredocs(
            [
                "health_agent.py",
                *(["metrics_agent.py"] if publishes_metrics else []),
                *(["ray_bootstrap.sh"] if multi_node else []),
                *(["weight_cache.sh"] if weight_cache_url else []),
                *(["local_nvme.sh"] if has_local_nvme(spec) else []),
                *(["compile_cache.sh"] if compiled else []),
            ],
            {
                "health_agent.py": agent_omits(spec, agent_args),
                "ray_bootstrap.sh": RAY_OTHER_ROLE_FUNCTIONS.get(role, ()),
                "weight_cache.sh": FOLLOWER_FUNCTIONS
                if cache_settings["WEIGHT_CACHE_WAIT_SECONDS"] == "0"
                else (),
            },
            {name: other_buckets(weight_cache_url) for name in BUCKET_SCRIPTS} if weight_cache_url else {},
        ),
        vllm_cache_dir=VLLM_CACHE_DIR,
        platform_hooks=scripts.Included(hooks),
        role_hooks=scripts.Included(role_hooks(role, argv, ray_env or {}, stream_url, compiled)),
        weight_cache_url=weight_cache_url,
        weight_cache_dir=cached_model_dir(spec),
        weight_path_file=WEIGHT_PATH_FILE,
        weight_cache_env=[f"{name}={value}" for name, value in sorted(cache_settings.items())],
        local_nvme="1" if has_local_nvme(spec) else "",
    )


#: health_agent.py's definitions that only one of its flags uses (the agent builds them only when given it):
#: shipped only to a machine whose agent's command line carries the flag, within EC2's 16 KB of user data.
AGENT_FLAG_PARTS = {
    "LaunchHook": "--lifecycle-hook",  # an AWS single-node group's launch lifecycle hook
    "SpotDrain": "--drain-target-group",  # an AWS spot machine behind the load balancer
    "FirstBootHold": "--hold-until-uptime",  # GCP's autohealing
    "connected_to": "--ray-head",  # a Ray worker's readiness
}
#: ray_bootstrap.sh's functions only the other Ray role runs (``main`` calls each role's own entry alone):
#: a VM's Ray node carries its own role's half, within EC2's 16 KB of user data.
RAY_OTHER_ROLE_FUNCTIONS = {
    "ray-head": ("run_worker",),
    "ray-worker": ("run_head", "wait_for_group", "look_at_group", "shortfall"),
}


#: The scripts that call the stack's bucket, each call a ``case "$URL" in`` with one arm per scheme.
BUCKET_SCRIPTS = ("weight_cache.sh", "compile_cache.sh")
#: Those arms' patterns, one per VM platform's bucket (GCS, S3).
BUCKET_ARMS = ("gs://*", "s3://*")


def other_buckets(url: str) -> tuple[str, ...]:
    """The ``case`` arms of ``BUCKET_SCRIPTS`` a machine whose bucket is ``url`` never takes: its copy
    carries its own bucket's calls only, within EC2's 16 KB of user data."""
    others = tuple(arm for arm in BUCKET_ARMS if not url.startswith(arm.removesuffix("*")))
    if len(others) != len(BUCKET_ARMS) - 1:
        raise ValueError(f"the weight cache's URL {url!r} is in none of {BUCKET_ARMS}")
    return others


def agent_omits(spec: ServiceSpec, agent_args: Sequence[str]) -> tuple[str, ...]:
    """What ``health_agent.py`` ships without on a machine whose agent runs with ``agent_args``: its
    platform's omissions (``Platform.agent_omits``) and the parts of flags it is not given
    (``AGENT_FLAG_PARTS``); ``shipped_python`` also drops what only those used."""
    unused = (part for part, flag in AGENT_FLAG_PARTS.items() if flag not in agent_args)
    return tuple(sorted({*platforms.get(spec.cloud).agent_omits, *unused}))


def role_hooks(
    role: str, argv: Sequence[str], ray_env: Mapping[str, str], stream_url: str, compiled: Mapping[str, str]
) -> str:
    """The role's part of the boot script rendered with its settings: ``vm_serve.sh`` (vLLM's command,
    the stream's URL, the compile cache's settings) on a single-node replica, ``vm_ray.sh`` (Ray's
    settings, and vLLM's command on the head, which alone runs it) on a Ray node."""
    if role == "serve":
        return scripts.render(
            "vm_serve.sh",
            vllm_argv=list(argv),
            weight_stream_url=stream_url,
            compile_cache_env=[f"{name}={value}" for name, value in sorted(compiled.items())],
        )
    return scripts.render(
        "vm_ray.sh",
        ray_env=[f"{name}={value}" for name, value in sorted(ray_env.items())],
        vllm_argv=list(argv) if role == "ray-head" else [],
    )


def platform_hooks(spec: ServiceSpec, **settings: scripts.Value) -> str:
    """The stack's platform's ``vm_hooks.sh`` (``Platform.vm_hooks``) rendered with the settings it names:
    each platform's hooks take their own (a log group, a metrics job), and the others' stay off its VMs."""
    platform = platforms.get(spec.cloud)
    if platform.vm_hooks is None:
        raise ValueError(f"stack {spec.stack}: {platform.title} has no VM hooks, so it runs no VMs")
    wanted = scripts.markers(platform.vm_hooks)
    return scripts.render(platform.vm_hooks, **{name: settings[name] for name in settings if name in wanted})


def has_local_nvme(spec: ServiceSpec) -> bool:
    """Whether the HF cache of ``spec``'s machines goes on their local NVMe (the platform's machine table)."""
    return platforms.get(spec.cloud).weight_storage(spec).local


def cached_model_dir(spec: ServiceSpec) -> str:
    """Where a node keeps the model's files, relative to the HF cache (host and container alike): by model
    and revision, as the bucket does (weight_cache.sh), so another commit is never read as this one."""
    return f"weights/{spec.model}/{spec.model_revision}"


def compile_cache_env(spec: ServiceSpec, launch: LaunchSpec, role: str) -> dict[str, str]:
    """``compile_cache.sh`` settings on a single-node replica (a Ray group's compiled ranks are split over
    its machines, which no one machine could save whole): the stack's key (``compile_cache_key``), and
    vLLM's /health, which answers once the compiled code is complete; it is saved then, if within the
    first start's budget."""
    if role != "serve":
        return {}
    settings = {
        "COMPILE_CACHE_KEY": compile_cache_key(spec),
        "COMPILE_CACHE_HEALTH_URL": f"http://127.0.0.1:{launch.port}{launch.health_path}",
        "COMPILE_CACHE_WAIT_SECONDS": str(launch.probes.startup_seconds),
    }
    if spec.region:  # S3 calls name the bucket's region; gcloud storage does not need it
        settings["COMPILE_CACHE_REGION"] = spec.region
    return settings


def weight_stream_url(spec: ServiceSpec, weight_cache_url: str, role: str = "serve") -> str:
    """``vllm:weightCache stream``: the model's files in the stack's bucket, as weight_cache.sh lays them
    out (``<bucket>/<model>/<revision>/files``), which vLLM streams once the bucket holds them; else ''.
    A single-node replica only: a Ray group's nodes each choose their path as they boot, and the head's
    model path is every node's, so a head that downloaded while a later worker found the bucket full would
    send that worker to a local copy it does not have. A group copies from the bucket instead."""
    if spec.weight_cache != "stream" or not weight_cache_url or role != "serve":
        return ""
    return f"{weight_cache_url.rstrip('/')}/{spec.model}/{spec.model_revision}/files"


def streamer_env(stream_url: str, spec: ServiceSpec) -> dict[str, str]:
    """The container's environment for the Run:ai streamer's S3 backend: the bucket's region. Its client
    (the AWS SDK for C++, credentials from the default chain: the instance role through IMDS on the host
    network) otherwise assumes us-east-1 (runai-model-streamer docs/src/usage.md "S3 authentication"; AWS
    SDKs "Region": AWS_DEFAULT_REGION). GCS needs nothing: its backend (google-cloud-cpp) takes the VM's
    service account from the metadata server (usage.md "Streaming from Google cloud storage")."""
    if not stream_url.startswith("s3://") or spec.region is None:
        return {}
    return {"AWS_DEFAULT_REGION": spec.region, "AWS_REGION": spec.region}


def weight_cache_env(spec: ServiceSpec, launch: LaunchSpec, role: str = "serve") -> dict[str, str]:
    """``weight_cache.sh`` settings. A replica waits for another's fill (its Hub download and upload) only
    while the fill's progress says it ends sooner than the replica's own Hub download, at the expected rates
    given here (else it downloads itself, within ``MAX_HUB_DOWNLOADERS``), and at most as long as the health
    agent lets a replica load before it chose a path (the Hub budget less the fixed start); a lock is stale
    at twice the fill's budget (a slow filler is not a dead one).
    Ray nodes do not wait: the nodes of one group boot together and each would hold up the group (its head
    restarts after ``RAY_GROUP_WAIT_SECONDS``), so a group's node that finds the fill under way downloads
    from the Hub as before; the groups that boot later copy from the bucket."""
    fill = launch.probes.fill_seconds
    first, later = cold_starts(spec, BUCKET)
    wait = min(fill, launch.probes.startup_seconds - launch.probes.fixed_seconds) if role == "serve" else 0
    settings = {
        "WEIGHT_CACHE_MODEL": spec.model,
        "WEIGHT_CACHE_REVISION": spec.model_revision,
        "WEIGHT_CACHE_WAIT_SECONDS": str(wait),
        "WEIGHT_CACHE_LOCK_SECONDS": str(2 * fill),
        # what a follower compares the fill's progress with (components/rates.py's expected figures)
        "WEIGHT_CACHE_SIZE_BYTES": str(weights_gb(spec) * 10**9),
        "WEIGHT_CACHE_HUB_MBPS": str(first.fetch_mbps),
        "WEIGHT_CACHE_BUCKET_MBPS": str(later.fetch_mbps),
        "WEIGHT_CACHE_HUB_DOWNLOADERS": str(MAX_HUB_DOWNLOADERS),
    }
    if spec.region:  # S3 calls name the bucket's region; gcloud storage does not need it
        settings["WEIGHT_CACHE_REGION"] = spec.region
    if spec.weight_cache == "stream" and role == "serve":  # vLLM streams once the bucket holds the files
        settings["WEIGHT_CACHE_STREAM"] = "1"
    return settings


#: A heredoc's start (not a here-string, ``<<<``): its delimiter word, quoted or not.
_HEREDOC = re.compile(r"(?<!<)<<-?\s*(['\"]?)(\w+)\1(?!<)")


#: weight_cache.sh's functions that only a replica waiting for another's fill calls: not shipped where
#: WEIGHT_CACHE_WAIT_SECONDS is 0 (Ray nodes, ``weight_cache_env``), within EC2's 16 KB of user data.
FOLLOWER_FUNCTIONS = ("fill_is_slower_than_the_hub", "take_hub_slot")


def shipped(name: str, omits: tuple[str, ...] = (), arms: tuple[str, ...] = ()) -> str:
    """A shell script as a VM receives it: without its comment lines (``scripts.without_comments``) and
    without the indentation bash ignores (each line's leading blanks, but not within a quoted string or a
    heredoc's body, such as embedded Python): about 90 bytes of a Ray head's gzip'd user data.
    tests/test_vm_bootstrap.py checks that bash parses each shipped script as its source
    (``bash --pretty-print``). Without the top-level functions ``omits`` names (from ``name() {`` to the
    next ``}`` line): bash too resolves a function when it calls it. Without the ``case`` arms whose
    pattern ``arms`` names (from the line ``pattern)`` to its ``;;``): another bucket's
    (``other_buckets``)."""
    text = scripts.without_comments(scripts.source(name))
    for function in omits:
        text, found = re.subn(rf"^{function}\(\) {{\n.*?^}}\n", "", text, count=1, flags=re.M | re.S)
        if not found:
            raise ValueError(f"{name} defines no function {function} to omit")
    for arm in arms:
        text, found = re.subn(rf"^[ \t]*{re.escape(arm)}\).*?;;\n", "", text, flags=re.M | re.S)
        if not found:
            raise ValueError(f"{name} has no case arm {arm}) to omit")
    lines, quote, end = [], "", None
    for line in text.splitlines(keepends=True):
        if end is not None:  # a heredoc's body, up to its delimiter line
            lines.append(line)
            end = None if line.rstrip("\n") == end else end
            continue
        lines.append(line if quote else line.lstrip(" \t"))
        quote = _quote_open_after(line, quote)
        if not quote and (heredoc := _HEREDOC.search(line)):
            end = heredoc.group(2)
    return "".join(lines)


def _quote_open_after(line: str, quote: str) -> str:
    """The quote (``'``, ``"`` or none) a shell line leaves open, given the one open before it."""
    escaped = False
    for at, char in enumerate(line):
        if escaped:
            escaped = False
        elif quote == "'":
            quote = "" if char == "'" else quote
        elif char == "\\":
            escaped = True
        elif quote == '"':
            quote = "" if char == '"' else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (at == 0 or line[at - 1] in " \t"):  # a comment to the line's end
            break
    return quote


@functools.cache
def shipped_python(name: str, omits: tuple[str, ...] = ()) -> str:
    """A Python script as a VM receives it: the same program without its docstrings, comments, type hints
    (of signatures, and of local variables) and argparse's help texts (``ast.unparse``), so that AWS user
    data stays within 16 KB; without the top-level definitions ``omits`` names (``agent_omits``), and
    without whatever then goes unreferenced (``_referenced``). Made once per process and ``omits``: CPython
    3.11's AST conversion keeps its recursion depth per interpreter, so a parse that a finalizer interrupts
    with a parse of its own (a traceback's caret anchors) fails with "AST constructor recursion depth
    mismatch" (cpython#106905); the fewer parses, the fewer chances."""
    tree = ast.parse(scripts.source(name))
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.ClassDef)}
    if missing := set(omits) - defined:
        raise ValueError(f"{name} defines no {sorted(missing)} to omit")
    tree.body = [node for node in tree.body if getattr(node, "name", None) not in omits]
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(getattr(first.value, "value", None), str):
                node.body = node.body[1:] or [ast.Pass()]
        if isinstance(node, ast.Call):  # argparse's help texts: for a terminal, never read on the VM
            node.keywords = [
                keyword for keyword in node.keywords if keyword.arg not in ("help", "description")
            ]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):  # types: for the checker
            node.returns = None
            for arg in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs):
                arg.annotation = None
            for arg in (node.args.vararg, node.args.kwarg):
                if arg is not None:
                    arg.annotation = None
            node.body = [_unannotated(statement) for statement in node.body]
    tree.body = _referenced(tree.body)
    return "#!/usr/bin/env python3\n" + ast.unparse(tree) + "\n"


def _unannotated(statement: ast.stmt) -> ast.stmt:
    """A function's statement ``name: type = value`` as ``name = value`` (a local's hint is for the checker
    alone; a class body's, a dataclass's fields, stays); any other statement as is."""
    if isinstance(statement, ast.AnnAssign) and statement.value is not None:
        return ast.copy_location(ast.Assign(targets=[statement.target], value=statement.value), statement)
    return statement


def _referenced(body: list[ast.stmt]) -> list[ast.stmt]:
    """A module's top-level statements without the definitions, constants and imports that no other
    statement references, until none is left: what only an omitted definition used, a type alias only
    signatures named. The agents' top-level statements only define (``main`` runs under ``__main__``), so
    an unreferenced one does nothing."""
    while True:
        names = [
            {node.id for node in ast.walk(statement) if isinstance(node, ast.Name)} for statement in body
        ]
        kept = [
            statement
            for at, statement in enumerate(body)
            if not (bound := _bound(statement))
            or bound & set().union(*(used for other, used in enumerate(names) if other != at))
        ]
        if len(kept) == len(body):
            return body
        body = kept


def _bound(statement: ast.stmt) -> set[str]:
    """The names a top-level definition, constant or import (``from __future__`` aside) binds; none for
    any other statement, which ``_referenced`` keeps."""
    if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {statement.name}
    if isinstance(statement, ast.Import) or (
        isinstance(statement, ast.ImportFrom) and statement.module != "__future__"
    ):
        return {(alias.asname or alias.name).split(".")[0] for alias in statement.names}
    if isinstance(statement, ast.Assign):
        targets = [
            target
            for each in statement.targets
            for target in (each.elts if isinstance(each, ast.Tuple) else [each])
        ]
        if all(isinstance(target, ast.Name) for target in targets):
            return {target.id for target in targets if isinstance(target, ast.Name)}
    return set()


#: The line that ends each shipped script's heredoc in the boot script (no script may hold it).
SCRIPT_END = "VLLM_SCRIPT"
#: The shebang ``install_script`` (vm_bootstrap.sh) writes, by the script's extension.
SHEBANGS = {".py": "#!/usr/bin/env python3", ".sh": "#!/usr/bin/env bash"}


def _heredocs(
    names: Sequence[str], omits: Mapping[str, tuple[str, ...]], arms: Mapping[str, tuple[str, ...]]
) -> scripts.Included:
    """The scripts a VM runs as plain text, each in a quoted heredoc to vm_bootstrap.sh's ``install_script``:
    Python agents as ``shipped_python``, shell scripts as ``shipped`` (without the ``case`` arms ``arms``
    names), without their shebang (the user data's comment stripping would drop it; ``install_script``
    writes it back). AWS gzips the whole user data, so plain text shares its vocabulary with the boot
    script: 454 bytes less on a Ray head than the scripts packed apart (xz + base64)."""
    parts = []
    for name in names:
        omitted = omits.get(name, ())
        text = (
            _one_space(shipped_python(name, omitted))
            if name.endswith(".py")
            else shipped(name, omitted, arms.get(name, ()))
        )
        shebang, _, body = text.rstrip("\n").partition("\n")
        if shebang != SHEBANGS[Path(name).suffix]:
            raise ValueError(f"{name}: install_script writes {SHEBANGS[Path(name).suffix]}, not {shebang}")
        if SCRIPT_END in body.splitlines():
            raise ValueError(f"{name}: a line {SCRIPT_END} would end its heredoc early")
        parts.append(f"install_script {name} <<'{SCRIPT_END}'\n{body}\n{SCRIPT_END}\n")
    return scripts.Included("".join(parts))


def scripts_in(script: str) -> dict[str, str]:
    """The scripts a rendered boot script carries, by name (``_heredocs``), as a VM writes them."""
    return {
        name: f"{SHEBANGS[Path(name).suffix]}\n{body}\n"
        for name, body in re.findall(
            rf"^install_script (\S+) <<'{SCRIPT_END}'\n(.*?)\n{SCRIPT_END}$", script, re.MULTILINE | re.DOTALL
        )
    }


def _one_space(program: str) -> str:
    """``ast.unparse``'s program indented by one space a level instead of four: the same program (it
    writes each statement on one line, strings as escaped literals), some bytes less once compressed."""
    return "".join(
        re.sub(r"^(    )+", lambda levels: " " * (len(levels.group(0)) // 4), line)
        for line in program.splitlines(keepends=True)
    )
