"""Training recipes: one TOML file per recipe (``recipes/*.toml``), validated with pydantic.

Unknown keys are errors that name the key, so a typo never silently changes a run.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from umi.format import PromptRole, PromptVariant

ROLES: tuple[Literal["planner", "caller", "summarizer"], ...] = ("planner", "caller", "summarizer")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ScratchModel(_Strict):
    """A Llama built from scratch (the demo's tiny models)."""

    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 3
    num_attention_heads: int = 4
    max_position_embeddings: int = 1024


class ModelSection(_Strict):
    init: str = Field("scratch", description="'scratch', or a local path / hub id of a causal LM")
    scratch: ScratchModel = ScratchModel()
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    gradient_checkpointing: bool = False
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj"]


class TokenizerSection(_Strict):
    """Used only when the model is built from scratch; otherwise the model's own tokenizer."""

    vocab_size: int = 1024
    chars: bool = Field(False, description="one token per character outside whole_words and the format pieces")
    split_digits: bool = True
    whole_words: list[str] = Field(default_factory=list, description="more text to add as single tokens")
    format_pieces: bool = Field(True, description="the format's fixed text and the corpus's tool docs as single tokens")


class DataSection(_Strict):
    train: list[str] = Field(default_factory=list, description="trajectory files (alpha-UMi format)")
    variant: PromptVariant = "toolbench"
    max_length: int = 1024


class StageSection(_Strict):
    roles: list[PromptRole] = ["backbone", "planner", "caller", "summarizer"]
    learning_rate: float = 5e-5
    batch_size: int = 8
    gradient_accumulation: int = 1
    epochs: float = 1.0
    max_steps: int = 0
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    save_every: int = 500
    log_every: int = 10
    data: list[str] = Field(default_factory=list, description="overrides data.train for this stage")


class Stage2Section(StageSection):
    """One stage-2 model: a copy of the stage-1 backbone fine-tuned on one role's samples."""

    role: Literal["planner", "caller", "summarizer"] | None = None  # default: the section's name
    roles: list[PromptRole] = []
    soup: int = Field(1, ge=1, description=(
        "fine-tune this many copies of the backbone (data order and initial state from seed + k for copy k)"
        " and average their weights uniformly: a model soup (Wortsman et al., ICML 2022)"))


class Recipe(_Strict):
    name: str
    version: str = "v1"
    seed: int = 0
    model: ModelSection = ModelSection()
    tokenizer: TokenizerSection = TokenizerSection()
    data: DataSection = DataSection()
    stage1: StageSection = StageSection()
    stage2: dict[str, Stage2Section] = Field(default_factory=dict, description="output name -> stage-2 run")

    def stage2_role(self, name: str) -> Literal["planner", "caller", "summarizer"]:
        section = self.stage2[name]
        role = section.role or name
        if role not in ROLES:
            raise RecipeError(f"stage2.{name}: set role = planner, caller or summarizer")
        return role  # type: ignore[return-value]


class RecipeError(ValueError):
    pass


def load_recipe(path: str | Path) -> Recipe:
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipeError(f"{p}: no such recipe file") from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{p}: invalid TOML: {exc}") from None
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise RecipeError(f"{p}: {loc}: {first['msg']}") from None
