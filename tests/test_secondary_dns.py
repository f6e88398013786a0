"""The Hetzner mirror of the zone, always in failover form, and the cut-over without Cloudflare."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mana_infra import plan as offline
from mana_infra.errors import InputError
from mana_infra.inventory import load_inventory
from mana_infra.mirror import cloudflare_record
from mana_infra.model import txt_data
from mana_lab.inputs import parse_emergency

from .support import PROJECT_DIR, plan_of

SERVICES = load_inventory(PROJECT_DIR / "services.yaml", "mana.how")
ZONE_FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "cloudflare-zone-mana.how.json").read_text())["results"]
ZONE_ID = "023e105f4ecef8ad9ca31a8372d0c353"
RRSET = "hcloud:index/zoneRrset:ZoneRrset"


def rrsets(result: offline.PlanResult) -> dict[tuple[str, str], tuple[list[str], int]]:
    return {
        (r.inputs["name"], r.inputs["type"]): ([record["value"] for record in r.inputs["records"]], r.inputs["ttl"])
        for r in result.resources
        if r.type == "hcloud:index/zoneRrset:ZoneRrset"
    }


def with_zone(**overrides: str) -> tuple[offline.PlanResult, offline.OfflineClouds]:
    clouds = offline.OfflineClouds(zone_records=ZONE_FIXTURE)
    return offline.plan("prod", overrides=overrides, clouds=clouds), clouds


@pytest.mark.parametrize("mode", ["tunnel", "failover"])
def test_the_mirror_is_the_failover_form_of_every_host_whatever_the_mode(mode: str) -> None:
    mirror = rrsets(plan_of("prod", mode))
    failover = {r.inputs["name"]: r.inputs for r in plan_of("prod", "failover").resources
                if r.type == "cloudflare:index/dnsRecord:DnsRecord"}  # fmt: skip
    for service in SERVICES:
        if service.host == "mana.how":  # the apex: no CNAME in plain DNS, the origin's addresses instead
            assert mirror[("@", "A")] == ([offline.OFFLINE_IPV4], 60)
            assert mirror[("@", "AAAA")] == ([offline.OFFLINE_IPV6], 60)
            assert ("@", "CNAME") not in mirror
        else:
            name = service.host.removesuffix(".mana.how")
            assert mirror[(name, "CNAME")] == ([failover[service.host]["content"] + "."], 60)
    assert mirror[("vps", "A")] == ([offline.OFFLINE_IPV4], 60)
    assert mirror[("vps", "AAAA")] == ([offline.OFFLINE_IPV6], 60)
    [zone] = [r for r in plan_of("prod", mode).resources if r.type == "hcloud:index/zone:Zone"]
    assert (zone.inputs["name"], zone.inputs["mode"]) == ("mana.how", "primary")


def test_the_zones_other_records_are_mirrored_and_the_rest_reported() -> None:
    result, clouds = with_zone()
    mirror = rrsets(result)
    assert mirror[("@", "MX")] == (["10 mx1.mail.example.net.", "20 mx2.mail.example.net."], 3600)
    assert mirror[("@", "TXT")] == (
        ['"google-site-verification=abc123"', '"v=spf1 include:_spf.mail.example.net ~all"'],
        300,
    )
    assert mirror[("@", "CAA")] == (['0 issue "letsencrypt.org"'], 3600)
    assert mirror[("_sip._tcp", "SRV")] == (["10 5 5060 sip.example.net."], 3600)
    assert mirror[("files", "A")] == (["198.51.100.21"], 600)
    assert mirror[("_dmarc", "TXT")] == (['"v=DMARC1; p=quarantine; rua=mailto:dmarc@mana.how"'], 3600)
    assert mirror[("sub", "NS")] == (["ns1.example.net."], 3600)
    [dkim] = mirror[("mail._domainkey", "TXT")][0]
    assert dkim.count('" "') == 1 and all(len(part) <= 257 for part in dkim.split(" "))  # two strings of <= 255
    # Not mirrored: Cloudflare's own NS at the apex, the tunnel CNAMEs (replaced by failover records).
    assert ("@", "NS") not in mirror and ("auth", "TXT") not in mirror
    reported = {(u["name"], u["type"]): u["reason"] for u in result.outputs["secondaryDnsUnmirrored"]}
    assert set(reported) == {("status.mana.how", "A"), ("auth.mana.how", "TXT"), ("loc.mana.how", "LOC")}
    assert "proxied" in reported[("status.mana.how", "A")]
    assert "beside a failover CNAME" in reported[("auth.mana.how", "TXT")]
    assert "does not take LOC" in reported[("loc.mana.how", "LOC")]
    assert "cloudflare:index/getDnsRecords:getDnsRecords" in clouds.calls


def test_outputs_name_the_nameservers_and_the_registrar_step() -> None:
    outputs = plan_of("prod").outputs
    assert outputs["secondaryDnsNameservers"] == list(offline.OFFLINE_HETZNER_NAMESERVERS)
    step = outputs["registrarStep"]
    assert "At the registrar of mana.how, replace the nameservers with hydrogen.ns.hetzner.com," in step
    assert "DS record" in step


def test_zone_file_values() -> None:
    assert txt_data("plain") == '"plain"'
    assert txt_data('"already quoted"') == '"already quoted"'
    assert txt_data('say "hi" \\ bye') == '"say \\"hi\\" \\\\ bye"'
    assert txt_data("x" * 300) == f'"{"x" * 255}" "{"x" * 45}"'

    def data(record: dict[str, object]) -> str:
        return cloudflare_record({"name": "x.mana.how", **record}).data()

    assert data({"type": "MX", "content": "mx.example.net", "priority": 5}) == "5 mx.example.net."
    assert data({"type": "SRV", "content": "1 443 svc.example.net", "priority": 0}) == "0 1 443 svc.example.net."
    assert data({"type": "CNAME", "content": "a.example.net."}) == "a.example.net."
    assert data({"type": "TXT", "content": "v=spf1 -all"}) == '"v=spf1 -all"'


def test_the_cut_over_without_cloudflare_changes_nothing_at_cloudflare() -> None:
    before = plan_of("prod", "tunnel")
    # The configuration exactly as the stack's emergencyCutover output sets it.
    command = before.outputs["emergencyCutover"]
    overrides, urn = parse_emergency(command)
    assert overrides == {"cloudflareZoneId": before.outputs["cloudflareZoneId"], "cloudflareReachable": "false",
                         "failoverVia": "dns", "mode": "failover"}  # fmt: skip
    emergency, clouds = with_zone(**{**overrides, "cloudflareZoneId": ZONE_ID})
    # 1. The run asks Cloudflare nothing, so an API that is down or a revoked token cannot stop it.
    assert not [call for call in clouds.calls if call.startswith("cloudflare:")]
    # 2. The command the operator runs targets the Caddy command alone.
    [target] = [r for r in emergency.resources if r.urn == urn]
    assert target.type == "command:remote:Command" and target.name == "caddy-apply"
    # 3. Of everything the flip would change, the target lets through only the Caddy command, and
    #    that change is the failover Caddyfile.
    before_zone = {r.name: r for r in before.resources}
    changes = offline.diff(before, emergency)
    assert {c["field"] for c in changes if c["resource"] == target.name} >= {"stdin", "triggers[1]"}
    # The DNS-only Caddyfile: every visitor served (nobody refused), with the public certificate.
    caddyfile = target.inputs["stdin"]
    assert "# mode=failover via=dns." in caddyfile and "elsewhere" not in caddyfile
    assert (
        "auth.mana.how {\n\timport public_certificate\n\timport visitor\n\treverse_proxy 10.0.0.2:3001 {" in caddyfile
    )
    cloudflare_changes = {c["resource"] for c in changes if before_zone.get(c["resource"]) and
                          before_zone[c["resource"]].type.startswith("cloudflare:")}  # fmt: skip
    assert cloudflare_changes and target.name not in cloudflare_changes
    # 4. Every Cloudflare record is still registered (nothing would be deleted), against the same zone.
    records = [r for r in emergency.resources if r.type == "cloudflare:index/dnsRecord:DnsRecord"]
    assert len(records) == len(SERVICES) + 3 and {r.inputs["zoneId"] for r in records} == {ZONE_ID}


def test_without_cloudflare_no_pulumi_up_deletes_a_record_of_the_mirror() -> None:
    """After the registrar's switch the Hetzner zone is the live one: with Cloudflare unreachable the
    program cannot read Cloudflare's zone, so it declares the mirror's copies as Hetzner holds them. An
    untargeted `pulumi up` then deletes nothing (today's mail, SPF, DKIM, CAA stay)."""
    reachable, _ = with_zone()
    copied = [
        r for r in reachable.resources if r.type == RRSET and r.inputs["labels"].get("copied-from") == "cloudflare"
    ]
    assert len(copied) >= 7  # MX, TXT, CAA, SRV, ... from the fixture
    hetzner = [{"id": f"{r.inputs['name']}/{r.inputs['type']}", "zone": "mana.how", "name": r.inputs["name"],
                "type": r.inputs["type"], "ttl": r.inputs["ttl"], "records": r.inputs["records"],
                "labels": r.inputs["labels"], "changeProtection": False} for r in copied]  # fmt: skip
    clouds = offline.OfflineClouds(zone_rrsets=hetzner)
    unreachable = offline.plan(
        "prod", overrides={"cloudflareReachable": "false", "cloudflareZoneId": ZONE_ID}, clouds=clouds
    )
    assert "hcloud:index/getZoneRrsets:getZoneRrsets" in clouds.calls
    assert not [call for call in clouds.calls if call.startswith("cloudflare:")]
    mirror = {r.name: r.inputs for r in unreachable.resources if r.type == RRSET}
    assert all(mirror[r.name] == r.inputs for r in copied)
    assert not [c for c in offline.diff(reachable, unreachable) if c["field"] == "(resource)"]  # nothing deleted


def test_unreachable_cloudflare_needs_the_zone_id() -> None:
    with pytest.raises(InputError, match="cloudflareZoneId: is not set, and Cloudflare is marked unreachable"):
        offline.plan("prod", overrides={"cloudflareReachable": "false"})


def test_a_record_type_change_at_a_name_waits_for_the_removal_instead_of_wedging_the_mirror() -> None:
    """chat.mana.how held copied A and AAAA records and is now an inventory host (a CNAME). Pulumi
    would create the CNAME before deleting the A and AAAA, which the zone refuses (a CNAME stands alone):
    the CNAME waits for the next run and says so; everything else goes through."""
    held = [{"name": "chat", "type": kind, "ttl": 300, "records": [{"value": value}], "labels": {}}
            for kind, value in (("A", "198.51.100.99"), ("AAAA", "2001:db8::99"))]  # fmt: skip
    result = offline.plan("prod", clouds=offline.OfflineClouds(zone_rrsets=held))
    mirror = rrsets(result)
    assert ("chat", "CNAME") not in mirror and ("todo", "CNAME") in mirror
    assert result.outputs["secondaryDnsPostponed"] == ["chat CNAME"]
    # The run after: the A and AAAA are gone, the CNAME comes.
    assert ("chat", "CNAME") in rrsets(plan_of("prod")) and plan_of("prod").outputs["secondaryDnsPostponed"] == []


def test_postponed_is_exactly_the_clash_with_what_leaves() -> None:
    from mana_infra.mirror import postponed

    assert postponed([("a", "CNAME")], [("a", "A")]) == {("a", "CNAME")}
    assert postponed([("a", "A")], [("a", "CNAME")]) == {("a", "A")}
    assert postponed([("a", "CNAME"), ("a", "TXT")], [("a", "CNAME")]) == set()  # nothing leaves
    assert postponed([("a", "A"), ("a", "TXT")], [("a", "A")]) == set()  # no CNAME involved
    assert postponed([("b", "CNAME")], [("a", "A")]) == set()


def test_a_rehearsal_record_is_not_mirrored() -> None:
    """The rehearsal's test record comes and goes with its stack: copied, every prod run after its
    destroy would have a deletion to make."""
    from mana_infra.components.rehearsal import COMMENT

    test_record = {"name": "failover-test.mana.how", "type": "CNAME", "content": "vps.mana.how", "ttl": 60,
                   "proxied": False, "comment": COMMENT}  # fmt: skip
    result = offline.plan("prod", clouds=offline.OfflineClouds(zone_records=[*ZONE_FIXTURE, test_record]))
    assert ("failover-test", "CNAME") not in rrsets(result)
    assert not [u for u in result.outputs["secondaryDnsUnmirrored"] if u["name"] == "failover-test.mana.how"]


def test_the_homes_own_records_are_the_mirrors_never_a_copy() -> None:
    """Plan C's home.<zone> A/AAAA exist at Cloudflare too once configured: the mirror declares them
    itself (one RRSet per name and type), never again as a copy of Cloudflare's."""
    from mana_infra.mirror import mirror_extra_records

    records = [
        {"name": "home.mana.how", "type": "A", "content": "198.51.100.40", "ttl": 60, "proxied": False},
        {"name": "home.mana.how", "type": "AAAA", "content": "2001:db8:1a::20", "ttl": 60, "proxied": False},
        {"name": "home.mana.how", "type": "TXT", "content": "kept", "ttl": 300, "proxied": False},
    ]
    extra, left_out = mirror_extra_records(records, "mana.how", ["auth.mana.how"], "vps.mana.how", "home.mana.how")
    assert [(r.name, r.type) for r in extra] == [("home.mana.how", "TXT")] and not left_out
    copied, _ = mirror_extra_records(records, "mana.how", ["auth.mana.how"], "vps.mana.how")
    assert len(copied) == 3  # a stack without Plan C copies them as any other record
