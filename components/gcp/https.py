"""HTTPS for ``vllm:domain`` on the global external Application LB (docs/https.md).

The public URL map (``/v1/*`` and ``/health`` only, Cloud Armor on its backend service) serves port 443
through a ``TargetHttpsProxy`` with a Google-managed certificate for the domain and an SSL policy of TLS
1.2 or later; port 80 keeps its forwarding rule and proxy, which now use a second URL map that answers
every request with a 301 to the same URL over HTTPS (``defaultUrlRedirect.httpsRedirect``, which GCP
allows only on maps of target HTTP proxies) and reaches no backend.

A Google-managed certificate provisions only once the domain's A record resolves to the load balancer's
address, and then "can take up to 60 minutes" (GCP docs, "Use Google-managed SSL certificates"): until
it is ACTIVE, HTTPS handshakes fail and ``tools.status`` says the certificate is not ready. With
``vllm:dnsZone`` the record is a Cloud DNS record set in that managed zone; without it ``dnsRecords``
names it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp.compute as compute
import pulumi_gcp.dns as dns

from components.domain import HTTPS_PORT, DnsRecord, endpoint_purpose
from components.gcp.names import autoname
from components.service_spec import ServiceSpec

#: compute.SSLPolicy (pulumi_gcp docstring): ``min_tls_version`` one of TLS_1_0 (the default), TLS_1_1,
#: TLS_1_2, TLS_1_3; ``profile`` COMPATIBLE (the default), MODERN, RESTRICTED, CUSTOM, FIPS_202205.
#: RESTRICTED keeps only AEAD forward-secret suites under TLS 1.2 (GCP docs, "SSL policies overview").
MIN_TLS_VERSION = "TLS_1_2"
TLS_PROFILE = "RESTRICTED"
#: URLMap defaultUrlRedirect.redirectResponseCode: MOVED_PERMANENTLY_DEFAULT is 301 (pulumi_gcp docstring).
REDIRECT_CODE = "MOVED_PERMANENTLY_DEFAULT"
#: The A record's TTL: short, so moving the address (a recreated stack) reaches clients within minutes.
DNS_TTL_SECONDS = 300


@dataclass(frozen=True, kw_only=True)
class HttpsFrontendArgs:
    spec: ServiceSpec
    url_map: compute.URLMap  # the public map (/v1/* and /health only)
    address: compute.GlobalAddress  # the global static address both forwarding rules use


class HttpsFrontend(pulumi.ComponentResource):
    """Certificate, SSL policy, HTTPS proxy and 443 forwarding rule; the redirect map for port 80; the A
    record when the zone is given. Children inherit the load balancer's provider."""

    certificate: compute.ManagedSslCertificate
    ssl_policy: compute.SSLPolicy
    proxy: compute.TargetHttpsProxy
    forwarding_rule: compute.GlobalForwardingRule
    redirect_map: compute.URLMap
    record: dns.RecordSet | None
    endpoint: pulumi.Output[str]
    dns_records: pulumi.Output[list[dict[str, str]]] | None  # what to create by hand; None with a zone

    def __init__(
        self, name: str, args: HttpsFrontendArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("vllm:gcp:HttpsFrontend", name, None, opts)
        spec, domain = args.spec, args.spec.domain
        if domain is None:
            raise ValueError("HttpsFrontend needs vllm:domain")
        child = pulumi.ResourceOptions(parent=self)
        # Auto-named: a new domain is a new certificate, created before the proxy moves to it (a managed
        # certificate's domains cannot change in place).
        self.certificate = compute.ManagedSslCertificate(
            autoname(name, "certificate"),
            description=f"vLLM stack {spec.stack}: {domain}",
            type="MANAGED",
            managed={"domains": [domain]},
            opts=child,
        )
        self.ssl_policy = compute.SSLPolicy(
            autoname(name, "tls"),
            description="TLS 1.2 or later, forward-secret AEAD ciphers only",
            min_tls_version=MIN_TLS_VERSION,
            profile=TLS_PROFILE,
            opts=child,
        )
        self.proxy = compute.TargetHttpsProxy(
            autoname(name, "https-proxy"),
            url_map=args.url_map.id,
            ssl_certificates=[self.certificate.id],
            ssl_policy=self.ssl_policy.id,
            opts=child,
        )
        self.forwarding_rule = compute.GlobalForwardingRule(
            autoname(name, "https"),
            target=self.proxy.id,
            ip_address=args.address.address,
            ip_protocol="TCP",
            port_range=str(HTTPS_PORT),
            load_balancing_scheme="EXTERNAL_MANAGED",
            opts=child,
        )
        self.redirect_map = compute.URLMap(
            autoname(name, "to-https"),
            description=f"Port 80: every request answered with a 301 to https://{domain}",
            default_url_redirect={
                "https_redirect": True,
                "strip_query": False,
                "redirect_response_code": REDIRECT_CODE,
            },
            opts=child,
        )
        self.record = None
        self.dns_records = None
        if spec.dns_zone is not None:
            self.record = dns.RecordSet(
                f"{name}-dns",
                managed_zone=spec.dns_zone,
                name=f"{domain}.",  # Cloud DNS names are absolute, with the trailing dot
                type="A",
                ttl=DNS_TTL_SECONDS,
                rrdatas=[args.address.address],
                opts=child,
            )
        else:
            self.dns_records = args.address.address.apply(
                lambda ip: [DnsRecord(domain, "A", ip, endpoint_purpose(domain, issuance=True)).as_output()]
            )
        self.endpoint = pulumi.Output.from_input(f"https://{domain}")
        self.register_outputs({"endpoint": self.endpoint, "certificate": self.certificate.id})
