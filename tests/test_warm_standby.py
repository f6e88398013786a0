"""The warm standby: certificates before any incident, two ways to fail over, the VPS open to whom each
state needs, and an order that follows the mode. The real program under the mock engine."""

from __future__ import annotations

import datetime
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mana_infra import plan as offline
from mana_infra.components.certificates import certificate_sha256
from mana_infra.errors import InputError
from mana_infra.program import Standby
from mana_infra.render.caddyfile import ORIGIN_CERTIFICATE, PUBLIC_CERTIFICATE
from mana_infra.render.remote import caddy_command

from .support import by_name, plan_in, plan_of, with_standby


def test_an_origin_ca_certificate_for_the_zone_and_its_hosts_with_its_key_in_the_state() -> None:
    resources = by_name(plan_of("prod"))
    key = resources["certificates-origin-key"]
    assert (key.type, key.inputs["algorithm"], key.inputs["ecdsaCurve"]) == (
        "tls:index/privateKey:PrivateKey", "ECDSA", "P256"
    )  # fmt: skip
    request = resources["certificates-origin-request"]
    assert request.inputs["privateKeyPem"] == offline.SECRET and request.inputs["dnsNames"] == [
        "mana.how",
        "*.mana.how",
    ]
    origin = resources["certificates-origin"]
    assert origin.type == "cloudflare:index/originCaCertificate:OriginCaCertificate"
    # Cloudflare's order (sorted, the wildcard first): a refresh reads it back and must find no change.
    assert origin.inputs["hostnames"] == ["*.mana.how", "mana.how"]
    assert (origin.inputs["requestType"], origin.inputs["requestedValidity"]) == ("origin-ecc", 5475)  # 15 years


def test_a_public_certificate_by_dns01_renewed_a_third_ahead_the_token_kept_off_the_vps() -> None:
    resources = by_name(plan_of("prod"))
    provider = resources["certificates-acme"]
    assert provider.type == "pulumi:providers:acme"
    assert provider.inputs["serverUrl"] == "https://acme-v02.api.letsencrypt.org/directory"
    public = resources["certificates-public"]
    assert public.type == "acme:index/certificate:Certificate"
    assert (public.inputs["commonName"], public.inputs["subjectAlternativeNames"]) == ("mana.how", ["*.mana.how"])
    # A third of its lifetime ahead, whatever the lifetime (90 days today, 45 by 2028).
    assert public.inputs["minDaysDynamic"] is True and "minDaysRemaining" not in public.inputs
    assert public.inputs["keyType"] == "P256"
    # Another directory is another CA: the provider is replaced with it, and so are account and certificate.
    assert provider.options["replaceOnChanges"] == ["serverUrl"]
    for account_or_certificate in (public, resources["certificates-acme-account"]):
        assert account_or_certificate.options["replacementTrigger"] == provider.inputs["serverUrl"]
    [challenge] = public.inputs["dnsChallenges"]
    assert challenge["provider"] == "cloudflare" and challenge["config"] == {"CF_DNS_API_TOKEN": offline.SECRET}
    # The token the challenge uses is the stack's Cloudflare token, and it goes nowhere near the VPS.
    assert public.revealed is not None
    token = public.revealed["dnsChallenges"][0]["config"]["CF_DNS_API_TOKEN"]
    assert token == "offline-placeholder-cloudflare-token"
    for name in ("standby-server", "caddy-apply", "certificate-public-apply", "certificate-origin-apply"):
        assert token not in json.dumps(resources[name].revealed)


UNREACHABLE = {"cloudflareReachable": "false", "cloudflareZoneId": "023e105f4ecef8ad9ca31a8372d0c353"}


def test_without_cloudflare_the_challenge_goes_to_the_hetzner_zone_with_the_hetzner_token() -> None:
    """With Cloudflare unreachable, Let's Encrypt reads the zone from Hetzner's nameservers once the
    registrar points there: the renewal's TXT record goes to the Hetzner zone, with the stack's Hetzner
    token, and nothing else of the certificate changes (no new order: the next renewal uses it)."""
    reachable = by_name(plan_of("prod"))["certificates-public"]
    public = by_name(plan_of("prod", **UNREACHABLE))["certificates-public"]
    assert public.inputs["dnsChallenges"] == [{"provider": "hetzner", "config": {"HETZNER_API_TOKEN": offline.SECRET}}]
    assert public.revealed is not None
    assert public.revealed["dnsChallenges"][0]["config"] == {"HETZNER_API_TOKEN": "offline-placeholder-hcloud-token"}
    assert {k: v for k, v in public.inputs.items() if k != "dnsChallenges"} == {
        k: v for k, v in reachable.inputs.items() if k != "dnsChallenges"
    }
    assert public.options == reachable.options


def test_without_cloudflare_every_cloudflare_resource_keeps_what_the_state_holds() -> None:
    """An untargeted `pulumi up` in the emergency (the weekly run, which renews the certificate) must not
    call Cloudflare: each Cloudflare resource ignores every change then, and only then."""
    for overrides, ignored in (({}, []), (UNREACHABLE, ["*"])):
        resources = plan_of("prod", "failover", failoverVia="dns", **overrides).resources
        at_cloudflare = [r for r in resources if r.type.startswith("cloudflare:")]
        assert len(at_cloudflare) == 27 + 4  # the hosts, the origin's A and AAAA, the tunnel's probe, Origin CA
        assert {r.name: r.options["ignoreChanges"] for r in at_cloudflare} == {r.name: ignored for r in at_cloudflare}
        assert not [
            r.name for r in resources if not r.type.startswith("cloudflare:") and "*" in r.options["ignoreChanges"]
        ]


def test_both_certificates_go_to_the_vps_through_the_apply_script_as_secrets() -> None:
    resources = by_name(plan_of("prod"))
    for kind, target in (("public", PUBLIC_CERTIFICATE), ("origin", ORIGIN_CERTIFICATE)):
        command = resources[f"certificate-{kind}-apply"]
        assert command.inputs["create"] == caddy_command(target)
        assert command.inputs["stdin"] == offline.SECRET  # the key is in it
        # No delete step: the Caddyfile refers to the file, and a replaced command's delete runs last.
        assert "delete" not in command.inputs
        assert command.inputs["triggers"] == [resources["standby-server"].id]  # a new server gets it again
        pem = command.revealed["stdin"] if command.revealed else ""
        assert pem.index("BEGIN CERTIFICATE") < pem.index("BEGIN PRIVATE KEY")  # the chain, then the key


def test_the_certificates_are_secret_and_their_ends_are_outputs() -> None:
    async def check(standby: Standby) -> None:
        assert await standby.certificates.public_pem.is_secret()
        assert await standby.certificates.origin_pem.is_secret()

    with_standby(check)
    outputs = plan_of("prod").outputs
    assert outputs["originCertificateExpiresOn"] == offline.OFFLINE_ORIGIN_CA_EXPIRY
    assert outputs["publicCertificateExpiresOn"] == offline.OFFLINE_PUBLIC_EXPIRY
    # check's renewal point is a third of the lifetime, from these two; and it says where the renewal runs.
    assert outputs["publicCertificateIssuedOn"] == offline.OFFLINE_PUBLIC_ISSUED
    assert outputs["cloudflareReachable"] is True
    assert plan_of("prod", **UNREACHABLE).outputs["cloudflareReachable"] is False


def test_the_origin_certificate_is_pinned_by_its_fingerprint_in_the_outputs() -> None:
    async def fingerprints(standby: Standby) -> tuple[str | None, str | None]:
        served = await standby.certificates.origin_pem.future()
        return certificate_sha256(served or ""), await standby.certificates.origin_sha256.future()

    of_the_served_pem, exported = with_standby(fingerprints)
    assert exported == of_the_served_pem and plan_of("prod").outputs["originCertificateSha256"] == exported


def test_a_certificate_fingerprint_is_the_sha256_of_its_der() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mana.how")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    assert (
        certificate_sha256(pem + "-----BEGIN PRIVATE KEY-----\n...") == certificate.fingerprint(hashes.SHA256()).hex()
    )


def plan_with_clouds(clouds: offline.OfflineClouds, **overrides: str) -> offline.PlanResult:
    return offline.plan("prod", overrides=overrides, clouds=clouds)


def test_the_edge_way_needs_full_strict_and_never_changes_it() -> None:
    """The zone's SSL mode is read, never set: a cut-over through the edge with another mode is refused,
    saying exactly how to set it; the other ways go on, and the outputs say what it is."""
    full = offline.OfflineClouds(ssl_mode="full")
    with pytest.raises(InputError) as caught:
        plan_with_clouds(full, mode="failover")
    [problem] = caught.value.problems
    assert problem.where == "zone mana.how"
    assert "its SSL/TLS mode is 'full': through the edge, Cloudflare must verify" in problem.message
    assert "SSL/TLS -> Overview -> Full (strict)" in str(problem.fix)
    assert "/settings/ssl" in str(problem.fix) and "pulumi config set --stack prod failoverVia dns" in str(problem.fix)
    assert plan_with_clouds(offline.OfflineClouds(ssl_mode="full"), mode="tunnel").outputs["zoneSslMode"] == "full"
    dns = plan_with_clouds(offline.OfflineClouds(ssl_mode="full"), mode="failover", failoverVia="dns")
    assert dns.outputs["zoneSslMode"] == "full"
    for state in ("tunnel", "failover", "failover-dns"):  # no state declares (and so sets) a zone setting
        assert not [r.name for r in plan_in(state).resources if r.type.startswith("cloudflare:index/zoneSetting")]


def test_through_the_edge_only_cloudflares_networks_as_the_provider_reads_them_and_the_operators() -> None:
    ranges = (("198.51.100.0/24",), ("2001:db8:cf::/48",))
    clouds = offline.OfflineClouds(ip_ranges=ranges)
    caddyfile = by_name(plan_with_clouds(clouds, mode="failover"))["caddy-apply"].inputs["stdin"]
    assert "@elsewhere not remote_ip 198.51.100.0/24 2001:db8:cf::/48 192.0.2.0/24\n" in caddyfile
    assert "cloudflare:index/getIpRanges:getIpRanges" in clouds.calls
    # The operator's networks for checks default to those allowed to SSH, and may be others.
    own = plan_of("prod", "tunnel", checkAllowedCidrs='["198.51.100.7/32"]')
    assert "@elsewhere not remote_ip 198.51.100.7/32\n" in by_name(own)["caddy-apply"].inputs["stdin"]


def test_the_ways_and_their_budget_in_the_outputs() -> None:
    tunnel = plan_in("tunnel").outputs
    assert tunnel["failoverVia"] == "edge"
    budget = tunnel["cutoverBudget"]
    assert budget["edge"]["seconds"] == 60 and "nothing waits on a TTL" in budget["edge"]["why"]
    assert budget["dns"]["seconds"] == 300 and "up to 300 s (fixed)" in budget["dns"]["why"]
    assert budget["certificates"].startswith("none to obtain")
    back = plan_in("failover-dns").outputs["cutoverBudget"]  # DNS-only records: the way back waits 60 s
    assert back["edge"]["seconds"] == 60 and back["dns"]["seconds"] == 60
    assert "failoverVia dns" in tunnel["emergencyCutover"]  # without Cloudflare, only DNS-only works


def test_a_way_that_is_not_one_is_refused() -> None:
    with pytest.raises(InputError, match=r"mana-infra:failoverVia: 'proxy' is not a way to fail over"):
        plan_of("prod", "failover", failoverVia="proxy")
