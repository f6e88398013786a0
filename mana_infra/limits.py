"""Bounds that more than one reader enforces, in one place: the stack's config check (config.py) and
the policy pack (policy/mana_policies.py loads this file by its path: the pack's own virtualenv has
no mana_infra). Plain constants, no imports."""

# A DNS-only failover record's TTL: at least a minute (Cloudflare's least for DNS-only records is 60 s
# on the Free plan), at most five, so that resolvers follow a flip, and a fail-back, within minutes.
FAILOVER_TTL_MIN = 60
FAILOVER_TTL_MAX = 300
