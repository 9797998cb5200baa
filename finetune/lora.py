"""LoRA / QLoRA fine-tuning: python finetune/lora.py --data_dir data/generated --quantize bnb.nf4 ..."""

from lit_sql.cli import run_cli
from lit_sql.cli.finetune import setup

if __name__ == "__main__":
    run_cli(setup)
