"""Recordings whose word times are known exactly: single-word clips, trimmed of silence and joined with pauses.

Word timestamps (``egrecho_inner.word_timing``) and alignment-head search (``egrecho find-alignment-heads``) are
scored against these. Each recording is a lhotse cut whose supervision carries the words' times as a lhotse
word alignment (``supervision.alignment["word"]``), the form ``egrecho eval`` reads them in. The clips come from
espeak-ng (any text) or from a real speaker's single-word recordings (``local/make_word_timed.py``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import librosa
import numpy as np
import soundfile as sf
from lhotse import CutSet, MonoCut, Recording, SupervisionSegment
from lhotse.supervision import AlignmentItem

from egrecho_inner.constants import SAMPLING_RATE
from egrecho_inner.speech_synth import espeak

TRIM_TOP_DB = 35  # below the clip's peak: silence trimmed from both ends


def load_trimmed(path: str | Path) -> np.ndarray:
    """A clip at 16 kHz mono with its leading and trailing silence trimmed (librosa)."""
    samples, _ = librosa.load(str(path), sr=SAMPLING_RATE, mono=True)
    trimmed, _ = librosa.effects.trim(samples, top_db=TRIM_TOP_DB)
    return trimmed


def join_words(clips: Sequence[tuple[str, np.ndarray]], rng: np.random.Generator,
               pause: tuple[float, float] = (0.15, 0.6), lead: float = 0.3) -> tuple[np.ndarray, list[AlignmentItem]]:
    """One waveform of ``(word, samples)`` clips joined with random pauses (seconds, uniform in ``pause``) after
    ``lead`` seconds of silence, and each word's start and duration."""
    pieces, items, t = [np.zeros(int(lead * SAMPLING_RATE), np.float32)], [], lead
    for word, samples in clips:
        items.append(AlignmentItem(symbol=word, start=round(t, 4), duration=round(len(samples) / SAMPLING_RATE, 4)))
        gap = np.zeros(int(rng.uniform(*pause) * SAMPLING_RATE), np.float32)
        pieces += [samples.astype(np.float32), gap]
        t += (len(samples) + len(gap)) / SAMPLING_RATE
    return np.concatenate(pieces), items


def timed_cut(cut_id: str, samples: np.ndarray, items: list[AlignmentItem], language: str, wav_dir: Path) -> MonoCut:
    """A cut of ``samples`` (written to ``wav_dir/<cut_id>.wav``) with one supervision: the words' text and times."""
    wav = wav_dir / f"{cut_id}.wav"
    sf.write(wav, samples, SAMPLING_RATE, subtype="PCM_16")
    recording = Recording.from_file(wav, recording_id=cut_id)
    supervision = SupervisionSegment(id=cut_id, recording_id=cut_id, start=0.0, duration=recording.duration,
                                     text=" ".join(i.symbol for i in items), language=language,
                                     alignment={"word": items})
    return MonoCut(id=cut_id, start=0.0, duration=recording.duration, channel=0, recording=recording,
                   supervisions=[supervision])


def word_clip_cuts(words: Sequence[tuple[str, np.ndarray]], words_per_cut: int, language: str, wav_dir: Path,
                   seed: int = 0, prefix: str = "timed") -> CutSet:
    """Cuts of ``words_per_cut`` consecutive ``(word, samples)`` clips each, joined by :func:`join_words`."""
    wav_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cuts = []
    for n, begin in enumerate(range(0, len(words) - words_per_cut + 1, words_per_cut)):
        samples, items = join_words(words[begin: begin + words_per_cut], rng)
        cuts.append(timed_cut(f"{prefix}-{n:04d}", samples, items, language, wav_dir))
    return CutSet.from_cuts(cuts)


def espeak_word_clips(words: Iterable[str], voice: str, speed: int = 160) -> list[tuple[str, np.ndarray]]:
    """Each word spoken alone by espeak-ng's ``voice``, trimmed (words espeak-ng renders silent are left out)."""
    clips = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, word in enumerate(words):
            samples = load_trimmed(espeak(word, Path(tmp) / f"{i}.wav", voice, speed))
            if len(samples) > SAMPLING_RATE // 20:
                clips.append((word, samples))
    return clips


def word_start_errors_ms(reference: Sequence[AlignmentItem], hypothesis: Sequence, normalize) -> list[float]:
    """ms between each reference word's start and the start of the hypothesis word aligned to it (words that
    match after ``normalize``, paired by jiwer's alignment; substituted and missing words are not timed)."""
    import jiwer

    def unit(word: str) -> str:  # one unit per word, so alignment indices are word indices
        return normalize(word).replace(" ", "_") or "<empty>"

    ref, hyp = [unit(i.symbol) for i in reference], [unit(w.word) for w in hypothesis]
    if not ref or not hyp:
        return []
    out = jiwer.process_words(" ".join(ref), " ".join(hyp))
    errors = []
    for chunk in out.alignments[0]:
        if chunk.type == "equal":
            for k in range(chunk.ref_end_idx - chunk.ref_start_idx):
                r, h = reference[chunk.ref_start_idx + k], hypothesis[chunk.hyp_start_idx + k]
                errors.append(abs(h.start - r.start) * 1000)
    return errors
