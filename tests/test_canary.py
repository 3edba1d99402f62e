"""vllm:canary: a second revision beside the stable one, weighted traffic, promotion by slots, bad input."""

from __future__ import annotations

import json
from collections.abc import Callable

import pulumi
import pytest

from components.autoscaling import cost_output
from components.aws.machines import SERVING_WAIT_FIELDS
from components.aws.serving_gate import LAMBDA_MAX_SECONDS, READ_ACTIONS
from components.canary import REVISION_HEADER
from components.config import SpecError
from components.cost import breakdown
from components.gcp.quota import gpu_quota_needs
from components.gcp.serving_gate import COMPARED, TOKEN_LIFETIME_SECONDS
from components.observe import READY, STARTING, Replica, ReplicaSource
from components.traffic_gate import TrafficNotMoved
from tests.harness import Resource, Run, checked_spec, run_program
from tools import mockrun, status

STACK = "canary"
STABLE_MODEL, CANARY_MODEL = "Qwen/Qwen3-8B", "Qwen/Qwen3-4B"
GCP = {
    "vllm:cloud": "gcp",
    "vllm:gpu": "L4:1",
    "vllm:model": STABLE_MODEL,
    "vllm:replicas": "2",
    "vllm:servedModelName": "chat",
    "gcp:project": "p",
    "gcp:region": "us-central1",
}
CANARY = {**GCP, "vllm:canary": {"model": CANARY_MODEL, "weight": 10}}
#: The same two revisions after promotion: the stable keys describe the canary's revision, which keeps its
#: slot (2); the old stable revision, now the canary object, keeps slot 1 and takes what is left.
PROMOTED = {
    **GCP,
    "vllm:model": CANARY_MODEL,
    "vllm:replicas": "1",
    "vllm:stableRevision": "2",
    "vllm:canary": {"model": STABLE_MODEL, "replicas": 2, "weight": 90},
}
BLUE_GREEN = {**GCP, "vllm:canary": {"model": CANARY_MODEL, "mode": "blue-green"}}

MIG = "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager"
TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
BACKEND = "gcp:compute/backendService:BackendService"
URL_MAP = "gcp:compute/uRLMap:URLMap"


def refusal(config: dict) -> SpecError:
    with pytest.raises(SpecError) as caught:
        checked_spec(STACK, config)
    return caught.value


AWS_BASE = {key: value for key, value in GCP.items() if not key.startswith("gcp:")}
AWS = {**AWS_BASE, "vllm:cloud": "aws", "aws:region": "us-east-1"}
AWS_CANARY = {**AWS, "vllm:canary": {"model": CANARY_MODEL, "weight": 25}}
AWS_PROMOTED = {
    **AWS,
    "vllm:model": CANARY_MODEL,
    "vllm:replicas": "1",
    "vllm:stableRevision": "2",
    "vllm:canary": {"model": STABLE_MODEL, "replicas": 2, "weight": 75},
}


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    configs = {
        "canary": CANARY,
        "promoted": PROMOTED,
        "blue_green": BLUE_GREEN,
        "aws": AWS_CANARY,
        "aws_promoted": AWS_PROMOTED,
        "stable": GCP,
        "aws_stable": AWS,
        "named": {**CANARY, "vllm:canaryModelName": "chat-next"},
        "aws_named": {**AWS_CANARY, "vllm:canaryModelName": "chat-next"},
    }
    return {key: run_program(STACK, config) for key, config in configs.items()}


def route_rules(run: Run) -> list[dict]:
    """The public path matcher's route rules, in the order GCP applies them (lowest priority first)."""
    (matcher,) = run.one(URL_MAP).inputs["pathMatchers"]
    assert "pathRules" not in matcher  # GCP: path rules or route rules in a path matcher, not both
    return sorted(matcher["routeRules"], key=lambda rule: rule["priority"])


def weighted_services(run: Run) -> list[dict]:
    """The last route rule: every public request no header picked, split by weight."""
    rule = route_rules(run)[-1]
    assert "service" not in rule  # GCP: a route has a service or weighted backend services, never both
    assert [m.get("prefixMatch") or m.get("fullPathMatch") for m in rule["matchRules"]] == ["/v1/", "/health"]
    assert all(not m.get("headerMatches") for m in rule["matchRules"])
    return rule["routeAction"]["weightedBackendServices"]


def picked(run: Run) -> list[tuple[str, str, str]]:
    """The route rules before the weighted one: (header, value, backend service) each."""
    found = []
    for rule in route_rules(run)[:-1]:
        headers = {
            (m["headerMatches"][0]["headerName"], m["headerMatches"][0]["exactMatch"])
            for m in rule["matchRules"]
        }
        ((header, value),) = headers
        found.append((header, value, backend_of(run, rule["service"])))
    return found


def backend_of(run: Run, service_id: str) -> str:
    """The backend service a weighted route names (the mock runtime's id of a resource is its name + -id)."""
    (found,) = [r.name for r in run.of_type(BACKEND) if f"{r.name}-id" == service_id]
    return found


# --- bad input: one line naming the key, before any resource -----------------------------------------


@pytest.mark.parametrize(
    ("canary", "key"),
    [
        ({"model": CANARY_MODEL, "weight": 101}, "vllm:canary.weight"),
        ({"model": CANARY_MODEL, "weight": -1}, "vllm:canary.weight"),
        ({"model": CANARY_MODEL, "weight": 12.5}, "vllm:canary.weight"),
        ({"model": CANARY_MODEL, "weight": "ten"}, "vllm:canary.weight"),
        ({"model": CANARY_MODEL, "weight": True}, "vllm:canary.weight"),
        ({"model": CANARY_MODEL, "mode": "rolling"}, "vllm:canary.mode"),
        ({"model": CANARY_MODEL, "mode": "blue-green", "weight": 50}, "vllm:canary.weight"),
        ({"model": CANARY_MODEL, "modle": "x"}, "vllm:canary.modle"),
        ({"model": "not a model"}, "vllm:canary.model"),
        ({"gpu": "Z9:1"}, "vllm:canary.gpu"),
        ({"image": "vllm/vllm-openai:latest"}, "vllm:canary.image"),
        ({"extraArgs": ["--api-key", "x"]}, "vllm:canary.extraArgs"),
        ({"model": CANARY_MODEL, "replicas": 0}, "vllm:canary.replicas"),
        ({"model": STABLE_MODEL}, "vllm:canary"),  # identical to the stable revision
        ({"weight": 10}, "vllm:canary"),  # nothing of its own to serve
        ("Qwen/Qwen3-4B", "vllm:canary"),  # not an object
    ],
)
def test_a_bad_canary_is_refused_naming_its_field(canary, key):
    error = refusal({**GCP, "vllm:canary": canary})
    assert error.key == key and "\n" not in str(error)


def test_a_canary_needs_the_served_name_clients_keep_across_promotion():
    config = {key: value for key, value in CANARY.items() if key != "vllm:servedModelName"}
    assert refusal(config).key == "vllm:servedModelName"


@pytest.mark.parametrize(
    "config",
    [
        {**GCP, "vllm:canaryModelName": "chat-next"},  # no canary to pick
        {**CANARY, "vllm:canaryModelName": "chat"},  # the stable revision's name
        {**CANARY, "vllm:canaryModelName": "chat next"},
    ],
)
def test_a_canary_model_name_picks_a_canary_by_a_name_of_its_own(config):
    assert refusal(config).key == "vllm:canaryModelName"


def test_a_canary_of_an_autoscaled_stack_takes_its_bounds_not_a_count():
    config = {**GCP, "vllm:maxReplicas": "4", "vllm:targetQpsPerReplica": "2"}
    del config["vllm:replicas"]
    assert (
        refusal({**config, "vllm:canary": {"model": CANARY_MODEL, "replicas": 2}}).key
        == "vllm:canary.replicas"
    )


def test_an_inherited_key_the_canary_cannot_hold_is_named_as_the_canarys():
    # us-west1 sells the stable revision's L4 machines, not the canary's A100s.
    error = refusal({**GCP, "gcp:region": "us-west1", "vllm:canary": {"gpu": "A100-80GB:1"}})
    assert (error.key, error.value) == ("gcp:region", "us-west1") and "vllm:canary" in error.valid


@pytest.mark.parametrize("revision", ["0", "3", "blue"])
def test_the_stable_revision_is_one_of_two_slots(revision):
    assert refusal({**CANARY, "vllm:stableRevision": revision}).key == "vllm:stableRevision"


def test_a_bad_canary_stops_the_program_before_any_resource():
    with pytest.raises(SpecError) as caught:
        run_program(STACK, {**GCP, "vllm:canary": {"model": CANARY_MODEL, "weight": 300}})
    assert caught.value.declared_resources == []


# --- the revision model ---------------------------------------------------------------------------------


def test_the_canary_inherits_everything_but_its_overrides():
    spec = checked_spec(
        STACK, {**CANARY, "vllm:canary": {"model": CANARY_MODEL, "extraArgs": ["--enable-prefix-caching"]}}
    )
    canary = spec.canary.spec
    assert (canary.model, canary.extra_args, canary.gpu, canary.region) == (
        CANARY_MODEL,
        ("--enable-prefix-caching",),
        spec.gpu,
        spec.region,
    )
    assert canary.served_model_name == spec.served_model_name == "chat"  # clients keep their name
    assert (spec.revision, canary.revision, canary.replicas) == ("1", "2", 1)


def test_a_blue_green_revision_comes_up_at_full_size_and_unexposed():
    spec = checked_spec(STACK, BLUE_GREEN)
    assert (spec.canary.spec.replicas, spec.canary.weight) == (spec.replicas, 0)


def test_the_quota_preflight_counts_both_revisions():
    spec = checked_spec(STACK, CANARY)
    (every,) = [need for need in gpu_quota_needs(spec) if need.metric == "GPUS_ALL_REGIONS"]
    (stable_only,) = [
        need for need in gpu_quota_needs(checked_spec(STACK, GCP)) if need.metric == "GPUS_ALL_REGIONS"
    ]
    assert every.need > stable_only.need


# --- GCP: two revisions behind one URL map --------------------------------------------------------------


def test_each_revision_has_its_own_group_named_by_its_slot(runs):
    assert sorted(r.name for r in runs["canary"].of_type(MIG)) == ["vllm-canary-mig", "vllm-canary-rev2-mig"]
    sizes = {r.name: r.inputs["targetSize"] for r in runs["canary"].of_type(MIG)}
    assert sizes == {"vllm-canary-mig": 2, "vllm-canary-rev2-mig": 1}


def test_the_canary_group_serves_the_canary_model(runs):
    scripts = {r.name: r.text() for r in runs["canary"].of_type(TEMPLATE)}
    assert CANARY_MODEL in scripts["vllm-canary-rev2-template"]
    assert CANARY_MODEL not in scripts["vllm-canary-template"]


def test_the_url_map_splits_the_public_paths_by_the_canary_weight(runs):
    run = runs["canary"]
    split = {backend_of(run, s["backendService"]): s["weight"] for s in weighted_services(run)}
    assert split == {"vllm-canary-backend": 900, "vllm-canary-rev2-backend": 100}
    # GCP: each weight 0-1000, at least one above 0; the shares are weight / sum.
    assert sum(split.values()) == 1000


def test_every_answer_names_the_revision_that_served_it(runs):
    headers = [s["headerAction"]["responseHeadersToAdds"][0] for s in weighted_services(runs["canary"])]
    assert [(h["headerName"], h["headerValue"]) for h in headers] == [
        (REVISION_HEADER, "1"),
        (REVISION_HEADER, "2"),
    ]


@pytest.mark.parametrize(
    ("before", "after", "types"),
    [
        ("stable", "canary", (MIG, TEMPLATE, BACKEND)),
        ("aws_stable", "aws", ("aws:autoscaling/group:Group", "aws:ec2/launchTemplate:LaunchTemplate")),
    ],
)
def test_adding_a_canary_leaves_the_stable_revision_untouched(runs, before, after, types):
    for type_ in types:
        stable = {r.urn: r.inputs for r in runs[before].of_type(type_)}
        assert stable and stable.items() <= {r.urn: r.inputs for r in runs[after].of_type(type_)}.items()


def test_promoting_swaps_the_roles_and_replaces_no_group(runs):
    before, after = runs["canary"], runs["promoted"]
    for type_ in (MIG, TEMPLATE, BACKEND):
        assert {r.urn: r.inputs for r in before.of_type(type_)} == {
            r.urn: r.inputs for r in after.of_type(type_)
        }
    split = {backend_of(after, s["backendService"]): s["weight"] for s in weighted_services(after)}
    assert split == {"vllm-canary-backend": 900, "vllm-canary-rev2-backend": 100}


def test_blue_green_comes_up_at_full_size_and_unexposed(runs):
    run = runs["blue_green"]
    canary = next(r for r in run.of_type(MIG) if r.name == "vllm-canary-rev2-mig")
    assert canary.inputs["targetSize"] == 2
    split = {backend_of(run, s["backendService"]): s["weight"] for s in weighted_services(run)}
    assert split == {"vllm-canary-backend": 1000, "vllm-canary-rev2-backend": 0}


def test_blue_green_switches_every_request_at_once():
    run = run_program(
        STACK, {**GCP, "vllm:canary": {"model": CANARY_MODEL, "mode": "blue-green", "weight": 100}}
    )
    split = {backend_of(run, s["backendService"]): s["weight"] for s in weighted_services(run)}
    assert split == {"vllm-canary-backend": 0, "vllm-canary-rev2-backend": 1000}


def test_cost_counts_both_revisions(runs):
    spec = checked_spec(STACK, GCP)
    assert spec.offering is not None
    one_replica = spec.offering.hourly(False, spec.region)
    assert one_replica is not None
    # Two stable replicas and one canary replica, all L4 machines.
    assert runs["canary"].outputs["costPerHour"] == pytest.approx(3 * one_replica, abs=0.01)


def test_status_finds_each_revisions_groups_and_balancer(runs):
    source = runs["canary"].outputs["replicaSource"]
    revisions = {group["name"]: (group["revision"], group.get("balancer", "")) for group in source["groups"]}
    assert revisions == {
        "vllm-canary-mig": ("1", ""),
        "vllm-canary-rev2-mig": ("2", "vllm-canary-rev2-backend"),
    }
    assert source["replicas"] == 3


def test_the_spec_output_shows_the_canary(runs):
    view = runs["canary"].outputs["spec"]
    assert view["stableRevision"] == "1"
    assert json.loads(json.dumps(view["canary"]))["weight"] == 10


# --- tools.status: a REVISION column, as SkyServe's VERSION ---------------------------------------------


def canary_report() -> tuple[status.Target, status.Report]:
    source = ReplicaSource(
        platform="gcp",
        location="us-central1",
        scope="p",
        replicas=2,
        startup_seconds=600,
        groups=(),
        balancer="b",
    )
    replicas = [
        Replica(id="1", name="vllm-canary-abcd", status=READY, revision="1"),
        Replica(id="2", name="vllm-canary-rev2-efgh", status=STARTING, revision="2"),
    ]
    target = status.Target("http://lb", None, None, stack=STACK, replica_source=source)
    return target, status.Report([status.CheckResult("/health", "OK", 200, 3, "")], replicas, None, 2)


def test_status_shows_each_replicas_revision():
    text = status.render_table(*canary_report(), timed_out=False)
    lines = text.splitlines()
    assert lines[lines.index("Service Replicas") + 1].split()[:3] == ["ID", "REVISION", "NAME"]
    assert any(line.split()[:3] == ["2", "2", "vllm-canary-rev2-efgh"] for line in lines)


def test_status_json_gives_each_replicas_revision():
    document = json.loads(status.render_json(*canary_report(), timed_out=False))
    assert [replica["revision"] for replica in document["replicas"]] == ["1", "2"]


def test_a_replica_of_a_stack_of_one_revision_has_no_revision_field():
    assert "revision" not in Replica(id="1", name="n").as_json()


def test_replica_source_reads_back_each_groups_revision_and_balancer(runs):
    source = ReplicaSource.from_output(runs["canary"].outputs["replicaSource"])
    assert [(g.revision, g.balancer) for g in source.groups] == [("1", ""), ("2", "vllm-canary-rev2-backend")]


# --- AWS: two target groups behind one forward action ---------------------------------------------------

ASG = "aws:autoscaling/group:Group"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
RULE = "aws:lb/listenerRule:ListenerRule"


def forward_split(run: Run) -> dict[str, int]:
    """The API rule's forward action: each target group's weight, by the group's logical name."""
    (action,) = next(r for r in run.of_type(RULE) if r.name == "vllm-canary-api").inputs["actions"]
    names = {r.outputs["arn"]: r.name for r in run.of_type(TARGET_GROUP)}
    return {names[group["arn"]]: group["weight"] for group in action["forward"]["targetGroups"]}


def test_aws_runs_each_revision_in_its_own_group_and_target_group(runs):
    run = runs["aws"]
    assert sorted(r.name for r in run.of_type(ASG)) == ["vllm-canary-group", "vllm-canary-rev2-group"]
    assert sorted(r.name for r in run.of_type(TARGET_GROUP)) == [
        "vllm-canary-replicas",
        "vllm-canary-rev2-replicas",
    ]
    arns = {r.outputs["arn"]: r.name for r in run.of_type(TARGET_GROUP)}
    joined = {r.name: [arns[arn] for arn in r.inputs["targetGroupArns"]] for r in run.of_type(ASG)}
    assert joined == {
        "vllm-canary-group": ["vllm-canary-replicas"],
        "vllm-canary-rev2-group": ["vllm-canary-rev2-replicas"],
    }


def test_aws_forwards_the_public_paths_by_the_canary_weight(runs):
    # ALB: each weight 0-999; a request picks a target group by its weight over the sum.
    assert forward_split(runs["aws"]) == {"vllm-canary-replicas": 75, "vllm-canary-rev2-replicas": 25}


def test_aws_target_group_names_stay_apart_and_within_32_characters(runs):
    names = [r.inputs["name"] for r in runs["aws"].of_type(TARGET_GROUP)]
    assert len(set(names)) == 2 and all(len(name) <= 32 for name in names)


def test_aws_promoting_replaces_no_group(runs):
    before, after = runs["aws"], runs["aws_promoted"]
    for type_ in (ASG, LAUNCH_TEMPLATE, TARGET_GROUP):
        assert {r.urn: compared(r) for r in before.of_type(type_)} == {
            r.urn: compared(r) for r in after.of_type(type_)
        }
    assert forward_split(after) == {"vllm-canary-replicas": 75, "vllm-canary-rev2-replicas": 25}


def compared(resource: Resource) -> dict:
    """A resource's inputs as an update compares them: without those its ignore_changes names."""
    return {key: value for key, value in resource.inputs.items() if key not in resource.ignore_changes}


# --- up waits: traffic moves to a revision only once every replica of it serves -------------------------

GATE = "pulumi-python:dynamic:ServingGate"
LISTENER_RULE = "aws:lb/listenerRule:ListenerRule"
#: How the engine marks a secret value (pulumi's rpc ``_special_sig_key`` / ``_special_secret_sig``).
SECRET_SIG = "4dabf18193072939515e22adb298388d"


def gates(run: Run) -> dict[str, dict]:
    return {gate.inputs["slot"]: gate.inputs for gate in run.of_type(GATE)}


def test_gcp_the_url_map_waits_for_each_revisions_serving_gate(runs):
    run = runs["canary"]
    assert {gate.urn for gate in run.of_type(GATE)} <= set(run.one(URL_MAP).dependencies)
    assert {slot: gate["weight"] for slot, gate in gates(run).items()} == {"1": 900, "2": 100}


def outcomes(by_slot: dict[str, dict]) -> Callable[[dict, str], dict]:
    """The mocked gates' outputs beyond their echoed inputs: each slot's outcome (weight, refused)."""
    return lambda inputs, name: by_slot.get(inputs["slot"], {})


REFUSAL = (
    "revision 2 (vllm-canary-rev2-backend): 0 of 1 replicas serving (healthy in the load balancer's check "
    "on /health) after 1200 s; traffic not moved"
)


def test_gcp_the_url_map_weighs_each_slot_by_what_its_gate_let_through(monkeypatch):
    let_through = {"1": {"weight": 1000, "refused": ""}, "2": {"weight": 0, "refused": ""}}
    monkeypatch.setitem(mockrun.OUTPUTS, GATE, outcomes(let_through))
    run = run_program(STACK, CANARY)
    split = {backend_of(run, s["backendService"]): s["weight"] for s in weighted_services(run)}
    assert split == {"vllm-canary-backend": 1000, "vllm-canary-rev2-backend": 0}


def test_gcp_a_refused_gate_fails_up_in_its_one_line_before_the_url_map(monkeypatch):
    monkeypatch.setitem(mockrun.OUTPUTS, GATE, outcomes({"2": {"weight": 0, "refused": REFUSAL}}))
    with pytest.raises(TrafficNotMoved) as raised:
        run_program(STACK, CANARY)
    assert str(raised.value) == REFUSAL and isinstance(raised.value, pulumi.RunError)  # printed, no traceback
    declared = {r.type for r in raised.value.declared_resources}  # pyright: ignore[reportAttributeAccessIssue]
    assert GATE in declared and URL_MAP not in declared


def test_gcp_a_gate_reads_its_own_revisions_groups_on_its_own_backend_service(runs):
    run = runs["canary"]
    groups = {r.name: r.outputs["instanceGroup"] for r in run.of_type(MIG)}
    found = {slot: (gate["backend"], gate["groups"]) for slot, gate in gates(run).items()}
    assert found == {
        "1": ("vllm-canary-backend", [groups["vllm-canary-mig"]]),
        "2": ("vllm-canary-rev2-backend", [groups["vllm-canary-rev2-mig"]]),
    }


def test_gcp_a_gate_waits_for_every_replica_its_revision_runs(runs):
    assert {slot: gate["minimum"] for slot, gate in gates(runs["blue_green"]).items()} == {"1": 2, "2": 2}


def test_gcp_a_new_canary_starts_from_no_traffic_and_the_stable_revision_from_all(runs):
    found = {slot: (gate["weightBefore"], gate["stable"]) for slot, gate in gates(runs["canary"]).items()}
    assert found == {"1": (1000, True), "2": (0, False)}


def test_gcp_a_gate_gives_up_within_the_load_budget_and_the_tokens_hour(runs):
    for gate in gates(runs["canary"]).values():
        assert 0 < gate["deadlineSeconds"] <= TOKEN_LIFETIME_SECONDS


def test_gcp_the_gates_access_token_is_a_secret_input(runs):
    for gate in runs["canary"].of_type(GATE):
        assert SECRET_SIG in gate.inputs["token"]


def test_gcp_promoting_leaves_what_each_gate_compares_unchanged(runs):
    before, after = gates(runs["canary"]), gates(runs["promoted"])
    assert {slot: [g[key] for key in COMPARED] for slot, g in before.items()} == {
        slot: [g[key] for key in COMPARED] for slot, g in after.items()
    }


def test_gcp_a_stack_of_one_revision_has_no_gate(runs):
    assert runs["stable"].of_type(GATE) == []


def test_aws_the_canary_groups_create_waits_until_it_serves_within_its_budget(runs):
    groups = {r.name: r for r in runs["aws"].of_type(ASG)}
    canary, stable = groups["vllm-canary-rev2-group"], groups["vllm-canary-group"]
    assert canary.inputs["minElbCapacity"] == 1 and canary.inputs["ignoreFailedScalingActivities"] is True
    assert int(canary.inputs["waitForCapacityTimeout"].removesuffix("s")) > 0
    assert stable.inputs["waitForCapacityTimeout"] == "0" and "minElbCapacity" not in stable.inputs


def test_aws_every_group_beside_a_canary_keeps_its_wait_fields_across_a_promote(runs):
    for group in runs["aws"].of_type(ASG):
        assert set(SERVING_WAIT_FIELDS) <= set(group.ignore_changes)


def test_aws_a_stack_of_one_revision_waits_on_no_group(runs):
    (group,) = runs["aws_stable"].of_type(ASG)
    assert group.inputs["waitForCapacityTimeout"] == "0" and group.ignore_changes == ()


def test_aws_the_weighted_rule_waits_for_the_canary_group(runs):
    run = runs["aws"]
    canary = next(r for r in run.of_type(ASG) if r.name == "vllm-canary-rev2-group")
    api = next(r for r in run.of_type(LISTENER_RULE) if r.name == "vllm-canary-api")
    assert canary.urn in api.dependencies


def test_aws_the_rules_picking_a_revision_put_its_target_group_in_use_before_any_wait(runs):
    # ELBv2: the targets of a target group no rule names are "unused" (Target.NotInUse), never healthy.
    run = runs["aws"]
    arns = {r.outputs["arn"]: r.name for r in run.of_type(TARGET_GROUP)}
    canary = next(r for r in run.of_type(ASG) if r.name == "vllm-canary-rev2-group")
    picked = [r for r in run.of_type(LISTENER_RULE) if r.name != "vllm-canary-api"]
    named = {arns[r.inputs["actions"][0]["targetGroupArn"]] for r in picked}
    assert named == set(arns.values())
    assert all(canary.urn not in rule.dependencies for rule in picked)
    assert {rule.urn for rule in picked} <= set(run.one(INVOCATION).dependencies)


def test_aws_status_finds_the_canarys_target_group(runs):
    run = runs["aws"]
    canary_arn = next(
        r.outputs["arn"] for r in run.of_type(TARGET_GROUP) if r.name == "vllm-canary-rev2-replicas"
    )
    groups = run.outputs["replicaSource"]["groups"]
    assert [(g["revision"], g.get("balancer", "")) for g in groups] == [("1", ""), ("2", canary_arn)]


def test_aws_spot_machines_of_each_revision_may_leave_their_own_target_group():
    run = run_program(STACK, {**AWS_CANARY, "vllm:spot": "true"})
    arns = {r.name: r.outputs["arn"] for r in run.of_type(TARGET_GROUP)}
    (machines,) = [r for r in run.of_type(ROLE_POLICY) if r.name == "vllm-canary-read-secrets"]
    policy = json.loads(machines.inputs["policy"])
    (drain,) = [s for s in policy["Statement"] if s["Action"] == "elasticloadbalancing:DeregisterTargets"]
    assert drain["Resource"] == [arns["vllm-canary-replicas"], arns["vllm-canary-rev2-replicas"]]
    for template in run.of_type(LAUNCH_TEMPLATE):
        script = template.text()
        own = arns["vllm-canary-rev2-replicas" if "-rev2-" in template.name else "vllm-canary-replicas"]
        assert f"--drain-target-group {own}" in script


# --- AWS: the serving gate, a Lambda function invoked during up --------------------------------------

FUNCTION = "aws:lambda/function:Function"
INVOCATION = "aws:lambda/invocation:Invocation"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"


def gate_input(run: Run) -> dict:
    return json.loads(run.one(INVOCATION).inputs["input"])


def gate_policy(run: Run) -> dict:
    (policy,) = [r for r in run.of_type(ROLE_POLICY) if "-gate-" in r.name]
    return json.loads(policy.inputs["policy"])


def test_aws_the_gates_function_role_and_policy_exist_only_with_a_canary(runs):
    gate_types = {FUNCTION, INVOCATION}
    assert gate_types <= runs["aws"].types() and not gate_types & runs["aws_stable"].types()
    assert len(runs["aws"].of_type(ROLE)) == len(runs["aws_stable"].of_type(ROLE)) + 1
    assert len(runs["aws"].of_type(ROLE_POLICY)) == len(runs["aws_stable"].of_type(ROLE_POLICY)) + 1


def test_aws_the_gates_input_names_each_slots_target_group_and_weight(runs):
    run = runs["aws"]
    arns = {r.name: r.outputs["arn"] for r in run.of_type(TARGET_GROUP)}
    slots = gate_input(run)["slots"]
    found = {slot: (asked["targetGroup"], asked["weight"]) for slot, asked in slots.items()}
    assert found == {"1": (arns["vllm-canary-replicas"], 75), "2": (arns["vllm-canary-rev2-replicas"], 25)}


def test_aws_the_gate_reads_the_live_weights_from_the_listener_holding_the_weighted_rule(runs):
    run = runs["aws"]
    api = next(r for r in run.of_type(LISTENER_RULE) if r.name == "vllm-canary-api")
    found = gate_input(run)
    assert (found["listener"], found["priority"]) == (api.inputs["listenerArn"], api.inputs["priority"])


def test_aws_a_new_canary_starts_from_no_traffic_and_the_stable_revision_from_all(runs):
    slots = gate_input(runs["aws"])["slots"]
    found = {slot: (asked["weightBefore"], asked["stable"]) for slot, asked in slots.items()}
    assert found == {"1": (100, True), "2": (0, False)}


def test_aws_the_gate_waits_for_every_replica_it_runs_within_its_budget_and_lambdas_run(runs):
    slots = gate_input(runs["aws"])["slots"]
    assert {slot: asked["minimum"] for slot, asked in slots.items()} == {"1": 2, "2": 1}
    assert all(0 < asked["deadlineSeconds"] < LAMBDA_MAX_SECONDS for asked in slots.values())
    assert runs["aws"].one(FUNCTION).inputs["timeout"] == LAMBDA_MAX_SECONDS


def test_aws_the_same_stack_asks_the_gate_the_same_so_it_is_not_invoked_again(runs):
    # CREATE_ONLY (the default scope): a new input invokes again, the same input invokes nothing.
    invocation = run_program(STACK, AWS_CANARY).one(INVOCATION)
    assert invocation.inputs["input"] == runs["aws"].one(INVOCATION).inputs["input"]
    assert "lifecycleScope" not in invocation.inputs


def test_aws_a_weight_step_asks_the_gate_again():
    stepped = run_program(STACK, {**AWS_CANARY, "vllm:canary": {"model": CANARY_MODEL, "weight": 50}})
    assert {slot: asked["weight"] for slot, asked in gate_input(stepped)["slots"].items()} == {
        "1": 50,
        "2": 50,
    }


def test_aws_the_gates_role_may_only_describe_and_write_its_own_log(runs):
    run = runs["aws"]
    statements = gate_policy(run)["Statement"]
    (log_group,) = [r for r in run.of_type("aws:cloudwatch/logGroup:LogGroup") if "-gate-" in r.name]
    assert statements[0] == {"Effect": "Allow", "Action": list(READ_ACTIONS), "Resource": "*"}
    assert statements[1]["Resource"] == f"{log_group.outputs['arn']}:log-stream:*"
    assert len(statements) == 2
    assert log_group.inputs["name"] == f"/aws/lambda/{run.one(FUNCTION).inputs['name']}"


def test_aws_the_gate_runs_the_repositorys_handler_on_a_supported_python(runs):
    function = runs["aws"].one(FUNCTION)
    assert function.inputs["runtime"] == "python3.13"
    assert function.inputs["handler"] == "components.scripts.alb_serving_gate.handler"


def test_aws_the_gate_invokes_only_once_its_role_may_read(runs):
    run = runs["aws"]
    (policy,) = [r for r in run.of_type(ROLE_POLICY) if "-gate-" in r.name]
    assert policy.urn in run.one(INVOCATION).dependencies


def aws_outcomes(by_slot: dict[str, dict]) -> Callable[[dict, str], dict]:
    """The mocked invocation's result: each slot's outcome as the gate would answer it."""
    return lambda inputs, name: {"result": json.dumps(by_slot)}


def test_aws_the_weighted_rule_weighs_each_slot_by_what_the_gate_let_through(monkeypatch):
    let_through = {"1": {"weight": 100, "refused": ""}, "2": {"weight": 0, "refused": ""}}
    monkeypatch.setitem(mockrun.OUTPUTS, INVOCATION, aws_outcomes(let_through))
    run = run_program(STACK, AWS_CANARY)
    assert forward_split(run) == {"vllm-canary-replicas": 100, "vllm-canary-rev2-replicas": 0}


AWS_REFUSAL = (
    "revision 2 (target group vllm-canary-tg-2-0c1d2e3f): 0 of 1 replicas serving (healthy in the load "
    "balancer's check on /health) after 870 s; traffic not moved"
)


def test_aws_a_refusal_fails_up_in_its_one_line_before_the_weighted_rule(monkeypatch):
    refused = {"1": {"weight": 75, "refused": ""}, "2": {"weight": 0, "refused": AWS_REFUSAL}}
    monkeypatch.setitem(mockrun.OUTPUTS, INVOCATION, aws_outcomes(refused))
    with pytest.raises(TrafficNotMoved) as raised:
        run_program(STACK, AWS_CANARY)
    assert str(raised.value) == AWS_REFUSAL
    declared = {r.name for r in raised.value.declared_resources}  # pyright: ignore[reportAttributeAccessIssue]
    assert "vllm-canary-gate" in declared and "vllm-canary-api" not in declared


# --- vllm:canaryModelName: a request header picks one revision ------------------------------------------


def test_gcp_routes_a_request_naming_a_revision_to_it_alone_and_the_rest_by_weight(runs):
    assert picked(runs["canary"]) == [
        ("x-vllm-revision", "1", "vllm-canary-backend"),
        ("x-vllm-revision", "2", "vllm-canary-rev2-backend"),
    ]


def test_gcp_routes_a_request_naming_a_revisions_model_to_it_alone(runs):
    run = runs["named"]
    assert picked(run)[2:] == [
        ("x-vllm-model", "chat", "vllm-canary-backend"),
        ("x-vllm-model", "chat-next", "vllm-canary-rev2-backend"),
    ]
    split = {backend_of(run, s["backendService"]): s["weight"] for s in weighted_services(run)}
    assert split == {"vllm-canary-backend": 900, "vllm-canary-rev2-backend": 100}


def test_gcp_route_rule_priorities_are_distinct(runs):
    priorities = [rule["priority"] for rule in route_rules(runs["named"])]
    assert len(set(priorities)) == len(priorities) and all(0 <= p <= 2147483647 for p in priorities)


def aws_picked(run: Run) -> list[tuple[str, str, str]]:
    """The listener rules before the weighted one: (header, value, target group) each, in priority order."""
    arns = {r.outputs["arn"]: r.name for r in run.of_type(TARGET_GROUP)}
    found = []
    for rule in sorted(run.of_type(RULE), key=lambda rule: rule.inputs["priority"])[:-1]:
        (header,) = [c["httpHeader"] for c in rule.inputs["conditions"] if "httpHeader" in c]
        (action,) = rule.inputs["actions"]
        found.append((header["httpHeaderName"], header["values"][0], arns[action["targetGroupArn"]]))
        # ALB: at most 5 condition values per rule.
        assert sum(len(next(iter(c.values()))["values"]) for c in rule.inputs["conditions"]) <= 5
    return found


def test_aws_routes_a_request_naming_a_revision_to_its_target_group_before_the_weights(runs):
    run = runs["aws_named"]
    assert aws_picked(run) == [
        ("x-vllm-revision", "1", "vllm-canary-replicas"),
        ("x-vllm-revision", "2", "vllm-canary-rev2-replicas"),
        ("x-vllm-model", "chat", "vllm-canary-replicas"),
        ("x-vllm-model", "chat-next", "vllm-canary-rev2-replicas"),
    ]
    last = max(run.of_type(RULE), key=lambda rule: rule.inputs["priority"])
    assert "forward" in last.inputs["actions"][0]  # everything else by weight


def test_aws_refuses_a_queue_depth_target_beside_a_canary_whose_queues_it_cannot_tell_apart():
    scaled = {key: value for key, value in AWS_CANARY.items() if key != "vllm:replicas"}
    error = refusal({**scaled, "vllm:maxReplicas": "3", "vllm:targetQueuePerReplica": "8"})
    assert error.key == "vllm:targetQueuePerReplica"
    assert "vllm:targetQpsPerReplica" in str(error)


def test_the_cost_breakdown_prices_each_revision_on_its_own_machine_and_adds_up_to_the_cost():
    spec = checked_spec(
        STACK, {**CANARY, "vllm:canary": {"model": CANARY_MODEL, "gpu": "L4:2", "weight": 10}}
    )
    shares = breakdown(spec)["shares"]
    assert {share["revision"] for share in shares} == {"1", "2"}
    assert round(sum(share["hourly"] for share in shares), 2) == cost_output(spec)
