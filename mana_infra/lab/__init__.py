"""Network-namespace lab: a Cloudflare-Tunnel stand-in, the standby VPS and the Mac Mini, on one host.

Entry points: :class:`Lab` (the substrate), :func:`.inputs.inputs_from_plan` (what it runs: the
offline plan's artifacts and DNS records), :mod:`.drill` (the failover drill, judged by the real
``mana-infra check``), :func:`.cli.main` (``mana-infra lab up|down|drill|status``), :func:`.bench.run`.
Needs root on Linux plus caddy, wireguard-tools, wireguard-go, knotd/knotc, openssh-server.
"""

from .lab import CheckRun, Lab, missing_tools
from .system import LabError, cleanup_leftovers

__all__ = ["CheckRun", "Lab", "LabError", "cleanup_leftovers", "missing_tools"]
