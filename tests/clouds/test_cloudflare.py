"""The Cloudflare API stand-in over HTTP, called the way cloudflare-go (v7) calls the real API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mana_lab.clouds.cloudflare import CloudflareApi
from mana_lab.clouds.server import StandInServer

from .conftest import CLOUDFLARE_TOKEN, Reply, Running


def errors_of(reply: Reply) -> list[dict[str, Any]]:
    assert reply.body["success"] is False and reply.body["result"] is None, reply.body
    assert reply.body["messages"] == []
    return list(reply.body["errors"])


def codes(reply: Reply) -> list[int]:
    return [error["code"] for error in errors_of(reply)] + [
        chained["code"] for error in errors_of(reply) for chained in error.get("error_chain", [])
    ]


def zone_id(api: Running) -> str:
    reply = api("GET", "/zones?name=mana.how&match=all")
    assert reply.status == 200 and reply.body["success"] is True
    assert len(reply.body["result"]) == 1
    return str(reply.body["result"][0]["id"])


def record(api: Running, **body: Any) -> Reply:
    return api("POST", f"/zones/{zone_id(api)}/dns_records", {"ttl": 1, **body})


def test_tokens_are_checked_like_the_api_does() -> None:
    api = CloudflareApi(zones=["mana.how"], tokens=[CLOUDFLARE_TOKEN])
    with StandInServer(api) as server:
        cloudflare = Running(server, "/client/v4", CLOUDFLARE_TOKEN)
        missing = cloudflare("GET", "/zones", token=None)
        assert missing.status == 400 and codes(missing) == [9106, 9107]
        malformed = cloudflare("GET", "/zones", token="too short")
        assert malformed.status == 400 and codes(malformed) == [6003, 6111]
        unknown = cloudflare("GET", "/zones", token="u" * 40)
        assert unknown.status == 403 and errors_of(unknown) == [{"code": 10000, "message": "Authentication error"}]
        assert cloudflare("GET", "/zones").status == 200
        assert cloudflare("GET", "/user/tokens/verify").body["result"]["status"] == "active"


def test_zone_lookup_by_name_then_by_id(cloudflare: Running) -> None:
    reply = cloudflare("GET", "/zones?name=mana.how&match=all")
    assert reply.body["result_info"] == {"page": 1, "per_page": 20, "count": 1, "total_count": 1, "total_pages": 1}
    zone = cloudflare("GET", f"/zones/{zone_id(cloudflare)}").body["result"]
    assert zone["name"] == "mana.how" and zone["status"] == "active" and len(zone["id"]) == 32
    assert cloudflare("GET", "/zones?name=other.example").body["result"] == []
    assert cloudflare("GET", "/zones?name=contains:mana").body["result"][0]["name"] == "mana.how"
    unknown = cloudflare("GET", "/zones/" + "0" * 32)
    assert unknown.status == 403 and codes(unknown) == [10000]
    malformed = cloudflare("GET", "/zones/not-an-id/dns_records")
    assert malformed.status == 400 and codes(malformed) == [7003, 7000]


def test_record_lifecycle_put_patch_delete(cloudflare: Running) -> None:
    created = record(cloudflare, name="vps", type="A", content="203.0.113.10", ttl=300, comment="managed")
    assert created.status == 200, created.body
    result = created.body["result"]
    assert result["name"] == "vps.mana.how" and result["ttl"] == 300 and result["proxied"] is False
    assert result["proxiable"] is False  # a documentation address is no public origin
    assert result["comment"] == "managed" and result["created_on"] == result["modified_on"]
    assert result["created_on"].endswith("Z") and "comment_modified_on" in result
    path = f"/zones/{zone_id(cloudflare)}/dns_records/{result['id']}"
    assert cloudflare("GET", path).body["result"] == result

    put = cloudflare("PUT", path, {"name": "vps.mana.how", "type": "A", "content": "203.0.113.11", "ttl": 120})
    assert put.status == 200
    assert put.body["result"]["content"] == "203.0.113.11" and put.body["result"]["comment"] is None  # overwritten
    assert put.body["result"]["created_on"] == result["created_on"]
    patch = cloudflare("PATCH", path, {"comment": "edited"})
    assert patch.body["result"]["content"] == "203.0.113.11" and patch.body["result"]["comment"] == "edited"

    assert cloudflare("DELETE", path).body["result"] == {"id": result["id"]}
    gone = cloudflare("GET", path)
    assert gone.status == 404 and errors_of(gone) == [{"code": 81044, "message": "Record does not exist."}]
    kind, (zone, records) = cloudflare.events[-1]
    assert kind == "records" and zone == "mana.how" and records == []


def test_proxied_records_and_validation(cloudflare: Running) -> None:
    proxied = record(cloudflare, name="app", type="CNAME", content="tunnel.cfargotunnel.com.", proxied=True, ttl=300)
    assert proxied.status == 200
    assert proxied.body["result"]["ttl"] == 1 and proxied.body["result"]["proxiable"] is True
    assert proxied.body["result"]["content"] == "tunnel.cfargotunnel.com"
    public = record(cloudflare, name="www", type="AAAA", content="2606:4700:0:0::1", proxied=True)
    assert public.status == 200 and public.body["result"]["content"] == "2606:4700::1"

    cases: list[tuple[dict[str, Any], list[int]]] = [
        ({"name": "t", "type": "TXT", "content": '"x"', "proxied": True}, [1004, 9004]),
        ({"name": "p", "type": "A", "content": "10.0.0.1", "proxied": True}, [1004, 9003]),
        ({"name": "ttl", "type": "A", "content": "192.0.2.1", "ttl": 30}, [1004, 9021]),
        ({"name": "bad", "type": "A", "content": "2001:db8::1"}, [1004, 9005]),
        ({"name": "long", "type": "A", "content": "192.0.2.1", "comment": "c" * 101}, [9313]),
    ]
    for body, expected in cases:
        reply = record(cloudflare, **body)
        assert reply.status == 400 and codes(reply) == expected, (body, reply.body)


def test_record_conflicts(cloudflare: Running) -> None:
    assert record(cloudflare, name="vps", type="A", content="203.0.113.10").status == 200
    assert record(cloudflare, name="vps", type="AAAA", content="2001:db8::1").status == 200
    cname_beside_a = record(cloudflare, name="vps.mana.how", type="CNAME", content="elsewhere.example")
    assert cname_beside_a.status == 400 and codes(cname_beside_a) == [81053]
    identical = record(cloudflare, name="vps", type="A", content="203.0.113.10")
    assert identical.status == 400
    assert errors_of(identical) == [{"code": 81058, "message": "An identical record already exists."}]
    assert record(cloudflare, name="vps", type="A", content="203.0.113.99").status == 200  # round robin is fine

    assert record(cloudflare, name="app", type="CNAME", content="tunnel.cfargotunnel.com").status == 200
    a_beside_cname = record(cloudflare, name="app", type="A", content="203.0.113.10")
    assert a_beside_cname.status == 400 and codes(a_beside_cname) == [81054]
    assert record(cloudflare, name="app", type="TXT", content='"verification"').status == 200

    # An update must not clash either.
    other = record(cloudflare, name="other", type="A", content="203.0.113.10").body["result"]
    path = f"/zones/{zone_id(cloudflare)}/dns_records/{other['id']}"
    clash = cloudflare("PUT", path, {"name": "app", "type": "A", "content": "203.0.113.10", "ttl": 1})
    assert codes(clash) == [81054]


def test_record_lists_paginate_until_an_empty_page(cloudflare: Running) -> None:
    zone = zone_id(cloudflare)
    records = [{"name": f"h{index:03d}", "type": "TXT", "content": '"v"', "ttl": 1} for index in range(250)]
    assert cloudflare.control("POST", "zones/mana.how/dns_records", records).status == 200
    first = cloudflare("GET", f"/zones/{zone}/dns_records").body
    assert len(first["result"]) == 100
    assert first["result_info"] == {"page": 1, "per_page": 100, "count": 100, "total_count": 250, "total_pages": 3}
    third = cloudflare("GET", f"/zones/{zone}/dns_records?page=3").body
    assert third["result_info"]["count"] == 50
    assert cloudflare("GET", f"/zones/{zone}/dns_records?page=4").body["result"] == []
    exact = cloudflare("GET", f"/zones/{zone}/dns_records?name.exact=h007.mana.how&type=TXT").body["result"]
    assert [r["name"] for r in exact] == ["h007.mana.how"]
    assert cloudflare("GET", f"/zones/{zone}/dns_records?type=A").body["result"] == []


def test_ssl_setting_belongs_to_the_zone_owner(cloudflare: Running) -> None:
    zone = zone_id(cloudflare)
    assert cloudflare("GET", f"/zones/{zone}/settings/ssl").body["result"]["value"] == "full"
    refused = cloudflare("PATCH", f"/zones/{zone}/settings/ssl", {"value": "flexible"})
    assert refused.status == 403 and codes(refused) == [10000]
    assert cloudflare.control("PUT", "zones/mana.how/settings/ssl", {"value": "strict"}).status == 200
    setting = cloudflare("GET", f"/zones/{zone}/settings/ssl").body["result"]
    assert setting["id"] == "ssl" and setting["value"] == "strict" and setting["editable"] is True
    assert cloudflare.control("PUT", "zones/mana.how/settings/ssl", {"value": "nonsense"}).status == 400


def test_ip_ranges() -> None:
    with StandInServer(CloudflareApi(ip_ranges={"ipv4_cidrs": ["198.51.100.0/24"]})) as server:
        result = Running(server, "/client/v4", CLOUDFLARE_TOKEN)("GET", "/ips").body["result"]
    assert result["ipv4_cidrs"] == ["198.51.100.0/24"]
    assert "2606:4700::/32" in result["ipv6_cidrs"] and result["etag"]


def csr_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    subject = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "mana.how")])
    request = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return request.public_bytes(serialization.Encoding.PEM).decode()


def test_origin_ca_signs_a_csr_with_its_own_ca(cloudflare: Running) -> None:
    csr = csr_pem(ec.generate_private_key(ec.SECP256R1()))
    body = {"csr": csr, "hostnames": ["mana.how", "*.mana.how"], "request_type": "origin-ecc", "requested_validity": 90}
    created = cloudflare("POST", "/certificates", body)
    assert created.status == 200, created.body
    result = created.body["result"]
    assert result["hostnames"] == ["*.mana.how", "mana.how"]  # Cloudflare's order, not the request's
    assert result["requested_validity"] == 90
    assert result["expires_on"].endswith("+0000 UTC")

    ca = x509.load_pem_x509_certificate(cloudflare.control("GET", "origin-ca.pem").body.encode())
    certificate = x509.load_pem_x509_certificate(result["certificate"].encode())
    certificate.verify_directly_issued_by(ca)
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["mana.how", "*.mana.how"]

    assert cloudflare("GET", f"/certificates/{result['id']}").body["result"]["certificate"] == result["certificate"]
    listed = cloudflare("GET", f"/certificates?zone_id={zone_id(cloudflare)}").body["result"]
    assert [entry["id"] for entry in listed] == [result["id"]]
    revoked = cloudflare("DELETE", f"/certificates/{result['id']}").body["result"]
    assert revoked["id"] == result["id"] and revoked["revoked_at"]
    assert cloudflare("GET", f"/certificates?zone_id={zone_id(cloudflare)}").body["result"] == []

    foreign = cloudflare("POST", "/certificates", {**body, "hostnames": ["example.org"]})
    assert foreign.status == 400 and codes(foreign) == [1010]
    wrong_key = cloudflare("POST", "/certificates", {**body, "request_type": "origin-rsa"})
    assert wrong_key.status == 400 and codes(wrong_key) == [1014]
    garbage = cloudflare("POST", "/certificates", {**body, "csr": "not a csr"})
    assert garbage.status == 400


def test_seeding_through_the_control_surface_runs_the_hook(cloudflare: Running) -> None:
    seeded = cloudflare.control(
        "POST",
        "zones/mana.how/dns_records",
        [{"name": "@", "type": "MX", "content": "mx.example.net", "priority": 10}, {"name": "www", "type": "A"}],
    )
    assert seeded.status == 400  # the second one has no content: the first one is not kept either
    assert cloudflare("GET", f"/zones/{zone_id(cloudflare)}/dns_records").body["result"] == []
    good = [{"name": "@", "type": "MX", "content": "mx.example.net", "priority": 10, "ttl": 1}]
    assert cloudflare.control("POST", "zones/mana.how/dns_records", good).status == 200
    kind, (zone, records) = cloudflare.events[-1]
    assert kind == "records" and zone == "mana.how"
    assert any(r["type"] == "MX" and r["name"] == "mana.how" and r["priority"] == 10 for r in records)


def test_state_and_origin_ca_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "cloudflare.json"
    with StandInServer(CloudflareApi(state, zones=["mana.how"])) as server:
        first = Running(server, "/client/v4", CLOUDFLARE_TOKEN)
        created = record(first, name="vps", type="A", content="203.0.113.10").body["result"]
        ca_before = first.control("GET", "origin-ca.pem").body
    with StandInServer(CloudflareApi(state, zones=["mana.how"])) as server:
        second = Running(server, "/client/v4", CLOUDFLARE_TOKEN)
        zone = zone_id(second)
        assert second("GET", f"/zones/{zone}/dns_records/{created['id']}").body["result"] == created
        assert second.control("GET", "origin-ca.pem").body == ca_before
        assert "key_pem" not in second.control("GET", "state").body["origin_ca"]


@pytest.mark.parametrize("path", ["/zones", "/ips"])
def test_only_the_client_v4_prefix_is_the_api(cloudflare: Running, path: str) -> None:
    from .conftest import call

    assert call(cloudflare.server.url + path, token=CLOUDFLARE_TOKEN).status == 400


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_past_the_published_limit_every_call_is_refused_for_five_minutes(tmp_path: Path) -> None:
    """1,200 requests per 5 minutes per token, then 429 for everything for 5 minutes (here 5 per 300 s)."""
    clock = Clock()
    api = CloudflareApi(zones=["mana.how"], rate_limit=(5, 300.0), clock=clock)
    with StandInServer(api, "127.0.0.1", 0, tmp_path / "cf.jsonl") as server:
        cf = Running(server, "/client/v4", CLOUDFLARE_TOKEN)
        assert [cf("GET", "/user/tokens/verify").status for _ in range(5)] == [200] * 5
        refused = cf("GET", "/user/tokens/verify")
        assert refused.status == 429 and refused.body["success"] is False
        assert refused.body["errors"][0]["code"] == 971
        assert refused.body["errors"][0]["message"].startswith("More than 5 requests per 300 seconds reached.")
        clock.now += 299  # blocked for five minutes whatever happens meanwhile: the fail-back too
        assert cf("GET", "/zones?name=mana.how").status == 429
        clock.now += 2
        assert cf("GET", "/user/tokens/verify").status == 200
        assert cf("GET", "/user/tokens/verify", token="cfOTHER_" + "y" * 32).status == 200  # its own budget


def test_the_watchdogs_rounds_stay_far_inside_the_limit(tmp_path: Path) -> None:
    """The watchdog's rounds ask Cloudflare one thing each: whether the token is taken (check's probe;
    tests/e2e/test_engine_lab.py counts what sixty real rounds spend). At its default interval (10 s),
    ten minutes of rounds — two of the limit's windows — hold 30 requests in any 5 minutes, of 1,200: an
    hour is 360."""
    from mana_infra.check.probes import CloudflareApi as Api
    from mana_infra.check.probes import tls_context, verify_token

    clock = Clock()
    api = CloudflareApi(zones=["mana.how"], clock=clock)
    with StandInServer(api, "127.0.0.1", 0, tmp_path / "cf.jsonl") as server:
        probe, most = Api(server.url + "/client/v4", CLOUDFLARE_TOKEN), 0
        for _round in range(60):
            assert verify_token(probe, tls_context(None), 5).state == "ok"
            most = max(most, api.requests_in_window(CLOUDFLARE_TOKEN))
            clock.now += 10
    assert most == 30 and most * 40 <= 1200
