"""vLLM on EC2 GPU instances behind an Application Load Balancer.

What ``build`` declares, all through one explicit ``aws.Provider`` for ``aws:region``:

- ``Network``: the default VPC and its default subnets, or ``vllm:vpcId`` + ``vllm:subnetIds``; the ALB's
  and the instances' security groups. The ALB spans every subnet; instances go only to zones that sell
  the catalog's instance type (``ec2:DescribeInstanceTypeOfferings``).
- ``ServiceIdentity``: the API key and HF token as Secrets Manager secrets, and an instance role that may
  ``GetSecretValue`` on exactly those ARNs. User data names the secrets; it never holds their values.
- ``LoadBalancer``: ALB -> listener 80 -> ``/v1/*`` and ``/health`` to the replicas; everything else 404.
- ``VllmReplica`` (one ASG of ``vllm:replicas`` machines) or, when ``vllm:nodes`` > 1, one ``RayGroup``
  per replica. Every machine boots the Deep Learning Base OSS NVIDIA driver AMI (or ``vllm:amiId``) and runs
  ``components/scripts/vm_bootstrap.sh`` as user data.

Public IPs: instances in the default VPC keep the public IPv4 address its subnets hand out, and their
security group admits nothing from the internet (only the vLLM port, from the ALB's security group; no
SSH). A default VPC has no NAT gateway, and adding one per stack would put every image pull and every
weight download (hundreds of GB per machine, per boot) through NAT data processing charges. Anyone who
wants private instances names their own VPC and subnets (``vllm:vpcId``/``vllm:subnetIds``), with the
NAT or VPC endpoints their platform already runs; there the subnet's own public-IP setting applies. The
internet-facing ALB uses the same subnets, so at least two of them (in two zones) must route to an
internet gateway.

The AMI is ``resolve:ssm:<the Deep Learning AMI's public parameter>``, resolved by EC2 at each launch, so
a new release never changes the launch template nor rolls the fleet; ``vllm:amiId`` pins one image. User
data is the boot script as is when it fits EC2's 16 KB (6 KB for a replica, 12 KB for a Ray node, which
carries ``ray_bootstrap.sh`` compressed), else gzip'd, which cloud-init unpacks itself.

Multi-node (``RayGroup``): the head's stable address is an internal Network Load Balancer on the Ray GCS
port in front of the head's ASG of one; see ``ray_group.py`` for why, and for EFA.
"""

from __future__ import annotations

import pulumi
from pulumi_aws import Provider

from components.aws.identity import ServiceIdentity, ServiceIdentityArgs
from components.aws.load_balancer import LoadBalancer, LoadBalancerArgs
from components.aws.machines import machine_image, stack_tags
from components.aws.network import Network, NetworkArgs
from components.aws.ray_group import RayGroup, RayGroupArgs
from components.aws.replica import VllmReplica, VllmReplicaArgs
from components.launch import launch_spec
from components.service import Deployment, Secrets
from components.spec import ServiceSpec

__all__ = ["LoadBalancer", "Network", "RayGroup", "ServiceIdentity", "VllmReplica", "build"]


def build(spec: ServiceSpec, secrets: Secrets, parent: pulumi.ComponentResource) -> Deployment:
    launch = launch_spec(spec, has_hf_token=secrets.hf_token is not None)
    provider = Provider(
        "aws",
        region=spec.region,
        default_tags={"tags": stack_tags(spec)},
        opts=pulumi.ResourceOptions(parent=parent),
    )
    opts = pulumi.ResourceOptions(parent=parent, provider=provider)
    network = Network(spec.name, NetworkArgs(spec=spec, provider=provider), opts)
    identity = ServiceIdentity(
        spec.name,
        ServiceIdentityArgs(spec=spec, api_key=secrets.api_key, hf_token=secrets.hf_token, provider=provider),
        opts,
    )
    load_balancer = LoadBalancer(spec.name, LoadBalancerArgs(spec, launch, network, provider), opts)
    image = machine_image(spec, pulumi.InvokeOptions(parent=parent, provider=provider))
    serving = load_balancer.target_group.arn
    replicas: list[VllmReplica] | list[RayGroup]
    if spec.nodes == 1:
        replicas = [
            VllmReplica(
                spec.name, VllmReplicaArgs(spec, launch, network, identity, image, serving, provider), opts
            )
        ]
    else:
        replicas = [
            RayGroup(
                f"{spec.name}-r{index}",
                RayGroupArgs(spec, launch, network, identity, image, serving, index, provider),
                opts,
            )
            for index in range(spec.replicas)
        ]
    return Deployment(
        endpoint=load_balancer.endpoint, load_balancer=load_balancer, replicas=replicas, network=network
    )
