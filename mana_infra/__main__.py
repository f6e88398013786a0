"""`python -m mana_infra` is `mana-infra`."""

from .cli import main

raise SystemExit(main())
