#!/usr/bin/env python3
"""Choose run.sh's training settings on validation data: fine-tune once per row, score each on Italian val and
on a voice the fine-tune never meets, and write the table.

Usage (after ``bash run.sh``, whose data and original-model set-up it reuses):
    ./local/sweep_settings.py [--grid config/sweep_real_it.yaml] [--rows "[default, lr_1e-3]"] [--out_dir exp/sweep]
    ./local/sweep_settings.py --reuse "{default: exp/whisper-base-it/lora, no_guard: exp/whisper-base-it/lora_no_guard}"

Each row of ``--grid`` is run.sh's fine-tune (``config/real_lora.yaml`` plus run.sh's mix: kl_to_base on the
French prompts, packed windows, non-speech cuts) with that row's options changed, trained by ``finetune.sh``
into ``<out_dir>/<row>`` (a row already trained with the same options is reused: finetune.sh's stamp), or taken
from a dir run.sh trained with the same options (``--reuse``: run.sh's fine-tune is the default row, its
``--compare_guard true`` run the no_guard row). A row's ``merge_scale`` (default 1) and ``merge_encoder_scale``
(default: merge_scale) are not training options: a
row whose adapter was trained elsewhere (a reused dir, or a row with the same other options) gets that adapter
merged at its scales (``egrecho merge-lora-whisper --scale/--encoder_scale``) into ``<out_dir>/<row>``, training
nothing new (run.sh's own merge is at its scales, not necessarily the row's). Scored on validation splits only,
each text-disjoint from its test split: Italian val (the trained voice) and English and Russian val (``data/kaldi/real_{en,ru}/val``,
made by run.sh: the retention voices, never trained on or replayed, on prompts the test never holds). Writes
``<out_dir>/SWEEP.md``: per row the WERs, each retention WER against the original's, the share of non-speech val
clips (``data/kaldi/nonspeech/val``) given any text, training time, and the chosen row, by the
one-standard-error rule: among the rows that keep every retention set within +10% of the original and write text
on at most 10% of the non-speech clips, those whose Italian val WER is within one standard error of the best (40 prompts cannot tell closer
rows apart), and of these the one whose worst retention set drifted least.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install

from egrecho_inner.errors import InputError, MissingInputError  # noqa: E402
from egrecho_inner.utils import atomic_path, run_cli  # noqa: E402

FBANK = "data/fbank_whisper80"
MIX = {"kl_to_base": [f"{FBANK}/real_fr_cuts_train.jsonl.gz"], "kl_to_base_prob": 0.2,
       "replay": [f"{FBANK}/real_it_long_cuts_train.jsonl.gz"], "replay_prob": 0.1,
       "nospeech_cuts": f"{FBANK}/nonspeech_cuts_train.jsonl.gz", "nospeech_prob": 0.25}  # run.sh's mix_opts
RETENTION_LIMIT = 1.10  # a retention WER at most 10% over the original's
RETENTION = {"en": "data/kaldi/real_en/val", "ru": "data/kaldi/real_ru/val"}  # made by run.sh
NONSPEECH = "data/kaldi/nonspeech/val"  # made by run.sh: other clips (seed) than the training's and the test's
NONSPEECH_LIMIT = 0.10  # at most 10% of the non-speech clips get text (the fine-tune is trained to write none)
EGRECHO = [sys.executable, "-m", "egrecho_inner.cli"]  # this interpreter's egrecho, activated or not


def _run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def _score(model: str, out: Path) -> dict:
    """errs of ``model`` on Italian val, the retention val sets and non-speech val, each scored once per model (egrecho_inner.stamps)."""
    common = ["-c", "config/eval.yaml", "--model_path", model, "--outdir", str(out), "--num_workers", "1",
              "--gen_args.max_new_tokens", "120"]
    sets = {"val": ["--prefix_name", "real_it", "--part", "val"],
            **{lang: ["--kaldi_dir", kaldi_dir, "--part", f"{lang}-val"] for lang, kaldi_dir in RETENTION.items()},
            "nonspeech": ["--kaldi_dir", NONSPEECH, "--part", "nonspeech-val"]}
    for part, options in sets.items():
        _run([sys.executable, "-m", "egrecho_inner.stamps", "run", str(out / f".eval-{part}.stamp.json"),
              "--outputs", str(out / f"errs-{options[-1]}.json"), "--inputs", model, "--", *EGRECHO, "eval", *common,
              *options])
    return {part: json.loads((out / f"errs-{options[-1]}.json").read_text()) for part, options in sets.items()}


MERGE_OPTIONS = {"merge_scale": "--scale", "merge_encoder_scale": "--encoder_scale"}  # row key -> merge option


def _training_key(options: dict) -> str:
    """A row's training options (all but the merge's, MERGE_OPTIONS) as a canonical string."""
    return json.dumps({k: v for k, v in options.items() if k not in MERGE_OPTIONS}, sort_keys=True)


def _merge(adapter: Path, row_dir: Path, options: dict) -> None:
    """``row_dir``/checkpoint-final-lora-merge: ``adapter`` merged at the row's scales (once per adapter and scales)."""
    scales = [arg for key, flag in MERGE_OPTIONS.items() if key in options for arg in (flag, str(options[key]))]
    _run([sys.executable, "-m", "egrecho_inner.stamps", "run", str(row_dir / ".merge.stamp.json"),
          "--outputs", str(row_dir / "checkpoint-final-lora-merge"), "--inputs", str(adapter), "--",
          *EGRECHO, "merge-lora-whisper", "--lora_model", str(adapter), "--output_dir", str(row_dir),
          *scales])


def _option_args(options: dict) -> list[str]:
    """``--key value`` pairs as jsonargparse reads them (lists as JSON, booleans as true/false)."""
    return [arg for key, value in options.items()
            for arg in (f"--{key}", value if isinstance(value, str) else json.dumps(value))]


def _train(options: dict, row_dir: Path) -> None:
    """finetune.sh with run.sh's mix and ``options`` into ``row_dir`` (skipped when its stamp is up to date)."""
    _run(["bash", "finetune.sh", "--model_name", "whisper-base", "--is_lora", "true", "--prefix", "real_it",
          "--exp_dir", str(row_dir), "--train_config", "config/real_lora.yaml", "--stop_stage", "0", "--",
          *_option_args({**MIX, **options})])


def sweep_settings(grid: str = "config/sweep_real_it.yaml", rows: list[str] | None = None,
                   out_dir: str = "exp/sweep", reuse: dict[str, str] | None = None) -> str | None:
    """Train and score each row; returns the chosen row's name (None if no row keeps every retention set).

    Args:
        grid: YAML with ``rows: {name: {option: value}}``, options of egrecho_inner/lora.py.
        rows: the rows to run (default: all, in the file's order).
        out_dir: a dir per row, the original's scores in ``original/``, and SWEEP.md.
        reuse: row name -> a dir run.sh trained with that row's options (not trained again).
    """
    reuse = reuse or {}
    for need in (f"{FBANK}/real_it_cuts_val.jsonl.gz", MIX["kl_to_base"][0], "pretrained/whisper-base",
                 *RETENTION.values(), NONSPEECH):
        if not Path(need).exists():
            raise MissingInputError(f"{need} not found: run bash run.sh first")
    table = yaml.safe_load(Path(grid).read_text())["rows"]
    names = rows or list(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        raise InputError(f"{grid} has no rows {unknown}; it has {list(table)}")
    out = Path(out_dir)
    original = _score("pretrained/whisper-base", out / "original")
    trained_dirs = {_training_key(table[n]): Path(d) for n, d in reuse.items() if n in table}
    results, sources = {}, {}
    for name in names:
        key = _training_key(table[name])
        whole = all(table[name].get(option, 1.0) == 1.0 for option in MERGE_OPTIONS)
        train_dir = Path(reuse[name]) if name in reuse else trained_dirs.get(key, out / name)
        if key not in trained_dirs:  # rows differing only in MERGE_OPTIONS share one training
            _train(json.loads(key), train_dir)
            trained_dirs[key] = train_dir
        if whole and train_dir == out / name:  # trained here: finetune.sh merged the whole update
            row_dir = train_dir
        else:  # another row's or a reused adapter, merged here at this row's scale
            row_dir = out / name
            if not (train_dir / "checkpoint-final").is_dir():
                raise MissingInputError(f"row {name}: {train_dir} holds no checkpoint-final adapter to merge")
            _merge(train_dir / "checkpoint-final", row_dir, table[name])
            sources[name] = f"merged from {train_dir}"
        if name in reuse:
            sources[name] = f"reused: {train_dir}"
        trained = json.loads((train_dir / "train_results.json").read_text())
        results[name] = (_score(str(row_dir / "checkpoint-final-lora-merge"), row_dir), trained["train_runtime"])
    text, chosen = sweep_table(grid, table, original, results, sources)
    with atomic_path(out / "SWEEP.md") as tmp:
        tmp.write_text(text, encoding="utf-8")
    print(text)
    return chosen


def standard_error(errs: dict) -> float:
    """The binomial standard error of a WER over its ``total`` reference words: sqrt(p (1 - p) / n)."""
    p = min(errs["error_rate"], 1.0)
    return (p * (1 - p) / errs["total"]) ** 0.5


def sweep_table(grid: str, table: dict, original: dict, results: dict, sources: dict[str, str]) -> tuple[str, str | None]:
    """The Markdown table, and the chosen row (``sources``: row -> where its model came from, when not its own dir)."""
    langs = list(RETENTION)
    base = {lang: original[lang]["error_rate"] for lang in langs}
    worst = {n: max(r[0][lang]["error_rate"] / base[lang] for lang in langs) for n, r in results.items()}
    kept = {n: r[0]["val"] for n, r in results.items()
            if worst[n] <= RETENTION_LIMIT and r[0]["nonspeech"]["nonspeech_with_text"] <= NONSPEECH_LIMIT}
    chosen, within = None, []
    if kept:  # one-standard-error rule: of the rows as good as the best within it val's noise, the safest
        best = min(kept, key=lambda n: kept[n]["error_rate"])
        bar = kept[best]["error_rate"] + standard_error(kept[best])
        within = [n for n in kept if kept[n]["error_rate"] <= bar]
        chosen = min(within, key=lambda n: worst[n])
    head = " | ".join(f"WER {lang} val (%) | {lang} vs original" for lang in langs)
    lines = [f"# Settings for run.sh chosen on validation data ({grid})", "",
             f"| row | options | WER it val (%) | {head} | non-speech val with text (%) | training (min) |",
             "| :-- | :-- | ---: | " + "---: | ---: | " * len(langs) + "---: | ---: |",
             f"| original whisper-base | - | {100 * original['val']['error_rate']:.2f} | "
             + " | ".join(f"{100 * base[lang]:.2f} | -" for lang in langs)
             + f" | {100 * original['nonspeech']['nonspeech_with_text']:.1f} | - |"]
    for name, (errs, runtime) in results.items():
        where = f" ({sources[name]})" if name in sources else ""
        options = json.dumps(table[name]) if table[name] else "config/real_lora.yaml"
        retention = " | ".join(f"{100 * errs[lang]['error_rate']:.2f} | {100 * (errs[lang]['error_rate'] / base[lang] - 1):+.1f}%"
                               for lang in langs)
        lines.append(f"| {'**' + name + '**' if name == chosen else name} | {options}{where} "
                     f"| {100 * errs['val']['error_rate']:.2f} | {retention} "
                     f"| {100 * errs['nonspeech']['nonspeech_with_text']:.1f} | {runtime / 60:.1f} |")
    sizes = ", ".join(f"{lang} {original[lang]['num_utts']}" for lang in langs)
    lines += ["", f"it val: {original['val']['num_utts']} Italian prompts ({original['val']['total']} words) of the "
              "trained voice, text in neither train nor test. Retention val "
              f"({sizes} prompts): the English and Russian voices of run.sh's retention rows, on "
              "prompts text-disjoint from their test splits; never trained on or replayed. Non-speech val: "
              f"{original['nonspeech']['nonspeech_cuts']} clips of silence, noise and hum, none of them trained on or in "
              "the test. Chosen (bold), by the one-standard-error rule: among rows with every retention WER within "
              f"+{100 * (RETENTION_LIMIT - 1):.0f}% of the original's and text on at most "
              f"{100 * NONSPEECH_LIMIT:.0f}% of the non-speech clips, those whose it val WER is within one standard error of the best "
              f"({', '.join(within) or 'none'}), and of these the one whose worst retention set drifted least: "
              f"{chosen or 'none qualifies'}."]
    return "\n".join(lines) + "\n", chosen


if __name__ == "__main__":
    run_cli(sweep_settings)
