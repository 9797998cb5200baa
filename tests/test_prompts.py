"""Prompt styles against the reference chat formats, string for string and token for token."""

from __future__ import annotations

import json

import pytest

from lit_sql.errors import LitSQLError
from lit_sql.prompts import PromptStyle, load_prompt_style, prompt_style_names
from lit_sql.tokenizer import Tokenizer

jinja2 = pytest.importorskip("jinja2")

# The chat templates published with the models (tokenizer_config.json "chat_template").
LLAMA2_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
    "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}"
    "{% endif %}{% for message in loop_messages %}{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}"
    "{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' "
    "+ content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' "
    "+ eos_token }}{% endif %}{% endfor %}"
)
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
ZEPHYR_TEMPLATE = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + "
    "eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
    "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
)


def render(template: str, messages: list[dict], **special: str) -> str:
    # The environment Hugging Face renders chat templates with.
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(messages=messages, add_generation_prompt=True, **special)


def conversation(system: str | None):
    history = [("How many singers are there?", "SELECT count(*) FROM singer")]
    prompt = "List the names of singers older than 30."
    messages = [{"role": "system", "content": system}] if system else []
    for user, answer in history:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    messages.append({"role": "user", "content": prompt})
    return prompt, history, messages


@pytest.mark.parametrize("system", [None, "Answer with SQL only."])
@pytest.mark.parametrize("style,template,special", [
    ("llama2-chat", LLAMA2_CHAT_TEMPLATE, {"bos_token": "<s>", "eos_token": "</s>"}),
    ("codellama", LLAMA2_CHAT_TEMPLATE, {"bos_token": "<s>", "eos_token": "</s>"}),
    ("llama3", LLAMA3_TEMPLATE, {"bos_token": "<|begin_of_text|>"}),
    ("zephyr", ZEPHYR_TEMPLATE, {"eos_token": "</s>"}),
])
def test_styles_match_published_chat_templates(style, template, special, system):
    prompt, history, messages = conversation(system)
    ours = PromptStyle.from_name(style).apply(prompt, system=system, history=history)
    assert ours == render(template, messages, **special)


def test_chatml_matches_the_embedded_models_own_template(smollm2_dir):
    chat_template = json.loads((smollm2_dir / "tokenizer_config.json").read_text())["chat_template"]
    tokenizer = Tokenizer(smollm2_dir)
    style = load_prompt_style(smollm2_dir)
    assert style.name == "chatml"
    for system in (None, "Answer with SQL only."):
        prompt, history, messages = conversation(system)
        reference = render(chat_template, messages)
        ours = style.apply(prompt, system=system, history=history)
        assert ours == reference
        ids = tokenizer.encode(ours)
        assert ids == tokenizer.encode(reference)
        # one <|im_start|> (id 1) per turn: system, the history's two, the question, the answer's header
        assert ids[0] == tokenizer.bos_id == 1 and ids.count(1) == 3 + 2 * len(history)


def test_llama2_multiturn_tokens_follow_metas_reference(tmp_path):
    """Meta's reference encodes each finished turn as BOS + '[INST] u [/INST] a ' + EOS, then BOS + the last
    question; our style writes <s>/</s> as text and the SentencePiece tokenizer must turn them into ids."""
    spm = pytest.importorskip("sentencepiece")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(["[INST] How many singers are there? [/INST] SELECT count(*) FROM singer",
                                 "List the names of singers older than 30.", "<<SYS>> Answer with SQL only."] * 50))
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(tmp_path / "tokenizer"), vocab_size=120,
                                   model_type="bpe", bos_id=1, eos_id=2, unk_id=0, pad_id=-1)
    tokenizer = Tokenizer(tmp_path)
    assert tokenizer.backend == "sentencepiece" and tokenizer.use_bos
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "tokenizer.model"))
    prompt, history, _ = conversation(None)
    ours = tokenizer.encode(PromptStyle.from_name("llama2-chat").apply(prompt, history=history))
    reference = []
    for user, answer in history:
        reference += [1, *sp.encode(f"[INST] {user} [/INST] {answer} "), 2]
    reference += [1, *sp.encode(f"[INST] {prompt} [/INST]")]
    assert ours == reference
    assert tokenizer.encode("<s>[INST] hi [/INST]", bos=True)[:2] != [1, 1]  # never a double BOS


def test_alpaca_layout():
    text = PromptStyle.from_name("alpaca").apply("Count the singers.")
    assert text.startswith("Below is an instruction that describes a task.")
    assert text.endswith("### Instruction:\nCount the singers.\n\n### Response:\n")


def test_stop_tokens(tiny_checkpoint_dir):
    tokenizer = Tokenizer(tiny_checkpoint_dir)
    assert PromptStyle.from_name("chatml").stop_tokens(tokenizer) == [[tokenizer.eos_id]]
    alpaca_stops = PromptStyle.from_name("alpaca").stop_tokens(tokenizer)
    # the EOS, then alpaca's next "### Instruction:" header, several tokens long (no special token of its own)
    header = tokenizer.encode("### Instruction:", bos=False)
    assert alpaca_stops == [[tokenizer.eos_id], header] and len(header) > 1


def test_unknown_style_suggests():
    with pytest.raises(LitSQLError, match="Did you mean 'llama3'"):
        PromptStyle.from_name("llama-3")
    assert {"alpaca", "chatml", "codellama", "llama2-chat", "llama3", "zephyr"} <= set(prompt_style_names())
