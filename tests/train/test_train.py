"""GLPFT training on a tiny model built from scratch: loss masking, both stages, skip, resume, soups."""

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


def test_a_checkpoint_of_other_inputs_is_discarded_not_resumed(workdir: Path) -> None:
    from transformers import AutoModelForCausalLM

    recipe = load_recipe(workdir / "recipe.toml")
    tok = glpft._tokenizer(recipe, workdir / "m", workdir)
    samples = glpft._encode(tok, glpft._samples(recipe, recipe.stage1, recipe.stage1.roles, workdir), 1024)
    edited = recipe.stage1.model_copy(update={"learning_rate": 5e-3})  # the recipe edited after a break

    def fresh():
        return glpft._new_model(recipe, tok)

    assert loop.run(fresh(), tok, samples, recipe.stage1, workdir / "edited", 3, "e", progress=False,
                    extra_info={"fingerprint": "before"}, stop_after=2) is None
    loop.run(fresh(), tok, samples, edited, workdir / "edited", 3, "e", progress=False, extra_info={"fingerprint": "after"})
    loop.run(fresh(), tok, samples, edited, workdir / "straight", 3, "s", progress=False, extra_info={"fingerprint": "after"})
    a = AutoModelForCausalLM.from_pretrained(workdir / "straight").state_dict()
    b = AutoModelForCausalLM.from_pretrained(workdir / "edited").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_recipe_errors_name_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "r.toml"
    bad.write_text('name = "x"\n[stage1]\nlearning_rat = 1\n', encoding="utf-8")
    with pytest.raises(RecipeError, match="stage1.learning_rat"):
        load_recipe(bad)
    with pytest.raises(RecipeError, match="no such recipe"):
        load_recipe(tmp_path / "missing.toml")
    bad.write_text('name = "x"\n[stage2.planner]\nsoup = 0\n', encoding="utf-8")
    with pytest.raises(RecipeError, match="stage2.planner.soup: Input should be greater than or equal to 1"):
        load_recipe(bad)
    bad.write_text('name = "x"\n[stage2.planner]\nsoup = true\n', encoding="utf-8")  # not silently 1
    with pytest.raises(RecipeError, match="stage2.planner.soup: Input should be a valid integer"):
        load_recipe(bad)


def test_a_stage_without_samples_is_an_error_naming_it_not_a_hang(workdir: Path) -> None:
    from umi.train.data import epochs_of_batches

    (workdir / "empty.json").write_text("[]", encoding="utf-8")
    recipe = load_recipe(workdir / "recipe.toml")
    nothing = recipe.model_copy(update={"data": recipe.data.model_copy(update={"train": ["empty.json"]})})
    with pytest.raises(RecipeError, match="stage1: no samples of backbone, planner, caller, summarizer to train on in empty.json"):
        glpft.train(nothing, workdir / "none", workdir, progress=False)
    glpft.train(recipe, workdir / "models", workdir, only=["backbone"], progress=False)
    recipe.stage2["planner"].data = ["empty.json"]
    with pytest.raises(RecipeError, match="stage2.planner: no samples of planner to train on in empty.json"):
        glpft.train(recipe, workdir / "models", workdir, only=["planner"], progress=False)
    with pytest.raises(ValueError, match="no samples"):
        next(epochs_of_batches([], 4, 0))


def test_stage_2_without_a_built_backbone_says_so_at_once(workdir: Path) -> None:
    recipe = load_recipe(workdir / "recipe.toml")
    with pytest.raises(RecipeError, match="stage2.planner: no backbone in .*backbone to fine-tune: build it first"):
        glpft.train(recipe, workdir / "fresh", workdir, only=["planner"], progress=False)


def _with_backbone(built: Path, out: Path) -> Path:
    for name in ("backbone", "tokenizer"):
        shutil.copytree(built / name, out / name)
    return out


def test_a_soup_is_the_mean_of_its_copies_and_its_first_copy_is_the_plain_model(workdir: Path) -> None:
    from safetensors.torch import load_file

    plain = load_recipe(workdir / "recipe.toml")
    plain.stage2["planner"].batch_size = 1  # one sample a step: the copies see different orders of the 5 samples
    plain.stage2["planner"].max_steps = 3
    glpft.train(plain, workdir / "plain", workdir, only=["backbone", "planner"], progress=False)
    # a soup's copy K is the plain stage-2 model of the recipe with seed + K, on the same backbone
    next_seed = plain.model_copy(update={"seed": plain.seed + 1})
    glpft.train(next_seed, _with_backbone(workdir / "plain", workdir / "next"), workdir, only=["planner"], progress=False)
    souped = plain.model_copy(deep=True)
    souped.stage2["planner"].soup = 2
    out = _with_backbone(workdir / "plain", workdir / "soup")
    assert glpft.train(souped, out, workdir, only=["planner"], progress=False) == {"backbone": "up to date", "planner": "built"}

    a, b, mean = (load_file(d / "planner" / "model.safetensors") for d in (workdir / "plain", workdir / "next", out))
    assert any(not torch.equal(a[k], b[k]) for k in a)  # two different fine-tunes
    for key in a:
        torch.testing.assert_close(mean[key], (a[key] + b[key]) / 2)
    info = json.loads((out / "planner" / "training.json").read_text(encoding="utf-8"))
    assert (info["soup"]["copies"], info["soup"]["seeds"], info["steps"]) == (2, [3, 4], 3)
    assert info["fingerprint"] == glpft.fingerprints(souped, workdir)["planner"] != glpft.fingerprints(plain, workdir)["planner"]
    assert not (out / "planner" / "soup").exists()  # the copies are gone once averaged
    assert glpft.train(souped, out, workdir, only=["planner"], progress=False)["planner"] == "up to date"


def test_an_interrupted_soup_keeps_its_finished_copies(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = load_recipe(workdir / "recipe.toml")
    recipe.stage2["planner"].soup = 2
    out = workdir / "models"
    glpft.train(recipe, out, workdir, only=["backbone"], progress=False)

    def interrupted(dirs: list[Path]) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(glpft, "uniform_soup", interrupted)
    with pytest.raises(KeyboardInterrupt):
        glpft.train(recipe, out, workdir, only=["planner"], progress=False)
    assert [p.name for p in sorted((out / "planner" / "soup").iterdir())] == ["copy-0", "copy-1"]
    monkeypatch.undo()
    runs: list[Path] = []
    real_run = loop.run
    monkeypatch.setattr(loop, "run", lambda *a, **k: runs.append(a[4]) or real_run(*a, **k))
    assert glpft.train(recipe, out, workdir, only=["planner"], progress=False)["planner"] == "built"
    assert runs == []  # both copies were reused, only averaged
    assert not (out / "planner" / "soup").exists()


def test_ctrl_c_during_umi_train_says_how_to_resume(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from umi.cli import main

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(glpft, "train", interrupted)
    code = main(["train", "--recipe", str(workdir / "recipe.toml"), "--out", str(workdir / "models")])
    err = capsys.readouterr().err
    assert code == 130 and "interrupted: the same command resumes" in err and "Traceback" not in err


def test_a_soup_refuses_models_of_different_shapes(workdir: Path) -> None:
    from umi.train.soup import uniform_soup

    recipe = load_recipe(workdir / "recipe.toml")
    glpft.train(recipe, workdir / "one", workdir, only=["backbone"], progress=False)
    wider = recipe.model_copy(deep=True)
    wider.model.scratch.hidden_size = 64
    shutil.copytree(workdir / "one" / "tokenizer", workdir / "two" / "tokenizer")
    glpft.train(wider, workdir / "two", workdir, only=["backbone"], progress=False)
    with pytest.raises(ValueError, match="a soup needs one architecture"):
        uniform_soup([workdir / "one" / "backbone", workdir / "two" / "backbone"])
    with pytest.raises(ValueError, match="at least one model"):
        uniform_soup([])
    with pytest.raises(ValueError, match="no \\*.safetensors weights"):
        uniform_soup([workdir / "one" / "tokenizer"])


def test_a_soup_reads_sharded_weights(workdir: Path) -> None:
    from transformers import AutoModelForCausalLM

    from umi.train.soup import uniform_soup

    recipe = load_recipe(workdir / "recipe.toml")
    glpft.train(recipe, workdir / "m", workdir, only=["backbone"], progress=False)
    model = AutoModelForCausalLM.from_pretrained(workdir / "m" / "backbone")
    model.save_pretrained(workdir / "sharded", max_shard_size="20KB")  # as a 7B model is saved: several files
    assert len(list((workdir / "sharded").glob("model-*.safetensors"))) > 1
    whole, sharded = uniform_soup([workdir / "m" / "backbone"]), uniform_soup([workdir / "sharded"])
    assert whole.keys() == sharded.keys() and all(torch.equal(whole[k], sharded[k]) for k in whole)
