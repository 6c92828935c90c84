"""VAD-batched long form (egrecho_inner.batched_long_form, vad.speech_chunks, transcribe --batched)."""

from __future__ import annotations

import jiwer
import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import Recording

from conftest import espeak
from egrecho_inner import batched_long_form
from egrecho_inner.batched_long_form import duration_groups, plan_spans, transcribe_batched
from egrecho_inner.constants import FRAMES_PER_SECOND, SAMPLING_RATE
from egrecho_inner.deploy.transcribe import transcribe
from egrecho_inner.errors import InputError
from egrecho_inner.scoring import normalize_text
from egrecho_inner.seeking import LongFormResult, Segment
from egrecho_inner.vad import speech_chunks, speech_intervals

SENTENCES = [
    "the quick brown fox jumps over the lazy dog near the river bank",
    "seven small children watch the rain from a distant window",
    "their teacher writes simple numbers on the board before lunch",
    "the old school building has a red door and a tall clock tower",
    "after the bell rings everyone walks home along the narrow street",
    "a baker sells warm bread and sweet cakes in the morning market",
    "the train to the city leaves the station at half past eight",
    "many birds sing in the green garden behind the little house",
]


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """espeak-ng sentences joined with 0.4-1.5 s of silence (about 40 s), and where each sentence lies."""
    out = tmp_path_factory.mktemp("long")
    rng = np.random.default_rng(0)
    pieces, places, offset = [], [], 0.0
    for i, sentence in enumerate(SENTENCES):
        audio = Recording.from_file(espeak(out / f"{i}.wav", sentence, voice="en")).resample(SAMPLING_RATE)
        audio = audio.load_audio()[0]
        pause = np.zeros(int(rng.uniform(0.4, 1.5) * SAMPLING_RATE), dtype=np.float32)
        pieces += [audio, pause]
        places.append((offset, offset + len(audio) / SAMPLING_RATE))
        offset += (len(audio) + len(pause)) / SAMPLING_RATE
    samples = np.concatenate(pieces)
    sf.write(out / "long.wav", samples, SAMPLING_RATE)
    return samples, places


@pytest.mark.parametrize("max_seconds", [10.0, 25.0])
def test_speech_chunks_hold_all_speech_in_spans_under_the_limit(long_recording, max_seconds):
    samples, _ = long_recording
    chunks = speech_chunks(samples, max_seconds)
    assert len(chunks) >= samples.size / SAMPLING_RATE / max_seconds
    assert all(0 < end - start <= max_seconds + 1e-6 for start, end in chunks)
    assert all(a[1] <= b[0] for a, b in zip(chunks, chunks[1:]))  # in order, disjoint
    for start, end in speech_intervals(samples):  # every bit of speech the VAD hears is inside one chunk
        assert any(c0 <= start and end <= c1 for c0, c1 in chunks), (start, end, chunks)
    kept = sum(end - start for start, end in chunks)
    assert kept < samples.size / SAMPLING_RATE  # the silence between chunks is left out


def test_duration_groups_fill_a_batch_and_keep_the_order():
    seconds = [10, 30, 5, 5, 200, 1]
    groups = list(duration_groups(range(len(seconds)), lambda i: seconds[i], 40))
    assert groups == [[0, 1], [2, 3, 4], [5]]  # each group just reaches 40 s; the rest at the end
    assert list(duration_groups([], len, 40)) == []


class StubDecoder:
    """Records what it is asked to decode; each window 'says' its length as one segment 0.5 s before its end."""

    unpadded, device, dtype, model = False, "cpu", torch.float32, None

    def __init__(self):
        self.batches: list[tuple[list[int], list[str]]] = []

    def transcribe_long(self, windows, languages):
        self.batches.append(([w.shape[0] for w in windows], list(languages)))
        return [LongFormResult([Segment(0.2, w.shape[0] / FRAMES_PER_SECOND + 0.5, f"{lang} {w.shape[0]}")], [True])
                for w, lang in zip(windows, languages)]


def test_transcribe_batched_puts_segments_on_each_recordings_time_line(long_recording, monkeypatch):
    samples, _ = long_recording
    detected = []
    monkeypatch.setattr(batched_long_form, "detect_language",
                        lambda model, window, unpadded: detected.append(window.shape[0]) or "xx")
    frames = samples.size // 160
    feats = [torch.zeros(frames, 80), torch.zeros(frames // 2, 80)]
    audio = [samples, samples[: samples.size // 2]]
    decoder = StubDecoder()
    results = transcribe_batched(decoder, feats, audio, ["en", None], batch_size=3, max_seconds=10.0)

    assert len(detected) == 1  # the recording without a language: detected once, on its first span
    spans = plan_spans(audio, [f.shape[0] for f in feats], 10.0)
    assert sorted(n for sizes, _ in decoder.batches for n in sizes) == sorted(s.end - s.start for s in spans)
    assert all(len(sizes) <= 3 for sizes, _ in decoder.batches)
    sizes = [n for batch, _ in decoder.batches for n in batch]
    assert sizes == sorted(sizes, reverse=True)  # longest first
    for index, result in enumerate(results):
        own = [s for s in spans if s.recording == index]
        assert len(result.segments) == len(own) and all(result.windows_well_formed)
        for segment, span in zip(result.segments, own):  # sorted by time, one per span
            start, end = span.seconds
            assert segment.start == pytest.approx(start + 0.2, abs=0.01)
            assert segment.end == pytest.approx(end, abs=0.01)  # clipped to the span
            assert segment.text == f"{'en' if index == 0 else 'xx'} {span.end - span.start}"


def test_transcribe_batched_refusals(tiny_model, tone_wav):
    wav = str(tone_wav("a"))
    with pytest.raises(InputError, match="engines hf and ct2"):
        transcribe(str(tiny_model), [wav], engine="onnx", batched=True)
    with pytest.raises(InputError, match="batch_size must be at least 1"):
        transcribe(str(tiny_model), [wav], batched=True, batch_size=0)


@pytest.mark.slow
def test_transcribe_batched_tiny_model_runs_every_output_format(tiny_model, long_recording, tmp_path):
    """A random model through the CLI path: files decoded together, one result per file in order, in each
    format (outputs of any text)."""
    wavs = []
    for name, seconds in (("first", 20), ("second", 8)):  # decoded together: 28 s is under one batch's 50 s
        wavs.append(tmp_path / f"{name}.wav")
        sf.write(wavs[-1], long_recording[0][: seconds * SAMPLING_RATE], SAMPLING_RATE)
    for output_format in ("txt", "srt"):
        results = transcribe(str(tiny_model), [str(w) for w in wavs], language="en", batched=True, batch_size=2,
                             output_format=output_format, output_dir=str(tmp_path / output_format))
        assert [utt for utt, _ in results] == ["first", "second"]
        assert (tmp_path / output_format / "second.srt").is_file() == (output_format == "srt")


@pytest.mark.slow
def test_whisper_base_batched_close_to_sequential(whisper_base, long_recording):
    """whisper-base on the espeak-ng recording: batched WER within 5 points of sequential, segments in order and
    inside the speech they transcribe."""
    from egrecho_inner.decoder import DecodeArgs, WhisperDecoder
    from egrecho_inner.features import make_fbank_extractor

    samples, places = long_recording
    decoder = WhisperDecoder.load(DecodeArgs(str(whisper_base)))
    feats = torch.from_numpy(make_fbank_extractor(80).extract(samples, SAMPLING_RATE))
    reference = normalize_text(" ".join(SENTENCES), "en")
    sequential = decoder.transcribe_long([feats], ["en"])[0]
    batched = transcribe_batched(decoder, [feats], [samples], ["en"], batch_size=4)[0]
    errors = {name: 100 * jiwer.wer(reference, normalize_text(r.text, "en"))
              for name, r in (("sequential", sequential), ("batched", batched))}
    print(errors)
    assert errors["batched"] <= errors["sequential"] + 5
    starts = [s.start for s in batched.segments]
    assert starts == sorted(starts)
    assert batched.segments[0].start >= places[0][0] - 0.5
    assert batched.segments[-1].end <= places[-1][1] + 1.0
    text_only = transcribe_batched(decoder, [feats], [samples], ["en"], batch_size=4, timestamps=False)[0]
    assert 100 * jiwer.wer(reference, normalize_text(text_only.text, "en")) <= errors["sequential"] + 5
