"""``egrecho transcribe``: print ``utt-id<TAB>text`` for audio files or a Kaldi ``wav.scp``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterator, Optional

import torch
from lhotse import Recording

from egrecho_inner.constants import MAX_INPUT_SECONDS, SAMPLING_RATE
from egrecho_inner.decode import GenArgs, generate_kwargs, long_form_features, transcribe_batch, whisper_windows
from egrecho_inner.features import load_cut_features, make_fbank_extractor, pad_to_whisper_input
from egrecho_inner.kaldi import probe_recording, read_kaldi_mapping
from egrecho_inner.new_language import model_languages, prompt_ids
from egrecho_inner.text import WHISPER_LANGUAGE_CODES, resolve_language

log = logging.getLogger(__name__)
ENGINES = ("hf", "ct2", "onnx")


def iter_audio(inputs: list[str]) -> Iterator[tuple[str, Recording]]:
    """(utterance id, 16 kHz recording) for each audio file, or each line of a ``*.scp`` file."""
    for item in inputs:
        path = Path(item)
        if not path.is_file():
            raise FileNotFoundError(f"{item} not found")
        if path.suffix == ".scp":
            for utt_id, entry in read_kaldi_mapping(path).items():
                yield utt_id, probe_recording(utt_id, entry.value).resample(SAMPLING_RATE)
        else:
            yield path.stem, probe_recording(path.stem, str(path)).resample(SAMPLING_RATE)


def transcribe(
    model_path: str,
    audio: list[str],
    engine: str = "hf",
    language: Optional[str] = None,
    task: str = "transcribe",
    num_beams: int = 1,
    device: str = "auto",
    compute_type: str = "default",
) -> list[tuple[str, str]]:
    """Transcribe audio; audio over 30 s is decoded window by window, not cut off.

    Args:
        model_path: a transformers Whisper dir (engine hf), a CTranslate2 dir (engine ct2, see export-ct2)
            or an ONNX dir (engine onnx, see export-onnx).
        audio: audio files and/or Kaldi wav.scp files.
        engine: hf (transformers), ct2 (faster-whisper) or onnx (onnxruntime; greedy only).
        language: language code; None: detected per utterance.
        task: transcribe or translate.
        num_beams: beam size (1: greedy).
        device: auto (GPU if there is one), cpu or cuda.
        compute_type: ct2 only: default, float32, int8, float16, ...
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    language = resolve_language(language, "--language", model_languages(model_path)) if language else None
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    decode = {"hf": _hf_decoder, "ct2": _ct2_decoder, "onnx": _onnx_decoder}[engine]
    results = []
    for utt_id, text in decode(model_path, iter_audio(audio), language, task, num_beams, device, compute_type):
        print(f"{utt_id}\t{text}", flush=True)
        results.append((utt_id, text))
    return results


def _hf_decoder(model_path, recordings, language, task, num_beams, device, _compute_type):
    from egrecho_inner.model import load_whisper

    model, processor = load_whisper(model_path, local_files_only=True)
    model.to(device).eval()
    extractor = make_fbank_extractor(model.config.num_mel_bins)
    kwargs = generate_kwargs(GenArgs(task=task, num_beams=num_beams), processor, device)
    for utt_id, recording in recordings:
        cut = recording.to_cut()
        if cut.duration > MAX_INPUT_SECONDS:
            feats, mask = long_form_features(cut, extractor, torch.float32)
            text = transcribe_batch(model, processor, feats.to(device), [language],
                                    {**kwargs, "return_timestamps": True}, mask.to(device))[0]
        else:
            feats = pad_to_whisper_input(load_cut_features(cut, extractor))[None]
            text = transcribe_batch(model, processor, feats.to(device), [language], kwargs)[0]
        yield utt_id, text


def _ct2_decoder(model_path, recordings, language, task, num_beams, device, compute_type):
    from faster_whisper import WhisperModel

    if not (Path(model_path) / "model.bin").is_file():
        raise FileNotFoundError(f"{model_path} is not a CTranslate2 model dir (no model.bin); see egrecho export-ct2")
    if language is not None and language not in WHISPER_LANGUAGE_CODES:  # faster-whisper knows Whisper's only
        yield from _ct2_added_language(model_path, recordings, language, task, num_beams, device, compute_type)
        return
    model = WhisperModel(model_path, device=device, compute_type=compute_type)
    for utt_id, recording in recordings:
        segments, _ = model.transcribe(recording.load_audio()[0], language=language, task=task, beam_size=num_beams,
                                       without_timestamps=True, vad_filter=False, condition_on_previous_text=False,
                                       temperature=0.0)  # no sampling fallback: as deterministic as the hf engine
        yield utt_id, " ".join(s.text.strip() for s in segments).strip()


def _onnx_decoder(model_path, recordings, language, task, num_beams, device, _compute_type):
    from transformers import AutoTokenizer

    from egrecho_inner.onnx_decode import OnnxWhisper

    if num_beams != 1:
        raise ValueError("the onnx engine decodes greedily: use --num_beams 1 (or engine hf/ct2 for beam search)")
    model = OnnxWhisper(model_path, device=device)
    tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    num_mel_bins = json.loads((Path(model_path) / "preprocessor_config.json").read_text())["feature_size"]
    extractor = make_fbank_extractor(num_mel_bins)
    for utt_id, recording in recordings:
        # audio over 30 s: consecutive 30 s windows, each decoded on its own (no timestamps)
        windows = whisper_windows(load_cut_features(recording.to_cut(), extractor))
        hidden = model.encode(windows)
        languages = [language] * len(windows) if language else model.detect_language(hidden)
        texts = [tokenizer.decode(model.greedy(hidden[i : i + 1], model.prompt(lang, task))[0], skip_special_tokens=True)
                 for i, lang in enumerate(languages)]
        yield utt_id, " ".join(t.strip() for t in texts if t.strip())


def _ct2_added_language(model_path, recordings, language, task, num_beams, device, compute_type):
    """CTranslate2 directly, for a language added by fine-tuning: 30 s windows, prompt with its token."""
    import ctranslate2
    import numpy as np
    from transformers import AutoTokenizer

    prompt = prompt_ids(json.loads((Path(model_path) / "generation_config.json").read_text()), language, task)
    model = ctranslate2.models.Whisper(model_path, device=device, compute_type=compute_type)
    tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    extractor = make_fbank_extractor(model.n_mels)
    for utt_id, recording in recordings:
        windows = whisper_windows(load_cut_features(recording.to_cut(), extractor))
        results = model.generate(ctranslate2.StorageView.from_array(np.ascontiguousarray(windows)),
                                 [prompt] * len(windows), beam_size=num_beams)
        texts = [tokenizer.decode(r.sequences_ids[0], skip_special_tokens=True).strip() for r in results]
        yield utt_id, " ".join(t for t in texts if t)
