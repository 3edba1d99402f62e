"""HTTPS with a custom domain (``vllm:domain``, ``vllm:dnsZone``): shared rules, read by every platform.

Without a domain the endpoint is plain HTTP, and the Bearer key, every prompt and every completion cross
the network in cleartext: ``pulumi up`` warns, and the policy pack's advisory says the same. With one,
each platform terminates TLS for it (GCP: a Google-managed certificate on the HTTPS proxy; AWS: an ACM
certificate on the ALB's 443 listener; Kubernetes: vLLM itself, from ``vllm:tlsSecretName``, or the
user's Ingress/Gateway), answers port 80 with a redirect to HTTPS where it owns a load balancer, and
the ``endpoint`` output is ``https://<domain>``. With ``vllm:dnsZone`` the program writes the DNS record
(and on AWS the certificate's validation records); without it ``dnsRecords`` lists what to create.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import pulumi

from components.config import PROJECT, SpecError

#: RFC 1123 section 2.1 / RFC 1035 section 2.3.4: a host name is at most 253 characters (255 octets on the
#: wire), in labels of 1-63 letters, digits and hyphens that neither start nor end with a hyphen (RFC 1123
#: allows a leading digit). ACM's DomainName is 1-253 characters too (ACM API RequestCertificate).
HOSTNAME_MAX = 253
LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
#: Public CAs (Google's, Amazon's, Let's Encrypt) issue only for a registrable name: a single label
#: (``localhost``) or a name under a numeric top-level label (an IP address) gets no certificate.
TOP_LABEL = re.compile(r"[a-z]")
HTTPS_PORT = 443
HTTP_PORT = 80
#: Google-managed certificates: provisioning starts once the domain's A record resolves to the load
#: balancer's address, and "can take up to 60 minutes" after that (GCP docs, "Use Google-managed SSL
#: certificates", Provisioning); ACM's DNS validation usually completes within minutes of the CNAME
#: resolving, and keeps waiting up to 72 hours (ACM docs, "DNS validation").
GCP_CERTIFICATE_MINUTES = 60

CLEARTEXT_WARNING = (
    f"{PROJECT}:domain is not set: the endpoint is plain HTTP, so the API key and every prompt and "
    f"completion cross the network in cleartext. Set {PROJECT}:domain (and {PROJECT}:dnsZone) to serve "
    "HTTPS: docs/https.md"
)


def parse_domain(text: str | None) -> str | None:
    """``vllm:domain``: a bare host name such as ``llm.example.com`` (lower-cased), or None when unset.

    Refused: a scheme (``https://...``), a port, a path, a wildcard (``*.example.com``: no Google-managed
    or per-host certificate is one), an IP address, a single label, and anything outside RFC 1123.
    """
    if text is None:
        return None
    key, valid = f"{PROJECT}:domain", "a bare host name such as llm.example.com"
    name = text.strip().lower().removesuffix(".")  # an absolute name's trailing dot means the same host
    if "://" in name:
        raise SpecError(key, text, f"{valid}, without a scheme (the endpoint is https://<domain>)")
    if "/" in name or "?" in name or "#" in name:
        raise SpecError(key, text, f"{valid}, without a path")
    if ":" in name and not _is_ip(name):
        raise SpecError(key, text, f"{valid}, without a port (HTTPS is served on 443)")
    if "*" in name:
        raise SpecError(key, text, f"{valid}, not a wildcard (the certificate is for one host)")
    if _is_ip(name):
        raise SpecError(key, text, f"{valid}, not an IP address (certificates name a host)")
    labels = name.split(".")
    if len(name) > HOSTNAME_MAX or not all(LABEL.match(label) for label in labels):
        raise SpecError(
            key,
            text,
            f"{valid}: at most {HOSTNAME_MAX} characters, dot-separated labels of 1-63 letters, digits and "
            "hyphens, no hyphen at either end of a label (RFC 1123)",
        )
    if len(labels) < 2 or not TOP_LABEL.search(labels[-1]):
        raise SpecError(key, text, f"{valid}: a name under a public domain (a CA issues no certificate)")
    return name


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class DnsRecord:
    """A DNS record the user creates at their DNS provider (``dnsRecords`` output)."""

    name: str  # fully qualified, without the trailing dot
    type: str  # A, CNAME
    value: str
    purpose: str

    def as_output(self) -> dict[str, str]:
        return {"name": self.name, "type": self.type, "value": self.value, "purpose": self.purpose}


def endpoint_purpose(domain: str, issuance: bool = False) -> str:
    """What the domain's own record is for; ``issuance``: the managed certificate waits for it too."""
    why = " (clients, and the managed certificate's issuance, which waits for it)" if issuance else ""
    return f"points {domain} at the load balancer{why}"


def warn_without_domain(domain: str | None) -> None:
    """``pulumi up`` (and preview) print this when a public endpoint stays plain HTTP (each platform's
    ``build`` calls it for its internet-facing load balancer)."""
    if domain is None:
        pulumi.log.warn(CLEARTEXT_WARNING)
