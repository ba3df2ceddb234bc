"""The demo models shipped in models/demo are what recipes/demo.toml builds from the demo corpus,
so `make models` finds them up to date and `make demo` starts at once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from umi.demo.corpus import write_corpus
from umi.demo.corpus_spec import DEMO_CORPUS
from umi.train.glpft import BACKBONE, fingerprints
from umi.train.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models" / "demo"
RECIPE = load_recipe(ROOT / "recipes" / "demo.toml")
NAMES = [BACKBONE, *RECIPE.stage2]
SHAPE_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "max_position_embeddings")
MAX_SHIPPED_BYTES = 25 * 1024 * 1024


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", NAMES)
def test_each_model_has_the_recipe_shape_tokenizer_and_version(name: str) -> None:
    from transformers import AutoTokenizer

    model = MODELS / name
    assert (model / "model.safetensors").is_file(), f"{model}: no weights; run `make models`"
    config = _json(model / "config.json")
    assert config["model_type"] == "llama"
    assert {k: config[k] for k in SHAPE_KEYS} == {k: getattr(RECIPE.model.scratch, k) for k in SHAPE_KEYS}
    assert (model / "tokenizer.json").read_bytes() == (MODELS / "tokenizer" / "tokenizer.json").read_bytes()
    tokenizer = AutoTokenizer.from_pretrained(model)
    assert config["vocab_size"] == len(tokenizer)
    vocab = tokenizer.get_vocab()
    assert [w for w in RECIPE.tokenizer.whole_words if w not in vocab] == []
    info = _json(model / "training.json")
    stage = RECIPE.stage1 if name == BACKBONE else RECIPE.stage2[name]
    role = "backbone" if name == BACKBONE else RECIPE.stage2_role(name)
    assert (info["name"], info["role"], info["recipe"], info["recipe_version"], info["seed"], info["steps"]) == (
        name, role, RECIPE.name, RECIPE.version, RECIPE.seed, stage.max_steps)
    assert info["version"] == f"{RECIPE.version}-{info['fingerprint'][:8]}"


def test_the_shipped_models_are_up_to_date_with_the_recipe_and_the_corpus(tmp_path: Path) -> None:
    write_corpus(tmp_path / "corpus", DEMO_CORPUS)
    expected = fingerprints(RECIPE, tmp_path)
    shipped = {name: _json(MODELS / name / "training.json")["fingerprint"] for name in NAMES}
    assert shipped == expected, "the recipe or the corpus changed since the models were built: run `make models`"


def test_the_shipped_models_fit_the_size_budget_and_carry_their_quality() -> None:
    total = sum(p.stat().st_size for p in MODELS.rglob("*") if p.is_file() and "corpus" not in p.relative_to(MODELS).parts)
    assert total <= MAX_SHIPPED_BYTES
    quality = _json(MODELS / "quality.json")
    assert quality["trajectories"] == DEMO_CORPUS.test
    assert Path(quality["test_file"]).name == "test-v1.json"
    versions = {name: _json(MODELS / name / "training.json")["version"] for name in ("planner", "caller", "summarizer")}
    assert quality["versions"] == versions, "quality.json was measured on other models: run `make models`"
