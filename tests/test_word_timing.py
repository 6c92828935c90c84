"""Word timestamps (egrecho_inner.word_timing), known-time recordings (timed_words) and find-alignment-heads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from lhotse import CutSet
from transformers.models.whisper.generation_whisper import _dynamic_time_warping, _median_filter

from egrecho_inner.alignment_heads import find_alignment_heads, timed_cuts
from egrecho_inner.deploy.subtitles import render
from egrecho_inner.deploy.transcribe import transcribe
from egrecho_inner.errors import InputError
from egrecho_inner.features import load_cut_features, make_fbank_extractor
from egrecho_inner.model import load_whisper
from egrecho_inner.scoring import normalize_text
from egrecho_inner.seeking import Segment
from egrecho_inner.timed_words import espeak_word_clips, word_clip_cuts, word_start_errors_ms
from egrecho_inner.vad import speech_intervals
from egrecho_inner.word_timing import (Word, align_segments, align_words, snap_to_speech, split_words, token_times)

TEXT = ("the quick brown fox jumps over the lazy dog while seven small children watch from a distant window "
        "and their teacher writes simple numbers on the board before lunch begins in the old school building")


def test_token_times_follow_transformers_dtw():
    """Our DTW (librosa's) gives the path transformers' own DTW gives: the first position of every row."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        weights = torch.tensor(rng.random((2, 9, 60)), dtype=torch.float32)
        std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
        matrix = _median_filter((weights - mean) / std, 7).mean(0).double().numpy()
        rows, positions = _dynamic_time_warping(-matrix)
        first = np.concatenate([[True], np.diff(rows) > 0])
        np.testing.assert_allclose(token_times(weights), positions[first] * 0.02)


def test_split_words(whisper_tokenizer):
    tokens = whisper_tokenizer.encode(" Hello, world! It's fine.", add_special_tokens=False)
    words = split_words(whisper_tokenizer, tokens, "en")
    assert [w.strip() for w, _ in words] == ["Hello,", "world!", "It's", "fine."]
    assert sum(n for _, n in words) == len(tokens)
    tokens = whisper_tokenizer.encode("你好世界", add_special_tokens=False)
    # no spaces: one word per token that completes characters (as Whisper splits on unicode)
    assert [w for w, _ in split_words(whisper_tokenizer, tokens, "zh")] == [
        whisper_tokenizer.decode([t]) for t in tokens]


def test_snap_to_speech_moves_words_onto_the_region_they_overlap_most():
    words = [Word(0.0, 0.6, "a", 1.0), Word(0.6, 1.5, "b", 1.0), Word(1.55, 1.95, "c", 1.0)]
    speech = [(0.3, 0.55), (1.2, 1.6), (1.7, 1.8)]
    snapped = snap_to_speech(words, speech)
    assert [(w.start, w.end) for w in snapped] == [(0.3, 0.55), (1.2, 1.5), (1.7, 1.8)]
    assert snap_to_speech(words, []) == words


def test_word_start_errors_time_matching_words_only():
    from lhotse.supervision import AlignmentItem

    reference = [AlignmentItem("one", 1.0, 0.3), AlignmentItem("two", 2.0, 0.3), AlignmentItem("three", 3.0, 0.3)]
    hypothesis = [Word(1.1, 1.3, "One,", 1.0), Word(2.5, 2.7, "too", 1.0), Word(2.95, 3.2, "three.", 1.0)]
    errors = word_start_errors_ms(reference, hypothesis, lambda w: normalize_text(w, "en"))
    np.testing.assert_allclose(errors, [100.0, 50.0])  # "two"/"too" is a substitution: not timed


def test_subtitles_carry_words():
    segments = [Segment(0.0, 2.0, "hello world")]
    words = [[Word(0.25, 0.8, "hello", 0.9), Word(1.0, 1.5, "world", 0.8)]]
    line = json.loads(render("json", "u", segments, words))
    assert line["segments"][0]["words"] == [{"word": "hello", "start": 0.25, "end": 0.8, "probability": 0.9},
                                            {"word": "world", "start": 1.0, "end": 1.5, "probability": 0.8}]
    assert "00:00:00.250 --> 00:00:01.500\nhello <00:00:01.000>world" in render("vtt", "u", segments, words)
    assert "00:00:00,250 --> 00:00:01,500" in render("srt", "u", segments, words)
    assert "words" not in json.loads(render("json", "u", segments))["segments"][0]


@pytest.fixture(scope="module")
def espeak_timed(tmp_path_factory) -> CutSet:
    """Six recordings of eight espeak-ng words each, word starts known."""
    clips = espeak_word_clips(TEXT.split(), "en")
    return word_clip_cuts(clips, 8, "en", tmp_path_factory.mktemp("timed"))


def test_joined_words_start_where_the_alignment_says(espeak_timed):
    """The word times are where the audio's speech starts (Silero VAD, whose onsets lag a little, agrees within 150 ms)."""
    for cut in espeak_timed:
        starts = [i.start for i in cut.supervisions[0].alignment["word"]]
        onsets = [start for start, _ in speech_intervals(cut.load_audio()[0])]
        assert len(onsets) == len(starts)
        assert max(abs(a - b) for a, b in zip(starts, onsets)) < 0.15


def test_align_words_tiny_unpadded(tiny_model):
    """Any model: one word per text word, times inside the audio and in order (un-padded input too)."""
    from egrecho_inner.unpadded import enable_unpadded_inputs

    model, processor = load_whisper(str(tiny_model))
    enable_unpadded_inputs(model)
    feats = torch.randn(301, 80)
    pieces = align_words(model.eval(), processor.tokenizer, feats, ["hello there", "general kenobi"], "en", True,
                         heads=[(1, 0), (1, 1)], offset=5.0)
    assert [[w.word for w in p] for p in pieces] == [["hello", "there"], ["general", "kenobi"]]
    starts = [w.start for p in pieces for w in p]
    assert starts == sorted(starts) and 5.0 <= starts[0] and starts[-1] <= 5.0 + 3.02


def test_transcribe_word_timestamps_refusals(tiny_model, tone_wav):
    wav = str(tone_wav("a"))
    with pytest.raises(InputError, match="timed --output_format"):
        transcribe(str(tiny_model), [wav], word_timestamps=True)
    with pytest.raises(InputError, match="engines hf and ct2"):
        transcribe(str(tiny_model), [wav], engine="onnx", output_format="json", word_timestamps=True)


@pytest.mark.slow
def test_whisper_base_word_starts_within_100_ms(whisper_base, espeak_timed):
    """whisper-base's own alignment heads: median word-start error under 100 ms once words sit on VAD speech;
    the raw DTW figure is printed next to it (pauses pull starts early)."""
    from egrecho_inner.decoder import DecodeArgs, WhisperDecoder

    decoder = WhisperDecoder.load(DecodeArgs(str(whisper_base)))
    extractor = make_fbank_extractor(80)
    raw, snapped = [], []
    for cut in espeak_timed:
        feats = load_cut_features(cut, extractor)
        segments = [Segment(0.0, cut.duration, decoder.transcribe_features(feats, "en"))]
        reference = cut.supervisions[0].alignment["word"]
        normalize = lambda w: normalize_text(w, "en")  # noqa: E731
        raw += word_start_errors_ms(reference, align_segments(decoder.model, decoder.processor.tokenizer, feats,
                                                              segments, "en", False)[0], normalize)
        found = decoder.word_times(feats, segments, "en", cut.load_audio()[0])[0]
        snapped += word_start_errors_ms(reference, found, normalize)
    print(f"word-start error median: raw DTW {np.median(raw):.0f} ms, on VAD speech {np.median(snapped):.0f} ms")
    assert len(snapped) >= 0.8 * sum(len(c.supervisions[0].alignment["word"]) for c in espeak_timed)
    assert np.median(snapped) < 100


@pytest.mark.slow
def test_find_alignment_heads_writes_heads_that_beat_the_default(whisper_base, espeak_timed, tmp_path):
    """Heads chosen on one half of the recordings time the other half better than a model with no list (every
    head of the decoder's second half), and are written to the generation config; transcribe then uses them."""
    import shutil

    model_dir = tmp_path / "model"
    shutil.copytree(whisper_base, model_dir)
    config_file = model_dir / "generation_config.json"
    config = json.loads(config_file.read_text())
    del config["alignment_heads"]  # as after a fine-tune that lost them
    config_file.write_text(json.dumps(config))
    cuts = espeak_timed.to_eager()
    choose, held_out = tmp_path / "choose.jsonl.gz", tmp_path / "held_out.jsonl.gz"
    cuts.subset(first=3).to_file(choose)
    CutSet.from_cuts(list(cuts)[3:]).to_file(held_out)
    heads = find_alignment_heads(str(model_dir), str(choose), max_heads=8)
    assert json.loads(config_file.read_text())["alignment_heads"] == heads
    model, processor = load_whisper(str(model_dir))
    scored = timed_cuts(model.eval(), processor.tokenizer, CutSet.from_file(held_out), False)
    from egrecho_inner.alignment_heads import score
    from egrecho_inner.word_timing import alignment_heads

    del model.generation_config.alignment_heads
    default = alignment_heads(model)
    assert len(default) == 24
    assert np.median(score(scored, [tuple(h) for h in heads])) < np.median(score(scored, default))
    wav = list(cuts)[3].recording.sources[0].source
    transcribe(str(model_dir), [wav], language="en", output_format="json", output_dir=str(tmp_path / "out"),
               word_timestamps=True)
    (line,) = (tmp_path / "out").glob("*.json")
    words = [w for segment in json.loads(line.read_text())["segments"] for w in segment["words"]]
    assert len(words) >= 6 and all(w["start"] <= w["end"] for w in words)


@pytest.mark.slow
def test_eval_reports_word_start_error(whisper_base, espeak_timed, tmp_path):
    """egrecho eval on cuts with word alignments reports word_start_error_ms next to the WER."""
    from egrecho_inner.decode import GenArgs
    from egrecho_inner.evaluate import evaluate

    cuts = tmp_path / "timed.jsonl.gz"
    espeak_timed.subset(first=3).to_file(cuts)
    result = evaluate(str(whisper_base), str(tmp_path / "out"), cuts=str(cuts), on_the_fly_feats=True,
                      num_workers=0, gen_args=GenArgs(language="en"))
    timing = result["word_start_error_ms"]
    assert timing["cuts"] == 3 and timing["words"] >= 18 and timing["median"] < 100


@pytest.mark.slow
def test_ct2_engine_gives_faster_whispers_words(whisper_base_exports, espeak_timed, tmp_path):
    """Engine ct2 passes --word_timestamps to faster-whisper and writes its words."""
    wav = next(iter(espeak_timed)).recording.sources[0].source
    transcribe(str(whisper_base_exports["ct2"]), [wav], engine="ct2", language="en", output_format="json",
               output_dir=str(tmp_path), word_timestamps=True)
    (line,) = tmp_path.glob("*.json")
    words = [w for segment in json.loads(line.read_text())["segments"] for w in segment["words"]]
    assert len(words) >= 6 and [w["start"] for w in words] == sorted(w["start"] for w in words)
