"""Pulumi's entry point; the program lives in mana_infra.program."""

import os
import signal

from mana_infra.program import run

# The engine stops the program with SIGINT when it cancels a run (Ctrl-C, or a mandatory policy that
# failed): stop quietly, the engine says why; a Python traceback would only bury its message.
signal.signal(signal.SIGINT, lambda signum, frame: os._exit(128 + signum))

run()
