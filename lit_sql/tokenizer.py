"""One tokenizer interface over Hugging Face `tokenizer.json` (Llama-3, SmolLM2, TinyLlama) and SentencePiece
`tokenizer.model` (Llama-2, CodeLlama).

BOS and EOS ids come from `tokenizer_config.json` and `generation_config.json`. Special tokens written as text
by a prompt style (`<|im_start|>`, `<s>`, `<|eot_id|>`) are encoded as their ids, and a BOS is never doubled.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Iterable, Optional, Union

import torch

from lit_sql.errors import LitSQLError


class Tokenizer:
    def __init__(self, checkpoint_dir: Union[Path, str]) -> None:
        checkpoint_dir = Path(checkpoint_dir)
        self.checkpoint_dir = checkpoint_dir
        tokenizer_config = _read_json(checkpoint_dir / "tokenizer_config.json")
        generation_config = _read_json(checkpoint_dir / "generation_config.json")

        if (path := checkpoint_dir / "tokenizer.json").is_file():
            from tokenizers import Tokenizer as HFTokenizer

            try:
                self._hf = HFTokenizer.from_file(str(path))
            except Exception as e:
                raise LitSQLError(f"{path} could not be read as a Hugging Face tokenizer ({e})") from None
            self._sp = None
            self.backend = "huggingface"
            self.vocab_size = self._hf.get_vocab_size(with_added_tokens=True)
            special = {t.content: i for i, t in self._hf.get_added_tokens_decoder().items() if t.special}
        elif (path := checkpoint_dir / "tokenizer.model").is_file():
            import sentencepiece as spm

            try:
                self._sp = spm.SentencePieceProcessor(model_file=str(path))
            except Exception as e:
                raise LitSQLError(f"{path} could not be read as a SentencePiece model ({e})") from None
            self._hf = None
            self.backend = "sentencepiece"
            self.vocab_size = self._sp.get_piece_size()
            special = {self._sp.id_to_piece(i): i for i in (self._sp.bos_id(), self._sp.eos_id()) if i >= 0}
        else:
            raise LitSQLError(f"{checkpoint_dir} has no tokenizer.json or tokenizer.model: copy the tokenizer "
                              f"files of the model into the checkpoint folder")
        self.path = path

        self.bos_id = self._token_id(tokenizer_config.get("bos_token"), generation_config.get("bos_token_id"))
        self.eos_id = self._token_id(tokenizer_config.get("eos_token"), generation_config.get("eos_token_id"))
        if self._sp is not None:  # a bare tokenizer.model still knows its own <s> and </s>
            self.bos_id = self.bos_id if self.bos_id is not None else _non_negative(self._sp.bos_id())
            self.eos_id = self.eos_id if self.eos_id is not None else _non_negative(self._sp.eos_id())
        if self.eos_id is None:
            raise LitSQLError(f"{checkpoint_dir}: no eos token in tokenizer_config.json or generation_config.json")
        # Every id the model may end an answer with (Llama-3 lists several in generation_config.json).
        eos_ids = generation_config.get("eos_token_id", [])
        self.stop_ids = sorted({self.eos_id, *([eos_ids] if isinstance(eos_ids, int) else eos_ids)})
        self.use_bos = self._uses_bos(tokenizer_config)
        # Longest first, so that a special token that is a prefix of another never wins.
        self._special = special
        self._special_re = (re.compile("|".join(re.escape(s) for s in sorted(special, key=len, reverse=True)))
                            if special and self._sp is not None else None)

    # ---- setup helpers -----------------------------------------------------------------------------------
    def _token_id(self, token: Optional[Union[str, dict]], fallback: Optional[Union[int, list]]) -> Optional[int]:
        if isinstance(token, dict):  # {"content": "<s>", ...} form of older tokenizer configs
            token = token.get("content")
        if token:
            token_id = self._hf.token_to_id(token) if self._hf else self._sp.piece_to_id(token)
            if token_id is not None and (self._hf or self._sp.id_to_piece(token_id) == token):
                return token_id
        if isinstance(fallback, list):
            return fallback[0] if fallback else None
        return fallback

    def _uses_bos(self, tokenizer_config: dict) -> bool:
        if "add_bos_token" in tokenizer_config:
            return bool(tokenizer_config["add_bos_token"]) and self.bos_id is not None
        if self.bos_id is None:
            return False
        if self._hf is not None:
            # Llama-3 adds BOS through the tokenizer's post-processor rather than a config flag: ask it.
            return self._hf.encode("a", add_special_tokens=True).ids[:1] == [self.bos_id]
        return True  # SentencePiece Llama models always start with <s>

    @property
    def name(self) -> str:
        """Identifies the exact tokenizer (data prepared with another one must be refused)."""
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]
        return f"{self.path.name}:{digest}"

    # ---- encode / decode ---------------------------------------------------------------------------------
    def encode(self, text: str, bos: Optional[bool] = None, eos: bool = False, max_length: int = -1) -> list[int]:
        """Token ids of `text`. bos=None follows the model's own rule (`use_bos`)."""
        ids = self._encode_text(text)
        if (self.use_bos if bos is None else bos) and self.bos_id is not None and ids[:1] != [self.bos_id]:
            ids.insert(0, self.bos_id)
        if eos:
            ids.append(self.eos_id)
        if max_length > 0:
            ids = ids[:max_length]
        return ids

    def encode_batch(self, texts: list[str], bos: Optional[bool] = None, eos: bool = False) -> list[list[int]]:
        if self._hf is not None:
            batch = [e.ids for e in self._hf.encode_batch(texts, add_special_tokens=False)]
            add_bos = (self.use_bos if bos is None else bos) and self.bos_id is not None
            for ids in batch:
                if add_bos and ids[:1] != [self.bos_id]:
                    ids.insert(0, self.bos_id)
                if eos:
                    ids.append(self.eos_id)
            return batch
        return [self.encode(t, bos=bos, eos=eos) for t in texts]

    def encode_tensor(self, text: str, bos: Optional[bool] = None, eos: bool = False,
                      device: Optional[torch.device] = None) -> torch.Tensor:
        return torch.tensor(self.encode(text, bos=bos, eos=eos), dtype=torch.long, device=device)

    def _encode_text(self, text: str) -> list[int]:
        if self._hf is not None:
            return self._hf.encode(text, add_special_tokens=False).ids
        # SentencePiece does not know special tokens written as text: encode the pieces between them apart.
        ids: list[int] = []
        pos = 0
        for m in self._special_re.finditer(text) if self._special_re else ():
            if m.start() > pos:
                ids.extend(self._sp.encode(text[pos:m.start()]))
            ids.append(self._special[m.group()])
            pos = m.end()
        if pos < len(text):
            ids.extend(self._sp.encode(text[pos:]))
        return ids

    def decode(self, ids: Union[Iterable[int], torch.Tensor], skip_special_tokens: bool = True) -> str:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        if self._hf is not None:
            return self._hf.decode(ids, skip_special_tokens=skip_special_tokens)
        if skip_special_tokens:
            ids = [i for i in ids if not self._sp.is_control(i)]
        return self._sp.decode(ids)

    def token_texts(self) -> list[str]:
        """The text each id adds when appended to other text, "" for special tokens (computed once). Decoding an
        id after an anchor token keeps the leading space that decoding it alone would drop (SentencePiece)."""
        if getattr(self, "_token_texts", None) is None:
            anchor = self._encode_text("x")[-1]
            prefix = len(self.decode([anchor]))
            pairs = [[anchor, i] for i in range(self.vocab_size)]
            if self._hf is not None:
                texts = self._hf.decode_batch(pairs, skip_special_tokens=True)
            else:
                texts = [self._sp.decode([a] + ([] if self._sp.is_control(i) else [i])) for a, i in pairs]
            self._token_texts = [t[prefix:] for t in texts]
        return self._token_texts

    def token_to_id(self, token: str) -> Optional[int]:
        if self._hf is not None:
            return self._hf.token_to_id(token)
        token_id = self._sp.piece_to_id(token)
        return token_id if self._sp.id_to_piece(token_id) == token else None


def _non_negative(token_id: int) -> Optional[int]:
    return token_id if token_id >= 0 else None


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise LitSQLError(f"{path} is not valid JSON ({e}); restore it from the original model") from None
