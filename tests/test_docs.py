"""The docs a newcomer follows: every relative link in README.md and docs/*.md reaches an existing file,
and every ``#anchor`` reaches a heading of its target (GitHub's heading slugs)."""

from __future__ import annotations

import importlib.util
import inspect
import re
import shlex
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import RECIPE_DIR, run_script

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


# ---- figures: every measured figure is copied from a committed results file (local/render_docs.py) ----

def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, RECIPE_DIR / "local" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


render_docs = load_script("render_docs")
RESULTS_FILES = sorted({*(RECIPE_DIR / "results").glob("*.md"), RECIPE_DIR / "bench/RESULTS.md",
                        RECIPE_DIR / "bench/RESULTS-gpu.md"})


def test_docs_figures_equal_their_results_files():
    """`python local/render_docs.py --check`: every marked table and figure is what its results file holds."""
    proc = run_script(str(RECIPE_DIR / "local/render_docs.py"), "--check", check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("tamper", ["table", "inline"])
def test_a_changed_figure_fails_the_check(tmp_path, tamper):
    page = tmp_path / "page.md"
    page.write_text('<!-- figures: bench/RESULTS.md#1 rows="training whisper-base" -->\n<!-- /figures -->\n'
                    'Un-padded: <!-- fig: bench/RESULTS.md "training whisper-base" 4 --><!-- /fig --> faster.\n')
    assert render_docs.main([str(page), "--root", str(RECIPE_DIR)]) == 0
    rendered = page.read_text()
    table = render_docs.parse_tables((RECIPE_DIR / "bench/RESULTS.md").read_text(encoding="utf-8"))[0]
    (row,) = table.rows_matching("training whisper-base")
    value = table.cells(row)[3]
    assert "(`python -m bench`, commit " in rendered and render_docs.main([str(page), "--check"]) == 0
    old = f"| {value} |" if tamper == "table" else f"-->{value}<!--"
    assert rendered.count(old) == 1
    page.write_text(rendered.replace(old, old.replace(value, "9.99x")))
    assert render_docs.main([str(page), "--check"]) == 1
    render_docs.main([str(page)])
    assert page.read_text() == rendered  # rendering mends it


def test_a_marker_without_its_source_is_an_error(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "x.md").write_text("# x\n\nNo command here.\n\n| a | b |\n| --- | ---: |\n| row | 1.0 |\n")
    page = tmp_path / "page.md"
    page.write_text('<!-- figures: results/x.md#1 -->\n<!-- /figures -->\n'
                    '<!-- fig: results/x.md#2 "row" 2 --><!-- /fig -->\n')
    text, notes = render_docs.render_text(page.read_text(), page, tmp_path)
    assert [(n.line, n.stale) for n in notes] == [(1, False), (3, False)] and text == page.read_text()
    assert "does not name its command" in notes[0].message
    (results / "x.md").write_text("# x\n\nWritten by `make x` at commit 0123abc.\n\n| a | b |\n| --- | ---: |\n"
                                  "| row | 1.0 |\n")
    _, notes = render_docs.render_text(page.read_text(), page, tmp_path)
    assert [n.message for n in notes if not n.stale] == ["results/x.md has 1 tables, not a #2"]


def referenced_results() -> set[Path]:
    """The results files the docs' markers copy from."""
    text = "\n".join(doc.read_text(encoding="utf-8") for doc in DOCS)
    paths = re.findall(r"<!-- figures?: ([^\s#]+)", text)
    return {RECIPE_DIR / path for path in paths}


@pytest.mark.parametrize("results", RESULTS_FILES, ids=lambda p: str(p.relative_to(RECIPE_DIR)))
def test_results_files_name_command_and_commit(results):
    """Above its first table, each results file names the command that wrote it (in backquotes) and the commit
    (``commit <7-40 hex digits>``), which render_docs.py quotes under every table it copies."""
    header = results.read_text(encoding="utf-8").split("\n|", 1)[0]
    assert re.search(r"`[^`]+`", header), f"{results.name}: no `command` above the first table"
    assert re.search(r"\bcommit [0-9a-f]{7,40}\b", header), f"{results.name}: no 'commit <hash>' above the first table"


def test_every_results_file_is_used_and_every_marker_has_one():
    assert referenced_results() == set(RESULTS_FILES)


# Measured-looking figures: a percentage, a ratio (2.5x, 3×), a rate or size with its unit (samples/s, cuts/s,
# min, hours, GiB, MB, ms) or a number with two or more decimals (a WER, an RTF).
FIGURE = re.compile(r"\d[\d,.]*\d\s?%|\d\s?%|\d[\d,.]*\s?[x×](?![\w-])|\b\d[\d,.]*\s?(?:samples/s|cuts/s|min\b|"
                    r"minutes?\b|hours?\b|GiB|GB|MiB|MB|KiB|ms\b)|\bRTFx?\s+\d|\b\d+\.\d{2,}\b")
NOT_MEASURED = {  # figures of that shape that are settings, targets, hardware or arithmetic, not measurements
    "3.10",  # Python version
    "0.9x", "1.1x", "0.9×", "1.1×",  # speed perturbation factors
    "20%", "10%",  # mixing shares of replay, kl_to_base, non-speech cuts and packed windows (options)
    "250 cuts/s", "800 samples/s", "3×",  # the loader's target, gpu.sh's assumed H100 rate, bench's failure threshold
    "100%",  # "a WER far above 100%": a bound, not a figure
    "22.05",  # espeak-ng's sampling rate (kHz)
    "8 MB", "230 MB", "212 MB", "6 KiB", "0.6 GB", "25 GB",  # sizes by arithmetic (bytes per frame, parameter, ...)
    "1%",  # the bound on cuts a rank can lose with 100 shards per rank (arithmetic)
    "64 MiB", "32 MiB",  # the input size up to which stamps hash content; glibc's largest mmap threshold
    "25 ms", "0.02", "0.05",  # Whisper's feature window and timestamp step; lora_dropout's default
    "2 GB", "24 GB", "40 GB",  # memory_estimate.py's reserve and card sizes
    "10x", "2x",  # Lion's 3-10x smaller learning rate (advice); a frozen copy is 2x the weights (arithmetic)
}


def stray_figures(text: str) -> list[str]:
    """'line N: figure' for each measured-looking figure outside rendered blocks, fig markers, HTML comments and
    code, that is not one of NOT_MEASURED."""
    text = re.sub(r"<!-- figures: .*?<!-- /figures -->|<!-- fig: .*?<!-- /fig -->",
                  lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r"<!--.*?-->", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    out, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line.lstrip()):
            fenced = not fenced
        elif not fenced:
            out += [f"line {number}: {m.group(0)}" for m in FIGURE.finditer(re.sub(r"`[^`]*`", "``", line))
                    if m.group(0) not in NOT_MEASURED]
    return out


def test_finds_stray_figures(tmp_path):
    text = ("Italian 33.4 -> 14.5, 2.14x faster, 274 samples/s, took 9.9 minutes, peak 3.3 GiB, WER 16.06.\n"
            "`12.5%` in code, <!-- fig: x.md \"r\" 2 -->7.46x<!-- /fig -->, 20% replay, 16 kHz, 30 s.\n"
            "```\n9.1 min\n```\n<!-- figures: x.md#1 -->\n| 33.38 |\n<!-- /figures -->\n")
    assert stray_figures(text) == ["line 1: 2.14x", "line 1: 274 samples/s", "line 1: 9.9 minutes",
                                   "line 1: 3.3 GiB", "line 1: 16.06"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(RECIPE_DIR)))
def test_no_measured_figure_outside_a_marker(doc):
    """A measured figure in a doc's prose must be a marker's copy from a results file (``<!-- fig: ... -->`` or a
    ``<!-- figures: ... -->`` block), so that it can't go stale; the rule catches the shapes measurements take
    (percentages, ratios, rates, sizes and times with their unit, numbers with two decimals), not every integer.
    Figures that are settings, targets or arithmetic are listed in NOT_MEASURED; a figure from an old run
    that no results file holds leaves the docs (say what it showed, and which command measures it)."""
    stray = stray_figures(doc.read_text(encoding="utf-8"))
    assert not stray, f"{doc.relative_to(RECIPE_DIR)}: copy these from a results file or drop them: {stray}"


def test_markers_in_code_blocks_are_examples(tmp_path):
    text = ('```markdown\n<!-- fig: nowhere.md "row" 2 -->1.00x<!-- /fig -->\n'
            '<!-- figures: nowhere.md -->\n<!-- /figures -->\n```\n')
    assert render_docs.render_text(text, tmp_path / "page.md", tmp_path) == (text, [])


def own_data_commands() -> list[list[str]]:
    """The commands of README's "Your own data in five commands", split into words."""
    readme = (RECIPE_DIR / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Your own data in five commands", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line.split("#", 1)[0]) for line in block.splitlines() if line.split("#", 1)[0].strip()]


def test_own_data_commands_take_the_options_they_are_given():
    """Each option README's walkthrough passes is one the script (a variable parse_options.sh sets) or the
    egrecho command (a parameter of its function) takes, so that the five commands paste as they are."""
    from egrecho_inner.cli import COMMANDS, register_commands

    register_commands()
    commands = own_data_commands()
    assert [c[:2] for c in commands if c[0] in ("bash", "egrecho")] == [
        ["bash", "prepare.sh"], ["bash", "finetune.sh"], ["bash", "finetune.sh"], ["egrecho", "transcribe"],
        ["egrecho", "export-ct2"]]
    for words in commands:
        options = [w[2:].split(".")[0] for w in words if w.startswith("--")]
        if words[0] == "bash":
            script = (RECIPE_DIR / words[1]).read_text(encoding="utf-8")
            missing = [o for o in options if not re.search(rf"^{o}=", script, re.M)]
        elif words[0] == "egrecho":
            parameters = inspect.signature(COMMANDS[words[1]].func).parameters
            missing = [o for o in options if o not in parameters]
        else:  # m=exp/...: the merged model where finetune.sh writes it
            assert words == ["m=exp/whisper-small/lora/checkpoint-final-lora-merge"]
            assert "exp_dir=${exp_dir:-exp/$tag/$mode}" in (RECIPE_DIR / "finetune.sh").read_text(encoding="utf-8")
            missing = []
        assert not missing, f"{' '.join(words[:2])}: no option {missing}"
