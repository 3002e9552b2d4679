"""The `verbatim` command line: one module per group of subcommands (main.py wires them)."""
