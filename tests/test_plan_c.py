"""Plan C, the direct ways, as the program builds them: the home's name and addresses, the inventory
flipped in place to it (through the edge or DNS-only), the mirror carrying the same, the Mac Mini's
Caddyfile from the VPS's renderer and the files that keep it warm; bad home addresses refused with the
fix, all at once. The real program under the mock engine."""

from __future__ import annotations

import plistlib
import re
import subprocess
from pathlib import Path

import pytest

from mana_infra import plan as offline
from mana_infra.errors import InputError
from mana_infra.program import Standby
from mana_infra.render.caddyfile import MAC_MINI_CADDYFILE, MAC_MINI_FILES_PORT, PUBLIC_CERTIFICATE
from mana_infra.render.home import caddy_argv
from mana_infra.render.remote import caddy_command

from .support import by_name, plan_of, require_root_and_tools, with_standby

HOME = {"homeAddress": "198.51.100.40", "homeAddress6": "2001:db8:1a::20"}
HOSTS = 27


def records_of(result: offline.PlanResult) -> dict[str, offline.Recorded]:
    return {r.name: r for r in result.resources if r.type == "cloudflare:index/dnsRecord:DnsRecord"}


def test_the_home_has_a_name_of_its_own_dns_only_in_every_mode() -> None:
    for mode in ("tunnel", "failover"):
        home = {
            (r.inputs["type"], r.inputs["content"], r.inputs["proxied"], r.inputs["ttl"])
            for name, r in records_of(plan_of("prod", mode, **HOME)).items()
            if r.inputs["name"] == "home.mana.how"
        }
        assert home == {("A", "198.51.100.40", False, 60), ("AAAA", "2001:db8:1a::20", False, 60)}
    # Not configured: no such record, no Plan C outputs.
    plain = plan_of("prod")
    assert not [r for r in records_of(plain).values() if r.inputs["name"] == "home.mana.how"]
    assert "macminiCaddyfile" not in plain.outputs and "homeName" not in plain.outputs


@pytest.mark.parametrize(("via", "proxied", "ttl"), [("direct", True, 1), ("direct-dns", False, 60)])
def test_a_direct_cutover_is_the_same_records_updated_in_place_to_the_home(via: str, proxied: bool, ttl: int) -> None:
    tunnel = records_of(plan_of("prod", "tunnel", **HOME))
    direct = records_of(plan_of("prod", "failover", failoverVia=via, **HOME))
    # The same resources (names and types): the engine updates them, nothing is created or deleted.
    assert set(direct) == set(tunnel)
    inventory = [r for r in direct.values() if r.inputs["name"] not in ("home.mana.how", "vps.mana.how")]
    inventory = [r for r in inventory if not r.inputs["name"].startswith("tunnel-probe.")]
    assert len(inventory) == HOSTS
    assert {(r.inputs["type"], r.inputs["content"], r.inputs["proxied"], r.inputs["ttl"]) for r in inventory} == {
        ("CNAME", "home.mana.how", proxied, ttl)
    }


def test_the_vps_keeps_serving_as_the_standby_while_the_home_serves_and_hands_the_mac_mini_its_files() -> None:
    """A direct way leaves the VPS as it is in tunnel mode, byte for byte and with the same trigger: the
    cut-over runs nothing on a VPS that may be gone, and the records do not wait for it."""
    resources = by_name(plan_of("prod", "failover", failoverVia="direct", **HOME))
    tunnel = by_name(plan_of("prod", "tunnel", **HOME))
    caddyfile = resources["caddy-apply"].inputs["stdin"]
    assert caddyfile == tunnel["caddy-apply"].inputs["stdin"]
    assert resources["caddy-apply"].inputs["triggers"] == tunnel["caddy-apply"].inputs["triggers"]
    inventory = next(r for r in resources.values() if r.name == "dns-auth.mana.how")
    assert resources["caddy-apply"].urn not in inventory.options["dependsOn"]
    assert "import elsewhere_refused" in caddyfile and "import origin_certificate\n\timport" not in caddyfile
    assert f"http://:{MAC_MINI_FILES_PORT} {{" in caddyfile and "remote_ip 10.0.0.2/32" in caddyfile
    assert f"path /{MAC_MINI_CADDYFILE} /{PUBLIC_CERTIFICATE}" in caddyfile
    # The Mac Mini's Caddyfile goes to the VPS through the apply script, after the VPS's own.
    command = resources["caddy-macmini-apply"]
    assert command.inputs["create"] == caddy_command(MAC_MINI_CADDYFILE)
    assert resources["caddy-apply"].urn in command.options["dependsOn"]


def test_the_mac_minis_caddyfile_is_one_for_every_mode() -> None:
    texts = {
        plan_of("prod", mode, failoverVia=via, **HOME).outputs["macminiCaddyfile"]
        for mode, via in (("tunnel", "edge"), ("failover", "edge"), ("failover", "direct"), ("failover", "direct-dns"))
    }
    [text] = texts
    assert "reverse_proxy 127.0.0.1:3001 {" in text and "10.0.0.2" not in text
    assert "tls /opt/homebrew/etc/mana-infra/public.pem" in text and "origin" not in text
    # Everyone is served (no refusal), and only Cloudflare's ranges are believed for the visitor's address.
    assert "elsewhere_refused" not in text and "@not_from_cloudflare not remote_ip 173.245.48.0/20" in text
    assert 'home.mana.how {\n\timport public_certificate\n\thandle /healthz {\n\t\trespond "ok home" 200' in text


def test_the_mac_minis_daemons_run_homebrews_caddy_and_the_sync() -> None:
    outputs = plan_of("prod", **HOME).outputs
    caddy = plistlib.loads(outputs["macminiCaddyLaunchdPlist"].encode())
    assert caddy["ProgramArguments"] == caddy_argv() and caddy["KeepAlive"] is True and caddy["RunAtLoad"] is True
    sync = plistlib.loads(outputs["macminiSyncLaunchdPlist"].encode())
    assert sync["ProgramArguments"] == ["/bin/sh", "/opt/homebrew/etc/mana-infra/macmini-sync.sh"]
    assert sync["StartInterval"] == 600 and sync["RunAtLoad"] is True
    script = outputs["macminiSyncScript"]
    assert script.startswith("#!/bin/sh\nSOURCE=http://10.0.0.1:8317\nDIR=/opt/homebrew/etc/mana-infra\n")
    assert outputs["homeName"] == "home.mana.how" and outputs["homeIpv6"] == "2001:db8:1a::20"


def test_the_sync_script_is_valid_shell() -> None:
    require_root_and_tools("shellcheck")
    script = plan_of("prod", **HOME).outputs["macminiSyncScript"]
    done = subprocess.run(["shellcheck", "-s", "sh", "-"], input=script, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_the_mirror_carries_the_home_and_points_the_inventory_there_for_a_direct_way() -> None:
    def mirror(**overrides: str) -> dict[tuple[str, str], list[str]]:
        return {
            (r.inputs["name"], r.inputs["type"]): [v["value"] for v in r.inputs["records"]]
            for r in plan_of("prod", **overrides).resources
            if r.type == "hcloud:index/zoneRrset:ZoneRrset" and "mana-infra:copied" not in r.inputs.get("labels", {})
        }

    edge = mirror(**HOME)
    assert edge[("home", "A")] == ["198.51.100.40"] and edge[("home", "AAAA")] == ["2001:db8:1a::20"]
    assert edge[("auth", "CNAME")] == ["vps.mana.how."]
    assert mirror(failoverVia="direct-dns", **HOME)[("auth", "CNAME")] == ["vps.mana.how."]  # not cut over
    direct = mirror(failoverVia="direct-dns", mode="failover", **HOME)
    assert direct[("auth", "CNAME")] == ["home.mana.how."] and direct[("@", "A")] == ["198.51.100.40"]
    assert set(direct) == set(edge)  # the same RRSets: updated in place


def test_the_emergency_offers_the_mirrors_direct_records() -> None:
    outputs = plan_of("prod", **HOME).outputs
    command = outputs["emergencyCutoverDirect"]
    # The config it sets is a stack the program takes as it is (the zone id comes with it).
    settings = dict(re.findall(r"pulumi config set --stack prod (\S+) (\S+)", command))
    assert settings["cloudflareZoneId"] == outputs["cloudflareZoneId"]
    emergency = plan_of("prod", **HOME, **settings)
    flipped = [r for r in emergency.resources if r.type == "hcloud:index/zoneRrset:ZoneRrset"]
    assert {r.urn for r in flipped if r.inputs["records"] == [{"value": "home.mana.how."}]} <= set(
        re.findall(r"--target '([^']+)'", command)
    )
    assert "cloudflareReachable false" in command and "failoverVia direct-dns" in command
    targets = re.findall(r"--target '([^']+)'", command)
    rrset = "urn:pulumi:prod::mana-infra::mana-infra:index:SecondaryDns$hcloud:index/zoneRrset:ZoneRrset::"
    names = {t.removeprefix(rrset) for t in targets}
    assert len(targets) == 28 and all(t.startswith(rrset) for t in targets)  # nothing at Cloudflare, nor the VPS
    assert {"secondary-dns-auth-cname", "secondary-dns-apex-a", "secondary-dns-apex-aaaa"} <= names
    assert not [n for n in names if "home" in n or "vps" in n]
    # An IPv6-only home has no DNS-only way: no such command.
    assert "emergencyCutoverDirect" not in plan_of("prod", homeAddress6="2001:db8:1a::20").outputs


def test_the_budget_names_the_direct_ways() -> None:
    budget = plan_of("prod", **HOME).outputs["cutoverBudget"]
    assert budget["direct"] == budget["edge"] and budget["direct-dns"] == budget["dns"]


def test_bad_home_addresses_are_refused_all_at_once_with_how_to_find_the_right_one() -> None:
    with pytest.raises(InputError) as caught:
        plan_of(
            "prod",
            "failover",
            failoverVia="direct-dns",
            homeAddress="100.64.3.4",
            homeAddress6="inet6 2001:db8:1a::99 prefixlen 64 autoconf temporary",
            homeName="auth.mana.how",
        )
    problems = {p.where.split(":", 2)[-1]: p for p in caught.value.problems}
    assert set(problems) == {"homeAddress", "homeAddress6", "homeName"}
    assert "carrier-grade NAT" in problems["homeAddress"].message and "DS-Lite" in problems["homeAddress"].message
    assert "temporary address" in problems["homeAddress6"].message
    assert "ifconfig en0 inet6 | grep 'autoconf secured'" in str(problems["homeAddress6"].fix)
    assert "also an inventory host" in problems["homeName"].message
    with pytest.raises(InputError) as caught:
        plan_of("prod", "failover", failoverVia="direct-dns", homeAddress6="2001:db8:1a::20")
    [problem] = caught.value.problems
    assert "leaves out every visitor whose own network has no IPv6" in problem.message
    assert "failoverVia direct" in str(problem.fix)
    for address, words in (("192.168.178.20", "private address"), ("169.254.3.3", "link-local")):
        with pytest.raises(InputError, match=words):
            plan_of("prod", homeAddress=address)
    for address, words in (("fe80::1", "link-local"), ("fd12::1", "unique local")):
        with pytest.raises(InputError, match=words):
            plan_of("prod", homeAddress6=address)
    with pytest.raises(InputError, match="is not set, nor homeAddress6: failoverVia direct sends"):
        plan_of("prod", "failover", failoverVia="direct")
    with pytest.raises(InputError, match="is direct, and Cloudflare is marked unreachable"):
        plan_of("prod", "failover", failoverVia="direct", cloudflareReachable="false",
                cloudflareZoneId="023e105f4ecef8ad9ca31a8372d0c353", **HOME)  # fmt: skip


def test_the_ifconfig_line_of_a_stable_address_is_taken() -> None:
    outputs = plan_of("prod", homeAddress6="inet6 2001:db8:1a::20 prefixlen 64 autoconf secured").outputs
    assert outputs["homeIpv6"] == "2001:db8:1a::20" and outputs.get("homeIpv4") is None
    two = "inet6 fe80::1%en0 prefixlen 64 secured scopeid 0x4\ninet6 2001:db8:1a::20 prefixlen 64 autoconf secured"
    with pytest.raises(InputError, match="is several lines"):
        plan_of("prod", homeAddress6=two)


def test_the_default_home_name_is_nobodys_until_plan_c_is_configured(tmp_path: Path) -> None:
    """An app may be called home.<zone> as long as the stack has no home address; homeName must be one
    level below the zone, as every name the wildcard certificate covers."""
    inventory = "services:\n  - host: home.mana.how\n    port: 8123\n"
    path = tmp_path / "home-app.yaml"
    path.write_text(inventory)
    assert plan_of("prod", services=str(path)).outputs["hosts"][0]["host"] == "home.mana.how"
    with pytest.raises(InputError, match="also an inventory host"):
        plan_of("prod", services=str(path), **HOME)
    with pytest.raises(InputError, match="homeName"):
        plan_of("prod", homeName="a.b.mana.how", **HOME)


def test_the_program_keeps_the_mac_minis_caddyfile_and_none_without_a_home() -> None:
    async def check(standby: Standby) -> str | None:
        return standby.home_caddyfile

    assert with_standby(check, **HOME) == plan_of("prod", **HOME).outputs["macminiCaddyfile"]
    assert with_standby(check) is None


def test_caddy_accepts_the_mac_minis_caddyfile(tmp_path: Path) -> None:
    require_root_and_tools("caddy")
    text = plan_of("prod", **HOME).outputs["macminiCaddyfile"]
    path = tmp_path / "Caddyfile"
    path.write_text(text)
    argv = ["caddy", "adapt", "--config", str(path), "--adapter", "caddyfile"]
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
