"""The program's building blocks, each a ComponentResource with typed arguments."""
