"""The stand-in's Origin CA: a key and a self-signed CA certificate kept in the Cloudflare stand-in's
state, and the signing of a CSR the way Cloudflare's Origin CA issues origin certificates."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .server import utc_now

CA_SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CloudFlare, Inc."),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "CloudFlare Origin SSL ECC Certificate Authority"),
        x509.NameAttribute(NameOID.LOCALITY_NAME, "San Francisco"),
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "California"),
        x509.NameAttribute(NameOID.COMMON_NAME, "CloudFlare Origin SSL ECC CA (mana-lab stand-in)"),
    ]
)
LEAF_SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CloudFlare, Inc."),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "CloudFlare Origin CA"),
        x509.NameAttribute(NameOID.COMMON_NAME, "CloudFlare Origin Certificate"),
    ]
)


class CsrError(ValueError):
    """The CSR cannot be used: not PEM, a bad signature, or a key that does not fit the request type."""


def self_signed_ca(
    key: ec.EllipticCurvePrivateKey, subject: x509.Name, not_before: datetime, not_after: datetime
) -> x509.Certificate:
    """A root CA certificate for ``key``: signs certificates and CRLs, any path length."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def new_ca() -> tuple[str, str]:
    """A fresh CA: (private key PEM, certificate PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = utc_now()
    certificate = self_signed_ca(key, CA_SUBJECT, now - timedelta(days=1), now + timedelta(days=365 * 20))
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM).decode()


def sign(
    csr_pem: str, hostnames: Sequence[str], request_type: str, validity_days: int, ca_key_pem: str, ca_cert_pem: str
) -> tuple[str, int, datetime]:
    """Sign the CSR for the hostnames: (certificate PEM, serial number, expiry)."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError as error:
        raise CsrError(f"the CSR cannot be decoded: {error}") from None
    if not csr.is_signature_valid:
        raise CsrError("the CSR's signature is invalid")
    public_key = csr.public_key()
    if request_type == "origin-rsa" and not isinstance(public_key, rsa.RSAPublicKey):
        raise CsrError("request_type origin-rsa needs an RSA key in the CSR")
    if request_type == "origin-ecc" and not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise CsrError("request_type origin-ecc needs an ECDSA key in the CSR")
    if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise CsrError("the CSR's key must be RSA or ECDSA")
    ca_key = serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the stand-in's CA key is not an ECDSA key")
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    now = utc_now().replace(microsecond=0)
    expires = now + timedelta(days=validity_days)
    serial = int.from_bytes(secrets.token_bytes(8), "big") >> 1 or 1
    certificate = (
        x509.CertificateBuilder()
        .subject_name(LEAF_SUBJECT)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(expires)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name) for name in hostnames]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode(), serial, expires
