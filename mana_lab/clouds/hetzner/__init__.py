"""A stand-in for the Hetzner Cloud API (https://api.hetzner.cloud/v1) for the resources mana-infra uses.

Point the provider at it with ``hcloud:endpoint`` (or ``HCLOUD_ENDPOINT``) = ``http://HOST:PORT/v1``:
hcloud-go appends the resource path to the endpoint (``/v1/servers``, ``/v1/zones/{id}/rrsets``), and
so does this stand-in, which answers under ``/v1`` only. Any 64-character bearer token is accepted
(or only the ones given), as the provider insists on exactly 64 characters.

Endpoints, with the JSON shapes of hcloud-go's ``schema`` package (read: hcloud-go v2.47.0, the
terraform provider's go.mod; terraform-provider-hcloud at v1.68.0+ / master of 2026-08-17):

- ``/ssh_keys`` list (name, fingerprint, label_selector), create, get, update, delete.
- ``/primary_ips`` list (name, ip, label_selector), create (location or assignee), get, update, delete;
  actions assign, unassign, change_protection, change_dns_ptr.
- ``/firewalls`` list, create (rules, apply_to), get, update, delete; actions set_rules,
  apply_to_resources, remove_from_resources.
- ``/servers`` list (name, status, label_selector), create (public_net with primary IPs, firewalls,
  ssh_keys, user_data), get, update, delete; actions poweron, poweroff, shutdown, reboot, reset,
  change_protection, rebuild, change_type, enable_backup, disable_backup, enable_rescue,
  disable_rescue, change_dns_ptr.
- ``/zones`` list (name, mode, label_selector), create (default SOA and NS RRSets), get by id or name,
  update, delete, zonefile export; actions change_protection, change_ttl.
- ``/zones/{id_or_name}/rrsets`` list (name, type, label_selector), create, get ("name/type" ids as
  the API gives them), update, delete; actions change_protection, change_ttl, set_records,
  add_records, update_records, remove_records.
- ``/actions`` (``?id=`` repeated, as hcloud-go's waiter polls), ``/actions/{id}``, and each
  resource's ``/{resource}/actions``, ``/{resource}/actions/{id}`` and ``/{resource}/{id}/actions``.
- ``/locations``, ``/datacenters``, ``/server_types``, ``/images`` (name, architecture, type): see
  `hetzner_catalog`.

Lists paginate with ``page``/``per_page`` (25 by default, 50 at most) and answer ``meta.pagination``
(page, per_page, previous_page, next_page, last_page, total_entries): hcloud-go follows ``next_page``.
Actions finish at once as ``success`` (``action_polls=N`` keeps each one ``running`` for N polls, to
exercise the clients' waiting). Errors are ``{"error": {"code", "message", "details"}}`` with the status
the API documents for the code.

Control surface (no token): ``GET /_stand-in/state``, ``GET /_stand-in/health``,
``POST /_stand-in/servers/{id}/status`` ``{"status": "off"|"running"}`` (a crash or a power cut).

One class per resource family, each in its module with its routes beside its handlers (`ROUTES`),
composed here over `base.HetznerBase` (the typed state, authentication, actions, pages and filters).
"""

from __future__ import annotations

from .base import DEFAULT_IPV4_POOL, DEFAULT_IPV6_POOL, DEFAULT_NAMESERVERS, HetznerError, label_selector
from .servers import Servers
from .zones import Zones

__all__ = [
    "DEFAULT_IPV4_POOL",
    "DEFAULT_IPV6_POOL",
    "DEFAULT_NAMESERVERS",
    "HetznerCloud",
    "HetznerError",
    "label_selector",
]


class HetznerCloud(Servers, Zones):
    """The Hetzner Cloud API stand-in: every family's routes over one state, saved after every change."""
