"""The lab's certificates, made the way production gets them (no network here: files and argv only).

- The lab CA (``LocalCA``) stands in for the web PKI where it is not the point: it signs the edge's
  certificate (what Cloudflare's edge shows visitors) and pebble's API certificate. The client trusts it.
- The public certificate, for the zone and *.zone: from pebble (Let's Encrypt's test CA) by DNS-01, lego
  writing the TXT records into the lab's knot by RFC 2136 from the operator's namespace, as the
  product's ACME provider (lego inside) writes them at Cloudflare. ``public.pem`` is what the product
  installs: the certificate, its issuer chain, the key. The client trusts pebble's root.
- The Origin CA certificate, for the zone and *.zone: a CSR made here, signed by the Cloudflare
  stand-in's Origin CA (``mana_lab.clouds.origin_ca``), as ``cloudflare.OriginCaCertificate`` does.
  ``origin.pem`` is the certificate and its key. Only the edge trusts the Origin CA (Full (strict)).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mana_infra.check.core import CERTIFICATE_OUTPUTS
from mana_infra.check.report import CertificateKind
from mana_infra.model import pem_file
from mana_infra.outputs import Output

from .clouds import origin_ca
from .standins import LocalCA

ORIGIN_VALIDITY_DAYS = 5475  # what the product asks Cloudflare's Origin CA for (15 years)
# Environment of pebble: no random validation delays (a lab second is precious), no deliberately
# rejected nonces (a test of clients' retries that Let's Encrypt does not run).
# No reuse of earlier authorizations (pebble reuses half by default): every order validates its
# DNS-01 challenge, so a test of where the TXT record goes cannot pass on an old validation.
PEBBLE_ENV = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}
ORDER_LINE = "Added order"  # pebble logs this line once per new order


def zone_names(zone: str) -> list[str]:
    """The names of every certificate the standby serves, exactly as production's: the zone and *.zone
    (the program refuses a host a wildcard does not cover, so the lab cannot hide one)."""
    return [zone, f"*.{zone}"]


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@dataclass
class LabPki:
    """Everything the lab signs itself, made in ``directory`` on creation."""

    directory: Path
    zone: str
    acme_name: str = ""
    acme_ip: str = ""
    ca: LocalCA = field(init=False)
    origin_ca_pem: str = field(init=False)
    origin_pem: str = field(init=False)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        names = zone_names(self.zone)
        self.ca = LocalCA(self.directory / "lab-ca", name="mana-lab CA (the web PKI's stand-in)")
        self.edge_cert, self.edge_key = self.ca.issue("edge", names)
        if self.acme_name:
            self.acme_cert, self.acme_key = self.ca.issue("acme-api", [self.acme_name], ips=[self.acme_ip])
        # Cloudflare's Origin CA and the certificate it signs for the standby.
        ca_key_pem, self.origin_ca_pem = origin_ca.new_ca()
        key = ec.generate_private_key(ec.SECP256R1())
        request = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.COMMON_NAME, self.zone),
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mana-infra standby"),
                    ]
                )
            )
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(key, hashes.SHA256())
        )
        csr_pem = request.public_bytes(serialization.Encoding.PEM).decode()
        certificate, _serial, _expires = origin_ca.sign(
            csr_pem, names, "origin-ecc", ORIGIN_VALIDITY_DAYS, ca_key_pem, self.origin_ca_pem
        )
        self.origin_pem = pem_file([certificate, _key_pem(key)])
        self.origin_ca_path.write_text(self.origin_ca_pem)

    @property
    def ca_path(self) -> Path:
        return self.ca.cert_path

    @property
    def origin_ca_path(self) -> Path:
        return self.directory / "origin-ca.pem"


def pebble_config(path: Path, cert: Path, key: Path, listen: str, management: str) -> Path:
    """pebble's configuration file: its ACME API on ``listen`` (behind the lab's latency hop), its
    management API (roots, intermediates) on ``management``, TLS with the lab CA's certificate."""
    config = {
        "pebble": {
            "listenAddress": listen,
            "managementListenAddress": management,
            "certificate": str(cert),
            "privateKey": str(key),
            "httpPort": 80,
            "tlsPort": 443,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def lego_argv(directory_url: str, zone: str, names: Sequence[str], path: Path, resolver: str) -> list[str]:
    """lego's run: one order for the names (the zone and *.zone), DNS-01 by RFC 2136, a P-256 key (the
    product's ``key_type``), the certificate without its issuer in the same file (``--no-bundle``)."""
    return [
        "lego",
        "--server",
        directory_url,
        "--accept-tos",
        "--email",
        f"hostmaster@{zone}",
        "--key-type",
        "ec256",
        *(arg for name in names for arg in ("--domains", name)),
        "--dns",
        "rfc2136",
        "--dns.resolvers",
        resolver,
        "--path",
        str(path),
        "run",
        "--no-bundle",
    ]


def lego_env(ca_file: Path, nameserver: str) -> dict[str, str]:
    """lego's environment: trust the lab CA for pebble's API; RFC 2136 updates to the lab's knot,
    unsigned (knot's ACL names the client's address), checked at once (interval 0), one after the
    other without a pause (a sequence interval that suits Cloudflare's API, not knot)."""
    return {
        "LEGO_CA_CERTIFICATES": str(ca_file),
        "RFC2136_NAMESERVER": nameserver,
        "RFC2136_POLLING_INTERVAL": "0",
        "RFC2136_PROPAGATION_TIMEOUT": "10",
        "RFC2136_SEQUENCE_INTERVAL": "0",
        "RFC2136_TTL": "60",
        "RFC2136_DNS_TIMEOUT": "5",
    }


def public_pem(lego_path: Path, first_name: str) -> str:
    """What the product installs as public.pem: certificate, issuer chain, key (lego's three files)."""
    folder = lego_path / "certificates"
    base = first_name.replace("*", "_")
    return pem_file([(folder / f"{base}{suffix}").read_text() for suffix in (".crt", ".issuer.crt", ".key")])


def describe(pem: str) -> dict[str, Any]:
    """The first certificate of a PEM: issuer and subject (common names), names, serial, expiry,
    SHA-256 fingerprint."""
    certificate = x509.load_pem_x509_certificate(pem.encode())
    return describe_certificate(certificate)


def describe_certificate(certificate: x509.Certificate) -> dict[str, Any]:
    def common_name(name: x509.Name) -> str:
        found = name.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(found[0].value) if found else name.rfc4514_string()

    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = names.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        dns_names = []
    return {
        "issuer": common_name(certificate.issuer),
        "subject": common_name(certificate.subject),
        "names": dns_names,
        "serial": format(certificate.serial_number, "x"),
        "not_after": certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sha256": certificate.fingerprint(hashes.SHA256()).hex(),
    }


def count_orders(log: Path) -> int:
    """How many ACME orders pebble has received (its log says each once)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return 0
    return sum(ORDER_LINE in line for line in text.splitlines())


def certificate_outputs(certificates: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """The stack outputs that date the certificates and pin the Origin CA one, for the lab's own (what
    the clouds would answer)."""
    outputs = {
        output: str(certificates[kind]["not_after"])
        for kind, (output, _what) in CERTIFICATE_OUTPUTS.items()
        if certificates.get(kind, {}).get("not_after")
    }
    if certificates.get(CertificateKind.ORIGIN, {}).get("sha256"):
        outputs[Output.ORIGIN_CERTIFICATE_SHA256] = str(certificates[CertificateKind.ORIGIN]["sha256"])
    return outputs
