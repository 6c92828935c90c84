"""Read a Kaldi data dir (``wav.scp``, ``text``, ``utt2lang``, optional ``segments``) into lhotse
manifests, checking every line.

Broken lines are either a clear error naming the file and line (duplicate ids, unknown language,
malformed segments) or a counted skip, logged per utterance and summed up at the end (missing,
empty, unreadable, truncated, too short or NaN/Inf audio, utterances without text or audio, empty
transcripts). Every recording is decoded once to check it. Nothing is dropped silently.
"""

from __future__ import annotations

import io
import logging
import math
import shlex
import struct
import subprocess
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import soundfile
from lhotse import AudioSource, Recording, RecordingSet, SupervisionSegment, SupervisionSet
from lhotse.qa import fix_manifests, validate_recordings_and_supervisions

from egrecho_inner.constants import MAX_INPUT_SECONDS, SAMPLING_RATE
from egrecho_inner.errors import InputError, MissingInputError
from egrecho_inner.text import normalize_transcript, resolve_language
from egrecho_inner.utils import Pathlike

log = logging.getLogger(__name__)


class KaldiDataError(InputError):
    """A Kaldi data dir is unusable; the message names the file and line."""


class AudioProblem(Exception):
    """One recording can't be used: ``reason`` is the skip category, the message the detail."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Entry:
    value: str
    lineno: int


@dataclass
class SkipReport:
    """Utterances left out of the manifests, grouped by reason."""

    skipped: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, reason: str, utt_id: str, detail: str) -> None:
        self.skipped[reason].append(utt_id)
        log.warning("skipping %s: %s (%s)", utt_id, reason, detail)

    @property
    def total(self) -> int:
        return sum(len(ids) for ids in self.skipped.values())

    def summary(self) -> str:
        if not self.total:
            return "no utterance skipped"
        parts = ", ".join(f"{reason}: {len(ids)}" for reason, ids in sorted(self.skipped.items()))
        return f"{self.total} utterances skipped ({parts})"


def read_kaldi_mapping(path: Path) -> dict[str, Entry]:
    """Read ``key value`` lines; blank lines are ignored, duplicate keys are an error."""
    entries: dict[str, Entry] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            key, _, value = line.partition(" ") if " " in line else line.partition("\t")
            if key in entries:
                raise KaldiDataError(
                    f"{path}:{lineno}: duplicate id {key!r} (first on line {entries[key].lineno})"
                )
            entries[key] = Entry(value.strip(), lineno)
    return entries


MIN_AUDIO_SECONDS = 0.025  # one 25 ms STFT window of Whisper's features (400 samples at 16 kHz)
TRUNCATION_TOLERANCE = 0.01  # decoded samples may fall short of the header's count by 1% (codec padding)


def wav_declared_frames(path: Path) -> Optional[int]:
    """Frames a RIFF/WAVE header's ``data`` chunk declares (None: not a WAV, or a streamed one without a
    size). libsndfile clamps its count to the bytes present, so this is how a cut-short copy shows."""
    with open(path, "rb") as f:
        if f.read(12)[8:] != b"WAVE":
            return None
        block_align = None
        while header := f.read(8):
            if len(header) < 8:
                return None
            chunk, size = header[:4], struct.unpack("<I", header[4:])[0]
            if chunk == b"fmt ":
                block_align = struct.unpack("<H", f.read(16)[12:14])[0]
                f.seek(size - 16 + size % 2, 1)
            elif chunk == b"data":
                return size // block_align if block_align and size not in (0, 0xFFFFFFFF) else None
            else:
                f.seek(size + size % 2, 1)
    return None


def decode_samples(recording_id: str, spec: str, source, declared: Optional[int] = None) -> tuple[int, int]:
    """Decode a recording fully (``source``: a path or the bytes a pipe printed) and check that it holds
    the ``declared`` samples of its header; returns (sampling rate, decoded samples per channel). Raises
    :class:`AudioProblem` for audio that can't be decoded, is cut short, holds NaN/Inf or is shorter than
    one STFT window."""
    try:
        data, sampling_rate = soundfile.read(source, dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises its own error types for undecodable bytes
        if not isinstance(source, Path):
            raise AudioProblem("unreadable audio", f"{spec}: command output is not audio: {e}") from None
        try:  # formats libsndfile can't read (m4a, opus, ...): lhotse's other backends
            recording = Recording.from_file(source, recording_id=recording_id)
            data, sampling_rate = recording.load_audio().T, recording.sampling_rate
        except Exception as e2:  # lhotse raises a generic error after trying every backend
            raise AudioProblem("unreadable audio", f"{spec}: {str(e2).splitlines()[0][:200]}") from None
    num_samples = data.shape[0]
    if declared and num_samples < declared * (1 - TRUNCATION_TOLERANCE):
        raise AudioProblem("truncated audio", f"{spec}: the header promises {declared} samples, "
                                              f"the file holds {num_samples} (an interrupted copy?)")
    if num_samples == 0:
        raise AudioProblem("empty audio", f"{spec}: 0 samples")
    if not np.isfinite(data).all():
        raise AudioProblem("invalid samples", f"{spec}: NaN or infinite sample values")
    if num_samples < MIN_AUDIO_SECONDS * sampling_rate:
        raise AudioProblem("too short", f"{spec}: {num_samples} samples, under one {MIN_AUDIO_SECONDS * 1000:.0f} ms "
                                        "window of the features")
    return sampling_rate, num_samples


def probe_recording(recording_id: str, spec: str) -> Recording:
    """Make a lhotse Recording for one wav.scp entry: a path or a Kaldi pipe (``cmd ... |``).

    The audio is decoded once and must match its header (``decode_samples``): a file cut short by an
    interrupted copy, a header without data, NaN/Inf samples, a clip under one STFT window or a pipe that
    fails or prints nothing is an :class:`AudioProblem` here, not a crash at feature time.
    Multi-channel files are downmixed to mono by sox at load time, since Whisper takes one channel.
    """
    if spec.endswith("|"):
        command = spec[:-1].strip()
        proc = subprocess.run(command, shell=True, capture_output=True)
        if proc.returncode != 0 or not proc.stdout:
            stderr = proc.stderr.decode(errors="replace").strip()[-200:]
            raise AudioProblem("unreadable audio", f"command failed (exit {proc.returncode}): {stderr or 'no output'}")
        try:
            channels = soundfile.info(io.BytesIO(proc.stdout)).channels
        except Exception as e:  # soundfile raises its own error types for undecodable bytes
            raise AudioProblem("unreadable audio", f"command output is not audio: {e}") from None
        if channels > 1:
            raise AudioProblem("unreadable audio", f"pipe gives {channels} channels; add '-c 1' to it")
        source = AudioSource(type="command", channels=[0], source=command)
        sampling_rate, num_samples = decode_samples(recording_id, spec, io.BytesIO(proc.stdout))
    else:
        path = Path(spec)
        if not path.is_file():
            raise AudioProblem("missing audio", f"audio file not found: {spec}")
        try:
            recording = Recording.from_file(path.resolve(), recording_id=recording_id)
        except Exception as e:  # lhotse tries several backends and raises a generic error
            raise AudioProblem("unreadable audio", f"{spec}: {str(e).splitlines()[0][:200]}") from None
        declared = wav_declared_frames(path) or recording.num_samples
        sampling_rate, num_samples = decode_samples(recording_id, spec, path.resolve(), declared)
        source = recording.sources[0]
        if recording.num_channels > 1:
            log.info("%s: %d channels, downmixed to mono with sox", recording_id, recording.num_channels)
            command = f"sox {shlex.quote(str(path.resolve()))} -t wav -e floating-point -b 32 -c 1 -"  # float: no dither
            source = AudioSource(type="command", channels=[0], source=command)
    return Recording(
        id=recording_id,
        sources=[source],
        sampling_rate=sampling_rate,
        num_samples=num_samples,
        duration=num_samples / sampling_rate,
    )


def iter_audio(inputs: list[str]) -> Iterator[tuple[str, Recording]]:
    """(utterance id, 16 kHz recording) for each audio file, or each line of a ``*.scp`` file."""
    for item in inputs:
        path = Path(item)
        if not path.is_file():
            raise MissingInputError(f"{item} not found")
        if path.suffix == ".scp":
            for utt_id, entry in read_kaldi_mapping(path).items():
                yield utt_id, probe_recording(utt_id, entry.value).resample(SAMPLING_RATE)
        else:
            yield path.stem, probe_recording(path.stem, str(path)).resample(SAMPLING_RATE)


def _read_segments(path: Path) -> dict[str, tuple[str, float, float, int]]:
    """``utt reco start end`` lines (end -1 means the end of the recording)."""
    segments = {}
    for utt_id, entry in read_kaldi_mapping(path).items():
        fields = entry.value.split()
        try:
            reco_id, start, end = fields[0], float(fields[1]), float(fields[2])
        except (IndexError, ValueError):
            raise KaldiDataError(f"{path}:{entry.lineno}: expected 'utt reco start end'") from None
        if start < 0 or (end != -1 and end <= start):
            raise KaldiDataError(f"{path}:{entry.lineno}: bad times start={start} end={end}")
        segments[utt_id] = (reco_id, start, end, entry.lineno)
    return segments


def load_kaldi_dir(
    kaldi_dir: Pathlike, default_language: Optional[str] = None, num_jobs: int = 1,
    new_languages: tuple[str, ...] = (),
    keep_empty_text: bool = False,
) -> tuple[RecordingSet, SupervisionSet, SkipReport]:
    """Turn a Kaldi data dir into validated lhotse manifests.

    Args:
        kaldi_dir: dir with ``wav.scp`` and ``text``; ``utt2lang`` and ``segments`` are optional.
        default_language: language for utterances that ``utt2lang`` does not name (required when
            there is no ``utt2lang``).
        num_jobs: threads used to read audio headers.
        new_languages: codes accepted besides Whisper's (languages added by ``new_language``).
        keep_empty_text: keep utterances whose transcript is empty (non-speech: noise, silence) with text
            ``""`` instead of skipping them; evaluation scores them apart (``egrecho_inner.quality``).

    Returns:
        recordings, supervisions and the report of what was skipped and why.
    """
    files = read_kaldi_files(Path(kaldi_dir), default_language, new_languages)
    report = SkipReport()
    recordings = _probe_all(files.wav_scp, files.path / "wav.scp", files.segments, report, num_jobs)
    supervisions = _supervisions(files, recordings, report, keep_empty_text)
    if not supervisions:
        raise KaldiDataError(f"{files.path}: no usable utterance ({report.summary()})")
    used = {s.recording_id for s in supervisions}
    recording_set = RecordingSet.from_recordings(r for r in recordings.values() if r.id in used)
    supervision_set = SupervisionSet.from_segments(supervisions)
    fixed_recordings, fixed_supervisions = fix_manifests(recording_set, supervision_set)
    if len(fixed_supervisions) != len(supervision_set):
        raise KaldiDataError(f"{files.path}: lhotse's fix_manifests dropped supervisions; check segments")
    validate_recordings_and_supervisions(fixed_recordings, fixed_supervisions)
    long = sum(s.duration > MAX_INPUT_SECONDS for s in fixed_supervisions)
    if long:
        log.info("%s: %d utterances over %.0f s kept (training drops them, eval transcribes them in long form)",
                 files.path, long, MAX_INPUT_SECONDS)
    return fixed_recordings, fixed_supervisions, report


@dataclass
class KaldiFiles:
    """The parsed files of one Kaldi data dir (every line checked)."""

    path: Path
    wav_scp: dict[str, Entry]
    texts: dict[str, Entry]
    languages: dict[str, str]  # utt -> code, from utt2lang
    default_language: Optional[str]
    segments: dict[str, tuple[str, float, float, int]]  # utt -> (recording, start, end or -1, line)


def read_kaldi_files(kaldi_dir: Path, default_language: Optional[str], new_languages: tuple[str, ...]) -> KaldiFiles:
    """Read and check ``wav.scp``, ``text``, ``utt2lang`` and ``segments``; errors name file and line."""
    if not kaldi_dir.is_dir():
        raise KaldiDataError(f"Kaldi data dir not found: {kaldi_dir}")
    for name in ("wav.scp", "text"):
        if not (kaldi_dir / name).is_file():
            raise KaldiDataError(f"{kaldi_dir / name} is missing (a Kaldi data dir needs wav.scp and text)")
    if default_language is not None:
        default_language = resolve_language(default_language, "--language", new_languages)
    utt2lang_path = kaldi_dir / "utt2lang"
    if not utt2lang_path.is_file() and default_language is None:
        raise KaldiDataError(f"{utt2lang_path} is missing; add it or pass --language (e.g. --language vi)")
    wav_scp = read_kaldi_mapping(kaldi_dir / "wav.scp")
    languages = {
        utt: resolve_language(entry.value, f"{utt2lang_path}:{entry.lineno}", new_languages)
        for utt, entry in (read_kaldi_mapping(utt2lang_path) if utt2lang_path.is_file() else {}).items()
    }
    segments_path = kaldi_dir / "segments"
    if segments_path.is_file():
        segments = _read_segments(segments_path)
    else:
        segments = {utt: (utt, 0.0, -1.0, entry.lineno) for utt, entry in wav_scp.items()}
    return KaldiFiles(kaldi_dir, wav_scp, read_kaldi_mapping(kaldi_dir / "text"), languages, default_language,
                      segments)


def _supervisions(files: KaldiFiles, recordings: dict[str, Recording], report: SkipReport,
                  keep_empty_text: bool) -> list[SupervisionSegment]:
    """One supervision per usable utterance; every other one is a counted skip in ``report``."""
    text_path, supervisions = files.path / "text", []
    for utt_id, (reco_id, start, end, _) in files.segments.items():
        if reco_id not in files.wav_scp:
            report.add("no audio", utt_id, f"recording {reco_id!r} is not in wav.scp")
            continue
        if reco_id not in recordings:
            continue  # audio problem, already counted
        if utt_id not in files.texts:
            report.add("no text", utt_id, f"not in {text_path}")
            continue
        language = files.languages.get(utt_id, files.default_language)
        if language is None:
            report.add("no language", utt_id, f"not in {files.path / 'utt2lang'} and no --language given")
            continue
        text = normalize_transcript(files.texts[utt_id].value, language)
        if not text and not keep_empty_text:
            report.add("empty text", utt_id, f"{text_path}:{files.texts[utt_id].lineno}")
            continue
        reco = recordings[reco_id]
        end = reco.duration if end == -1 else min(end, reco.duration)
        supervisions.append(SupervisionSegment(
            # floored to whole microseconds: lhotse rounds ends and would "trim" a float's last ulp
            id=utt_id, recording_id=reco_id, start=start, duration=math.floor((end - start) * 1e6) / 1e6,
            channel=0, text=text, language=language,
        ))
    for utt_id, entry in files.texts.items():
        if utt_id not in files.segments:
            report.add("no audio", utt_id, f"{text_path}:{entry.lineno} has no wav.scp entry")
    return supervisions


def _probe_all(
    wav_scp: dict[str, Entry], wav_scp_path: Path, segments: dict, report: SkipReport, num_jobs: int
) -> dict[str, Recording]:
    """Probe every wav.scp entry in parallel; failures are reported once per affected utterance."""
    utts_of = defaultdict(list)
    for utt_id, (reco_id, *_rest) in segments.items():
        utts_of[reco_id].append(utt_id)

    def probe(item):
        reco_id, entry = item
        try:
            return reco_id, probe_recording(reco_id, entry.value), None
        except AudioProblem as e:
            return reco_id, None, e

    recordings = {}
    with ThreadPoolExecutor(max_workers=max(1, num_jobs)) as pool:
        for reco_id, recording, problem in pool.map(probe, wav_scp.items()):
            if recording is not None:
                recordings[reco_id] = recording
                continue
            where = f"{wav_scp_path}:{wav_scp[reco_id].lineno}"
            for utt_id in utts_of.get(reco_id, [reco_id]):
                report.add(problem.reason, utt_id, f"{where}: {problem}")
    return recordings
