"""A byte-level BPE tokenizer trained on the corpus, for models built from scratch.

Digits are split one per token and the names in ``whole_words`` (tool and argument names) are
single tokens, which makes copying numbers and names from the question easier for tiny models.
The result is a ``PreTrainedTokenizerFast`` with Llama's specials; it adds ``<s>`` in front.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from umi.format.render import render_doc, render_tool_names
from umi.format.templates import CUES, DEFAULT_SYSTEM_PREFIX, TEMPLATES
from umi.format.tools import ToolDoc
from umi.format.turns import HISTORY_PREFIX

SPECIAL_TOKENS = ("<s>", "</s>", "<unk>", "<pad>")
_PLACEHOLDER = re.compile(r"\{(?:doc|history|thought|tool_names)\}")


def format_pieces(tool_lists: Iterable[Sequence[ToolDoc]]) -> list[str]:
    """The fixed text of the alpha-UMi format, as whole tokens: each template's text between its
    placeholders, the cues and turn prefixes, the control phrases, and for each tool list its
    rendered doc lines and name list. A prompt then costs a few tokens plus its values."""
    pieces: set[str] = {DEFAULT_SYSTEM_PREFIX, *CUES.values(), *HISTORY_PREFIX.values(), "Action: ", "\nAction Input: "}
    pieces |= {" Next: caller.", " Next: conclusion.", " Next: give up.", "\nconclusion: "}
    for text in TEMPLATES.values():
        pieces |= {part for part in _PLACEHOLDER.split(text) if part}
    for tools in tool_lists:
        pieces |= {line + "\n" for line in render_doc(tools).splitlines()}
        pieces.add(render_tool_names(tools))
        pieces |= {t.Name for t in tools}
    return sorted(pieces, key=lambda p: (-len(p), p))


def train_bpe_tokenizer(
    texts: Iterable[str], vocab_size: int, split_digits: bool = True, whole_words: Sequence[str] = (),
    model_max_length: int = 1024, chars: bool = False,
) -> Any:
    """``chars``: no merges across characters at all (every character its own token, but the
    ``whole_words``), so copying an unseen name is the same skill as copying a seen one."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=not chars)
    if chars:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated"), byte_level]
        )
    elif split_digits:
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    else:
        tok.pre_tokenizer = byte_level
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    if whole_words:
        tok.add_tokens(list(whole_words))
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        model_max_length=model_max_length, clean_up_tokenization_spaces=False,
    )
