"""A tiny Llama with a byte-level BPE tokenizer, saved as a normal Hugging Face model directory.

Used by the tests (random weights are enough for plumbing) and reusable for demo training: the
directory loads with ``AutoTokenizer`` / ``AutoModelForCausalLM`` and with ``transformers serve``.

    python -m umi.models.tiny OUT_DIR [--text FILE] [--seed N]
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from umi.format import render_prompt
from umi.format.tools import ToolDoc
from umi.format.turns import Turn
from umi.train.recipe import ScratchModel


class TinyModelSpec(ScratchModel):
    """Shape of the test models: a few hundred thousand parameters, a small vocabulary, a seed."""

    vocab_size: int = 512
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    seed: int = 0


def default_corpus() -> list[str]:
    """Prompts in the alpha-UMi format, so the tokenizer learns its frequent pieces."""
    tools = [ToolDoc(Name="get_weather", function="Weather by city", input={"city": "string, City name"})]
    history = [
        Turn(role="user", content="What is the weather in Oslo?"),
        Turn(role="planner", content="I should call get_weather.\n Next: caller."),
        Turn(role="caller", content='Action: get_weather\nAction Input: {"city": "Oslo"}'),
        Turn(role="observation", content='{"temp": 3}'),
        Turn(role="planner", content="I know the answer.\n Next: conclusion."),
        Turn(role="conclusion", content="It is 3 degrees in Oslo."),
    ]
    return [
        render_prompt(role, tools, history, thought=history[1].content)
        for role in ("planner", "caller", "summarizer", "backbone")
    ]


def train_tokenizer(texts: Iterable[str], vocab_size: int):  # -> PreTrainedTokenizerFast
    """A byte-level BPE trained on ``texts``, wrapped for ``transformers`` with Llama's specials."""
    from umi.train.tokenizer import train_bpe_tokenizer

    return train_bpe_tokenizer(texts, vocab_size, model_max_length=TinyModelSpec().max_position_embeddings)


def new_llama(tokenizer, shape: ScratchModel, seed: int):  # -> LlamaForCausalLM
    """A randomly initialised Llama sized for ``tokenizer`` (tied embeddings); the one place that
    builds a model from scratch, for the test models here and for ``umi train``'s ``init = "scratch"``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_attention_heads,
        max_position_embeddings=shape.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def make_tiny_model(out_dir: str | Path, texts: Iterable[str] | None = None, spec: TinyModelSpec | None = None) -> Path:
    """Write a tokenizer and a randomly initialised ``LlamaForCausalLM`` to ``out_dir``."""
    from transformers import GenerationConfig

    spec = spec or TinyModelSpec()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(texts if texts is not None else default_corpus(), spec.vocab_size)
    tokenizer.model_max_length = spec.max_position_embeddings
    model = new_llama(tokenizer, spec, spec.seed)
    config = model.config
    # Like Llama-2 checkpoints: sampling on, so a request's temperature applies (`transformers
    # serve` samples only when the model's generation config says so; temperature 0 is greedy).
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        do_sample=True,
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m umi.models.tiny", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--text", help="a UTF-8 text file to train the tokenizer on (default: built-in prompts)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    args = parser.parse_args(argv)
    texts = Path(args.text).read_text(encoding="utf-8").splitlines() if args.text else None
    path = make_tiny_model(args.out_dir, texts, TinyModelSpec(seed=args.seed))
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
