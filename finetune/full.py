"""Full fine-tuning (every weight): python finetune/full.py --data_dir data/spider --out_dir out/full/spider ..."""

from lit_sql.cli import run_cli
from lit_sql.cli.finetune import setup_full

if __name__ == "__main__":
    run_cli(setup_full)
