"""GLPFT training on a tiny model built from scratch: loss masking, both stages, skip, resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from umi.format import Sample  # noqa: E402
from umi.train import glpft, loop  # noqa: E402
from umi.train.data import IGNORE, encode_sample  # noqa: E402
from umi.train.recipe import RecipeError, load_recipe  # noqa: E402
from umi.train.tokenizer import train_bpe_tokenizer  # noqa: E402

RECIPE = """
name = "test"
version = "t1"
seed = 3
[model.scratch]
hidden_size = 32
intermediate_size = 64
num_hidden_layers = 1
num_attention_heads = 2
max_position_embeddings = 1024
[tokenizer]
vocab_size = 300
[data]
train = ["trajectories.json"]
[stage1]
batch_size = 4
max_steps = 4
learning_rate = 1e-3
[stage2.planner]
batch_size = 4
max_steps = 2
[stage2.caller]
max_steps = 2
[stage2.summarizer]
max_steps = 2
[stage2."caller-v2"]
role = "caller"
max_steps = 2
"""


@pytest.fixture()
def workdir(tmp_path: Path, trajectories_path: Path) -> Path:
    shutil.copy(trajectories_path, tmp_path / "trajectories.json")
    (tmp_path / "recipe.toml").write_text(RECIPE, encoding="utf-8")
    return tmp_path


def test_loss_is_on_target_tokens_only() -> None:
    tok = train_bpe_tokenizer(["system: hello world Next: caller."] * 5, 280)
    enc = encode_sample(tok, Sample(input="hello world", target="Next: caller."), max_length=512)
    n_prompt = sum(1 for x in enc.labels if x == IGNORE)
    assert tok.decode(enc.input_ids[:n_prompt]) == "<s>system: hello world"
    assert tok.decode([x for x in enc.labels if x != IGNORE]) == "Next: caller.</s>"
    assert enc.labels[-1] == tok.eos_token_id
    short = encode_sample(tok, Sample(input="hello world " * 50, target="Next: caller."), max_length=16)
    assert len(short.input_ids) == 16 and short.labels[-1] == tok.eos_token_id  # cut from the left


def test_glpft_builds_backbone_then_each_role_and_skips_when_up_to_date(workdir: Path) -> None:
    recipe = load_recipe(workdir / "recipe.toml")
    out = workdir / "models"
    status = glpft.train(recipe, out, workdir, progress=False)
    assert status == {"backbone": "built", "planner": "built", "caller": "built", "summarizer": "built", "caller-v2": "built"}
    info = json.loads((out / "caller-v2" / "training.json").read_text(encoding="utf-8"))
    assert (info["role"], info["base"], info["steps"]) == ("caller", "backbone", 2)
    assert info["version"].startswith("t1-")
    assert (out / "planner" / "model.safetensors").exists() and (out / "planner" / "tokenizer.json").exists()
    assert (out / "planner" / "model.safetensors").stat().st_mode & 0o044 == 0o044  # others may read it (a container's user)
    assert not (out / "planner" / "checkpoints").exists()
    again = glpft.train(recipe, out, workdir, progress=False)
    assert set(again.values()) == {"up to date"}
    # a changed stage-2 section rebuilds only that model
    recipe.stage2["summarizer"].max_steps = 3
    third = glpft.train(recipe, out, workdir, progress=False)
    assert third["summarizer"] == "built" and third["planner"] == "up to date"


def test_interrupted_run_resumes_to_the_same_weights(workdir: Path) -> None:
    from transformers import AutoModelForCausalLM

    recipe = load_recipe(workdir / "recipe.toml")
    tok = glpft._tokenizer(recipe, workdir / "m", workdir)
    samples = glpft._encode(tok, glpft._samples(recipe, recipe.stage1, recipe.stage1.roles, workdir), 1024)

    def fresh():
        return glpft._new_model(recipe, tok)

    loop.run(fresh(), tok, samples, recipe.stage1, workdir / "straight", 3, "s", progress=False)
    assert loop.run(fresh(), tok, samples, recipe.stage1, workdir / "broken", 3, "b", progress=False, stop_after=2) is None
    assert (workdir / "broken" / "checkpoints" / "step-2" / "state.pt").exists()
    loop.run(fresh(), tok, samples, recipe.stage1, workdir / "broken", 3, "b", progress=False)
    a = AutoModelForCausalLM.from_pretrained(workdir / "straight").state_dict()
    b = AutoModelForCausalLM.from_pretrained(workdir / "broken").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_recipe_errors_name_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "r.toml"
    bad.write_text('name = "x"\n[stage1]\nlearning_rat = 1\n', encoding="utf-8")
    with pytest.raises(RecipeError, match="stage1.learning_rat"):
        load_recipe(bad)
    with pytest.raises(RecipeError, match="no such recipe"):
        load_recipe(tmp_path / "missing.toml")
