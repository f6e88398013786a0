"""The Hetzner Cloud stand-in over HTTP, called the way hcloud-go calls the real API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mana_lab.clouds.hetzner import HetznerCloud, label_selector
from mana_lab.clouds.server import StandInServer

from .conftest import HCLOUD_TOKEN, Reply, Running, fake_ssh_key


def error_of(reply: Reply) -> dict[str, Any]:
    assert set(reply.body) == {"error"}, reply.body
    error = reply.body["error"]
    assert set(error) == {"code", "message", "details"}
    assert isinstance(error["message"], str) and error["message"]
    return dict(error)


def create_key(api: Running, name: str = "mana-prod-operator", **extra: Any) -> dict[str, Any]:
    reply = api("POST", "/ssh_keys", {"name": name, "public_key": fake_ssh_key(), **extra})
    assert reply.status == 201, reply.body
    return dict(reply.body["ssh_key"])


def create_ip(api: Running, family: str, name: str | None = None) -> dict[str, Any]:
    body = {"name": name or f"mana-prod-{family}", "type": family, "location": "fsn1", "auto_delete": False}
    reply = api("POST", "/primary_ips", body)
    assert reply.status == 201, reply.body
    return dict(reply.body["primary_ip"])


def create_server(api: Running, name: str = "mana-prod-standby", **extra: Any) -> Reply:
    body = {"name": name, "server_type": "cx23", "image": "ubuntu-24.04", "location": "fsn1", **extra}
    return api("POST", "/servers", body)


def protect(api: Running, path: str, **flags: bool) -> None:
    reply = api("POST", f"{path}/actions/change_protection", flags)
    assert reply.status == 201, reply.body
    assert reply.body["action"]["command"] == "change_protection"


def test_a_token_of_64_characters_is_needed() -> None:
    api = HetznerCloud(tokens=[HCLOUD_TOKEN])
    with StandInServer(api) as server:
        base = Running(server, "/v1", HCLOUD_TOKEN)
        for token in (None, "x" * 63, "y" * 64):
            reply = base("GET", "/servers", token=token)
            assert reply.status == 401
            assert error_of(reply)["code"] == "unauthorized"
        assert base("GET", "/servers").status == 200


def test_ssh_keys_fingerprint_update_filters_and_uniqueness(hetzner: Running) -> None:
    public_key = fake_ssh_key(7)
    reply = hetzner("POST", "/ssh_keys", {"name": "op", "public_key": public_key, "labels": {"app": "mana"}})
    assert reply.status == 201
    key = reply.body["ssh_key"]
    assert isinstance(key["id"], int)
    assert len(key["fingerprint"].split(":")) == 16
    assert key["public_key"] == public_key and key["labels"] == {"app": "mana"}

    same_name = hetzner("POST", "/ssh_keys", {"name": "op", "public_key": fake_ssh_key()})
    assert same_name.status == 409
    assert error_of(same_name)["code"] == "uniqueness_error"
    same_key = hetzner("POST", "/ssh_keys", {"name": "other", "public_key": public_key})
    assert same_key.status == 409
    assert error_of(same_key) == {
        "code": "uniqueness_error",
        "message": "SSH key with the same fingerprint already exists",
        "details": {"fields": [{"name": "public_key"}]},
    }
    broken = hetzner("POST", "/ssh_keys", {"name": "broken", "public_key": "ssh-ed25519 not-base64"})
    assert broken.status == 400
    assert error_of(broken)["details"]["fields"][0]["name"] == "public_key"

    assert hetzner("GET", f"/ssh_keys?fingerprint={key['fingerprint']}").body["ssh_keys"][0]["id"] == key["id"]
    assert [k["id"] for k in hetzner("GET", "/ssh_keys?name=op").body["ssh_keys"]] == [key["id"]]
    assert hetzner("GET", "/ssh_keys?label_selector=app%3Dother").body["ssh_keys"] == []
    renamed = hetzner("PUT", f"/ssh_keys/{key['id']}", {"name": "op-renamed", "labels": {}})
    assert renamed.body["ssh_key"]["name"] == "op-renamed" and renamed.body["ssh_key"]["labels"] == {}
    assert hetzner("DELETE", f"/ssh_keys/{key['id']}").status == 204
    missing = hetzner("GET", f"/ssh_keys/{key['id']}")
    assert missing.status == 404
    assert error_of(missing)["code"] == "not_found"


def test_primary_ips_come_from_the_pool_and_guard_their_deletion(hetzner: Running) -> None:
    ipv4, ipv6 = create_ip(hetzner, "ipv4"), create_ip(hetzner, "ipv6")
    assert ipv4["ip"] == "203.0.113.10" and ipv6["ip"] == "2001:db8::/64"
    assert ipv4["location"]["name"] == "fsn1" and ipv4["assignee_id"] is None and ipv4["auto_delete"] is False
    assert ipv4["dns_ptr"] == [{"ip": "203.0.113.10", "dns_ptr": "static.10.113.0.203.clients.your-server.de"}]
    duplicate = hetzner("POST", "/primary_ips", {"name": "mana-prod-ipv4", "type": "ipv4", "location": "fsn1"})
    assert duplicate.status == 409

    protect(hetzner, f"/primary_ips/{ipv4['id']}", delete=True)
    refused = hetzner("DELETE", f"/primary_ips/{ipv4['id']}")
    assert refused.status == 423
    assert error_of(refused)["code"] == "protected"

    server = create_server(hetzner, public_net={"ipv4": ipv4["id"], "ipv6": ipv6["id"]}).body["server"]
    protect(hetzner, f"/primary_ips/{ipv4['id']}", delete=False)
    assigned = hetzner("DELETE", f"/primary_ips/{ipv4['id']}")
    assert assigned.status == 422
    assert error_of(assigned)["code"] == "must_be_unassigned"
    running = hetzner("POST", f"/primary_ips/{ipv4['id']}/actions/unassign")
    assert running.status == 422 and error_of(running)["code"] == "server_not_stopped"

    assert hetzner("POST", f"/servers/{server['id']}/actions/poweroff").status == 201
    assert hetzner("POST", f"/primary_ips/{ipv4['id']}/actions/unassign").status == 201
    assert hetzner("GET", f"/servers/{server['id']}").body["server"]["public_net"]["ipv4"] is None
    assert hetzner("DELETE", f"/primary_ips/{ipv4['id']}").status == 204
    assert create_ip(hetzner, "ipv4", "again")["ip"] == "203.0.113.10"


def test_server_with_primary_ips_firewall_keys_and_hooks(hetzner: Running) -> None:
    key = create_key(hetzner)
    ipv4, ipv6 = create_ip(hetzner, "ipv4"), create_ip(hetzner, "ipv6")
    rules = [{"direction": "in", "protocol": "tcp", "port": "22", "source_ips": ["192.0.2.0/24"], "description": "ssh"}]
    firewall = hetzner("POST", "/firewalls", {"name": "standby", "rules": rules, "labels": {"app": "mana"}})
    assert firewall.status == 201 and firewall.body["actions"][0]["command"] == "set_firewall_rules"
    firewall_id = firewall.body["firewall"]["id"]

    reply = create_server(
        hetzner,
        ssh_keys=[key["id"]],
        user_data="#cloud-config\nhostname: standby\n",
        labels={"app": "mana"},
        firewalls=[{"firewall": firewall_id}],
        public_net={"enable_ipv4": True, "enable_ipv6": True, "ipv4": ipv4["id"], "ipv6": ipv6["id"]},
    )
    assert reply.status == 201, reply.body
    server = reply.body["server"]
    assert server["status"] == "running" and reply.body["root_password"] is None
    assert reply.body["action"]["command"] == "create_server"
    assert [a["command"] for a in reply.body["next_actions"]] == ["start_server"]
    assert server["public_net"]["ipv4"]["ip"] == "203.0.113.10" and server["public_net"]["ipv4"]["id"] == ipv4["id"]
    assert server["public_net"]["ipv6"]["ip"] == "2001:db8::/64"
    assert server["public_net"]["firewalls"] == [{"id": firewall_id, "status": "applied"}]
    assert server["server_type"]["name"] == "cx23" and server["server_type"]["architecture"] == "x86"
    assert server["image"]["name"] == "ubuntu-24.04" and server["location"]["name"] == "fsn1"
    applied = hetzner("GET", f"/firewalls/{firewall_id}").body["firewall"]["applied_to"]
    assert applied == [{"type": "server", "server": {"id": server["id"]}}]
    assert hetzner("GET", f"/primary_ips/{ipv4['id']}").body["primary_ip"]["assignee_id"] == server["id"]
    in_use = hetzner("DELETE", f"/firewalls/{firewall_id}")
    assert in_use.status == 422 and error_of(in_use)["code"] == "resource_in_use"

    kind, created = hetzner.events[-1]
    assert kind == "created" and created["id"] == server["id"]
    assert created["user_data"] == "#cloud-config\nhostname: standby\n"
    assert created["ssh_keys"] == [key["public_key"]]

    taken = create_server(hetzner, name="second", public_net={"ipv4": ipv4["id"]})
    assert taken.status == 422 and error_of(taken)["code"] == "primary_ip_assigned"
    same_name = create_server(hetzner)
    assert same_name.status == 409 and error_of(same_name)["code"] == "uniqueness_error"

    protect(hetzner, f"/servers/{server['id']}", delete=True, rebuild=True)
    refused = hetzner("DELETE", f"/servers/{server['id']}")
    assert refused.status == 423 and error_of(refused)["code"] == "protected"
    rebuild = hetzner("POST", f"/servers/{server['id']}/actions/rebuild", {"image": "ubuntu-24.04"})
    assert rebuild.status == 423 and error_of(rebuild)["code"] == "protected"
    protect(hetzner, f"/servers/{server['id']}", delete=False, rebuild=False)

    deleted = hetzner("DELETE", f"/servers/{server['id']}")
    assert deleted.status == 200 and deleted.body["action"]["command"] == "delete_server"
    assert hetzner.events[-1][0] == "deleted" and hetzner.events[-1][1]["user_data"].startswith("#cloud-config")
    assert hetzner("GET", f"/primary_ips/{ipv4['id']}").body["primary_ip"]["assignee_id"] is None
    assert hetzner("GET", f"/firewalls/{firewall_id}").body["firewall"]["applied_to"] == []

    # The replacement (delete before replace) gets the same primary IPs.
    replacement = create_server(hetzner, public_net={"ipv4": ipv4["id"], "ipv6": ipv6["id"]})
    assert replacement.status == 201
    assert replacement.body["server"]["public_net"]["ipv4"]["ip"] == "203.0.113.10"


def test_a_server_without_given_ips_gets_its_own_auto_deleted_ones(hetzner: Running) -> None:
    server = create_server(hetzner).body["server"]
    ipv4 = hetzner("GET", f"/primary_ips/{server['public_net']['ipv4']['id']}").body["primary_ip"]
    assert ipv4["auto_delete"] is True and ipv4["assignee_id"] == server["id"]
    assert hetzner("DELETE", f"/servers/{server['id']}").status == 200
    assert hetzner("GET", "/primary_ips").body["primary_ips"] == []


def test_server_type_change_needs_a_stopped_server(hetzner: Running) -> None:
    server = create_server(hetzner).body["server"]
    path = f"/servers/{server['id']}/actions"
    refused = hetzner("POST", f"{path}/change_type", {"server_type": "cx33", "upgrade_disk": True})
    assert refused.status == 422 and error_of(refused)["code"] == "server_not_stopped"
    assert hetzner("POST", f"{path}/poweroff").body["action"]["command"] == "stop_server"
    assert hetzner("POST", f"{path}/change_type", {"server_type": "cx33", "upgrade_disk": True}).status == 201
    assert hetzner("POST", f"{path}/poweron").status == 201
    current = hetzner("GET", f"/servers/{server['id']}").body["server"]
    assert current["server_type"]["name"] == "cx33" and current["status"] == "running"


def test_catalogue_answers_what_the_provider_looks_up(hetzner: Running) -> None:
    server_types = hetzner("GET", "/server_types?name=cx23").body["server_types"]
    assert [t["architecture"] for t in server_types] == ["x86"]
    images = hetzner("GET", "/images?name=ubuntu-24.04&architecture=x86&include_deprecated=true").body["images"]
    assert len(images) == 1 and images[0]["os_version"] == "24.04"
    for name in ("fsn1", "nbg1", "hel1"):
        assert hetzner("GET", f"/locations?name={name}").body["locations"][0]["name"] == name
    assert hetzner("GET", "/server_types/999999").status == 404


def test_actions_are_pollable_and_can_stay_running(tmp_path: Path) -> None:
    api = HetznerCloud(action_polls=1)
    with StandInServer(api) as server:
        hetzner = Running(server, "/v1", HCLOUD_TOKEN)
        action = hetzner("POST", "/ssh_keys", {"name": "k", "public_key": fake_ssh_key()})
        assert action.status == 201
        created = hetzner("POST", "/primary_ips", {"name": "ip", "type": "ipv4", "location": "nbg1"}).body["action"]
        assert set(created) == {"id", "command", "status", "progress", "started", "finished", "resources", "error"}
        assert created["status"] == "running" and created["finished"] is None
        first = hetzner("GET", f"/actions?id={created['id']}&sort=status&sort=id").body["actions"]
        assert [a["status"] for a in first] == ["running"]
        second = hetzner("GET", f"/actions/{created['id']}").body["action"]
        assert second["status"] == "success" and second["progress"] == 100 and second["finished"]
        assert second["resources"][0]["type"] == "primary_ip" and second["error"] is None
        assert hetzner("GET", "/actions/1").status == 404


def test_lists_paginate_as_hcloud_go_expects(hetzner: Running) -> None:
    for index in range(30):
        create_key(hetzner, f"key-{index:02d}")
    first = hetzner("GET", "/ssh_keys?page=1&per_page=25").body
    assert len(first["ssh_keys"]) == 25
    assert first["meta"]["pagination"] == {
        "page": 1,
        "per_page": 25,
        "previous_page": None,
        "next_page": 2,
        "last_page": 2,
        "total_entries": 30,
    }
    second = hetzner("GET", "/ssh_keys?page=2&per_page=25").body
    assert len(second["ssh_keys"]) == 5 and second["meta"]["pagination"]["next_page"] is None
    assert hetzner("GET", "/ssh_keys?sort=name:desc").body["ssh_keys"][0]["name"] == "key-29"
    too_many = hetzner("GET", "/ssh_keys?per_page=51")
    assert too_many.status == 400 and error_of(too_many)["code"] == "invalid_input"


def test_label_selectors() -> None:
    labels = {"app": "mana", "env": "prod"}
    assert label_selector("app=mana,env==prod")(labels)
    assert not label_selector("app!=mana")(labels)
    assert label_selector("env in (prod, staging),!missing,app")(labels)
    assert not label_selector("env notin (prod)")(labels)


def test_zones_and_rrsets(hetzner: Running) -> None:
    reply = hetzner("POST", "/zones", {"name": "mana.how", "mode": "primary", "ttl": 300, "labels": {"app": "mana"}})
    assert reply.status == 201 and reply.body["action"]["command"] == "create_zone"
    zone = reply.body["zone"]
    assert zone["authoritative_nameservers"]["assigned"] == [
        "hydrogen.ns.hetzner.com.",
        "oxygen.ns.hetzner.com.",
        "helium.ns.hetzner.de.",
    ]
    assert hetzner("GET", "/zones/mana.how").body["zone"]["id"] == zone["id"]
    assert hetzner("POST", "/zones", {"name": "mana.how", "mode": "primary"}).status == 409
    ids = [r["id"] for r in hetzner("GET", "/zones/mana.how/rrsets").body["rrsets"]]
    assert sorted(ids) == ["@/NS", "@/SOA"]

    body = {"name": "vps", "type": "A", "ttl": 300, "records": [{"value": "203.0.113.10"}], "labels": {"a": "b"}}
    created = hetzner("POST", f"/zones/{zone['id']}/rrsets", body)
    assert created.status == 201 and created.body["rrset"]["id"] == "vps/A"
    assert created.body["rrset"]["zone"] == zone["id"] and created.body["rrset"]["protection"] == {"change": False}
    assert hetzner("POST", "/zones/mana.how/rrsets", body).status == 409
    unquoted = hetzner("POST", "/zones/mana.how/rrsets", {"name": "@", "type": "TXT", "records": [{"value": "v=spf1"}]})
    assert unquoted.status == 400 and error_of(unquoted)["code"] == "invalid_input"
    quoted = {"name": "@", "type": "TXT", "records": [{"value": '"v=spf1 -all"'}]}
    assert hetzner("POST", "/zones/mana.how/rrsets", quoted).status == 201
    beside = hetzner("POST", "/zones/mana.how/rrsets", {"name": "vps", "type": "CNAME", "records": [{"value": "x."}]})
    assert beside.status == 400
    # Hetzner's API reference: a name "must not end with a dot or the Zone name".
    absolute = {"name": "www.mana.how", "type": "A", "records": [{"value": "203.0.113.11"}]}
    refused = hetzner("POST", "/zones/mana.how/rrsets", absolute)
    assert refused.status == 400 and "must not end with a dot or the Zone name" in json.dumps(error_of(refused))

    changed = hetzner(
        "POST", "/zones/mana.how/rrsets/vps/A/actions/set_records", {"records": [{"value": "203.0.113.11"}]}
    )
    assert changed.status == 201 and changed.body["action"]["command"] == "set_rrset_records"
    assert hetzner("GET", "/zones/mana.how/rrsets/vps/A").body["rrset"]["records"] == [
        {"value": "203.0.113.11", "comment": ""}
    ]
    kind, (zone_name, rrsets) = hetzner.events[-1]
    assert kind == "zone" and zone_name == "mana.how"
    assert {"vps/A", "@/SOA", "@/NS", "@/TXT"} == {r["id"] for r in rrsets}
    assert "vps IN A 203.0.113.11" not in hetzner("GET", "/zones/mana.how/zonefile").body["zonefile"]
    assert "vps 300 IN A 203.0.113.11" in hetzner("GET", "/zones/mana.how/zonefile").body["zonefile"]

    protect(hetzner, "/zones/mana.how", delete=True)
    refused = hetzner("DELETE", "/zones/mana.how")
    assert refused.status == 423 and error_of(refused)["code"] == "protected"
    protect(hetzner, "/zones/mana.how", delete=False)
    assert hetzner("DELETE", "/zones/mana.how/rrsets/vps/A").status == 200
    assert hetzner("GET", "/zones/mana.how/rrsets/vps/A").status == 404
    assert hetzner("DELETE", "/zones/mana.how").status == 200
    assert hetzner.events[-1] == ("zone", ("mana.how", []))


def test_a_dns01_challenge_as_lego_makes_it(hetzner: Running) -> None:
    """lego's hetzner provider (v4.35.2, internal/hetznerv1): add_records on an RRSet that need not
    exist, GET /actions/{id} until it is no longer running, remove_records, which deletes the emptied RRSet."""
    assert hetzner("POST", "/zones", {"name": "mana.how", "mode": "primary", "ttl": 300}).status == 201
    path = "/zones/mana.how/rrsets/_acme-challenge/TXT/actions"
    added = hetzner("POST", f"{path}/add_records", {"ttl": 120, "records": [{"value": '"token-1"'}]})
    assert added.status == 201 and added.body["action"]["command"] == "add_rrset_records"
    assert hetzner("GET", f"/actions/{added.body['action']['id']}").body["action"]["status"] == "success"
    rrset = hetzner("GET", "/zones/mana.how/rrsets/_acme-challenge/TXT").body["rrset"]
    assert (rrset["ttl"], rrset["records"]) == (120, [{"value": '"token-1"', "comment": ""}])
    # The wildcard's challenge at the same name: appended, with the same TTL (another one is refused).
    assert hetzner("POST", f"{path}/add_records", {"ttl": 120, "records": [{"value": '"token-2"'}]}).status == 201
    other_ttl = hetzner("POST", f"{path}/add_records", {"ttl": 60, "records": [{"value": '"token-3"'}]})
    assert other_ttl.status == 400 and error_of(other_ttl)["code"] == "invalid_input"
    kind, (_, rrsets) = hetzner.events[-1]
    assert kind == "zone" and [r["records"] for r in rrsets if r["id"] == "_acme-challenge/TXT"] == [
        [{"value": '"token-1"', "comment": ""}, {"value": '"token-2"', "comment": ""}]
    ]
    for token in ("token-1", "token-2"):
        removed = hetzner("POST", f"{path}/remove_records", {"records": [{"value": f'"{token}"'}]})
        assert removed.status == 201 and removed.body["action"]["command"] == "remove_rrset_records"
    assert hetzner("GET", "/zones/mana.how/rrsets/_acme-challenge/TXT").status == 404


def test_state_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state" / "hetzner.json"
    with StandInServer(HetznerCloud(state)) as server:
        first = Running(server, "/v1", HCLOUD_TOKEN)
        key = create_key(first)
        ipv4 = create_ip(first, "ipv4")
        created = create_server(first, ssh_keys=[key["id"]], user_data="#cloud-config\n").body["server"]
    assert json.loads(state.read_text())["servers"]
    with StandInServer(HetznerCloud(state)) as server:
        second = Running(server, "/v1", HCLOUD_TOKEN)
        assert second("GET", f"/servers/{created['id']}").body["server"]["name"] == created["name"]
        assert second("GET", f"/primary_ips/{ipv4['id']}").body["primary_ip"]["ip"] == "203.0.113.10"
        newer = create_key(second, "another")
        assert newer["id"] > created["id"]
        assert create_ip(second, "ipv4", "next")["ip"] == "203.0.113.12"


def test_control_surface_needs_no_token_and_stays_apart(hetzner: Running) -> None:
    server = create_server(hetzner).body["server"]
    state = hetzner.control("GET", "state")
    assert state.status == 200 and str(server["id"]) in state.body["servers"]
    crashed = hetzner.control("POST", f"servers/{server['id']}/status", {"status": "off"})
    assert crashed.status == 200
    assert hetzner("GET", f"/servers/{server['id']}").body["server"]["status"] == "off"
    assert hetzner("GET", "/_stand-in/state").status == 404


def test_with_action_polls_a_new_server_initializes_until_its_start_is_done(tmp_path: Path) -> None:
    """As the real API answers: actions run for a few polls, a new server is "initializing" meanwhile."""
    api = HetznerCloud(action_polls=2)
    with StandInServer(api, "127.0.0.1", 0, tmp_path / "h.jsonl") as server:
        cloud = Running(server, "/v1", HCLOUD_TOKEN)
        created = create_server(cloud).body
        server_id = created["server"]["id"]
        assert created["action"]["status"] == "running"
        assert cloud("GET", f"/servers/{server_id}").body["server"]["status"] == "initializing"
        [start] = created["next_actions"]
        polls = [cloud("GET", f"/actions?id={start['id']}").body["actions"][0]["status"] for _ in range(3)]
        assert polls == ["running", "running", "success"]
        assert cloud("GET", f"/servers/{server_id}").body["server"]["status"] == "running"
