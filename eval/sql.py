"""Execution accuracy: python eval/sql.py --lora_path out/lora/sql --data_dir data/generated --compare"""

from lit_sql.cli import run_cli
from lit_sql.cli.evaluate import sql

if __name__ == "__main__":
    run_cli(sql)
