"""`python -m mana_infra.check ...`: the check sub-command on its own."""

import sys

from .cli import cli

sys.exit(cli())
