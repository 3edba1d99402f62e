"""The stack's weight cache on AWS: a private S3 bucket the replicas fill once and read after."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws.s3 as s3

from components.service_spec import ServiceSpec

#: ``bucket_prefix`` is at most 37 characters, lowercase (pulumi_aws s3.Bucket; S3 bucket naming rules:
#: 3-63 characters of a-z, 0-9, '.', '-'); the provider appends a unique suffix.
BUCKET_PREFIX_MAX = 37


def bucket_prefix(spec: ServiceSpec) -> str:
    """``<service name>-w-``, the name cut so the prefix fits S3's 37 characters."""
    return f"{spec.name[: BUCKET_PREFIX_MAX - 3].rstrip('-')}-w-"


@dataclass(frozen=True, kw_only=True)
class WeightCacheArgs:
    spec: ServiceSpec


class WeightCache(pulumi.ComponentResource):
    """An S3 bucket in the stack's region that only the replicas' role may use.

    Private by construction: Block Public Access with all four settings, object ownership
    ``BucketOwnerEnforced`` (ACLs disabled: IAM alone decides), server-side encryption with S3-managed
    keys (SSE-S3, AES256; no KMS grant to manage). The replicas' role may get, put and list in this bucket
    and nothing else (identity.py: ``weight_cache_statements``). ``force_destroy``: ``pulumi destroy``
    empties and deletes it (the files come back from the Hub).

    The three configuration writes go one after the other (``depends_on``): S3 answers concurrent
    configuration writes on a new bucket with ``409 OperationAborted: A conflicting conditional operation
    is currently in progress`` (terraform-aws-modules/terraform-aws-s3-bucket#101,
    hashicorp/terraform-provider-aws#36873), and Pulumi would otherwise issue them in parallel.
    """

    bucket: s3.Bucket
    public_access_block: s3.BucketPublicAccessBlock
    ownership: s3.BucketOwnershipControls
    encryption: s3.BucketServerSideEncryptionConfiguration
    url: pulumi.Output[str]  # s3://BUCKET

    def __init__(self, name: str, args: WeightCacheArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm:aws:WeightCache", name, None, opts)
        spec = args.spec
        child = pulumi.ResourceOptions(parent=self)
        self.bucket = s3.Bucket(
            f"{name}-weights", bucket_prefix=bucket_prefix(spec), force_destroy=True, opts=child
        )
        self.public_access_block = s3.BucketPublicAccessBlock(
            f"{name}-weights-private",
            bucket=self.bucket.bucket,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        self.ownership = s3.BucketOwnershipControls(
            f"{name}-weights-ownership",
            bucket=self.bucket.bucket,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.public_access_block]),
        )
        self.encryption = s3.BucketServerSideEncryptionConfiguration(
            f"{name}-weights-encryption",
            bucket=self.bucket.bucket,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.ownership]),
        )
        self.url = self.bucket.bucket.apply(lambda bucket: f"s3://{bucket}")
        self.register_outputs({"bucket": self.bucket.bucket})
