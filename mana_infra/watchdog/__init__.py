"""The watchdog: `mana-infra watch`. It decides from two vantage points whether the standby should
take over, and does it through the same cut-over as `mana-infra cutover` — only when that helps.

votes.py (what each vantage point sees; the VPS's probe is vps_probe.py, run on the VPS over SSH),
decide.py (the rules, pure, on a state that survives restarts), run.py (the loop: rounds, acting,
pages, the state file) and command.py (the command line).
"""
