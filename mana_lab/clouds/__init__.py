"""Stand-ins for the Hetzner Cloud and Cloudflare APIs that the real Pulumi providers talk to."""
