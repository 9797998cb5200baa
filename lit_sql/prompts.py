"""Prompt styles: how each model family wants a conversation laid out, and which tokens end its answer.

Every style is a class in one registry. `apply` returns the text up to where the model's answer begins,
with the model's special tokens written as text (the tokenizer turns them into their ids). A checkpoint
names its style in `model_config.yaml`; flags may override it.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from lit_sql.errors import LitSQLError

if TYPE_CHECKING:
    from lit_sql.tokenizer import Tokenizer

History = Sequence[tuple[str, str]]  # earlier (user, assistant) turns, oldest first

_REGISTRY: dict[str, type["PromptStyle"]] = {}


def register(name: str):
    def wrap(cls: type["PromptStyle"]) -> type["PromptStyle"]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


class PromptStyle:
    name: str = ""
    default_system: Optional[str] = None
    stop_token_strings: tuple[str, ...] = ()  # special tokens, besides the tokenizer's eos, that end an answer

    def apply(self, prompt: str, *, system: Optional[str] = None, history: History = ()) -> str:
        raise NotImplementedError

    def stop_tokens(self, tokenizer: "Tokenizer") -> list[list[int]]:
        """Token sequences that end generation: the tokenizer's end tokens plus the style's own."""
        stops = [[i] for i in tokenizer.stop_ids]
        for text in self.stop_token_strings:
            token_id = tokenizer.token_to_id(text)
            ids = [token_id] if token_id is not None else tokenizer.encode(text, bos=False)
            if ids and ids not in stops:
                stops.append(ids)
        return stops

    @staticmethod
    def from_name(name: str) -> "PromptStyle":
        if name not in _REGISTRY:
            close = difflib.get_close_matches(name, _REGISTRY, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise LitSQLError(f"unknown prompt style {name!r}.{hint} Known: {', '.join(sorted(_REGISTRY))}")
        return _REGISTRY[name]()


def prompt_style_names() -> list[str]:
    return sorted(_REGISTRY)


def load_prompt_style(checkpoint_dir: Path, override: Optional[str] = None) -> PromptStyle:
    """The style saved with the checkpoint, unless a flag names another."""
    if override:
        return PromptStyle.from_name(override)
    from lit_sql.config import Config

    return PromptStyle.from_name(Config.from_checkpoint(Path(checkpoint_dir)).prompt_style)


@register("alpaca")
class Alpaca(PromptStyle):
    """For base models (no chat template): the Stanford Alpaca instruction layout."""

    default_system = ("Below is an instruction that describes a task. "
                      "Write a response that appropriately completes the request.")
    stop_token_strings = ("### Instruction:",)

    def apply(self, prompt: str, *, system: Optional[str] = None, history: History = ()) -> str:
        turns = "".join(f"### Instruction:\n{u}\n\n### Response:\n{a}\n\n" for u, a in history)
        return f"{system or self.default_system}\n\n{turns}### Instruction:\n{prompt}\n\n### Response:\n"


@register("llama2-chat")
class Llama2Chat(PromptStyle):
    """Meta's Llama-2-chat layout: the system prompt sits inside the first [INST]; every user turn opens with
    BOS and every model answer closes with EOS."""

    def apply(self, prompt: str, *, system: Optional[str] = None, history: History = ()) -> str:
        system = system or self.default_system
        out = []
        for i, (user, answer) in enumerate([*history, (prompt, None)]):
            if i == 0 and system:
                user = f"<<SYS>>\n{system}\n<</SYS>>\n\n{user.strip()}"
            out.append(f"<s>[INST] {user.strip()} [/INST]")
            if answer is not None:
                out.append(f" {answer.strip()} </s>")
        return "".join(out)


@register("codellama")
class CodeLlamaInstruct(Llama2Chat):
    """CodeLlama-Instruct uses the Llama-2 [INST] layout."""


@register("llama3")
class Llama3(PromptStyle):
    stop_token_strings = ("<|eot_id|>", "<|end_of_text|>")

    def apply(self, prompt: str, *, system: Optional[str] = None, history: History = ()) -> str:
        def turn(role: str, content: str) -> str:
            return f"<|start_header_id|>{role}<|end_header_id|>\n\n{content.strip()}<|eot_id|>"

        system = system or self.default_system
        out = ["<|begin_of_text|>"]
        if system:
            out.append(turn("system", system))
        for user, answer in history:
            out += [turn("user", user), turn("assistant", answer)]
        out.append(turn("user", prompt))
        out.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
        return "".join(out)


@register("chatml")
class ChatML(PromptStyle):
    """<|im_start|>role ... <|im_end|> turns, as SmolLM2-Instruct (and Qwen) use."""

    default_system = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    stop_token_strings = ("<|im_end|>",)

    def apply(self, prompt: str, *, system: Optional[str] = None, history: History = ()) -> str:
        def turn(role: str, content: str) -> str:
            return f"<|im_start|>{role}\n{content}<|im_end|>\n"

        out = [turn("system", system or self.default_system)]
        for user, answer in history:
            out += [turn("user", user), turn("assistant", answer)]
        out.append(turn("user", prompt))
        out.append("<|im_start|>assistant\n")
        return "".join(out)


@register("zephyr")
class Zephyr(PromptStyle):
    """TinyLlama-1.1B-Chat's layout (from Zephyr): <|system|>, <|user|>, <|assistant|> blocks ended by </s>."""

    def apply(self, prompt: str, *, system: Optional[str] = None, history: History = ()) -> str:
        system = system or self.default_system
        out = [f"<|system|>\n{system}</s>\n"] if system else []
        for user, answer in history:
            out += [f"<|user|>\n{user}</s>\n", f"<|assistant|>\n{answer}</s>\n"]
        out.append(f"<|user|>\n{prompt}</s>\n<|assistant|>\n")
        return "".join(out)
