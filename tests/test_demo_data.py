"""The demo corpus tools: natural-text sentences, text-disjoint splits with their out-of-vocabulary rate,
non-speech clips, the loss-curve picture and the results tables (local/make_demo_*.py, plot_loss.py,
write_results.py)."""

from __future__ import annotations

import importlib.util
import json
import re

import numpy as np
import soundfile as sf

from tests.conftest import RECIPE_DIR, run_script


def load_script(name: str):
    """A local/ script as a module (its functions, without running it)."""
    spec = importlib.util.spec_from_file_location(name, RECIPE_DIR / "local" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_speakable_sentences_from_html(tmp_path):
    text = load_script("make_demo_text")
    page = tmp_path / "page.html"
    page.write_text("<html><p>Nhấn vào biểu tượng này để mở hộp thoại mới.</p>"
                    "<p>Chọn <b>Tệp</b> rồi nhấn vào nút Lưu để lưu tài liệu. Xem thêm.</p>"
                    "<pre>apt-get install</pre><p>Bấm vào LibreOffice Calc để bắt đầu làm việc.</p>"
                    "<p>Có 3 cách để làm việc này.</p></html>", encoding="utf-8")
    syllables = {"nhấn", "vào", "biểu", "tượng", "này", "để", "mở", "hộp", "thoại", "mới", "chọn", "tệp", "rồi",
                 "nút", "lưu", "tài", "liệu", "xem", "thêm", "bấm", "bắt", "đầu", "làm", "việc", "có", "cách"}
    sentences = [s for p in text.paragraphs(page) for s in text.re.split(r"(?<=[.!?])\s+", " ".join(p.split()))]
    kept = [s for s in sentences if text.speakable(s, syllables)]
    # English product names, digits, too-short sentences and <pre> blocks are left out
    assert kept == ["Nhấn vào biểu tượng này để mở hộp thoại mới.", "Chọn Tệp rồi nhấn vào nút Lưu để lưu tài liệu."]
    # English: plain-letter words only
    assert text.speakable("You should also understand that packaging takes time.", None)
    assert not text.speakable("Run dpkg-buildpackage with the -us option now.", None)
    assert not text.speakable("There are 3 ways to build the package today.", None)


def test_esperanto_proverbs_from_a_fortune_file(tmp_path):
    text = load_script("make_demo_text")
    fortunes = tmp_path / "proverbaro"
    fortunes.write_text('Akvo kura -- akvo pura\n%\nAl hundo bastono, al hom\' leciono\n%\nLa "tuj" de sinjoroj\n'
                        "estas multe da horoj\n%\nĈu vi venos?\n%\nDu vortoj\n%\nEn 1887 aperis la lingvo\n",
                        encoding="utf-8")
    proverbs = text.proverbs(fortunes)
    assert proverbs == ["Akvo kura, akvo pura.", "Al hundo bastono, al hom' leciono.",
                        "La tuj de sinjoroj estas multe da horoj.", "Ĉu vi venos?", "Du vortoj.",
                        "En 1887 aperis la lingvo."]
    kept = [p for p in proverbs if text.speakable(p, None, text.MIN_PROVERB_WORDS, ascii_only=False)]
    # too short ("Ĉu vi venos?": 3 words, "Du vortoj.") and digits are left out; ĉ and hom' are letters
    assert kept == proverbs[:3]
    horse = "Al ĉevalo donacita oni buŝon ne esploras."
    assert text.speakable(horse, None, text.MIN_PROVERB_WORDS, ascii_only=False)
    assert not text.speakable(horse, None) and not text.speakable(proverbs[0], None)  # English: 6+ ASCII words


def test_text_disjoint_splits_and_oov_rate(tmp_path):
    sentences = [f"Câu số {w} nói về {v} hôm nay." for w in ("một", "hai", "ba", "bốn", "năm", "sáu")
                 for v in ("mèo", "chó", "gà")]
    (tmp_path / "vi.txt").write_text("\n".join(sentences + sentences[:3]) + "\n", encoding="utf-8")  # duplicates
    run_script(str(RECIPE_DIR / "local/make_demo_data.py"), "--out_dir", str(tmp_path / "kaldi"), "--languages", "vi",
               "--sentences", str(tmp_path / "vi.txt"), "--num_train", "10", "--num_val", "2", "--num_test", "6")
    texts = {split: [line.split(" ", 1)[1] for line in (tmp_path / "kaldi" / split / "text").read_text().splitlines()]
             for split in ("train", "val", "test")}
    assert [len(t) for t in texts.values()] == [10, 2, 6]
    assert not set(texts["train"]) & set(texts["test"]) and not set(texts["val"]) & set(texts["test"])
    # the out-of-vocabulary rate by hand: test words never seen in train
    train_words = {w.strip(".").lower() for t in texts["train"] for w in t.split()}
    test_words = [w.strip(".").lower() for t in texts["test"] for w in t.split()]
    stats = json.loads((tmp_path / "kaldi/stats.json").read_text())
    assert stats["test_oov_rate"] == round(sum(w not in train_words for w in test_words) / len(test_words), 4)
    assert stats["test_sentences_in_train"] == 0 and stats["splits"]["test"]["sentences"] == 6
    words = lambda t: [w.strip(".").lower() for w in t.split()]  # noqa: E731
    train_pairs = {p for t in texts["train"] for p in zip(words(t), words(t)[1:])}
    test_pairs = [p for t in texts["test"] for p in zip(words(t), words(t)[1:])]
    assert stats["test_word_pair_oov_rate"] == round(sum(p not in train_pairs for p in test_pairs) / len(test_pairs), 4)


def test_nonspeech_clips(tmp_path):
    run_script(str(RECIPE_DIR / "local/make_nonspeech_data.py"), "--out_dir", str(tmp_path / "ns"), "--num_clips", "6")
    text = (tmp_path / "ns/text").read_text().splitlines()
    assert len(text) == 6 and all(" " not in line for line in text)  # ids alone: empty transcripts
    levels = {}
    for line in (tmp_path / "ns/wav.scp").read_text().splitlines():
        utt, path = line.split(" ", 1)
        audio, rate = sf.read(path)
        assert rate == 16000 and 1.0 <= len(audio) / rate <= 8.0
        levels[utt.split("-")[1]] = np.abs(audio).max()
    assert levels["silence"] == 0 and all(v > 0 for k, v in levels.items() if k != "silence")


def test_loss_curve_and_results_tables(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "tb"))
    for step in range(1, 11):
        writer.add_scalar("train/loss", 2.0 / step, step)
    writer.add_scalar("eval/loss", 0.5, 10)
    writer.close()
    run_script(str(RECIPE_DIR / "local/plot_loss.py"), "--logdir", str(tmp_path / "tb"), "--output", str(tmp_path / "loss.png"))
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plot = load_script("plot_loss")
    curves = plot.read_scalars(str(tmp_path / "tb"))
    assert curves["eval/loss"] == [(10, 0.5)] and len(curves["train/loss"]) == 10

    def errs(name, error_rate, lid, repetition, nonspeech=None):
        fields = {"error_rate": error_rate, "ins_rate": 0.0, "del_rate": 0.0, "sub_rate": error_rate, "total": 100,
                  "num_utts": 10, "audio_seconds": 30.0, "RTF": 0.1, "metric": "wer", "unpadded": False,
                  "lid_accuracy": lid, "lid_cuts": 10, "repetition_rate": repetition, "nonspeech_cuts": 4,
                  "nonspeech_with_text": nonspeech}
        (tmp_path / name).write_text(json.dumps(fields))
        return str(tmp_path / name)

    args = ["--name", "x", "--model", str(tmp_path / "m"), "--output", str(tmp_path / "RESULTS.md"),
            "--original", errs("o.json", 1.5, 0.9, 0.3), "--tuned", errs("t.json", 0.2, 1.0, 0.0),
            "--retention_original", errs("oe.json", 0.1, 1.0, 0.0), "--retention_tuned", errs("te.json", 0.25, 0.7, 0.1),
            "--nonspeech_original", errs("on.json", 0, None, 0.0, 0.5), "--nonspeech_tuned", errs("tn.json", 0, None, 0.0, 0.25),
            "--loss_curve", "loss.png"]
    (tmp_path / "m").mkdir()
    from safetensors.torch import save_file
    import torch

    save_file({"w": torch.zeros(10, 100)}, str(tmp_path / "m/model.safetensors"))
    run_script(str(RECIPE_DIR / "local/write_results.py"), *args, "--command", "bash run.sh --compare_guard true")
    table = (tmp_path / "RESULTS.md").read_text()
    assert re.match(r"Written by `bash run.sh --compare_guard true` at commit (unknown|[0-9a-f]{7,40}(\+dirty)?)\.\n", table)
    assert "| x | 0.0M | 150.00 | **20.00** (0.00, 0.00, 20.00) |" in table
    assert "| WER, retained language (not fine-tuned on; 10 utterances) | 10.00 | 25.00 |" in table
    assert "| language identification accuracy, retained language | 100.00 | 70.00 |" in table
    # several retained languages, each named
    named = [*args, "--retention_names", "[English, Russian]", "--retention_original", f"[{errs('oe.json', 0.1, 1.0, 0.0)}, "
             f"{errs('or.json', 0.3, 0.9, 0.0)}]", "--retention_tuned", f"[{errs('te.json', 0.25, 0.7, 0.1)}, "
             f"{errs('tr.json', 0.33, 0.8, 0.0)}]"]
    run_script(str(RECIPE_DIR / "local/write_results.py"), *named)
    table = (tmp_path / "RESULTS.md").read_text()
    assert "| WER, English (not fine-tuned on; 10 utterances) | 10.00 | 25.00 |" in table
    assert "| WER, Russian (not fine-tuned on; 10 utterances) | 30.00 | 33.00 |" in table
    assert "| language identification accuracy, Russian | 90.00 | 80.00 |" in table
    proc = run_script(str(RECIPE_DIR / "local/write_results.py"), *named[:-1], "[x.json]", check=False)
    assert proc.returncode != 0 and "2 original, 1 tuned files and 2 names" in proc.stderr
    assert "| non-speech clips that got any text (4 clips) | 50.00 | 25.00 |" in table
    assert "![training and validation loss](loss.png)" in table


def test_compare_runs_table(tmp_path):
    compare = load_script("compare_runs")
    for name, runtime, wer, unpadded in (("a", 420.0, 0.1, True), ("b", 3600.0, 0.125, False)):
        run = tmp_path / name
        run.mkdir()
        (run / "train_results.json").write_text(json.dumps({"train_runtime": runtime, "train_steps_per_second": 200 / runtime}))
        (run / "errs-test.json").write_text(json.dumps({"error_rate": wer, "total": 80, "metric": "wer",
                                                        "lid_accuracy": 1.0, "unpadded": unpadded}))
        (run / "errs-nonspeech.json").write_text(json.dumps({"error_rate": 0.0, "total": 0, "metric": "wer",
                                                             "nonspeech_with_text": 0.25 if unpadded else None}))
    (tmp_path / "a/errs-extra.json").write_text("{}")  # a part only one run has is left out
    compare.compare_runs([f"un-padded={tmp_path / 'a'}", f"padded={tmp_path / 'b'}"], str(tmp_path / "C.md"), "T")
    lines = (tmp_path / "C.md").read_text().splitlines()
    assert lines[0] == "# T" and lines[4] == "| | un-padded | padded |"
    assert re.fullmatch(r"Written at commit (unknown|[0-9a-f]{7,40}(\+dirty)?) \(the command was not given: --command\)\.",
                        lines[2])  # local/render_docs.py quotes the command and commit under a copied table
    assert "| training wall time (min) | 7.0 | 60.0 |" in lines
    assert "| WER (%), test | 10.00 | 12.50 |" in lines and "| decoded, test | un-padded | padded to 30 s |" in lines
    assert "| non-speech clips that got any text (%), nonspeech | 25.00 | n/a |" in lines
    assert not any("WER (%), nonspeech" in line or "extra" in line for line in lines)
    # a model that was not trained (the original) has its errs but no training figures
    (tmp_path / "orig").mkdir()
    (tmp_path / "orig/errs-test.json").write_text(json.dumps({"error_rate": 0.3, "total": 80, "metric": "wer"}))
    compare.compare_runs([f"original={tmp_path / 'orig'}", f"un-padded={tmp_path / 'a'}"], str(tmp_path / "E.md"))
    lines = (tmp_path / "E.md").read_text().splitlines()
    assert "| training wall time (min) | - | 7.0 |" in lines and "| WER (%), test | 30.00 | 10.00 |" in lines
    proc = run_script(str(RECIPE_DIR / "local/compare_runs.py"), "--runs", f"[x={tmp_path / 'a'}, y={tmp_path / 'tb'}]",
                      "--output", str(tmp_path / "D.md"), check=False)
    assert proc.returncode != 0 and "holds no errs-*.json" in proc.stderr and "Traceback" not in proc.stderr


def test_sweep_chooses_the_best_row_that_keeps_every_retention_set():
    sweep = load_script("sweep_settings")
    errs = lambda val, en, ru, silent=0.0: {"val": {"error_rate": val, "num_utts": 40, "total": 160},  # noqa: E731
                                            "en": {"error_rate": en, "num_utts": 100}, "ru": {"error_rate": ru, "num_utts": 100},
                                            "nonspeech": {"nonspeech_with_text": silent, "nonspeech_cuts": 24}}
    original = errs(0.20, 0.30, 0.10, 1.0)
    results = {"a": (errs(0.15, 0.32, 0.105), 600.0), "b": (errs(0.10, 0.34, 0.10), 600.0),
               "c": (errs(0.12, 0.33, 0.11), 300.0), "d": (errs(0.11, 0.30, 0.12), 300.0)}
    table = {"a": {}, "b": {"learning_rate": 1e-3}, "c": {"kl_to_base": []}, "d": {"lora_r": 8}}
    text, chosen = sweep.sweep_table("grid.yaml", table, original, results, {"a": "trained by run.sh: exp/a"})
    assert chosen == "c"  # b is best on val but takes en 13% over the original, d takes ru 20% over; c is within +10%
    assert "| **c** | {\"kl_to_base\": []} | 12.00 | 33.00 | +10.0% | 11.00 | +10.0% | 0.0 | 5.0 |" in text
    assert "| a | config/real_lora.yaml (trained by run.sh: exp/a) | 15.00 | 32.00 | +6.7% | 10.50 | +5.0% | 0.0 | 10.0 |" in text
    assert "| original whisper-base | - | 20.00 | 30.00 | - | 10.00 | - | 100.0 | - |" in text
    assert sweep.sweep_table("g", table, original, {"b": results["b"]}, {})[1] is None
    # one-standard-error rule: c's it val standard error is sqrt(0.12 * 0.88 / 160) = 2.6 points, so a row at
    # 14.5 ties with it and wins by drifting less (worst retention +2% against c's +10%); at 14.7 it does not
    assert abs(sweep.standard_error({"error_rate": 0.12, "total": 160}) - 0.02569) < 1e-4
    for val, expected in [(0.145, "e"), (0.147, "c")]:
        tied = {**results, "e": (errs(val, 0.306, 0.10), 300.0)}
        assert sweep.sweep_table("g", {**table, "e": {"merge_scale": 0.5}}, original, tied, {})[1] == expected
    # a row writing text on more than 10% of the non-speech val clips is out, however good its WERs
    loud = {**results, "e": (errs(0.09, 0.30, 0.10, 3 / 24), 300.0)}
    assert sweep.sweep_table("g", {**table, "e": {"merge_scale": 0.5}}, original, loud, {})[1] == "c"
    loud["e"] = (errs(0.09, 0.30, 0.10, 2 / 24), 300.0)
    assert sweep.sweep_table("g", {**table, "e": {"merge_scale": 0.5}}, original, loud, {})[1] == "e"


def test_sweep_rows_differing_only_in_merge_scale_share_one_training():
    sweep = load_script("sweep_settings")
    key = sweep._training_key
    assert key({"kl_to_base_prob": 0.4, "merge_scale": 0.5}) == key({"kl_to_base_prob": 0.4})
    assert key({"merge_scale": 0.75}) == key({}) == key({"merge_encoder_scale": 0.5}) != key({"kl_to_base_prob": 0.4})
