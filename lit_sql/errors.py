"""User-facing errors.

A `LitSQLError` means the user gave us something we cannot work with (a missing file, a bad flag, a corrupt
checkpoint). Its message names the thing that is wrong and what to do about it; entry points print it
without a traceback (see `lit_sql.cli.run_cli`).
"""


class LitSQLError(Exception):
    """An error caused by user input, reported as one clear message."""
