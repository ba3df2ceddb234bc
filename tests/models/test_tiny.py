"""The tiny model maker: a normal Hugging Face directory that transformers loads."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from umi.models.tiny import main


def test_tiny_model_loads_with_the_special_tokens(tiny_models: dict[str, Path]) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["v1"])
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.unk_token, tokenizer.pad_token) == ("<s>", "</s>", "<unk>", "<pad>")
    ids = tokenizer("user: hi</s>")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id  # </s> is one token
    assert tokenizer.decode(ids, skip_special_tokens=True) == "user: hi"
    model = AutoModelForCausalLM.from_pretrained(tiny_models["v1"])
    assert model.config.model_type == "llama" and 100_000 < model.num_parameters() < 1_000_000
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=3, do_sample=False)
    assert out.shape[1] >= len(ids) + 1


def test_seeds_make_different_weights(tiny_models: dict[str, Path]) -> None:
    a = AutoModelForCausalLM.from_pretrained(tiny_models["v1"]).state_dict()
    b = AutoModelForCausalLM.from_pretrained(tiny_models["v2"]).state_dict()
    assert a.keys() == b.keys()
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_command_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Action: get_weather\nAction Input: {}\n" * 20)
    assert main([str(tmp_path / "m"), "--text", str(corpus), "--seed", "3"]) == 0
    assert (tmp_path / "m" / "model.safetensors").is_file() and (tmp_path / "m" / "tokenizer.json").is_file()
    assert capsys.readouterr().out.strip() == str(tmp_path / "m")
