"""The two GLPFT stages over a recipe.

    <out>/backbone        stage 1: one model on the samples of ``stage1.roles`` mixed
    <out>/<name>          stage 2: a copy of the backbone fine-tuned on one role's samples
    <out>/<name>/soup/copy-K   with ``soup = N``: N such copies (seeds seed + K), kept until
                          their uniform average is <out>/<name> (umi.train.soup)

A model whose inputs (recipe section, data files, base model) have not changed since it was
built is skipped. Each model directory holds ``training.json``, with the version its role
service reports.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from umi.format import Sample, build_samples, load_trajectories
from umi.train import loop
from umi.train.data import Encoded, encode_sample
from umi.train.recipe import Recipe, RecipeError, Stage2Section, StageSection
from umi.train.soup import uniform_soup

BACKBONE = "backbone"
SOUP_DIR = "soup"


def _file_digest(paths: Sequence[str], base: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update((base / p).read_bytes())
    return h.hexdigest()


def _plain(value: Any) -> Any:
    return value.model_dump() if hasattr(value, "model_dump") else str(value)


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=_plain).encode()).hexdigest()[:16]


def _samples(recipe: Recipe, stage: StageSection, roles: Sequence[str], base: Path, seed: int | None = None) -> list[Sample]:
    files = stage.data or recipe.data.train
    trajectories = [t for f in files for t in load_trajectories(base / f)]
    out: list[Sample] = []
    for role in roles:
        out += build_samples(trajectories, role, recipe.data.variant)  # type: ignore[arg-type]
    random.Random(recipe.seed if seed is None else seed).shuffle(out)
    return out


def _training_samples(recipe: Recipe, stage: StageSection, roles: Sequence[str], base: Path, where: str,
                      seed: int | None = None) -> list[Sample]:
    """The samples a run trains on; RecipeError naming the section when there are none (a run on
    no samples would wait forever for its first batch)."""
    samples = _samples(recipe, stage, roles, base, seed)
    if not samples:
        files = stage.data or recipe.data.train
        source = f"in {', '.join(files)}" if files else "(no data files: set data.train or this section's data)"
        raise RecipeError(f"{where}: no samples of {', '.join(roles)} to train on {source}")
    return samples


def _tokenizer(recipe: Recipe, out: Path, base: Path) -> Any:
    from transformers import AutoTokenizer

    if recipe.model.init != "scratch":
        return AutoTokenizer.from_pretrained(recipe.model.init)
    path = out / "tokenizer"
    if (path / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(path)
    from umi.train.tokenizer import train_bpe_tokenizer

    from umi.train.tokenizer import format_pieces

    texts: list[str] = []
    for role in ("planner", "caller", "summarizer", "backbone"):
        texts += [s.input + s.target for s in _samples(recipe, recipe.stage1, [role], base)[:3000]]
    words = list(recipe.tokenizer.whole_words)
    if recipe.tokenizer.format_pieces:
        files = sorted({*recipe.data.train, *(f for st in recipe.stage2.values() for f in st.data)})
        tool_lists = {json.dumps([t.doc_dict() for t in tr.tools]): tr.tools for f in files for tr in load_trajectories(base / f)}
        words += format_pieces(tool_lists.values())
    tok = train_bpe_tokenizer(
        texts, recipe.tokenizer.vocab_size, recipe.tokenizer.split_digits, words, recipe.data.max_length,
        chars=recipe.tokenizer.chars,
    )
    tok.save_pretrained(path)
    return tok


def _new_model(recipe: Recipe, tokenizer: Any) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    from umi.models.tiny import new_llama

    if recipe.model.init != "scratch":
        torch.manual_seed(recipe.seed)
        return AutoModelForCausalLM.from_pretrained(recipe.model.init, dtype=getattr(torch, recipe.model.dtype))
    return new_llama(tokenizer, recipe.model.scratch, recipe.seed)


def _prepare(model: Any, recipe: Recipe) -> Any:
    import torch

    if recipe.model.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    if recipe.model.lora:
        from peft import LoraConfig, get_peft_model  # the optional `peft` package

        model = get_peft_model(model, LoraConfig(
            r=recipe.model.lora_r, lora_alpha=recipe.model.lora_alpha, lora_dropout=recipe.model.lora_dropout,
            target_modules=recipe.model.lora_target_modules, task_type="CAUSAL_LM",
        ))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device)


def _encode(tokenizer: Any, samples: Sequence[Sample], max_length: int) -> list[Encoded]:
    return [encode_sample(tokenizer, s, max_length) for s in samples]


def fingerprints(recipe: Recipe, base: Path) -> dict[str, str]:
    """What each model of the recipe is built from (its recipe sections, data files and base
    model), as ``{model name: fingerprint}``; a built model records it in ``training.json``."""
    data_digest = _file_digest(recipe.data.train, base)
    backbone_fp = _fingerprint(recipe.model, recipe.tokenizer, recipe.data, recipe.stage1, data_digest)
    out = {BACKBONE: backbone_fp}
    for name, stage in recipe.stage2.items():
        digest = _file_digest(stage.data, base) if stage.data else data_digest
        # A one-copy section fingerprints as it did before `soup` existed: models built then stay up to date.
        section = stage.model_dump(exclude={"soup"} if stage.soup == 1 else None)
        out[name] = _fingerprint(backbone_fp, name, section, digest)
    return out


def train(recipe: Recipe, out: Path, base: Path, only: Sequence[str] = (), progress: bool = True) -> dict[str, str]:
    """Build what is missing; returns ``{model name: "built" | "up to date"}``."""
    out.mkdir(parents=True, exist_ok=True)
    status: dict[str, str] = {}
    tokenizer = _tokenizer(recipe, out, base)
    prints = fingerprints(recipe, base)
    common = {"recipe": recipe.name, "recipe_version": recipe.version, "seed": recipe.seed}

    backbone_fp = prints[BACKBONE]
    target = out / BACKBONE
    if loop.is_done(target, backbone_fp):
        status[BACKBONE] = "up to date"
    elif not only or BACKBONE in only:
        samples = _training_samples(recipe, recipe.stage1, recipe.stage1.roles, base, "stage1")
        model = _prepare(_new_model(recipe, tokenizer), recipe)
        info = {**common, "name": BACKBONE, "role": "backbone", "version": f"{recipe.version}-{backbone_fp[:8]}",
                "fingerprint": backbone_fp, "samples": len(samples), "roles": list(recipe.stage1.roles)}
        loop.run(model, tokenizer, _encode(tokenizer, samples, recipe.data.max_length), recipe.stage1, target,
                 recipe.seed, f"stage 1 {BACKBONE}", progress, info)
        status[BACKBONE] = "built"

    for name, stage in recipe.stage2.items():
        if only and name not in only:
            continue
        if not (out / BACKBONE / "config.json").is_file():  # else from_pretrained asks the hub for "<out>/backbone"
            raise RecipeError(f"stage2.{name}: no backbone in {out / BACKBONE} to fine-tune: build it first "
                              f"(umi train without --only, or with --only {BACKBONE})")
        role = recipe.stage2_role(name)
        fp = prints[name]
        target = out / name
        if loop.is_done(target, fp):
            status[name] = "up to date"
            continue
        info = {**common, "name": name, "role": role, "version": f"{recipe.version}-{fp[:8]}", "fingerprint": fp,
                "base": BACKBONE}
        if stage.soup == 1:
            _fine_tune(recipe, stage, role, tokenizer, out, base, target, 0, f"stage 2 {name}", progress, info)
        else:
            _soup(recipe, stage, role, tokenizer, out, base, target, progress, info)
        shutil.rmtree(target / SOUP_DIR, ignore_errors=True)  # the copies, once averaged (or left by an older recipe)
        status[name] = "built"
    return status


def _fine_tune(recipe: Recipe, stage: Stage2Section, role: str, tokenizer: Any, out: Path, base: Path, target: Path,
               copy: int, desc: str, progress: bool, info: dict[str, Any]) -> None:
    """One copy of the backbone fine-tuned on ``role``'s samples; copy K orders the samples by
    ``seed + K`` and seeds the run with ``seed + 1 + K`` (copy 0 is the plain stage-2 model)."""
    from transformers import AutoModelForCausalLM

    samples = _training_samples(recipe, stage, [role], base, f"stage2.{info['name']}", recipe.seed + copy)
    model = _prepare(AutoModelForCausalLM.from_pretrained(out / BACKBONE), recipe)
    loop.run(model, tokenizer, _encode(tokenizer, samples, recipe.data.max_length), stage, target,
             recipe.seed + 1 + copy, desc, progress, {**info, "samples": len(samples)})


def _soup(recipe: Recipe, stage: Stage2Section, role: str, tokenizer: Any, out: Path, base: Path, target: Path,
          progress: bool, info: dict[str, Any]) -> None:
    """``stage.soup`` copies in ``target/soup/copy-K`` (each skipped when already built, so an
    interrupted soup resumes), then their uniform average in ``target``; the copies are removed."""
    from transformers import AutoModelForCausalLM

    copies = [target / SOUP_DIR / f"copy-{k}" for k in range(stage.soup)]
    for k, copy in enumerate(copies):
        copy_fp = _fingerprint(info["fingerprint"], SOUP_DIR, k)
        if not loop.is_done(copy, copy_fp):
            desc = f"stage 2 {info['name']} ({k + 1}/{stage.soup})"
            _fine_tune(recipe, stage, role, tokenizer, out, base, copy, k, desc, progress, {**info, "fingerprint": copy_fp})
    records = [json.loads((c / loop.TRAINING_FILE).read_text(encoding="utf-8")) for c in copies]
    weights = uniform_soup(copies)  # before the model is loaded: the sum and one copy at a time, at most
    model = AutoModelForCausalLM.from_pretrained(copies[0])
    # The soup holds every tensor the copies' files hold; a tied head (lm_head = embed_tokens) is
    # not in them and follows the embeddings, so only unexpected names would be an error.
    if unexpected := model.load_state_dict(weights, strict=False).unexpected_keys:
        raise ValueError(f"{copies[0]}: the soup has parameters the model lacks: {unexpected[:3]}")
    del weights
    losses = [r["final_loss"] for r in records]
    result = loop.RunResult(steps=records[0]["steps"], final_loss=round(sum(losses) / len(losses), 5),
                            target_tokens=records[0]["target_tokens"], seconds=0.0)
    soup = {"copies": stage.soup, "seeds": [recipe.seed + k for k in range(stage.soup)], "final_losses": losses}
    loop.save_final(target, model, tokenizer, result, {**info, "samples": records[0]["samples"], "soup": soup})
