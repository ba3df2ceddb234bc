"""One fine-tuning run: AdamW with a cosine schedule, checkpoints, resume, a progress bar.

A run writes ``<out>/checkpoints/step-N`` every ``save_every`` optimizer steps (model, optimizer,
scheduler, position and the run's fingerprint; the last two are kept) and, at the end, the model
and tokenizer in ``<out>`` with ``training.json``. Started again after an interruption, it
resumes from the newest checkpoint and follows the same batch order, so the result does not
depend on the break; checkpoints of other inputs (another fingerprint: the recipe was edited)
are discarded and the run starts over.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from umi.train.data import Encoded, collate, epochs_of_batches
from umi.train.recipe import StageSection

TRAINING_FILE = "training.json"
KEEP_CHECKPOINTS = 2


@dataclass
class RunResult:
    steps: int
    final_loss: float
    target_tokens: int
    seconds: float


def _checkpoints(out: Path) -> list[Path]:
    root = out / "checkpoints"
    if not root.is_dir():
        return []
    return sorted((p for p in root.glob("step-*") if (p / "state.pt").exists()), key=lambda p: int(p.name[5:]))


def total_steps(n_samples: int, stage: StageSection) -> int:
    if stage.max_steps:
        return stage.max_steps
    per_epoch = math.ceil(n_samples / stage.batch_size / stage.gradient_accumulation)
    return max(1, math.ceil(per_epoch * stage.epochs))


def run(
    model: Any, tokenizer: Any, samples: Sequence[Encoded], stage: StageSection, out: Path, seed: int,
    desc: str, progress: bool = True, extra_info: dict[str, Any] | None = None, stop_after: int | None = None,
) -> RunResult | None:
    """Train to ``total_steps``; with ``stop_after``, save a checkpoint at that step and return None
    (a time-boxed or interrupted run; the next call resumes there). A checkpoint saved under
    another ``extra_info["fingerprint"]`` is discarded: the run starts from step 0."""
    import torch
    from transformers import get_cosine_schedule_with_warmup

    torch.manual_seed(seed)
    device = next(model.parameters()).device
    use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    steps = total_steps(len(samples), stage)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=stage.learning_rate, weight_decay=stage.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(stage.warmup_ratio * steps), steps)
    step, loss_ema = 0, float("nan")
    fingerprint = (extra_info or {}).get("fingerprint")
    if state := _resume_state(out, device, fingerprint):
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, loss_ema = state["step"], state["loss_ema"]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    batches = epochs_of_batches([len(s.input_ids) for s in samples], stage.batch_size, seed)
    for _ in range(step * stage.gradient_accumulation):  # the same order after a resume
        next(batches)
    model.train()
    started, tokens = time.perf_counter(), 0
    bar = tqdm(total=steps, initial=step, desc=desc, unit="step", disable=not progress, dynamic_ncols=True)
    while step < steps:
        optimizer.zero_grad(set_to_none=True)
        for _ in range(stage.gradient_accumulation):
            batch = {k: v.to(device) for k, v in collate([samples[i] for i in next(batches)], pad_id).items()}
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
                loss = model(**batch).loss / stage.gradient_accumulation
            loss.backward()
            tokens += int(batch["attention_mask"].sum())
        if stage.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, stage.max_grad_norm)
        optimizer.step()
        scheduler.step()
        step += 1
        value = float(loss.detach()) * stage.gradient_accumulation
        loss_ema = value if math.isnan(loss_ema) else 0.95 * loss_ema + 0.05 * value
        bar.update(1)
        if step % stage.log_every == 0 or step == steps:
            rate = tokens / max(1e-9, time.perf_counter() - started)
            bar.set_postfix(loss=f"{loss_ema:.4f}", tok_s=f"{rate:,.0f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
        if stop_after is not None and step >= stop_after and step < steps:
            _save_checkpoint(out, step, model, optimizer, scheduler, loss_ema, fingerprint)
            bar.close()
            return None
        if stage.save_every and step % stage.save_every == 0 and step < steps:
            _save_checkpoint(out, step, model, optimizer, scheduler, loss_ema, fingerprint)
    bar.close()
    seconds = time.perf_counter() - started
    result = RunResult(steps=steps, final_loss=round(loss_ema, 5), target_tokens=sum(s.target_tokens for s in samples), seconds=round(seconds, 1))
    save_final(out, model, tokenizer, result, extra_info or {})
    return result


def _resume_state(out: Path, device: Any, fingerprint: str | None) -> dict[str, Any] | None:
    """The newest checkpoint's state, or None: none saved, or saved by a run of other inputs (its
    fingerprint differs: the recipe was edited), whose checkpoints are then removed."""
    import torch

    checkpoints = _checkpoints(out)
    if not checkpoints:
        return None
    state: dict[str, Any] = torch.load(checkpoints[-1] / "state.pt", map_location=device, weights_only=False)
    if state.get("fingerprint") != fingerprint:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        return None
    return state


def _save_checkpoint(out: Path, step: int, model: Any, optimizer: Any, scheduler: Any, loss_ema: float,
                     fingerprint: str | None) -> None:
    import torch

    target = out / "checkpoints" / f"step-{step}"
    target.mkdir(parents=True, exist_ok=True)
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "step": step, "loss_ema": loss_ema, "fingerprint": fingerprint}
    torch.save(state, target / "state.pt.tmp")
    (target / "state.pt.tmp").replace(target / "state.pt")
    for old in _checkpoints(out)[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)


def save_final(out: Path, model: Any, tokenizer: Any, result: RunResult, info: dict[str, Any]) -> None:
    """The finished model in ``out``: weights (LoRA merged), tokenizer and ``training.json`` (``info``
    with the run's steps, final loss and target tokens); its checkpoints are removed."""
    out.mkdir(parents=True, exist_ok=True)
    to_save = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    to_save.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    record = {**info, "steps": result.steps, "final_loss": result.final_loss, "target_tokens": result.target_tokens}
    (out / TRAINING_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    _readable_as_umask_allows(out)


def _readable_as_umask_allows(out: Path) -> None:
    """transformers writes ``model.safetensors`` owner-only (0600); a model is meant to be read by
    other users too (a container's non-root user reading a mounted ``models/`` directory), so
    each file gets the mode the umask gives a new file (0644 under the usual 022)."""
    mask = os.umask(0)
    os.umask(mask)
    for path in out.iterdir():
        if path.is_file():
            path.chmod(0o666 & ~mask)


def is_done(out: Path, fingerprint: str) -> bool:
    """A finished run with the same inputs: nothing to do."""
    path = out / TRAINING_FILE
    if not path.exists():
        return False
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("fingerprint") == fingerprint
    except ValueError:
        return False
