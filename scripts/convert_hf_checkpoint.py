"""Convert a Hugging Face Llama folder in place: python scripts/convert_hf_checkpoint.py --checkpoint_dir DIR"""

from lit_sql.cli import run_cli
from lit_sql.cli.checkpoints import convert

if __name__ == "__main__":
    run_cli(convert)
