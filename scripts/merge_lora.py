"""Merge a LoRA adapter into its base: python scripts/merge_lora.py --lora_path out/lora/sql --out_dir DIR"""

from lit_sql.cli import run_cli
from lit_sql.cli.export import merge_lora

if __name__ == "__main__":
    run_cli(merge_lora)
