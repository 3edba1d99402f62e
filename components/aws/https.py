"""HTTPS for ``vllm:domain`` on the ALB (docs/https.md).

An ACM certificate for the domain, validated by DNS; an HTTPS:443 listener with a TLS 1.3 security policy
carrying the public path rule (``/v1/*`` and ``/health``; everything else a fixed 404), while the
HTTP:80 listener answers every request with a 301 to HTTPS. With ``vllm:dnsZone`` (a Route 53 hosted
zone id) the program writes the certificate's validation CNAME and an alias A record for the domain;
without it ``dnsRecords`` names both, and ``pulumi up`` prints the validation record as soon as ACM
gives it, then waits for the certificate to be issued (an ALB listener refuses a certificate that is not).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws.acm as acm
import pulumi_aws.lb as lb
import pulumi_aws.route53 as route53

from components.domain import HTTPS_PORT, DnsRecord, endpoint_purpose
from components.service_spec import ServiceSpec

#: AWS recommends ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09 (Elastic Load Balancing docs, "Security
#: policies for your Application Load Balancer", 2025): TLS 1.3 and 1.2 only, TLS 1.2 restricted to
#: forward-secret AEAD suites, hybrid post-quantum key exchange (ML-KEM) for clients that offer it. It
#: supersedes ELBSecurityPolicy-TLS13-1-2-2021-06; the provider's default (ELBSecurityPolicy-2016-08,
#: pulumi_aws lb.Listener docstring) still admits TLS 1.0.
SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09"
#: lb.Listener redirect ``status_code``: HTTP_301 (permanent) or HTTP_302 (pulumi_aws docstring).
REDIRECT_STATUS = "HTTP_301"
#: How long ``pulumi up`` waits for ACM to issue the certificate. ACM keeps a DNS-validated request
#: pending for 72 hours (ACM docs, "DNS validation"); without vllm:dnsZone the record is created by hand
#: while ``up`` waits, so the wait is longer than the provider's default (75 minutes).
VALIDATION_TIMEOUT = "3h"
VALIDATION_TTL_SECONDS = 300


def redirect_to_https() -> lb.ListenerDefaultActionArgsDict:
    """The HTTP:80 listener's only action: the same URL over HTTPS, permanently."""
    return {
        "type": "redirect",
        "redirect": {"protocol": "HTTPS", "port": str(HTTPS_PORT), "status_code": REDIRECT_STATUS},
    }


def validation_field(value: str | None, field: str, domain: str) -> str:
    """A field of ACM's validation CNAME: ACM sets all three for a DNS-validated certificate (the SDK types
    them optional), so a missing one is said plainly rather than sent as a record without it."""
    if value is None:
        raise ValueError(f"ACM gave the certificate for {domain} no validation record {field}")
    return value


@dataclass(frozen=True, kw_only=True)
class HttpsFrontendArgs:
    spec: ServiceSpec
    alb: lb.LoadBalancer
    # What the listener answers outside its rules (the fixed 404).
    default_actions: list[lb.ListenerDefaultActionArgsDict]


class HttpsFrontend(pulumi.ComponentResource):
    """Certificate, its validation, the 443 listener, and the Route 53 records with a zone. Children
    inherit the load balancer's provider."""

    certificate: acm.Certificate
    validation: acm.CertificateValidation
    listener: lb.Listener
    validation_record: route53.Record | None
    alias_record: route53.Record | None
    endpoint: pulumi.Output[str]
    dns_records: pulumi.Output[list[dict[str, str]]] | None  # what to create by hand; None with a zone

    def __init__(
        self, name: str, args: HttpsFrontendArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("vllm:aws:HttpsFrontend", name, None, opts)
        spec, domain, alb = args.spec, args.spec.domain, args.alb
        if domain is None:
            raise ValueError("HttpsFrontend needs vllm:domain")
        child = pulumi.ResourceOptions(parent=self)
        self.certificate = acm.Certificate(
            f"{name}-certificate",
            domain_name=domain,
            validation_method="DNS",
            tags={"Name": domain},
            # A new domain is a new certificate: Pulumi creates it (and the listener moves to it) before
            # deleting the old one, which ACM refuses to delete while a listener uses it.
            opts=child,
        )
        # One domain, one validation option: ACM's CNAME that proves control of the domain.
        option = self.certificate.domain_validation_options.apply(lambda options: options[0])
        record_name = option.apply(lambda o: validation_field(o.resource_record_name, "name", domain))
        record_type = option.apply(lambda o: validation_field(o.resource_record_type, "type", domain))
        record_value = option.apply(lambda o: validation_field(o.resource_record_value, "value", domain))
        self.validation_record = self.alias_record = None
        self.dns_records = None
        zone = spec.dns_zone.removeprefix("/hostedzone/") if spec.dns_zone else None
        if zone is not None:
            self.validation_record = route53.Record(
                f"{name}-validation",
                zone_id=zone,
                name=record_name,
                type=record_type,
                records=[record_value],
                ttl=VALIDATION_TTL_SECONDS,
                allow_overwrite=True,  # the same CNAME validates any certificate for this domain
                opts=child,
            )
        else:
            pulumi.Output.all(record_name, record_value).apply(
                lambda record: pulumi.log.info(
                    f"create the DNS record CNAME {record[0]} -> {record[1]} (ACM's validation of "
                    f"{domain}); pulumi up waits up to {VALIDATION_TIMEOUT} for the certificate",
                    self.certificate,
                )
            )
        self.validation = acm.CertificateValidation(
            f"{name}-certificate-issued",
            certificate_arn=self.certificate.arn,
            validation_record_fqdns=[self.validation_record.fqdn] if self.validation_record else None,
            opts=pulumi.ResourceOptions(
                parent=self, custom_timeouts=pulumi.CustomTimeouts(create=VALIDATION_TIMEOUT)
            ),
        )
        self.listener = lb.Listener(
            f"{name}-https",
            load_balancer_arn=alb.arn,
            port=HTTPS_PORT,
            protocol="HTTPS",
            ssl_policy=SSL_POLICY,
            certificate_arn=self.validation.certificate_arn,  # only once ACM has issued it
            default_actions=args.default_actions,
            opts=child,
        )
        if zone is not None:
            self.alias_record = route53.Record(
                f"{name}-alias",
                zone_id=zone,
                name=domain,
                type="A",
                aliases=[{"name": alb.dns_name, "zone_id": alb.zone_id, "evaluate_target_health": True}],
                opts=child,
            )
        else:
            self.dns_records = pulumi.Output.all(record_name, record_type, record_value, alb.dns_name).apply(
                lambda found: [
                    DnsRecord(
                        found[0].rstrip("."),
                        found[1],
                        found[2].rstrip("."),
                        f"ACM's validation of the certificate for {domain}: the only record ACM waits for "
                        "to issue it (keep it: renewals use it)",
                    ).as_output(),
                    # ACM validates by its CNAME alone (ACM user guide, "DNS validation"): the certificate
                    # never waits for the domain to point at the load balancer, unlike a GCP managed one.
                    DnsRecord(domain, "CNAME", found[3], endpoint_purpose(domain)).as_output(),
                ]
            )
        self.endpoint = pulumi.Output.from_input(f"https://{domain}")
        self.register_outputs({"endpoint": self.endpoint, "certificate": self.certificate.arn})
