"""One source for every default: the option dataclasses (and ``evaluate``'s signature). Each YAML in
config/ holds known keys only, and besides the paths a user edits first only values that differ from
the code's defaults; docs/training.md's table of training options states the code's defaults, and docs/development.md's
Architecture section names every module."""

from __future__ import annotations

import dataclasses
import inspect
import re

import pytest
import yaml

from egrecho_inner.evaluate import evaluate
from egrecho_inner.full import FullArgs
from egrecho_inner.lora import LoraArgs
from tests.conftest import RECIPE_DIR

PATH_KEYS = {"base_model", "output_dir", "manifest_dir", "prefix_name", "model_path", "outdir"}


def dataclass_defaults(cls) -> dict:
    return {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
            for f in dataclasses.fields(cls)}


def function_defaults(func) -> dict:
    return {name: p.default for name, p in inspect.signature(func).parameters.items()}


def plain(value):
    """Dataclass/tuple values as YAML would read them."""
    if dataclasses.is_dataclass(value):
        return {k: plain(v) for k, v in dataclasses.asdict(value).items()}
    return [plain(v) for v in value] if isinstance(value, (list, tuple)) else value


@pytest.mark.parametrize("name, defaults", [
    ("lora.yaml", dataclass_defaults(LoraArgs)), ("demo_lora.yaml", dataclass_defaults(LoraArgs)),
    ("real_lora.yaml", dataclass_defaults(LoraArgs)),
    ("full.yaml", dataclass_defaults(FullArgs)), ("eval.yaml", function_defaults(evaluate)),
])
def test_yaml_keys_are_known_and_only_restate_paths(name, defaults):
    config = yaml.safe_load((RECIPE_DIR / "config" / name).read_text())
    unknown = set(config) - set(defaults)
    assert not unknown, f"config/{name}: unknown keys {sorted(unknown)}"
    restated = [k for k, v in config.items() if k not in PATH_KEYS and plain(v) == plain(defaults[k])]
    assert not restated, f"config/{name} restates the code's defaults for {restated}: drop them (one source)"


TRAINING_DOC = RECIPE_DIR / "docs" / "training.md"
DEVELOPMENT_DOC = RECIPE_DIR / "docs" / "development.md"


def doc_option_rows() -> list[tuple[list[str], list]]:
    """(keys, default values) of each row of docs/training.md's training-option table."""
    text = TRAINING_DOC.read_text(encoding="utf-8")
    table = text[text.index("| key | default | meaning |"):].split("\n\n", 1)[0].splitlines()[2:]
    rows = []
    for line in table:
        keys_cell, values_cell = [c.strip() for c in line.strip("|").split(" | ")][:2]
        if values_cell:
            rows.append((re.findall(r"`(\w+)`", keys_cell), yaml.safe_load(f"[{values_cell}]")))
    return rows


def test_doc_option_table_states_the_code_defaults():
    defaults = {**dataclass_defaults(FullArgs), **dataclass_defaults(LoraArgs)}  # LoRA's output_dir/learning_rate
    rows = doc_option_rows()
    assert len(rows) > 15
    documented = set()
    for keys, values in rows:
        assert len(keys) == len(values), f"docs/training.md row {keys}: {len(values)} values"
        for key, value in zip(keys, values):
            assert key in defaults, f"docs/training.md documents an unknown option {key}"
            assert plain(value) == plain(defaults[key]), f"docs/training.md says {key} defaults to {value}, the code {defaults[key]}"
            documented.add(key)
    # the table covers every option but those a user rarely sets
    assert set(defaults) - documented <= {"weight_decay", "record_cut_ids", "new_language", "new_language_init"}


def test_doc_architecture_names_every_module():
    text = DEVELOPMENT_DOC.read_text(encoding="utf-8")
    start = text.index("\n## Architecture\n")
    end = text.find("\n## ", start + 1)
    section = text[start:end if end != -1 else len(text)]
    package = RECIPE_DIR / "egrecho_inner"
    modules = {str(p.relative_to(package)) for p in package.rglob("*.py") if p.name != "__init__.py"}
    missing = {m for m in modules if m not in section}
    assert not missing, f"docs/development.md's Architecture section does not name {sorted(missing)}"
    named = set(re.findall(r"\b((?:deploy/)?\w+\.py)\b", section))
    assert not {n for n in named if n not in modules and not (RECIPE_DIR / "local" / n).is_file()}
