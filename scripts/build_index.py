"""Retrieval index: python scripts/build_index.py --data_dir data/spider [--out data/spider/retrieval]"""

from lit_sql.cli import run_cli
from lit_sql.retrieval import build_index

if __name__ == "__main__":
    run_cli(build_index)
