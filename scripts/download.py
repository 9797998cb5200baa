"""Download and convert a model: python scripts/download.py --repo_id HuggingFaceTB/SmolLM2-135M-Instruct"""

from lit_sql.cli import run_cli
from lit_sql.cli.checkpoints import download

if __name__ == "__main__":
    run_cli(download)
