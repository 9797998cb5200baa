"""Helpers shared by every command-line entry point."""

from __future__ import annotations

import sys
from typing import Any, Callable

from lit_sql.errors import LitSQLError


def run_cli(fn: Callable[..., Any], args: list[str] | None = None) -> Any:
    """Parse flags for `fn` with jsonargparse and run it; user errors end with one line, not a traceback."""
    from jsonargparse import CLI

    try:
        return CLI(fn, args=args, as_positional=False)
    except LitSQLError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
