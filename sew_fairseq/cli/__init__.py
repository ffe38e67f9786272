"""Command-line entry points (console scripts in setup.py)."""
