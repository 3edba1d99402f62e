"""Names AWS checks but the mock runtime does not: ELB names and EC2 descriptions.

ELBv2 load balancer and target group names: at most 32 characters, alphanumerics and hyphens, no hyphen
at either end (``CreateLoadBalancer``/``CreateTargetGroup`` ``Name``). Pulumi's auto-name adds ``-`` and 7
characters to the resource name, so ``vllm-aws-h200-multinode-r0-head`` fails at preview and any
single-node stack name over 10 characters too: every ELB resource gets an explicit name here.

A ``name`` change replaces a target group or load balancer, and Pulumi replaces by creating the new one
first: with a fixed name the create collides with the old one still in use by its listener. So the name
carries a short hash of the stack, the role and every property whose change forces a replacement (a
target group's port, protocol, target type and VPC; a load balancer's type, scheme and, for an NLB, its
subnets): whatever replaces a resource also renames it, and create-before-delete never collides.

Lambda function names: at most 64 characters of ``[a-zA-Z0-9-_]`` (Lambda API CreateFunction
``FunctionName``, read 2026-12-08; the 140 it allows counts a whole ARN): ``lambda_name`` keeps within it
the same way, and is known at preview time so the function's log group can be declared before it.

EC2 security group and rule descriptions accept only ``a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*``
(``AuthorizeSecurityGroupIngress``/``Egress``, ``CreateSecurityGroup``): an apostrophe passes preview and
fails ``pulumi up`` (terraform-provider-aws#18874).
"""

from __future__ import annotations

import hashlib
import re

from components.service_spec import ServiceSpec

ELB_NAME_MAX = 32
ELB_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?$")
HASH_LENGTH = 8
LAMBDA_NAME_MAX = 64
LAMBDA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
EC2_DESCRIPTION = re.compile(r"^[a-zA-Z0-9. _\-:/()#,@\[\]+=&;{}!$*]*$")
EC2_DESCRIPTION_MAX = 255


def elb_name(spec: ServiceSpec, role: str, *replaced_by: object) -> str:
    """``<stack slug>-<role>-<hash>``, at most 32 characters: the slug gives way, the hash never does.

    ``replaced_by``: the values whose change replaces the resource (see the module docstring).
    """
    identity = "\0".join([spec.stack, role, *(str(value) for value in replaced_by)])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:HASH_LENGTH]
    room = ELB_NAME_MAX - len(role) - len(digest) - 2
    slug = re.sub(r"-+", "-", spec.name)[:room].strip("-")
    name = f"{slug}-{role}-{digest}" if slug else f"{role}-{digest}"
    if not ELB_NAME.match(name):
        raise ValueError(f"ELB name {name!r} breaks AWS's rule (role {role!r} too long?)")
    return name


def lambda_name(spec: ServiceSpec, role: str) -> str:
    """``<stack slug>-<role>-<hash of the stack and role>``, at most 64 characters (module docstring)."""
    digest = hashlib.sha256(f"{spec.stack}\0{role}".encode()).hexdigest()[:HASH_LENGTH]
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", spec.name)[: LAMBDA_NAME_MAX - len(role) - len(digest) - 2]
    name = f"{slug.strip('-')}-{role}-{digest}" if slug.strip("-") else f"{role}-{digest}"
    if not LAMBDA_NAME.match(name):
        raise ValueError(f"Lambda function name {name!r} breaks AWS's rule (role {role!r} too long?)")
    return name


def ec2_description(text: str) -> str:
    """``text`` unchanged when EC2 accepts it as a security group or rule description, else ValueError."""
    if len(text) > EC2_DESCRIPTION_MAX or not EC2_DESCRIPTION.match(text):
        raise ValueError(
            f"EC2 description {text!r} uses characters outside a-zA-Z0-9. _-:/()#,@[]+=&;{{}}!$*"
        )
    return text
