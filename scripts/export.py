"""Export to Hugging Face: python scripts/export.py --format hf|peft --out_dir DIR [--lora_path out/lora/sql]"""

from lit_sql.cli import run_cli
from lit_sql.cli.export import export

if __name__ == "__main__":
    run_cli(export)
