"""Names GCP checks but the mock runtime does not: every Compute Engine resource and Cloud Storage bucket.

Compute Engine resource names are 1-63 characters of ``[a-z]([-a-z0-9]*[a-z0-9])?`` (RFC 1035; the SDK's
docstrings, e.g. ``pulumi_gcp.compute.RegionAutoscaler`` ``name``), and a bucket name at most 63 (Cloud
Storage "Bucket naming rules"). The program leaves these names to Pulumi's auto-naming, which appends
``-`` and 7 random characters to the resource's logical name (pulumi-terraform-bridge ``AutoName``:
``Randlen: 7``; pulumi-gcp's ``lowercaseAutoName``: ``Maxlen: 63``, so a longer result fails at preview).
Auto-naming keeps create-before-delete replacements (an instance template on every change) from colliding,
so the program keeps it and fits the logical name instead: at most 55 characters.

``autoname`` leaves every name that fits as it is (the presets' and any short stack's, so their URNs never
change), and shortens the rest to ``<start of base>-<hash>-<end of base>-<role>``: the stack's start, the
region and purchase option at the base's end and the role stay readable, and the hash of the whole name
keeps long names that share a prefix apart.
"""

from __future__ import annotations

import hashlib
import re

#: Compute Engine's RFC 1035 name rule (1-63 characters).
COMPUTE_NAME = re.compile(r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$")
COMPUTE_NAME_MAX = 63
#: What Pulumi's auto-naming appends: ``-`` and 7 random hex characters.
AUTONAME_SUFFIX_LENGTH = 8
LOGICAL_NAME_MAX = COMPUTE_NAME_MAX - AUTONAME_SUFFIX_LENGTH
HASH_LENGTH = 8


def autoname(base: str, role: str) -> str:
    """The logical name ``<base>-<role>`` of a resource Pulumi auto-names, cut so that the physical name
    (with its random suffix) fits GCP's 63 characters. ValueError for a role too long to leave a base."""
    name = f"{base}-{role}"
    if len(name) <= LOGICAL_NAME_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:HASH_LENGTH]
    room = LOGICAL_NAME_MAX - len(role) - HASH_LENGTH - 3  # three separators
    head = base[: (room + 1) // 2].rstrip("-") if room > 1 else ""
    tail = base[len(base) - room // 2 :].strip("-") if room > 1 else ""
    if not head or not tail:
        raise ValueError(f"GCP resource role {role!r} leaves no room for a name within {LOGICAL_NAME_MAX}")
    return f"{head}-{digest}-{tail}-{role}"


#: Cloud Storage refuses bucket names that contain "google" or a close misspelling such as "g00gle"
#: (Cloud Storage "Bucket naming rules"); a stack name may well contain it.
GOOGLE_LIKE = re.compile(r"g[o0]{2}g[l1]e")


def bucket_autoname(base: str, role: str) -> str:
    """``autoname`` for a Cloud Storage bucket: "google" and its look-alikes become "ggl"."""
    return autoname(GOOGLE_LIKE.sub("ggl", base), role)
