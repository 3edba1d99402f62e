"""What the boot test files share (tests/test_boot.py, tests/test_boot_weights.py) besides their fixtures
(``nspawn``, ``fleet``: tests/conftest.py): the boot script each platform hands a machine, and a machine of
a preset stack booting it.

pytest-xdist runs each test file on one worker (``--dist loadfile``), so the boot files run at once: nothing
here or in tests/boot/machine.py is machine-wide but the cached rootfs (built under a lock). Each test's
machines, network namespaces and bridge are named by a hash of its own tmp directory; a machine's ports,
/run, /var/log and fake cloud live in its own container and network namespace; its fake bucket and Hub are
directories under the test's tmp directory; its disks are loop devices ``losetup --find`` attaches
race-free."""

from __future__ import annotations

import base64

from components import vm
from components.aws import machines as aws_machines
from components.aws.identity import log_group_name
from components.gcp.machine import IMAGE_METADATA_KEY
from components.launch import launch_spec
from components.spec import build_spec
from tests.boot import machine as boot
from tests.test_vm_bootstrap import health_report, metrics_agent

API_KEY, HF_TOKEN = "sk-boot-test-0123456789", "hf_boottest"
MIRRORED = "us-central1-docker.pkg.dev/test-project/vllm-dockerhub/vllm/vllm-openai:v0.33.0"
#: The load balancer's target group a spot machine leaves on EC2's interruption notice.
TARGET_GROUP = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/vllm-boot/0123456789abcdef"


def boot_script(
    stack: str, role: str = "serve", head: str = "", config: dict | None = None, weight_cache_url: str = ""
) -> bytes:
    """What the platform hands the machine: GCP's startup-script metadata value, AWS's user data (decoded
    from the launch template's base64, gzip'd when large, as cloud-init receives it). The weights come from
    the Hub here unless ``weight_cache_url`` names a bucket; the race test boots the real program's script
    with its bucket."""
    spec = build_spec(stack, config or {})
    launch = launch_spec(spec, has_hf_token=True)
    gcp = spec.cloud == "gcp"
    drain = [] if gcp else aws_machines.drain_args(spec, TARGET_GROUP)
    script = vm.bootstrap_script(
        spec,
        launch,
        api_key_secret=f"{spec.name}-api-key",
        hf_token_secret=f"{spec.name}-hf-token",
        role=role,
        ray_env=vm.ray_env(spec, head) if role != "serve" else None,
        health_report=[*health_report(spec, launch), *drain],
        image_metadata_key=IMAGE_METADATA_KEY if gcp else "",
        log_group="" if gcp else log_group_name(spec),
        metrics_agent=metrics_agent(spec, launch),
        weight_cache_url=weight_cache_url,
    )
    if gcp:
        return script.encode()
    return base64.b64decode(aws_machines.user_data(script))


def secrets(stack: str) -> dict[str, str]:
    name = build_spec(stack, {}).name
    return {f"{name}-api-key": API_KEY, f"{name}-hf-token": HF_TOKEN}


def new_machine(
    fleet: boot.Fleet, name: str, stack: str, disks: int = 2, script: bytes = b"", **settings
) -> boot.Machine:
    platform = build_spec(stack, {}).cloud
    return fleet.machine(
        name,
        platform=platform,
        boot_script=script or boot_script(stack),
        secrets=secrets(stack),
        disks=disks,
        metadata={IMAGE_METADATA_KEY: MIRRORED} if platform == "gcp" else {"region": "us-east-1"},
        **settings,
    )


def wait_serving(machine: boot.Machine) -> None:
    machine.wait_for(lambda: machine.active("vllm.service") and machine.serving(), "vLLM serving")
