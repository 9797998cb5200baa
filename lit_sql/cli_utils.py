"""Kept for entry points written against the old location: use `lit_sql.cli.run_cli`."""

from lit_sql.cli import run_cli  # noqa: F401
