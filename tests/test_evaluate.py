"""egrecho eval: outputs, scoring checked against NIST sclite, normalisation, long audio, bad input."""

from __future__ import annotations

import json
import re
import subprocess

import jiwer
import pytest
from lhotse import CutSet

from egrecho_inner.quality import compression_ratio, quality_fields
from egrecho_inner.scoring import ErrorCounts, align, normalize_text, scoring_units
from tests.conftest import espeak, library_warnings, write_kaldi_dir
from tests.test_hub_ids import populate_hub_cache

pytestmark = pytest.mark.slow
ERRS_KEYS = {"error_rate", "ins_rate", "del_rate", "sub_rate", "total", "RTF", "num_utts", "num_unscored",
             "audio_seconds", "metric", "RTF_total", "unpadded", "lid_accuracy", "lid_cuts", "repetition_rate",
             "nonspeech_cuts", "nonspeech_with_text"}


def egrecho(*args, cwd=None, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["egrecho", *args], capture_output=True, text=True, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr[-3000:])
    return proc


def eval_args(tiny_model, outdir, *extra):
    return ["eval", "--model_path", str(tiny_model), "--outdir", str(outdir), "--num_workers", "0",
            "--gen_args.max_new_tokens", "8", *extra]


def recogs(path) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        cut_id, rest = line.split(":\t", 1)
        kind, _, text = rest.partition(": ")
        out.setdefault(cut_id, {})[kind] = text
    return out


def test_eval_writes_both_files_and_counts_agree(prepared_demo, tiny_model, tmp_path, monkeypatch):
    # the model named by a hub id, as the original recipe writes it, found in a temporary HF cache
    populate_hub_cache(tmp_path / "hf", "tiny-org/whisper-tiny", tiny_model)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    proc = egrecho(*eval_args("tiny-org/whisper-tiny", tmp_path / "exp", "--metric", "wer"), cwd=prepared_demo)
    assert library_warnings(proc.stderr) == []  # progress bars and our log lines only
    result = json.loads((tmp_path / "exp/errs-test.json").read_text())
    assert set(result) == ERRS_KEYS and json.loads(proc.stdout[proc.stdout.index("{"):]) == result
    assert result["num_utts"] == 3 and result["metric"] == "wer"
    rows = recogs(tmp_path / "exp/recogs-test.txt")
    assert len(rows) == 3 and all({"REF", "HYP", "ALI"} <= set(r) for r in rows.values())
    # recount with jiwer directly from the written REF/HYP lines
    out = jiwer.process_words([r["REF"] for r in rows.values()], [r["HYP"] or "" for r in rows.values()])
    n = out.hits + out.substitutions + out.deletions
    assert result["total"] == n
    assert result["sub_rate"] == round(out.substitutions / n, 5) and result["ins_rate"] == round(out.insertions / n, 5)
    assert result["error_rate"] == round((out.substitutions + out.deletions + out.insertions) / n, 5)
    assert result["RTF"] > 0 and result["RTF_total"] >= result["RTF"]


def test_print_config_round_trip(prepared_demo, tiny_model, tmp_path):
    printed = egrecho(*eval_args(tiny_model, tmp_path / "a"), "--print_config", cwd=prepared_demo).stdout
    assert "gen_args:" in printed and "max_new_tokens: 8" in printed
    (tmp_path / "raw_eval.yaml").write_text(printed)
    egrecho(*eval_args(tiny_model, tmp_path / "a"), cwd=prepared_demo)
    egrecho("eval", "-c", str(tmp_path / "raw_eval.yaml"), "--outdir", str(tmp_path / "b"), cwd=prepared_demo)
    assert (tmp_path / "a/recogs-test.txt").read_text() == (tmp_path / "b/recogs-test.txt").read_text()


def sclite_counts(refs: dict[str, list[str]], hyps: dict[str, list[str]], tmp_path) -> ErrorCounts:
    """Substitutions, deletions, insertions and hits from NIST sclite on the same units."""
    for name, data in (("ref", refs), ("hyp", hyps)):
        (tmp_path / f"{name}.trn").write_text("".join(f"{' '.join(u)} (spk-{k})\n" for k, u in data.items()))
    out = subprocess.run(["sctk", "sclite", "-r", str(tmp_path / "ref.trn"), "trn", "-h", str(tmp_path / "hyp.trn"),
                          "trn", "-i", "spu_id", "-o", "dtl", "stdout"], capture_output=True, text=True, check=True).stdout

    def count(label):
        return int(re.search(rf"{label}\s+=.*\(\s*(\d+)\)", out).group(1))

    sub, dels, ins, ref_words = count("Percent Substitution"), count("Percent Deletions"), count("Percent Insertions"), count("Ref. words")
    return ErrorCounts(sub, dels, ins, ref_words - sub - dels)


@pytest.mark.parametrize("language,pairs", [
    ("en", [("The cat sat on the mat.", "the cat sat on a mat"), ("Hello there, Mr. Smith!", "hello mister smith"),
            ("I have 2 dogs", "i have two dogs and a cat"), ("It's raining", "")]),
    ("zh", [("今天天氣很好。", "今天天气很好"), ("我們在學校學習中文！", "我们在学校学中文呀"), ("你好", "你好吗你好")]),
    ("vi", [("Người bán hàng viết thư ở chợ.", "người bán hàn viết thư ở chợ ngày mai"), ("Xin chào!", "xin chào")]),
])
def test_counts_match_sclite(language, pairs, tmp_path):
    chars = language == "zh"
    refs, hyps, ours = {}, {}, ErrorCounts()
    for i, (ref, hyp) in enumerate(pairs):
        r = scoring_units(normalize_text(ref, language), chars)
        h = scoring_units(normalize_text(hyp, language), chars)
        refs[f"u{i}"], hyps[f"u{i}"] = r, h
        ours.add(align(r, h)[0])
    assert ours == sclite_counts(refs, hyps, tmp_path)
    assert ours.substitutions + ours.deletions + ours.insertions > 0


def test_normalisation():
    assert normalize_text("Hello, Mr. Smith!", "en") == "hello mister smith"
    assert normalize_text("我們在學校，學習中文！", "zh") == "我们在学校学习中文"
    assert normalize_text("Người bán hàng, viết thư!", "vi") == "người bán hàng viết thư"


def test_long_audio_transcribed_and_missing_text_counted(tiny_model, tmp_path):
    long_text = " ".join(["Chúng tôi đi học ở trường mỗi sáng và nấu ăn ở nhà vào buổi tối."] * 6)
    utts = {
        "long": (espeak(tmp_path / "long.wav", long_text, speed=120), long_text, "vi"),
        "short": (espeak(tmp_path / "short.wav", "xin chào các bạn"), "xin chào các bạn", "vi"),
    }
    write_kaldi_dir(tmp_path / "kaldi", utts)
    proc = egrecho(*eval_args(tiny_model, tmp_path / "exp", "--kaldi_dir", str(tmp_path / "kaldi")))
    result = json.loads((tmp_path / "exp/errs-test.json").read_text())
    assert result["num_utts"] == 2 and result["audio_seconds"] > 30
    rows = recogs(tmp_path / "exp/recogs-test.txt")
    assert set(rows) == {"long-0", "short-1"} and rows["long-0"]["REF"].startswith("chúng tôi")
    assert "(long form)" in proc.stderr  # the long-form progress bar ran

    cuts = CutSet.from_cuts(list(load_manifest_from_kaldi(tmp_path)))
    cuts[0].supervisions[0].text = None  # no reference (an empty string would mean non-speech)
    cuts.to_file(tmp_path / "notext.jsonl.gz")
    egrecho(*eval_args(tiny_model, tmp_path / "exp2", "--cuts", str(tmp_path / "notext.jsonl.gz"), "--on_the_fly_feats", "true"))
    result = json.loads((tmp_path / "exp2/errs-test.json").read_text())
    assert result["num_unscored"] == 1 and "(no reference)" in (tmp_path / "exp2/recogs-test.txt").read_text()
    assert result["nonspeech_cuts"] == 0 and result["nonspeech_with_text"] is None


def test_quality_fields_by_hand():
    looping = "và và và và và và và và và và và và và và và và và và và và và và"
    assert compression_ratio("Chúng tôi đi học ở trường mỗi sáng.") < 2.4 < compression_ratio(looping)
    hyps = {"a": "xin chào", "b": looping, "n1": "", "n2": "cảm ơn", "n3": " . ", "n4": "3"}
    fields = quality_fields(hyps, nonspeech={"n1", "n2", "n3", "n4"},
                            expected_languages={"a": "vi", "b": "vi", "n1": None, "n2": None, "n3": None, "n4": None},
                            detected_languages={"a": "vi", "b": "en", "n1": "en"})
    assert fields == {"lid_accuracy": 0.5, "lid_cuts": 2, "repetition_rate": round(1 / 6, 5), "nonspeech_cuts": 4,
                      "nonspeech_with_text": 0.5}  # "cảm ơn" and "3"; "" and " . " hold no word


def test_nonspeech_and_language_identification(tiny_model, tmp_path):
    """Empty Kaldi transcripts are non-speech clips, scored apart; detected languages match HF's own."""
    import numpy as np
    import soundfile as sf
    import torch
    from lhotse import Recording
    from transformers import WhisperForConditionalGeneration

    from egrecho_inner.features import make_fbank_extractor, pad_to_whisper_input

    rng = np.random.default_rng(0)
    sf.write(tmp_path / "silence.wav", np.zeros(32000), 16000)
    sf.write(tmp_path / "noise.wav", 0.1 * rng.standard_normal(48000), 16000)
    utts = {
        "speech-vi": (espeak(tmp_path / "vi.wav", "xin chào các bạn"), "xin chào các bạn", "vi"),
        "speech-en": (espeak(tmp_path / "en.wav", "good morning everyone", voice="en"), "good morning everyone", "en"),
        "silence": (str(tmp_path / "silence.wav"), "", "vi"),
        "noise": (str(tmp_path / "noise.wav"), "", "vi"),
    }
    write_kaldi_dir(tmp_path / "kaldi", utts)
    egrecho(*eval_args(tiny_model, tmp_path / "exp", "--kaldi_dir", str(tmp_path / "kaldi")))
    result = json.loads((tmp_path / "exp/errs-test.json").read_text())
    rows = recogs(tmp_path / "exp/recogs-test.txt")
    nonspeech = [r for r in rows.values() if "(non-speech)" in r["HYP"]]
    assert result["num_utts"] == 4 and result["nonspeech_cuts"] == len(nonspeech) == 2 and result["num_unscored"] == 0
    with_text = sum(any(ch.isalnum() for ch in r["HYP"].rsplit("\t", 1)[0]) for r in nonspeech)
    assert result["nonspeech_with_text"] == with_text / 2
    # language identification: the cut's language against transformers' own detection on padded features
    model = WhisperForConditionalGeneration.from_pretrained(tiny_model).eval()
    id_to_code = {i: t[2:-2] for t, i in model.generation_config.lang_to_id.items()}
    hits = 0
    for wav, language in ((tmp_path / "vi.wav", "vi"), (tmp_path / "en.wav", "en")):
        audio = Recording.from_file(wav).resample(16000).load_audio()[0]
        feats = pad_to_whisper_input(torch.as_tensor(make_fbank_extractor(80).extract(audio, 16000)))[None]
        with torch.inference_mode():
            hits += id_to_code[int(model.detect_language(feats)[0])] == language
    assert result["lid_cuts"] == 2 and result["lid_accuracy"] == hits / 2


def load_manifest_from_kaldi(tmp_path):
    from egrecho_inner.kaldi import load_kaldi_dir

    recordings, supervisions, _ = load_kaldi_dir(tmp_path / "kaldi")
    return CutSet.from_manifests(recordings=recordings, supervisions=supervisions).resample(16000)


def egrecho_in_process(args: list[str], capsys) -> tuple[int, str]:
    """``egrecho ARGS`` run in this process: exit status and stderr (the console script's one error path)."""
    from egrecho_inner.cli import main

    capsys.readouterr()
    try:
        main(args)
    except SystemExit as e:  # sys.exit(message): Python would print the message to stderr on the way out
        message = e.code if isinstance(e.code, str) else ""
        return (1 if message else e.code or 0), capsys.readouterr().err + message
    return 0, capsys.readouterr().err


def test_bad_input(prepared_demo, tiny_model, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(prepared_demo)
    cases = [
        (["--model_path", "pretrained/nothing"], "model 'pretrained/nothing': no such dir, and not in the Hugging Face cache"),
        (["--prefix_name", "nope"], "nope_cuts_test.jsonl.gz not found"),
        (["--gen_args.language", "xx"], "gen_args.language: unknown language 'xx'"),
        (["--metric", "ber"], "metric must be one of"),
    ]
    empty = tmp_path / "empty.jsonl.gz"
    empty.write_bytes(b"")
    cases.append((["--cuts", str(empty)], "holds no cuts"))
    for extra, message in cases:
        code, err = egrecho_in_process(eval_args(tiny_model, tmp_path / "x", *extra), capsys)
        assert code != 0 and message in err and "Traceback" not in err, (extra, err[-1500:])


def test_segment_start_error_with_timestamps(whisper_base, tmp_path):
    """A recording of three sentences with pauses, a Kaldi ``segments`` file giving where each starts:
    ``gen_args.return_timestamps`` adds the segment-start error of the decoded segments to the errs JSON."""
    import numpy as np
    import soundfile as sf

    from egrecho_inner.decode import GenArgs
    from egrecho_inner.evaluate import evaluate

    sentences = ["The quick brown fox jumps over the lazy dog.", "I like to read books in the evening.",
                 "Please call Stella. Ask her to bring these things with her from the store."]
    pieces, lines, t = [], [], 0.0
    for i, text in enumerate(sentences):
        audio, rate = sf.read(espeak(tmp_path / f"s{i}.wav", text, voice="en-us"))
        lines.append((f"rec-{i}", t, t + len(audio) / rate, text))
        pieces += [audio, np.zeros(int(0.7 * rate))]
        t += (len(audio) + int(0.7 * rate)) / rate
    kaldi = tmp_path / "kaldi"
    kaldi.mkdir()
    sf.write(kaldi / "rec.wav", np.concatenate(pieces), rate)
    (kaldi / "wav.scp").write_text(f"rec {kaldi / 'rec.wav'}\n")
    (kaldi / "segments").write_text("".join(f"{u} rec {s:.2f} {e:.2f}\n" for u, s, e, _ in lines))
    (kaldi / "text").write_text("".join(f"{u} {text}\n" for u, _, _, text in lines))
    (kaldi / "utt2lang").write_text("".join(f"{u} en\n" for u, _, _, _ in lines))
    result = evaluate(model_path=str(whisper_base), outdir=str(tmp_path / "exp"), kaldi_dir=str(kaldi), num_workers=0,
                      gen_args=GenArgs(language="en", return_timestamps=True))
    timing = result["segment_start_error_ms"]
    assert timing["segments"] == 3 and timing["cuts"] == 1
    assert timing["median"] <= 200 and timing["p90"] <= 400, timing
    assert result["error_rate"] < 0.25
    assert result["timestamp_windows"] == {"windows": 1, "well_formed": 1.0}  # one window: the recording is 12 s
    assert json.loads((tmp_path / "exp/errs-test.json").read_text())["segment_start_error_ms"] == timing


def test_segment_start_error_counts():
    from egrecho_inner.quality import segment_start_errors_ms, timing_fields

    errors = segment_start_errors_ms([0.0, 2.5, 6.0], [0.1, 2.4, 2.9, 9.0])
    assert [round(e) for e in errors] == [100, 100, 3000]
    assert timing_fields(errors, 1)["segment_start_error_ms"] == {"median": 100.0, "p90": 3000.0, "segments": 3, "cuts": 1}
    assert segment_start_errors_ms([1.0], []) == [1000.0] and timing_fields([], 0) == {}
