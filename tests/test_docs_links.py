"""Every relative link of README.md and docs/*.md leads somewhere: the file exists and, for a
``#anchor``, the target Markdown file has a heading with that anchor.

Anchors are GitHub's heading ids (the rule of github-slugger, which GitHub uses): the heading's
text without Markdown (code spans keep their text, links their label), lower-cased; every
character that is not a letter, digit, space, hyphen or underscore is dropped; spaces become
hyphens; a repeated id gets ``-1``, ``-2``, ... Links inside fenced code blocks and code spans
are not links, and neither are absolute URLs (``http:``, ``mailto:``, ...).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def without_code(markdown: str) -> str:
    """The text with fenced code blocks and code spans blanked out (they hold no links)."""
    markdown = FENCE.sub("", markdown)
    return CODE_SPAN.sub("", markdown)


def slug(heading: str) -> str:
    """GitHub's id of a heading's text (before the ``-N`` suffix of repeated ids)."""
    text = CODE_SPAN.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link keeps its label
    text = re.sub(r"[*_]{1,3}(\S(?:.*?\S)?)[*_]{1,3}", r"\1", text)  # emphasis keeps its text
    text = "".join(c for c in text.lower() if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """The ids of every heading of a Markdown document, repeated ones numbered as GitHub does."""
    seen: dict[str, int] = {}
    ids = set()
    for heading in HEADING.findall(FENCE.sub("", markdown)):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        ids.add(base if count == 0 else f"{base}-{count}")
    return ids


def broken_links(document: Path) -> list[str]:
    """Each relative link of ``document`` whose file or heading does not exist, as ``target: why``."""
    problems = []
    for target in LINK.findall(without_code(document.read_text(encoding="utf-8"))):
        if SCHEME.match(target):
            continue
        path_part, _, anchor = target.partition("#")
        path = (document.parent / path_part).resolve() if path_part else document
        if not path.exists():
            problems.append(f"{target}: no file {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path.read_text(encoding="utf-8")):
            problems.append(f"{target}: no heading #{anchor} in {path.name}")
    return problems


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_of_the_document_leads_to_a_file_and_heading(document: Path) -> None:
    assert broken_links(document) == []


def test_a_missing_file_and_a_missing_heading_are_reported_and_code_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## The `umi` command (CLI)\n\n## Twice\n\n## Twice\n")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Doc\n\n"
        "[ok](other.md) [ok](other.md#the-umi-command-cli) [ok](other.md#twice-1) [ok](#doc) [web](https://x.invalid/a)\n"
        "[gone](missing.md) [bad anchor](other.md#nope) [bad local](#nowhere)\n"
        "`[in a span](span.md)`\n\n```sh\necho '[in a block](block.md)'\n```\n"
    )
    assert broken_links(doc) == [
        f"missing.md: no file {tmp_path / 'missing.md'}",
        "other.md#nope: no heading #nope in other.md",
        "#nowhere: no heading #nowhere in doc.md",
    ]


def test_heading_ids_follow_github() -> None:
    assert slug("The orchestrator: `POST /chat`") == "the-orchestrator-post-chat"
    assert slug("The demo recipe (`recipes/demo.toml`, `demo-2`)") == "the-demo-recipe-recipesdemotoml-demo-2"
    assert slug("Swapping weights under traffic (admin API)") == "swapping-weights-under-traffic-admin-api"
    assert slug("See [the API](api.md) **now**") == "see-the-api-now"
