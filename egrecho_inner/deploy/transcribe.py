"""``egrecho transcribe``: print ``utt-id<TAB>text`` (or write subtitles) for audio files or a Kaldi ``wav.scp``;
the engines that decode are in :mod:`egrecho_inner.deploy.engines`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from egrecho_inner.deploy.engines import EngineOptions, model_unpadded, refuse_ignored_options, run_engine
from egrecho_inner.deploy.subtitles import OUTPUT_FORMATS, render
from egrecho_inner.errors import InputError
from egrecho_inner.kaldi import iter_audio
from egrecho_inner.model import resolve_model
from egrecho_inner.new_language import model_languages
from egrecho_inner.text import resolve_language
from egrecho_inner.utils import atomic_path, writable_dir


def transcribe(
    model_path: str,
    audio: list[str],
    engine: str = "hf",
    language: Optional[str] = None,
    task: str = "transcribe",
    num_beams: int = 1,
    device: str = "auto",
    compute_type: str = "default",
    remove_whisper_encoder_input_length_restriction: Optional[bool] = None,
    local_files_only: bool = True,
    output_format: str = "txt",
    output_dir: Optional[str] = None,
    word_timestamps: bool = False,
    batched: bool = False,
    batch_size: int = 8,
) -> list[tuple[str, str]]:
    """Transcribe audio; audio over 30 s is decoded window by window, not cut off.

    A model trained un-padded (recorded in its generation config, and carried by both exports) is
    decoded un-padded by every engine: the encoder runs on the audio's own length, not 30 s.

    Args:
        model_path: a transformers Whisper dir (engine hf), a CTranslate2 dir (engine ct2, see export-ct2),
            an ONNX dir (engine onnx, see export-onnx) or a whisper.cpp dir (engine cpp, see export-ggml).
        audio: audio files and/or Kaldi wav.scp files.
        engine: hf (transformers), ct2 (faster-whisper), onnx (onnxruntime; greedy only) or cpp (whisper.cpp).
        language: language code; None: detected per utterance.
        task: transcribe or translate.
        num_beams: beam size (1: greedy).
        device: auto (GPU if there is one), cpu or cuda.
        compute_type: ct2 only: default, float32, int8, float16, ...
        remove_whisper_encoder_input_length_restriction: null: as the model was trained; true/false: force
            un-padded or padded decoding.
        local_files_only: a hub id is looked up in the Hugging Face cache only (false: downloaded if missing).
        output_format: txt (``utt-id<TAB>text`` lines), or timed: srt, vtt or json (one line per utterance:
            id, text and segments with start, end and text), from every engine's timestamps (onnx, and ct2 for
            un-padded or added-language models: Whisper's timestamp rules under our sequential decoding; ct2
            otherwise: faster-whisper's).
        output_dir: timed formats: one ``<utt-id>.<format>`` file each there; None: printed.
        word_timestamps: timed formats carry each word's start and end (engine hf: cross-attention of the model's
            alignment heads aligned by DTW, words moved onto Silero VAD's speech regions; engine ct2:
            faster-whisper's own word timestamps).
        batched: cut the audio at speech pauses (Silero VAD) into spans of up to 25 s and decode ``batch_size``
            spans at once (engine hf: ours, egrecho_inner/batched_long_form.py; engine ct2: faster-whisper's
            BatchedInferencePipeline); faster where a file gives several spans to batch (on a CPU far less than on a
            GPU: docs/decoding.md), but speech the VAD misses is not decoded. Timed formats get segments inside each
            span, txt one text per span. false: sequential 30 s windows, Whisper's own way.
        batch_size: spans per batch with ``batched``.
    """
    if output_format not in OUTPUT_FORMATS:
        raise InputError(f"output_format must be one of {OUTPUT_FORMATS}, got {output_format!r}")
    refuse_ignored_options(engine, device, compute_type, word_timestamps, batched)
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    timed = output_format != "txt"
    if word_timestamps and not timed:
        raise InputError("--word_timestamps true needs a timed --output_format (srt, vtt or json)")
    if timed and output_dir:
        writable_dir(output_dir)
    model_path = resolve_model(model_path, local_files_only, check=engine == "hf")
    language = resolve_language(language, "--language", model_languages(model_path)) if language else None
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    unpadded = model_unpadded(model_path, remove_whisper_encoder_input_length_restriction)
    options = EngineOptions(language, task, num_beams, device, compute_type, unpadded, timed, word_timestamps,
                            batch_size if batched else 0)
    results = []
    for utt_id, text, segments, words in run_engine(engine, model_path, iter_audio(audio), options):
        results.append((utt_id, text))
        if not timed:
            print(f"{utt_id}\t{text}", flush=True)
        elif output_dir:
            with atomic_path(Path(output_dir) / f"{utt_id}.{output_format}") as tmp:
                tmp.write_text(render(output_format, utt_id, segments, words), encoding="utf-8")
            print(f"{utt_id}\t{Path(output_dir) / f'{utt_id}.{output_format}'}", flush=True)
        else:
            print(render(output_format, utt_id, segments, words), end="", flush=True)
    return results
