"""CLI commands, one module per group; zeroserve/cli.py registers them."""
