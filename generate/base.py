"""Generate an answer with a base or chat checkpoint: python generate/base.py --prompt "..." """

from lit_sql.cli import run_cli
from lit_sql.cli.generate import base

if __name__ == "__main__":
    run_cli(base)
