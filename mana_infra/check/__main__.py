"""`python -m mana_infra.check ...`: the check sub-command on its own."""

import sys

from . import cli

sys.exit(cli())
