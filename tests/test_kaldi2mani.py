"""Bad Kaldi input: a clear error naming file and line, or a counted, logged skip."""

from __future__ import annotations

import logging
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet, Recording, load_manifest
from transformers import WhisperFeatureExtractor

from egrecho_inner.dataset import TrainingCutFilter, WhisperDataset, WhisperLabeler
from egrecho_inner.kaldi import KaldiDataError, load_kaldi_dir
from tests.conftest import RECIPE_DIR, espeak, run_script, write_kaldi_dir


@pytest.fixture
def good_wavs(tmp_path):
    return [espeak(tmp_path / "wav" / f"u{i}.wav", f"xin chào số {i}") for i in range(3)]


def test_missing_corrupt_and_empty_audio_are_counted_skips(tmp_path, good_wavs, caplog):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00garbage" * 10)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    d = write_kaldi_dir(tmp_path / "kaldi", {
        "a": (good_wavs[0], "một", "vi"),
        "missing": (tmp_path / "nope.wav", "hai", "vi"),
        "corrupt": (corrupt, "ba", "vi"),
        "empty": (empty, "bốn", "vi"),
    })
    with caplog.at_level(logging.WARNING):
        recordings, supervisions, report = load_kaldi_dir(d)
    assert [s.id for s in supervisions] == ["a"]
    assert {k: v for k, v in report.skipped.items()} == {
        "missing audio": ["missing"], "unreadable audio": ["corrupt"], "empty audio": ["empty"]}
    assert report.summary() == "3 utterances skipped (empty audio: 1, missing audio: 1, unreadable audio: 1)"
    assert f"{d / 'wav.scp'}:2: audio file not found" in caplog.text


def lying_audio(tmp_path, good_wav) -> dict[str, tuple]:
    """Kaldi rows (audio, text, language) of audio that is not what it claims, and the skip reason of each."""
    whole = good_wav.read_bytes()
    data_start = whole.index(b"data") + 8
    (tmp_path / "truncated.wav").write_bytes(whole[:data_start + 256])  # header promises seconds: 128 samples
    (tmp_path / "header_only.wav").write_bytes(whole[:data_start])
    sf.write(tmp_path / "zero.wav", np.zeros(0, dtype=np.float32), 16000)
    sf.write(tmp_path / "nan.wav", np.array([0.1, np.nan, np.inf] * 4000, dtype=np.float32), 16000, subtype="FLOAT")
    sf.write(tmp_path / "short.wav", np.full(300, 0.1, dtype=np.float32), 16000)  # under one 400-sample window
    rows = {"truncated": (tmp_path / "truncated.wav", "truncated audio"),
            "header_only": (tmp_path / "header_only.wav", "truncated audio"),
            "zero": (tmp_path / "zero.wav", "empty audio"), "nan": (tmp_path / "nan.wav", "invalid samples"),
            "short": (tmp_path / "short.wav", "too short"),
            "pipe_fails": ("sox /nonexistent.wav -t wav - |", "unreadable audio"),
            "pipe_silent": ("true |", "unreadable audio")}
    return rows


def test_lying_audio_is_a_counted_skip_in_stage_1(tmp_path, good_wavs, caplog):
    rows = lying_audio(tmp_path, good_wavs[0])
    d = write_kaldi_dir(tmp_path / "kaldi/train", {"good": (good_wavs[1], "hai", "vi"),
                                                   **{u: (audio, "ba", "vi") for u, (audio, _) in rows.items()}})
    with caplog.at_level(logging.WARNING):
        _, supervisions, report = load_kaldi_dir(d)
    assert [s.id for s in supervisions] == ["good"]
    expected: dict[str, list[str]] = {}
    for utt, (_, reason) in rows.items():
        expected.setdefault(reason, []).append(utt)
    assert {k: sorted(v) for k, v in report.skipped.items()} == {k: sorted(v) for k, v in expected.items()}
    lines = (d / "wav.scp").read_text().splitlines()
    for utt in rows:  # each skip names its wav.scp line
        lineno = next(i for i, line in enumerate(lines, start=1) if line.split()[0] == utt)
        assert f"skipping {utt}: {rows[utt][1]} ({d / 'wav.scp'}:{lineno}: " in caplog.text
    assert "the header promises" in caplog.text and "the file holds 128" in caplog.text
    # prepare.sh stages 1-3: the rest of the part is written, no traceback
    proc = run_script(str(RECIPE_DIR / "prepare.sh"), "--kaldi_dir", str(tmp_path / "kaldi"), "--prefix", "lies",
                      "--parts", "train", "--stop_stage", "3", cwd=tmp_path)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "train: 1 utterances" in proc.stdout + proc.stderr and f"{len(rows)} utterances skipped" in proc.stdout + proc.stderr
    cuts = load_manifest(tmp_path / "data/fbank_whisper80/lies_cuts_train.jsonl.gz")
    assert [c.supervisions[0].id for c in cuts] == ["good"]


def test_text_and_audio_mismatch_and_empty_transcripts(tmp_path, good_wavs):
    d = write_kaldi_dir(tmp_path / "kaldi", {"a": (good_wavs[0], "một", "vi"), "b": (good_wavs[1], "", "vi"),
                                             "c": (good_wavs[2], "\u3000 ", "vi")})
    (d / "wav.scp").write_text((d / "wav.scp").read_text() + f"no-text {good_wavs[0]}\n")
    (d / "text").write_text((d / "text").read_text() + "no-audio chào\n")
    _, supervisions, report = load_kaldi_dir(d)
    assert [s.id for s in supervisions] == ["a"]
    assert dict(report.skipped) == {"empty text": ["b", "c"], "no text": ["no-text"], "no audio": ["no-audio"]}


def test_duplicate_ids_name_both_lines(tmp_path, good_wavs):
    d = write_kaldi_dir(tmp_path / "kaldi", {"a": (good_wavs[0], "một", "vi")})
    (d / "text").write_text("a một\nb hai\na ba\n")
    with pytest.raises(KaldiDataError, match=r"text:3: duplicate id 'a' \(first on line 1\)"):
        load_kaldi_dir(d)


def test_language_errors(tmp_path, good_wavs):
    d = write_kaldi_dir(tmp_path / "kaldi", {"a": (good_wavs[0], "một", "vi"), "b": (good_wavs[1], "hai", "xx")})
    with pytest.raises(ValueError, match=r"utt2lang:2: unknown language 'xx'. Valid Whisper language codes: en, zh, .* vi"):
        load_kaldi_dir(d)
    (d / "utt2lang").unlink()
    with pytest.raises(KaldiDataError, match="utt2lang is missing; add it or pass --language"):
        load_kaldi_dir(d)
    _, supervisions, _ = load_kaldi_dir(d, default_language="Vietnamese")
    assert {s.language for s in supervisions} == {"vi"}
    with pytest.raises(ValueError, match="--language: unknown language 'klingon'"):
        load_kaldi_dir(d, default_language="klingon")


def test_missing_dir_and_cli_messages(tmp_path, good_wavs):
    with pytest.raises(KaldiDataError, match="Kaldi data dir not found"):
        load_kaldi_dir(tmp_path / "nowhere")
    proc = run_script(str(RECIPE_DIR / "local/kaldi2mani.py"), "--kaldi_dir", str(tmp_path / "nowhere"),
                      "--prefix", "x", "--parts", "train", check=False)
    assert proc.returncode != 0
    assert "kaldi2mani.py: error: Kaldi data dir not found" in proc.stderr and "Traceback" not in proc.stderr


def test_long_utterance_kept_in_manifests_dropped_at_batching(tmp_path, whisper_tokenizer, caplog):
    long_text = " ".join(["Chúng tôi đi học ở trường mỗi sáng và nấu ăn ở nhà vào buổi tối."] * 6)
    wav = espeak(tmp_path / "long.wav", long_text, speed=120)
    short = espeak(tmp_path / "short.wav", "xin chào")
    d = write_kaldi_dir(tmp_path / "kaldi", {"long": (wav, long_text, "vi"), "short": (short, "xin chào", "vi")})
    recordings, supervisions, _ = load_kaldi_dir(d)
    assert recordings["long"].duration > 30 and len(supervisions) == 2
    cuts = CutSet.from_manifests(recordings=recordings, supervisions=supervisions)
    cut_filter = TrainingCutFilter(WhisperLabeler(whisper_tokenizer))
    with caplog.at_level(logging.WARNING):
        assert [c.id for c in cuts.filter(cut_filter)] == ["short-1"]
    assert cut_filter.dropped["over 30 s"] == 1 and "dropping cut long-0" in caplog.text


def test_sampling_rates_resampled_and_stereo_downmixed(tmp_path, whisper_tokenizer):
    """8 / 22.05 / 44.1 kHz and stereo audio all become 16 kHz mono features matching HF."""
    speech = espeak(tmp_path / "speech.wav", "Người bán hàng viết thư ở chợ ngày mai.")
    audio, sr = sf.read(speech)
    utts = {}
    for rate in (8000, 22050, 44100):
        path = tmp_path / f"sr{rate}.wav"
        subprocess.run(["sox", str(speech), "-r", str(rate), str(path)], check=True)
        utts[f"sr{rate}"] = (path, "chào", "vi")
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.stack([audio, 0.5 * audio], axis=1), sr, subtype="PCM_16")
    utts["stereo"] = (stereo, "chào", "vi")
    write_kaldi_dir(tmp_path / "kaldi" / "train", utts)
    run_script(str(RECIPE_DIR / "local/kaldi2mani.py"), "--kaldi_dir", "kaldi", "--prefix", "t", "--parts", "train", cwd=tmp_path)
    run_script(str(RECIPE_DIR / "local/compute_fbank_subset.py"), "--prefix", "t", "--parts", "train", cwd=tmp_path)
    cuts = load_manifest(tmp_path / "data/fbank_whisper80/t_cuts_train.jsonl.gz")
    assert {c.sampling_rate for c in cuts} == {16000} and {c.features.sampling_rate for c in cuts} == {16000}
    hf = WhisperFeatureExtractor()
    batch = WhisperDataset(WhisperLabeler(whisper_tokenizer))[CutSet.from_cuts(c.with_features_path_prefix(str(tmp_path)) for c in cuts)]
    for cut, feats in zip(cuts, batch["input_features"]):
        samples = cut.load_audio()
        assert samples.shape[0] == 1, f"{cut.id} is not mono"
        reference = torch.from_numpy(hf(samples[0], sampling_rate=16000, return_tensors="np").input_features[0])
        inner = (feats - reference).abs()[:, : cut.features.num_frames - 2].max().item()
        assert inner <= 2.0**-6 + 1e-6, f"{cut.id}: {inner}"
    # the stereo file is read as the mean of its channels
    mono = tmp_path / "mono.wav"
    sf.write(mono, 0.75 * audio, sr, subtype="PCM_16")
    expected = Recording.from_file(mono).resample(16000).load_audio()[0]
    stereo_cut = next(c for c in cuts if c.id.startswith("stereo"))
    assert np.abs(stereo_cut.load_audio()[0] - expected).max() < 1e-3
