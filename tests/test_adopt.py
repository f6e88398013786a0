"""Adopting the records that exist already: offline, from saved Cloudflare API answers, through the
command line as the operator runs it (`mana-infra adopt`, in-process)."""

from __future__ import annotations

import copy
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mana_infra import cli
from mana_infra import plan as offline
from mana_infra.components.dns import ADOPTION_IGNORED_FIELDS, COMMENT

from .support import FIXTURES, PROJECT, PROJECT_DIR, copy_project, with_stack

# The current answer (no zone_id on the records), 39 records in two pages of 20.
PAGES = [FIXTURES / f"cloudflare-dns-records-mana.how-page-{page}.json" for page in (1, 2)]
# An answer from before Cloudflare dropped zone_id from the records: its records name their zone.
OLDER_ANSWER = FIXTURES / "cloudflare-dns-records.json"
AUTH_ERROR = FIXTURES / "cloudflare-dns-records-auth-error.json"
OTHER_ZONE = FIXTURES / "cloudflare-dns-records-example.org.json"
ZONE_ID = "023e105f4ecef8ad9ca31a8372d0c353"
TUNNEL_ID = "00000000-0000-4000-8000-000000000000"
TUNNEL = f"{TUNNEL_ID}.cfargotunnel.com"
CURL = 'curl -sS -H "Authorization: Bearer $CLOUDFLARE_API_TOKEN"'
API = "https://api.cloudflare.com/client/v4"
# One line of the one `pulumi config set-all` adopt prints for every host to adopt.
CONFIG_LINE = re.compile(r"^    --plaintext 'adoptRecords\[\"([^\"]+)\"\]=(\S+)'(?: \\)?$", re.M)


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def adopt(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Run]:
    """`mana-infra adopt ARGS` in this process, from the checkout: exit code, stdout, stderr."""
    monkeypatch.chdir(PROJECT_DIR)

    def run(*args: str | Path) -> Run:
        code = cli.main(with_stack(["adopt", *map(str, args)]))
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        return Run(code, out, err)

    return run


def project_with(tmp_path: Path, **config: str) -> str:
    """A project of its own: the checkout's stack prod leaves tunnelId (and the rest) to the operator."""
    project = copy_project(tmp_path / "project", ("Pulumi.yaml", "services.yaml"))
    stack = (PROJECT_DIR / "Pulumi.prod.yaml").read_text().rstrip("\n") + "\n"
    stack += "".join(f"  mana-infra:{key}: {value}\n" for key, value in {"tunnelId": TUNNEL_ID, **config}.items())
    (project / "Pulumi.prod.yaml").write_text(stack)
    return str(project)


def current_records() -> list[dict[str, Any]]:
    return [record for page in PAGES for record in json.loads(page.read_text())["result"]]


def answer(path: Path, records: list[dict[str, Any]], page: int = 1, per_page: int = 100, total: int = -1) -> Path:
    """A saved answer as Cloudflare shapes it: one page of `per_page` of `total` records."""
    total = len(records) if total < 0 else total
    info = {
        "page": page,
        "per_page": per_page,
        "count": len(records),
        "total_count": total,
        "total_pages": -(-total // per_page),
    }
    document = {"result": records, "success": True, "errors": [], "messages": [], "result_info": info}
    path.write_text(json.dumps(document))
    return path


def record_of(records: list[dict[str, Any]], name: str, kind: str = "CNAME") -> dict[str, Any]:
    return next(record for record in records if record["name"] == name and record["type"] == kind)


def block(text: str, title: str) -> str:
    """The report's paragraph that starts with `title`."""
    found = re.search(rf"^{re.escape(title)}.*?(?=\n\n|\Z)", text, re.S | re.M)
    assert found, f"no {title!r} in:\n{text}"
    return found.group(0)


# ------------------------------------------------------------------------------ current answers


def test_a_current_answer_in_two_pages_is_read_with_the_zone_id_given(
    adopt: Callable[..., Run], tmp_path: Path
) -> None:
    """Cloudflare's records no longer carry zone_id: the import ids take it from --zone-id. Every tunnel
    CNAME is adopted, with what the first `pulumi up` and the run after change; the hand-made records
    at vps.mana.how stand where the program creates the VPS's A/AAAA: a conflict, exit 1."""
    result = adopt("--records", *PAGES, "--zone-id", ZONE_ID, "--project-dir", project_with(tmp_path))
    assert result.code == 1, result.err
    assert result.out.startswith(
        "Adoption report for stack prod: zone mana.how, tunnel mode\n"
        f"  zone id {ZONE_ID} (from --zone-id)\n"
        "  read 39 records in 2 pages: cloudflare-dns-records-mana.how-page-1.json,\n"
        "    cloudflare-dns-records-mana.how-page-2.json\n"
        "  10 other records (CAA, CNAME, MX, TXT) are not the program's and stay as they\n"
        "    are\n"
    )
    assert block(result.out, "conflict  vps.mana.how") == (
        "conflict  vps.mana.how (originName, the VPS's own name)\n"
        "          has A 203.0.113.7, AAAA 2001:db8::7: the program creates A and AAAA\n"
        "          vps.mana.how for the new VPS; Cloudflare refuses an identical record\n"
        "          (error 81058) and keeps a different one beside the old, so\n"
        "          vps.mana.how would answer with both addresses\n"
        "          what to do: if nothing uses them any more, delete them in the\n"
        "          dashboard before the first `pulumi up`; or give the VPS a name of its\n"
        "          own:\n"
        "            pulumi config set --stack prod originName standby.mana.how"
    )
    assert block(result.out, "adopt     2 hosts") == (
        "adopt     2 hosts: mana.how, auth.mana.how\n"
        "          first `pulumi up`: imports the record unchanged\n"
        "          the run after:\n"
        '            comment  "Mac Mini through the tunnel"\n'
        f'              -> "{COMMENT}"'
    )
    others = block(result.out, "adopt     25 hosts")
    assert others.endswith(
        "          first `pulumi up`: imports the record unchanged\n"
        "          the run after:\n"
        "            comment  none\n"
        f'              -> "{COMMENT}"'
    )
    records = current_records()
    adopted = dict(CONFIG_LINE.findall(result.out))
    assert len(adopted) == 27
    assert adopted["chat.mana.how"] == f"{ZONE_ID}/{record_of(records, 'chat.mana.how')['id']}"
    # Records of page 2 are adopted too.
    assert adopted["todo.mana.how"] == f"{ZONE_ID}/{record_of(records, 'todo.mana.how')['id']}"
    assert result.out.endswith(
        "27 hosts: 27 to adopt, 0 to create, 0 conflicts; the origin name vps.mana.how:\n"
        "conflict.\n"
        "Resolve the conflict before the first `pulumi up`, save the records again and\n"
        "run adopt again: it exits 0 when the first `pulumi up` is safe.\n"
    )


def test_safe_adoption_exits_0_and_its_commands_are_what_the_program_imports(
    adopt: Callable[..., Run], tmp_path: Path
) -> None:
    """The zone id from the stack's cloudflareZoneId; the VPS under a free name: nothing in the way.
    What the printed commands set, the program turns into import options ignoring comment and TTL."""
    project = project_with(tmp_path, cloudflareZoneId=ZONE_ID, originName="standby.mana.how")
    result = adopt("--records", *PAGES, "--project-dir", project)
    assert result.code == 0, result.err
    assert f"  zone id {ZONE_ID} (from cloudflareZoneId)\n" in result.out
    assert "conflict" not in result.out.replace("0 conflicts", "")
    # One command for every host, in lines that each end in a backslash but the last (one command pasted).
    command = re.findall(
        r"^  (pulumi config set-all --stack prod --path \\\n(?:    --plaintext .*\n)+)", result.out, re.M
    )
    assert len(command) == 1 and command[0].count(" \\\n") == 27 and command[0].count("\n") == 28, result.out
    assert result.out.endswith(
        "Before the first `pulumi up`, run this (27 hosts to adopt):\n"
        + f"  {command[0]}"
        + "Then `pulumi up --stack prod`; the run after:\n"
        "  pulumi config rm --stack prod adoptRecords && pulumi up --stack prod\n"
        "\n"
        "27 hosts: 27 to adopt, 0 to create, 0 conflicts; the origin name\n"
        "standby.mana.how: free.\n"
        "Safe: the first `pulumi up` neither fails on an existing record nor moves a host.\n"
    )
    adopted = dict(CONFIG_LINE.findall(result.out))
    assert len(adopted) == 27
    plan = offline.plan("prod", overrides={"tunnelId": TUNNEL_ID, "adoptRecords": json.dumps(adopted)}, project=PROJECT)
    imported = {r.inputs["name"]: r.options for r in plan.resources if r.options["importId"]}
    assert {name: options["importId"] for name, options in imported.items()} == adopted
    assert all(options["ignoreChanges"] == ADOPTION_IGNORED_FIELDS for options in imported.values())


def test_every_line_but_the_commands_fits_80_columns(adopt: Callable[..., Run], tmp_path: Path) -> None:
    records = current_records()
    stats = record_of(records, "stats.mana.how")
    stats.update(content="mana-how.stats.example.net", proxied=False, ttl=300)
    result = adopt(
        "--records", answer(tmp_path / "r.json", records), "--zone-id", ZONE_ID, "--project-dir", project_with(tmp_path)
    )
    assert result.code == 1
    commands = ("pulumi ", "--plaintext ")
    long = [line for line in result.out.splitlines() if len(line) > 80 and not line.lstrip().startswith(commands)]
    assert long == []


# ---------------------------------------------------------------------------------- conflicts


def test_a_cname_elsewhere_is_flagged_with_every_change_it_will_get(adopt: Callable[..., Run], tmp_path: Path) -> None:
    """DNS-only to another provider, TTL 300: the plan moves it to the tunnel, proxied, TTL auto, with
    the program's comment. Visitors see that: a decision, not a plain adopt."""
    records = current_records()
    stats = record_of(records, "stats.mana.how")
    stats.update(content="mana-how.stats.example.net", proxied=False, ttl=300, comment="Plausible")
    result = adopt(
        "--records", answer(tmp_path / "r.json", records), "--zone-id", ZONE_ID, "--project-dir", project_with(tmp_path)
    )
    assert result.code == 1
    assert block(result.out, "conflict  stats.mana.how") == (
        "conflict  stats.mana.how\n"
        "          CNAME to mana-how.stats.example.net (DNS-only, TTL 300), not to the\n"
        "          tunnel: the first `pulumi up` moves it there, and visitors see the\n"
        "          change\n"
        "          first `pulumi up`:\n"
        "            content  mana-how.stats.example.net\n"
        f"              -> {TUNNEL}\n"
        "            proxied  DNS-only -> proxied\n"
        "            TTL      300 -> auto (as every proxied record)\n"
        "          the run after:\n"
        '            comment  "Plausible"\n'
        f'              -> "{COMMENT}"\n'
        "          what to do: if the tunnel serves stats.mana.how and the move is\n"
        "          wanted, make it at a moment you choose (point the record at\n"
        f"          {TUNNEL}, proxied), save\n"
        "          the records again and run adopt again; or accept the move with the\n"
        "          first `pulumi up`:\n"
        "            pulumi config set --stack prod --path 'adoptRecords[\"stats.mana.how\"]' "
        f"{ZONE_ID}/{stats['id']}"
    )
    # Not among the commands of the safe adoptions.
    assert "stats.mana.how" not in dict(CONFIG_LINE.findall(result.out))
    assert "27 hosts: 26 to adopt, 0 to create, 1 conflict;" in result.out


def test_a_cname_at_the_origin_name_is_a_conflict(adopt: Callable[..., Run], tmp_path: Path) -> None:
    records = [r for r in current_records() if r["name"] != "vps.mana.how"]
    origin = copy.deepcopy(record_of(records, "www.mana.how"))
    origin.update(name="vps.mana.how", content="old-vps.example.net", proxied=False, ttl=300, id="f" * 32)
    records.append(origin)
    result = adopt(
        "--records", answer(tmp_path / "r.json", records), "--zone-id", ZONE_ID, "--project-dir", project_with(tmp_path)
    )
    assert result.code == 1
    assert block(result.out, "conflict  vps.mana.how") == (
        "conflict  vps.mana.how (originName, the VPS's own name)\n"
        "          has a CNAME to old-vps.example.net: the program creates A and AAAA\n"
        "          vps.mana.how for the VPS, and Cloudflare allows none beside a CNAME\n"
        "          (error 81054): the first `pulumi up` fails\n"
        "          what to do: if nothing uses the CNAME, delete it in the dashboard\n"
        "          before the first `pulumi up`; or give the VPS a name of its own:\n"
        "            pulumi config set --stack prod originName standby.mana.how"
    )


def test_an_older_answer_names_its_zone_and_its_conflicts(adopt: Callable[..., Run], tmp_path: Path) -> None:
    """The older fixture: records with zone_id (the zone id comes from there), an A record where a host
    needs its CNAME, a CNAME to another tunnel, hosts without a record (create). Exit 1, not 0."""
    result = adopt("--records", OLDER_ANSWER, "--project-dir", project_with(tmp_path))
    assert result.code == 1
    assert f"  zone id {ZONE_ID} (from the records' zone_id)\n" in result.out
    assert block(result.out, "conflict  todo.mana.how") == (
        "conflict  todo.mana.how\n"
        "          has A 198.51.100.20 (proxied): Cloudflare allows no CNAME beside it\n"
        "          (error 81053), so the first `pulumi up` fails on this host\n"
        "          what to do: to serve it through the tunnel: delete it in the dashboard\n"
        "          right before the first `pulumi up` (the host has no address until the\n"
        "          CNAME is created); to serve it elsewhere: remove it from services.yaml"
    )
    grafana = block(result.out, "conflict  grafana.mana.how")
    assert "11111111-0000-4000-8000-000000000000 is another tunnel: is tunnelId\n          right?" in grafana
    assert block(result.out, "create    21 hosts").endswith(
        "          no record yet: the first `pulumi up` creates the CNAME ->\n"
        f"          {TUNNEL} (proxied, TTL\n"
        "          auto)"
    )
    # The apex has an MX beside its CNAME: Cloudflare flattens the apex CNAME, so that is fine.
    assert dict(CONFIG_LINE.findall(result.out)) == {
        host: f"{ZONE_ID}/{number:032x}"
        for number, host in enumerate(["mana.how", "auth.mana.how", "chat.mana.how", "chat-api.mana.how"])
    }
    assert "27 hosts: 4 to adopt, 21 to create, 2 conflicts; the origin name vps.mana.how:\nfree.\n" in result.out
    assert "Resolve the 2 conflicts before" in result.out


def test_one_host_and_one_conflict_are_counted_in_the_singular(adopt: Callable[..., Run], tmp_path: Path) -> None:
    services = tmp_path / "one.yaml"
    services.write_text("services:\n  - host: photos.mana.how\n    port: 5019\n")
    records = [r for r in current_records() if r["name"] != "photos.mana.how"]
    result = adopt(
        "--records",
        answer(tmp_path / "r.json", records),
        "--zone-id",
        ZONE_ID,
        "--services",
        services,
        "--project-dir",
        project_with(tmp_path),
    )
    assert block(result.out, "create    photos.mana.how")
    assert "Nothing to adopt.\n\n1 host: 0 to adopt, 1 to create, 0 conflicts;" in result.out
    assert "Resolve the conflict before" in result.out


# ------------------------------------------------------------------------------------ bad input


def test_without_a_zone_id_it_names_the_three_ways_to_one(adopt: Callable[..., Run]) -> None:
    result = adopt("--records", *PAGES)
    assert result.code == 2 and result.out == ""
    assert result.err == (
        "mana-infra: 1 problem in the input, nothing was changed:\n"
        "  - zone id: unknown: neither --zone-id nor the stack's cloudflareZoneId (Pulumi.prod.yaml) gives it, "
        "and Cloudflare's answers no longer carry zone_id on their records\n"
        "    fix: give --zone-id <id>, or keep it in the stack: pulumi config set --stack prod cloudflareZoneId <id>\n"
        "      the id of mana.how is result[0].id of\n"
        f'      {CURL} "{API}/zones?name=mana.how"\n'
    )


def test_a_missing_page_is_refused_with_the_command_that_fetches_it(adopt: Callable[..., Run]) -> None:
    """Page 1 alone would report `create` for the hosts on page 2: the "record already exists" failure."""
    result = adopt("--records", PAGES[0], "--zone-id", ZONE_ID)
    assert result.code == 2 and result.out == ""
    assert result.err == (
        "mana-infra: 1 problem in the input, nothing was changed:\n"
        f"  - {PAGES[0]}: page 2 of 2 is missing (only 20 of the 39 records are here): a host whose record is "
        "there would look like one to create, and the first `pulumi up` would fail on it\n"
        "    fix: save the missing page:\n"
        f'      {CURL} "{API}/zones/{ZONE_ID}/dns_records?page=2&per_page=20" > records-2.json\n'
        f"      then run adopt with every page: mana-infra adopt --stack prod --zone-id {ZONE_ID} --records {PAGES[0]} "
        "records-2.json\n"
    )


def test_a_page_given_twice_is_refused(adopt: Callable[..., Run], tmp_path: Path) -> None:
    again = tmp_path / "again.json"
    shutil.copy(PAGES[0], again)
    result = adopt("--records", PAGES[0], again, "--zone-id", ZONE_ID)
    assert result.code == 2
    twice = f"  - {PAGES[0]}, {again}: page 1 is given 2 times ({PAGES[0]}, {again})\n    fix: pass each page once\n"
    assert twice in result.err
    assert "page 2 of 2 is missing" in result.err


def test_pages_of_a_zone_that_changed_in_between_are_refused(adopt: Callable[..., Run], tmp_path: Path) -> None:
    records = current_records()
    first = answer(tmp_path / "records-1.json", records[:20], page=1, per_page=20, total=39)
    second = answer(tmp_path / "records-2.json", records[20:] + records[:1], page=2, per_page=20, total=40)
    result = adopt("--records", first, second, "--zone-id", ZONE_ID)
    assert result.code == 2
    assert result.err.startswith(
        "mana-infra: 1 problem in the input, nothing was changed:\n"
        f"  - {first}, {second}: the zone changed between the pages: total_count 39 ({first}), 40 ({second})\n"
        "    fix: save every page again, at one moment:\n"
        f'      {CURL} "{API}/zones/{ZONE_ID}/dns_records?page=1&per_page=20" > records-1.json\n'
    )


def test_pages_that_do_not_add_up_to_total_count_are_refused(adopt: Callable[..., Run], tmp_path: Path) -> None:
    records = current_records()
    first = answer(tmp_path / "records-1.json", records[:20], page=1, per_page=20, total=40)
    second = answer(tmp_path / "records-2.json", records[20:], page=2, per_page=20, total=40)
    result = adopt("--records", first, second, "--zone-id", ZONE_ID)
    assert result.code == 2
    assert (
        f"  - {first}, {second}: the pages hold 39 records, but total_count is 40: the zone changed while they "
        "were saved\n"
    ) in result.err


def test_another_zones_answer_is_refused(adopt: Callable[..., Run]) -> None:
    result = adopt("--records", OTHER_ZONE, "--zone-id", ZONE_ID)
    assert result.code == 2 and result.out == ""
    assert result.err == (
        "mana-infra: 1 problem in the input, nothing was changed:\n"
        f"  - {OTHER_ZONE}: holds another zone's records: none of its 7 records is in mana.how "
        "(_dmarc.example.org, api.example.org, example.org, ...)\n"
        "    fix: save the records of mana.how: its zone id is result[0].id of\n"
        f'      {CURL} "{API}/zones?name=mana.how"\n'
    )


def test_an_older_answer_of_another_zone_id_is_refused(adopt: Callable[..., Run]) -> None:
    result = adopt("--records", OLDER_ANSWER, "--zone-id", "f" * 32)
    assert result.code == 2
    assert (
        f"  - {OLDER_ANSWER}: its records name the zone {ZONE_ID}, not {'f' * 32} (--zone-id): another zone's "
        "records, or the wrong id\n"
    ) in result.err


def test_cloudflares_own_error_is_shown(adopt: Callable[..., Run]) -> None:
    result = adopt("--records", AUTH_ERROR, "--zone-id", ZONE_ID)
    assert result.code == 2 and result.out == ""
    assert result.err == (
        "mana-infra: 1 problem in the input, nothing was changed:\n"
        f"  - {AUTH_ERROR}: Cloudflare answered with an error, not with records: 10000 Authentication error\n"
        '    fix: check the token: this must answer "status": "active"\n'
        f'      {CURL} "{API}/user/tokens/verify"\n'
        "      and the token needs Zone:DNS:Read (or Edit) on mana.how; then save the records again\n"
    )


def test_a_file_that_is_not_utf8_names_the_byte_and_its_offset(adopt: Callable[..., Run], tmp_path: Path) -> None:
    latin1 = tmp_path / "records.json"
    latin1.write_bytes('{"result": [{"comment": "Café"}]}'.encode("latin-1"))
    result = adopt("--records", latin1, "--zone-id", ZONE_ID)
    assert result.code == 2
    assert result.err == (
        "mana-infra: 1 problem in the input, nothing was changed:\n"
        f"  - {latin1}: is not UTF-8 text: byte 0xe9 at offset 28 (invalid continuation byte)\n"
        "    fix: save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 FILE > FILE.new`)\n"
    )


def test_unreadable_and_non_json_files_are_each_named(adopt: Callable[..., Run], tmp_path: Path) -> None:
    html = tmp_path / "page.json"
    html.write_text("<html><body>502 Bad Gateway</body></html>\n")
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(current_records()))
    result = adopt("--records", tmp_path / "missing.json", html, bare)
    assert result.code == 2
    problems = re.findall(r"^  - (.*)$", result.err, re.M)
    assert problems == [
        f"{tmp_path / 'missing.json'}: cannot read the records: No such file or directory",
        f"{html}: is not JSON: Expecting value at line 1, column 1 (an HTML page: the request did not reach the API)",
        f"{bare}: is a bare list, not Cloudflare's whole answer: without its result_info adopt cannot tell whether "
        "pages are missing",
    ]


def test_without_the_tunnel_id_it_names_the_tunnel_the_records_point_at(adopt: Callable[..., Run]) -> None:
    """The checkout's prod stack has no tunnelId: a CNAME to the tunnel and one elsewhere look alike."""
    result = adopt("--records", *PAGES, "--zone-id", ZONE_ID)
    assert result.code == 2
    assert result.err == (
        "mana-infra: 1 problem in the input, nothing was changed:\n"
        "  - Pulumi.prod.yaml: mana-infra:tunnelId: is not set: adopt compares each CNAME with the tunnel the "
        "plan points it at\n"
        "    fix: pulumi config set --stack prod tunnelId <uuid from `cloudflared tunnel list`>\n"
        f"      the zone's CNAMEs point at the tunnel {TUNNEL_ID} (27 hosts)\n"
    )


def test_what_is_not_a_dns_records_answer_is_refused_naming_what_it_holds(
    adopt: Callable[..., Run], tmp_path: Path
) -> None:
    """The README's first curl (GET /zones?name=...) saved as the records: before, "read 1 record ...
    Safe" and a first `pulumi up` that fails on all 27. Entries without type, name or content and a type
    that is no DNS record type are refused too."""
    zone = {"id": "0123456789abcdef0123456789abcdef", "name": "mana.how", "status": "active", "type": "full",
            "name_servers": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"]}  # fmt: skip
    zones = answer(tmp_path / "zones.json", [zone])
    result = adopt("--records", zones, "--zone-id", zone["id"])
    assert result.code == 2 and "Safe" not in result.out
    assert (
        f"{zones}: is Cloudflare's answer about zones (GET /zones), not a zone's DNS records: it holds the zone "
        f"mana.how (id {zone['id']}), and no record"
    ) in " ".join(result.err.split())
    assert f"{API}/zones/{zone['id']}/dns_records" in result.err
    good = current_records()[0]
    for broken, reason in (
        ({k: v for k, v in good.items() if k != "content"}, "has no content"),
        ({**good, "type": "MAGIC"}, "has the type 'MAGIC', which is no DNS record type"),
    ):
        path = answer(tmp_path / "broken.json", [broken])
        result = adopt("--records", path, "--zone-id", zone["id"])
        assert result.code == 2 and f"is not a Cloudflare DNS record list: result[0] {reason}" in result.err


def test_a_record_at_the_tunnel_probe_is_a_conflict(adopt: Callable[..., Run], tmp_path: Path) -> None:
    """tunnel-probe.<zone> is the program's: a record already there fails the first `pulumi up`."""
    records = current_records()
    probe = copy.deepcopy(record_of(records, "www.mana.how"))
    probe.update(name="tunnel-probe.mana.how", content="198.51.100.7", type="A", proxied=False, ttl=300, id="e" * 32)
    records.append(probe)
    result = adopt(
        "--records", answer(tmp_path / "r.json", records), "--zone-id", ZONE_ID, "--project-dir", project_with(tmp_path)
    )
    assert result.code == 1
    conflict = block(result.out, "conflict  tunnel-probe.mana.how")
    assert conflict.startswith("conflict  tunnel-probe.mana.how (the tunnel probe: a CNAME to the tunnel")
    assert "has A 198.51.100.7: the program creates its tunnel probe there" in " ".join(conflict.split())
    assert "delete the record in the dashboard before the first `pulumi up`" in " ".join(conflict.split())
    summary = " ".join(result.out.split())
    assert "vps.mana.how: conflict; the tunnel probe tunnel-probe.mana.how: conflict." in summary
    assert "Safe:" not in result.out
    # Without it, the probe's name is free and never mentioned among the other records.
    clean = adopt("--records", answer(tmp_path / "c.json", current_records()), "--zone-id", ZONE_ID,
                  "--project-dir", project_with(tmp_path / "c"))  # fmt: skip
    assert "tunnel-probe" not in clean.out
