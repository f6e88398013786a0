"""Development tools around mana-infra: the lab, its stand-ins, the end-to-end runs.

Not part of the mana-infra package (the wheel ships `mana_infra` alone): these live in the
repository, and `mana-infra lab` finds them in the project folder it runs from.

- lab.py, topology.py, system.py, dnszone.py, backends.py, probe.py, vps_bin/: the network-namespace
  lab (``Lab``), built from the offline plan's artifacts (inputs.py); certs.py its certificates (pebble
  by DNS-01, the Cloudflare stand-in's Origin CA), edge.py its Cloudflare edge, latency.py the hop in
  front of pebble's API;
- drill.py: the failover drill, judged by the real ``mana-infra check``; bench.py: its figures;
- standins.py: local stand-ins for check's tests and benchmark (a test CA, HTTPS sites, a tiny DNS);
- clouds/: stand-ins for the Hetzner Cloud and Cloudflare APIs that the real providers talk to;
- cli.py: ``mana-infra lab up|down|drill|status``.
"""
