"""The four decoding engines of ``egrecho transcribe``: ``hf`` (transformers, ``decoder.WhisperDecoder``), ``ct2``
(faster-whisper, or CTranslate2 directly for models faster-whisper can't decode), ``onnx`` (our greedy loop over
onnxruntime) and ``cpp`` (whisper.cpp). Each takes a model dir, ``(utt_id, recording)`` pairs and one
:class:`EngineOptions`, and yields ``(utt_id, text, segments, words)`` (segments empty unless timed output,
words None unless asked for); long audio is decoded sequentially (``seeking.py``) unless ``batch_size`` asks for
VAD spans (``batched_long_form.py``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional

import torch
from lhotse import Recording

from egrecho_inner.batched_long_form import SPAN_SECONDS, duration_groups, transcribe_batched
from egrecho_inner.constants import MAX_INPUT_SECONDS
from egrecho_inner.decode import GenArgs, whisper_windows
from egrecho_inner.decoder import DecodeArgs, WhisperDecoder
from egrecho_inner.errors import InputError, MissingInputError
from egrecho_inner.features import load_cut_features, make_fbank_extractor
from egrecho_inner.new_language import prompt_ids
from egrecho_inner.seeking import Segment, joined_text, seek_decode
from egrecho_inner.text import WHISPER_LANGUAGE_CODES
from egrecho_inner.unpadded import resolve_unpadded
from egrecho_inner.word_timing import Word

log = logging.getLogger(__name__)
ENGINES = ("hf", "ct2", "onnx", "cpp")


@dataclass
class EngineOptions:
    """What every engine decodes with (each explained at ``egrecho_inner.deploy.transcribe.transcribe``)."""

    language: Optional[str]
    task: str
    num_beams: int
    device: str
    compute_type: str
    unpadded: bool
    timed: bool
    word_timestamps: bool
    batch_size: int  # 0: sequential long form; else VAD spans decoded this many at a time


Transcript = tuple[str, str, list[Segment], Optional[list[list[Word]]]]  # utt_id, text, segments, words


def model_unpadded(model_path: str, forced: Optional[bool]) -> bool:
    """Whether to decode the model un-padded: as its generation config says it was trained, unless ``forced``."""
    generation_file = Path(model_path) / "generation_config.json"
    generation = json.loads(generation_file.read_text()) if generation_file.is_file() else {}
    return resolve_unpadded(generation, forced, model_path)


def run_engine(engine: str, model_path: str, recordings: Iterable[tuple[str, Recording]],
               opts: EngineOptions) -> Iterator[Transcript]:
    """Decode ``recordings`` with ``engine`` (one of :data:`ENGINES`), one transcript at a time."""
    if engine not in ENGINES:
        raise InputError(f"engine must be one of {ENGINES}, got {engine!r}")
    decode = {"hf": _hf_decoder, "ct2": _ct2_decoder, "onnx": _onnx_decoder, "cpp": _cpp_decoder}[engine]
    return decode(model_path, recordings, opts)


def refuse_ignored_options(engine: str, device: str, compute_type: str, word_timestamps: bool = False,
                           batched: bool = False) -> None:
    """An unknown engine, or an option the engine would ignore, is refused in one line."""
    if engine not in ENGINES:
        raise InputError(f"engine must be one of {ENGINES}, got {engine!r}")
    if batched and engine not in ("hf", "ct2"):
        raise InputError(f"--batched is for engines hf and ct2; engine {engine} decodes long audio sequentially")
    if word_timestamps and engine not in ("hf", "ct2"):
        raise InputError(f"--word_timestamps is for engines hf and ct2; engine {engine} gives segment times only")
    if compute_type != "default" and engine != "ct2":
        raise InputError(f"--compute_type {compute_type} is for engine ct2 (CTranslate2's precision); engine {engine} "
                         "decodes in the model's own precision: leave it at default")
    if engine == "cpp" and device not in ("auto", "cpu"):
        raise InputError(f"--device {device}: engine cpp runs whisper.cpp on the CPU (pywhispercpp's CPU build); "
                         "use --device cpu or auto, or engine ct2/hf/onnx on a GPU")


def _hf_decoder(model_path: str, recordings, opts: EngineOptions):
    """Engine hf; like every engine, yields ``(utt_id, text, segments, words)`` (words: None unless asked for)."""
    decoder = WhisperDecoder.load(DecodeArgs(model_path, opts.device, unpadded=opts.unpadded,
                                             gen_args=GenArgs(task=opts.task, num_beams=opts.num_beams)))
    extractor = make_fbank_extractor(decoder.num_mel_bins)
    if opts.batch_size:  # files decoded together until their spans can fill a batch
        for group in duration_groups(recordings, lambda item: item[1].duration, opts.batch_size * SPAN_SECONDS):
            feats = [load_cut_features(recording.to_cut(), extractor) for _, recording in group]
            samples = [recording.load_audio()[0] for _, recording in group]  # for the VAD
            found = transcribe_batched(decoder, feats, samples, [opts.language] * len(group), opts.batch_size,
                                       timestamps=opts.timed)
            for (utt_id, _), f, s, result in zip(group, feats, samples, found):
                yield _hf_transcript(decoder, utt_id, f, s, result.segments, opts)
        return
    for utt_id, recording in recordings:
        feats = load_cut_features(recording.to_cut(), extractor)
        if not opts.timed:
            yield utt_id, decoder.transcribe_features(feats, opts.language), [], None
            continue
        segments = decoder.transcribe_long([feats], [opts.language])[0].segments
        samples = recording.load_audio()[0] if opts.word_timestamps else None  # for the VAD
        yield _hf_transcript(decoder, utt_id, feats, samples, segments, opts)


def _hf_transcript(decoder, utt_id: str, feats, samples, segments: list[Segment], opts: EngineOptions) -> Transcript:
    """One recording's transcript from its segments, with its words timed when asked for."""
    words = decoder.word_times(feats, segments, opts.language, samples) if opts.word_timestamps else None
    return utt_id, joined_text(segments), segments if opts.timed else [], words


def _ct2_decoder(model_path: str, recordings, opts: EngineOptions):
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    if not (Path(model_path) / "model.bin").is_file():
        raise MissingInputError(f"{model_path} is not a CTranslate2 model dir (no model.bin); see egrecho export-ct2")
    # faster-whisper pads every window to 30 s and knows Whisper's languages only: CTranslate2 directly otherwise
    if opts.unpadded or (opts.language is not None and opts.language not in WHISPER_LANGUAGE_CODES):
        if opts.word_timestamps or opts.batch_size:
            raise InputError("word timestamps and --batched with engine ct2 come from faster-whisper, which pads to "
                             "30 s and knows Whisper's languages only: use engine hf for this model")
        yield from _ct2_windows(model_path, recordings, opts)
        return
    model = WhisperModel(model_path, device=opts.device, compute_type=opts.compute_type)
    batched = {"batch_size": opts.batch_size} if opts.batch_size else {"vad_filter": False}
    pipeline = BatchedInferencePipeline(model) if opts.batch_size else model
    for utt_id, recording in recordings:
        found, _ = pipeline.transcribe(recording.load_audio()[0], language=opts.language, task=opts.task,
                                       beam_size=opts.num_beams, without_timestamps=not opts.timed,
                                       condition_on_previous_text=False, word_timestamps=opts.word_timestamps,
                                       temperature=0.0,  # no sampling fallback: as deterministic as the hf engine
                                       **batched)
        found = list(found)
        segments = [Segment(s.start, s.end, s.text.strip()) for s in found]
        words = ([[Word(w.start, w.end, w.word.strip(), w.probability) for w in s.words or []] for s in found]
                 if opts.word_timestamps else None)
        yield utt_id, joined_text(segments), segments if opts.timed else [], words


def _onnx_decoder(model_path: str, recordings, opts: EngineOptions):
    from transformers import AutoTokenizer

    from egrecho_inner.deploy.onnx_decode import OnnxWhisper

    language, task, unpadded, timed = opts.language, opts.task, opts.unpadded, opts.timed
    if opts.num_beams != 1:
        raise InputError("the onnx engine decodes greedily: use --num_beams 1 (or engine hf/ct2 for beam search)")
    model = OnnxWhisper(model_path, device=opts.device)
    if unpadded and model.fixed_frames:
        raise InputError(f"{model_path}: this ONNX export's encoder takes {model.fixed_frames} frames only (exported "
                         "from a model trained padded), so it can't decode un-padded: leave "
                         "remove_whisper_encoder_input_length_restriction unset")
    tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    num_mel_bins = json.loads((Path(model_path) / "preprocessor_config.json").read_text())["feature_size"]
    extractor = make_fbank_extractor(num_mel_bins)
    timestamp_begin = model.generation["no_timestamps_token_id"] + 1
    for utt_id, recording in recordings:
        feats = load_cut_features(recording.to_cut(), extractor)
        if timed or recording.duration > MAX_INPUT_SECONDS:  # sequential, window by window (seeking.py)
            found = seek_decode(feats, _onnx_window_decoder(model, language, task, unpadded),
                                lambda ids: tokenizer.decode(ids, skip_special_tokens=True), timestamp_begin)
            yield utt_id, found.text, found.segments if timed else [], None
            continue
        (window,) = whisper_windows(feats, unpadded)
        hidden = model.encode(window)
        tokens = model.greedy(hidden, model.prompt(language or model.detect_language(hidden)[0], task))[0]
        yield utt_id, tokenizer.decode(tokens, skip_special_tokens=True).strip(), [], None


def _onnx_window_decoder(model, language, task, unpadded):
    """A window's timestamped tokens from the onnx model (``seeking.seek_decode``'s ``decode_window``);
    ``language`` None: detected on the first window and kept."""
    state = {"language": language}

    def decode(window):
        (features,) = whisper_windows(window, unpadded)
        hidden = model.encode(features)
        state["language"] = state["language"] or model.detect_language(hidden)[0]
        return model.greedy(hidden, model.prompt(state["language"], task, timestamps=True), timestamps=True)[0]

    return decode


def _ct2_windows(model_path: str, recordings, opts: EngineOptions):
    """CTranslate2 directly, for un-padded models (CTranslate2's encoder takes fewer than 3000 frames) and for
    languages added by fine-tuning (prompted with their token). As engine onnx: audio up to 30 s in one window
    without timestamps, longer audio and timed output sequentially with timestamps (``seeking.seek_decode``;
    CTranslate2 applies Whisper's timestamp rules itself when the prompt has no ``<|notimestamps|>``)."""
    import ctranslate2
    from transformers import AutoTokenizer

    generation_file = Path(model_path) / "generation_config.json"
    if not generation_file.is_file():
        raise MissingInputError(f"{model_path} has no generation_config.json, which decoding an un-padded or "
                                "added-language model with engine ct2 needs: export it with egrecho export-ct2")
    generation = json.loads(generation_file.read_text())
    model = ctranslate2.models.Whisper(model_path, device=opts.device, compute_type=opts.compute_type)
    tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    extractor = make_fbank_extractor(model.n_mels)
    timestamp_begin = generation["no_timestamps_token_id"] + 1
    for utt_id, recording in recordings:
        feats = load_cut_features(recording.to_cut(), extractor)
        timestamps = opts.timed or recording.duration > MAX_INPUT_SECONDS
        decode_window = _ct2_window_decoder(model, generation, opts, timestamps)
        if timestamps:
            found = seek_decode(feats, decode_window, lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
                                timestamp_begin)
            yield utt_id, found.text, found.segments if opts.timed else [], None
        else:
            text = tokenizer.decode(decode_window(feats), skip_special_tokens=True).strip()
            yield utt_id, text, [], None


def _ct2_window_decoder(model, generation: dict, opts: EngineOptions, timestamps: bool):
    """A window's generated tokens from a CTranslate2 Whisper (``seeking.seek_decode``'s ``decode_window``);
    the language, unless given, is detected on the first window and kept."""
    import ctranslate2

    state = {"language": opts.language}

    def decode(window: torch.Tensor) -> list[int]:
        (features,) = whisper_windows(window, opts.unpadded)
        features = ctranslate2.StorageView.from_array(features)
        state["language"] = state["language"] or model.detect_language(features)[0][0][0][2:-2]
        prompt = prompt_ids(generation, state["language"], opts.task)
        if timestamps:
            prompt = prompt[:-1]  # without <|notimestamps|>
        return model.generate(features, [prompt], beam_size=opts.num_beams)[0].sequences_ids[0]

    return decode


def _cpp_decoder(model_path: str, recordings, opts: EngineOptions):
    """whisper.cpp (pywhispercpp, CPU) on an export-ggml dir. Like the other engines: no timestamps (unless
    asked for) and no temperature fallback up to 30 s; longer audio goes through whisper.cpp's own seeking."""
    from pywhispercpp.model import Model
    from pywhispercpp.utils import redirect_stderr

    from egrecho_inner.deploy.export_ggml import EXPORT_INFO, GGML_FILE

    path, language, num_beams, timed = Path(model_path), opts.language, opts.num_beams, opts.timed
    if not (path / GGML_FILE).is_file():
        raise MissingInputError(f"{model_path} is not a whisper.cpp model dir (no {GGML_FILE}); see egrecho export-ggml")
    info = json.loads((path / EXPORT_INFO).read_text()) if (path / EXPORT_INFO).is_file() else {}
    if info.get("dtype") == "f32":  # whisper.cpp 1.8's CPU convolution takes f16 kernels only, and aborts otherwise
        raise InputError(f"{model_path} is an f32 export, which this whisper.cpp aborts on (ggml im2col needs f16 "
                         "convolution weights): export with --dtype f16")
    if language in info.get("dropped_languages", []):
        raise InputError(f"--language {language}: this export dropped it (re-export with --language_slot CODE)")
    if opts.unpadded:
        # whisper.cpp's audio_ctx would encode short audio at its own length, but this whisper.cpp then repeats
        # the transcript up to the token limit (whisper-base: every sentence tried), where transformers stops
        log.warning("this model was trained un-padded; whisper.cpp decodes it padded to 30 s (its audio_ctx, "
                    "the un-padded encoding, loops on the transcript)")
    language = info.get("language_slots", {}).get(language, language)  # an added language sits in a slot
    model = Model(str(path / GGML_FILE), redirect_whispercpp_logs_to=None, print_progress=False,
                  print_realtime=False, n_threads=torch.get_num_threads(), translate=opts.task == "translate",
                  params_sampling_strategy=int(num_beams > 1), beam_search={"beam_size": num_beams, "patience": -1.0},
                  temperature_inc=0.0)
    for utt_id, recording in recordings:
        audio = recording.load_audio()[0].astype("float32")
        with redirect_stderr(to=None):  # whisper.cpp's own log lines (detected language, ...)
            found = model.transcribe(audio, language=language or "", no_timestamps=not timed and recording.duration <= MAX_INPUT_SECONDS)
        segments = [Segment(s.t0 / 100, s.t1 / 100, s.text.strip()) for s in found]  # whisper.cpp counts 10 ms steps
        yield utt_id, joined_text(segments), segments if timed else [], None

