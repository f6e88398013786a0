"""The standby's certificates, obtained before any incident, so no cut-over waits on a certificate.

- For the way through Cloudflare's edge: a Cloudflare Origin CA certificate for the zone and *.zone
  (15 years, trusted by Cloudflare's edge alone, which verifies it in SSL mode Full (strict)). Its key
  is made here and kept in the (encrypted) state; Cloudflare signs the request.
- For the DNS-only way: a publicly trusted certificate for the zone and *.zone from an ACME CA (Let's
  Encrypt), validated by DNS-01 at the zone that answers: Cloudflare's, or with Cloudflare unreachable
  the Hetzner mirror (live once the registrar points at it). `pulumi up` renews it once a third of its
  lifetime is left (the scheduled workflow runs it weekly); one wildcard order uses one of Let's
  Encrypt's 50 certificates a week, however many hosts there are, and nothing is ordered during a
  cut-over. The DNS token stays with the ACME provider here: the VPS never sees it.

Both go to the VPS as one PEM file each (chain and key), through the same validate-swap-reload path as
the Caddyfile.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Literal, TypedDict

import pulumi
import pulumi_cloudflare as cloudflare
import pulumi_tls as tls
import pulumiverse_acme as acme

from ..model import pem_file
from .dns import cloudflare_options

# Cloudflare's longest Origin CA validity: 15 years.
ORIGIN_CA_VALIDITY_DAYS = 5475

DnsProvider = Literal["cloudflare", "hetzner"]
# lego's DNS providers (run by the ACME provider) and the variable each takes its token from: lego's
# providers/dns/cloudflare and providers/dns/hetzner (v4.35.2; HETZNER_API_TOKEN is the Cloud API's).
DNS_CHALLENGE_TOKENS: dict[DnsProvider, str] = {"cloudflare": "CF_DNS_API_TOKEN", "hetzner": "HETZNER_API_TOKEN"}


class CertificatesArgs(TypedDict):
    zone: str
    """The zone: both certificates are for the zone and *.zone (one level: every inventory host)."""
    zone_id: str
    """The Cloudflare zone's id (Origin CA certificates belong to the zone)."""
    acme_server: str
    """The ACME directory (Let's Encrypt's, or a staging or test CA's)."""
    acme_email: str | None
    """Contact for the ACME account, optional (Let's Encrypt sends no expiry e-mails since June 2025);
    a change replaces the account and the certificate."""
    dns_provider: DnsProvider
    """Where the DNS-01 challenge's TXT record goes: Cloudflare's zone, or the Hetzner mirror when
    Cloudflare is unreachable. A change is an update, not a new certificate: the next renewal uses it."""
    dns_token: pulumi.Input[str]
    """That provider's API token (secret)."""
    cloudflare_reachable: bool
    """False: the Origin CA certificate keeps what the state holds, with no call to Cloudflare."""


class Certificates(pulumi.ComponentResource):
    """The Origin CA certificate and the public certificate, each as one PEM (chain, then key)."""

    origin_pem: pulumi.Output[str]
    origin_expires_on: pulumi.Output[str]
    origin_sha256: pulumi.Output[str]
    public_pem: pulumi.Output[str]
    public_expires_on: pulumi.Output[str]
    public_issued_on: pulumi.Output[str]

    def __init__(self, name: str, args: CertificatesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mana-infra:index:Certificates", name, None, opts)
        zone = args["zone"]
        names = [zone, f"*.{zone}"]

        origin, origin_key = self._origin(name, names, args)
        public = self._public(name, names, args)

        self.origin_pem = pulumi.Output.secret(
            pulumi.Output.all(origin.certificate, origin_key.private_key_pem).apply(pem_file)
        )
        self.origin_expires_on = origin.expires_on
        self.origin_sha256 = origin.certificate.apply(certificate_sha256)
        self.public_pem = pulumi.Output.secret(
            pulumi.Output.all(public.certificate_pem, public.issuer_pem, public.private_key_pem).apply(pem_file)
        )
        self.public_expires_on = public.certificate_not_after
        # With the expiry it gives the lifetime, which check needs: a third of it is the renewal point.
        self.public_issued_on = public.certificate_not_before
        self.register_outputs(
            {
                "origin_expires_on": self.origin_expires_on,
                "origin_sha256": self.origin_sha256,
                "public_expires_on": self.public_expires_on,
                "public_issued_on": self.public_issued_on,
            }
        )

    def _origin(
        self, name: str, names: list[str], args: CertificatesArgs
    ) -> tuple[cloudflare.OriginCaCertificate, tls.PrivateKey]:
        """The Cloudflare Origin CA certificate (the edge way), its key made here."""
        zone, child = names[0], pulumi.ResourceOptions(parent=self)
        origin_key = tls.PrivateKey(f"{name}-origin-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        request = tls.CertRequest(
            f"{name}-origin-request",
            private_key_pem=origin_key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(common_name=zone, organization="mana-infra standby"),
            dns_names=names,
            opts=child,
        )
        origin = cloudflare.OriginCaCertificate(
            f"{name}-origin",
            csr=request.cert_request_pem,
            # In Cloudflare's own order: it answers them sorted (the wildcard first), and the provider
            # replaces the certificate when a refresh finds another order than the program's
            # (cloudflare/terraform-provider-cloudflare#6239).
            hostnames=sorted(names),
            request_type="origin-ecc",
            requested_validity=ORIGIN_CA_VALIDITY_DAYS,
            opts=cloudflare_options(child, args["cloudflare_reachable"]),
        )
        return origin, origin_key

    def _public(self, name: str, names: list[str], args: CertificatesArgs) -> acme.Certificate:
        """The publicly trusted certificate from the ACME directory (the DNS-only way), by DNS-01."""
        zone = names[0]
        # Another ACME directory (staging, then production) is another CA: its account and certificate
        # cannot carry over. Replacing the provider replaces both; the old ones are deleted through the
        # old provider, so the old certificate is revoked (and the account deactivated) at its own CA.
        provider = acme.Provider(
            f"{name}-acme",
            server_url=args["acme_server"],
            opts=pulumi.ResourceOptions(parent=self, replace_on_changes=["serverUrl"]),
        )
        # The engine replaces neither with the provider: the directory is their replacement trigger.
        acme_child = pulumi.ResourceOptions(parent=self, provider=provider, replacement_trigger=args["acme_server"])
        account = acme.Registration(
            f"{name}-acme-account",
            account_key_algorithm="ECDSA",
            account_key_ecdsa_curve="P256",
            email_address=args["acme_email"],
            opts=acme_child,
        )
        public = acme.Certificate(
            f"{name}-public",
            account_key_pem=account.account_key_pem,
            common_name=zone,
            subject_alternative_names=names[1:],
            key_type="P256",
            # Renewed once a third of its lifetime is left (30 of 90 days; about 21 of the 64 days from
            # February 2027; 15 of the 45 from February 2028): the weekly deploy run renews it with two
            # runs to spare.
            min_days_dynamic=True,
            dns_challenges=[
                acme.CertificateDnsChallengeArgs(
                    provider=args["dns_provider"],
                    config={DNS_CHALLENGE_TOKENS[args["dns_provider"]]: pulumi.Output.secret(args["dns_token"])},
                )
            ],
            opts=acme_child,
        )
        return public


def certificate_sha256(pem: str) -> str:
    """The SHA-256 fingerprint (hex) of the first certificate in ``pem``: what `mana-infra check` pins
    the Origin CA certificate by, since no trust store it has holds Cloudflare's Origin CA."""
    body = pem.split("-----BEGIN CERTIFICATE-----", 1)[1].split("-----END CERTIFICATE-----", 1)[0]
    return hashlib.sha256(base64.b64decode("".join(body.split()))).hexdigest()
