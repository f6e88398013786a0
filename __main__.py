"""Pulumi's entry point; the program lives in mana_infra.program."""

from mana_infra.program import run

run()
