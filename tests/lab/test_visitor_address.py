"""The visitor's real address reaches the apps in every way, and cannot be forged: real Caddy (the
version the VPS installs, 2.6) with the plan's Caddyfiles, the lab's edge setting Cf-Connecting-IP as
Cloudflare's proxy does, the Mac Mini's stub answering what it saw (backends.py, /_lab/visitor)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mana_infra.render.cloud_init import VPS_CADDY_LINE
from mana_lab import topology as topo
from mana_lab.backends import HEADERS_PATH

FORGED = "6.6.6.6"
HOST = "auth.mana.how"
FORGED_HEADERS = ("Cf-Connecting-IP", "X-Real-IP", "X-Forwarded-For", "True-Client-IP")


@pytest.fixture(scope="module")
def lab(plan_inputs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from mana_lab.lab import Lab

    # What a forged header does is Caddy's to decide: proven only with the Caddy line the VPS runs.
    version = subprocess.run(["caddy", "version"], capture_output=True, text=True, check=True).stdout.strip()
    assert version.lstrip("v").startswith(VPS_CADDY_LINE), f"the lab's Caddy is {version}, the VPS's {VPS_CADDY_LINE}x"

    with Lab.from_inputs(tmp_path_factory.mktemp("visitor-lab"), plan_inputs, "failover") as lab:
        lab.set_dns(plan_inputs["states"]["failover"]["dns_records"])
        yield lab


def seen(lab: Any, role: str, address: str, ca_file: Path) -> dict[str, Any]:
    """What the app behind HOST sees of a visitor in ``role``'s namespace who asks ``address`` and
    sends forged address headers."""
    forged = [arg for name in FORGED_HEADERS for arg in ("-H", f"{name}: {FORGED}")]
    argv = ["curl", "-sS", "--fail", "--max-time", "10", "--cacert", str(ca_file), "--resolve",
            f"{HOST}:443:{address}", *forged, f"https://{HOST}{HEADERS_PATH}"]  # fmt: skip
    done = lab.exec(role, argv)
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def test_through_the_edge_the_app_sees_the_visitor_cloudflare_saw(lab: Any) -> None:
    """Cloudflare's edge overwrites Cf-Connecting-IP; the VPS believes it (and X-Forwarded-For) from
    Cloudflare's ranges alone."""
    app = seen(lab, "client", topo.EDGE_IP, lab.ca_bundle)
    assert app["Cf-Connecting-IP"] == app["X-Real-IP"] == topo.CLIENT_IP, app
    assert app["X-Forwarded-For"].split(", ")[-2:] == [topo.CLIENT_IP, topo.EDGE_IP], app
    assert FORGED not in json.dumps(app).replace(f"{FORGED}, ", "")  # only the visitor's own XFF entry stays
    assert app["True-Client-IP"] is None


def test_straight_at_the_vps_a_forged_address_never_reaches_the_app(lab: Any) -> None:
    """The operator's networks reach the VPS besides Cloudflare through the edge: their headers are not
    Cloudflare's, and are written anew from the connection."""
    app = seen(lab, "client", topo.VPS_IP, lab.ca_bundle_with_origin_ca)
    assert app["Cf-Connecting-IP"] == app["X-Real-IP"] == app["X-Forwarded-For"] == topo.CLIENT_IP, app
    assert app["True-Client-IP"] is None


def test_dns_only_every_visitor_is_who_connects(lab: Any, plan_inputs: dict[str, Any]) -> None:
    state = plan_inputs["states"]["failover-dns"]
    result = lab.apply_state(state)
    assert result["push_ok"], result["push_output"]
    app = seen(lab, "outsider", topo.VPS_IP, lab.ca_bundle)
    assert app["Cf-Connecting-IP"] == app["X-Real-IP"] == app["X-Forwarded-For"] == topo.OUTSIDER_IP, app
    assert app["True-Client-IP"] is None


def test_no_http3_is_announced(lab: Any) -> None:
    resolve = f"vps.mana.how:443:{topo.VPS_IP}"
    argv = ["curl", "-sS", "-D", "-", "-o", "/dev/null", "--cacert", str(lab.ca_bundle), "--resolve", resolve]
    done = lab.exec("client", [*argv, "https://vps.mana.how/healthz"])
    assert done.returncode == 0 and done.stdout.startswith("HTTP/2 200"), done.stdout + done.stderr
    assert "alt-svc" not in done.stdout.lower()
