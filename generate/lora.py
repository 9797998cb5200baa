"""Write SQL with a fine-tuned adapter:
python generate/lora.py --lora_path out/lora/sql --prompt "How many heads are older than 56?" --schema "CREATE TABLE head (age INTEGER)"
"""

from lit_sql.cli import run_cli
from lit_sql.cli.generate import lora

if __name__ == "__main__":
    run_cli(lora)
