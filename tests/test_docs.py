"""The docs a newcomer follows: every relative link in README.md and docs/*.md reaches an existing file,
and every ``#anchor`` reaches a heading of its target (GitHub's heading slugs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import RECIPE_DIR

DOCS = [RECIPE_DIR / "README.md", *sorted((RECIPE_DIR / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[(?:[^\]\\]|\\.)*\]\(([^)\s]+)\)")  # [text](target); images excluded
FENCE = re.compile(r"^(```|~~~)")


def prose(text: str) -> str:
    """The text outside fenced code blocks and inline code spans (links there are not links)."""
    kept, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            kept.append(re.sub(r"`[^`]*`", "``", line))
    return "\n".join(kept)


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (word characters, spaces and hyphens
    kept, so ``_`` stays), each space a hyphen."""
    text = re.sub(r"<[^>]+>", "", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown file; repeated headings get -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    out = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        match = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            slug = github_slug(match.group(1))
            out.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return out


def relative_links(path: Path) -> list[str]:
    targets = LINK.findall(prose(path.read_text(encoding="utf-8")))
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]  # skip https:, mailto:, ...


def test_the_docs_are_there():
    names = {p.name for p in DOCS}
    assert {"README.md", "data.md", "training.md", "decoding.md", "deploy.md", "scale.md", "benchmarks.md",
            "development.md"} <= names
    assert len((RECIPE_DIR / "README.md").read_text(encoding="utf-8").splitlines()) <= 250


def test_slugs_follow_github():
    assert github_slug("Un-padded training and decoding (`remove_whisper_encoder_input_length_restriction`)") \
        == "un-padded-training-and-decoding-remove_whisper_encoder_input_length_restriction"
    assert github_slug("Speed: `python -m bench`") == "speed-python--m-bench"
    assert github_slug("The synthetic-speech demo (`local/run_vi_demo.sh`)") == "the-synthetic-speech-demo-localrun_vi_demosh"


def test_finds_links_outside_code_only(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[a](x.md) ![img](y.png) `[b](z.md)`\n```\n[c](w.md)\n```\n[d](https://e.org) [f](#g)\n")
    assert relative_links(page) == ["x.md", "#g"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(RECIPE_DIR)))
def test_relative_links_resolve(doc):
    broken = []
    for target in relative_links(doc):
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        if not dest.exists():
            broken.append(f"{target}: no file {dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading '#{anchor}' in {dest.relative_to(RECIPE_DIR)}")
        elif anchor and dest.suffix != ".md":
            broken.append(f"{target}: an anchor into a file that is not markdown")
    assert not broken, f"{doc.relative_to(RECIPE_DIR)}: " + "; ".join(broken)
    assert relative_links(doc) or doc.name != "README.md"
