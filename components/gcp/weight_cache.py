"""The stack's weight cache on GCP: a private Cloud Storage bucket the replicas fill once and read after."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp.storage as storage

from components.gcp.identity import ServiceIdentity
from components.gcp.names import bucket_autoname
from components.service_spec import ServiceSpec

#: Read, create, overwrite and delete objects, and list them (storage.objects.*, no bucket or IAM
#: permissions): what scripts/weight_cache.sh does (Cloud Storage IAM roles, "Storage Object User").
OBJECT_USER = "roles/storage.objectUser"
#: storage.buckets.get (and storage.objects.list), which objectUser lacks: `gcloud storage rsync` reads the
#: bucket's metadata before it lists or copies ("IAM permissions for gcloud storage commands",
#: cloud.google.com/storage/docs/access-control/iam-gcloud), so without it the fill and every copy fail
#: with 403 and the replicas fall back to the Hub. The narrowest predefined role that has it ("Storage
#: Legacy Bucket Reader": list the bucket's contents, read its metadata without its IAM policy; Cloud Storage
#: IAM roles), granted on this bucket alone. tests/test_boot_weights.py runs the script's commands against
#: the permissions of the two roles.
BUCKET_READER = "roles/storage.legacyBucketReader"


@dataclass(frozen=True, kw_only=True)
class WeightCacheArgs:
    spec: ServiceSpec
    identity: ServiceIdentity


class WeightCache(pulumi.ComponentResource):
    """A bucket in the replicas' region that only the replicas' service account may use.

    Private by construction: uniform bucket-level access (no object ACLs, IAM alone decides),
    public access prevention enforced (no allUsers / allAuthenticatedUsers grant can take effect), and
    Cloud Storage's default encryption at rest with Google-managed keys. ``objectUser`` and
    ``legacyBucketReader`` are granted on this bucket alone. Regional, with the VMs: reads from it cost no
    egress and run at the VMs' network bandwidth. ``force_destroy``: ``pulumi destroy`` deletes the files
    and the bucket (they come back from the Hub); soft delete is off, so deleted weights are not kept (and
    billed) for 7 days.
    """

    bucket: storage.Bucket
    grant: storage.BucketIAMMember
    bucket_reader: storage.BucketIAMMember
    url: pulumi.Output[str]  # gs://BUCKET

    def __init__(self, name: str, args: WeightCacheArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm:gcp:WeightCache", name, None, opts)
        spec = args.spec
        child = pulumi.ResourceOptions(parent=self)
        # Auto-named (resource name + a random suffix): bucket names are global across all of GCS.
        self.bucket = storage.Bucket(
            bucket_autoname(name, "weights"),
            location=spec.region,
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            # 0 turns soft delete off (Cloud Storage soft delete: 0, or 7-90 days).
            soft_delete_policy={"retention_duration_seconds": 0},
            force_destroy=True,
            labels={"app": "vllm", "stack": spec.name},
            opts=child,
        )
        self.grant = storage.BucketIAMMember(
            f"{name}-weights-user",
            bucket=self.bucket.name,
            role=OBJECT_USER,
            member=args.identity.account.member,
            opts=child,
        )
        self.bucket_reader = storage.BucketIAMMember(
            f"{name}-weights-bucket-reader",
            bucket=self.bucket.name,
            role=BUCKET_READER,
            member=args.identity.account.member,
            opts=child,
        )
        self.url = self.bucket.url
        self.register_outputs({"bucket": self.bucket.name})
