"""Prepare text-to-SQL data: python scripts/prepare_sql.py --dataset spider --data_path path/to/spider"""

from lit_sql.cli import run_cli
from lit_sql.data.prepare import prepare

if __name__ == "__main__":
    run_cli(prepare)
