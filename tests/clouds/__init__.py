"""Tests of the Hetzner Cloud and Cloudflare API stand-ins (mana_lab.clouds)."""
