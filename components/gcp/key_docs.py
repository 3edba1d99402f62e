"""What each of GCP's keys means, and its default: the rows tools/docs.py generates into the key tables
of docs/configuration.md (links are relative to docs/)."""

#: Each key of platform.py's ``keys`` (``vllm:``) and ``provider_keys``: (meaning, default).
KEYS: dict[str, tuple[str, str]] = {
    "bootImage": (
        "GCP only: a dated Deep Learning VM image (driver >= 580), see [GCP](gcp.md)",
        "the family's newest image",
    ),
    "regions": (
        "GCP: regions the replicas spread over behind the one global load balancer, a list "
        '(`["us-central1", "us-east4"]`); AWS and Kubernetes refuse it',
        "`gcp:region` alone",
    ),
    "gcp:project": (
        "the GCP project the stack deploys into",
        "the provider's own default (gcloud's)",
    ),
    "gcp:region": (
        "the region; with `vllm:regions`, one of them, which keeps the stack's regional resources",
        "`us-central1`",
    ),
    "gcp:zone": (
        "pins every VM to one zone, which must sell the machine",
        "the region's zones that sell the machine",
    ),
    "affinityHeader": (
        "a request header (`x-session-id`) whose value keeps a conversation on one replica (consistent "
        "hashing: affinity, not load-aware routing); see [Routing](routing.md)",
        "none: least-request balancing",
    ),
}
