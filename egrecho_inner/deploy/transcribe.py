"""``egrecho transcribe``: print ``utt-id<TAB>text`` for audio files or a Kaldi ``wav.scp``."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import torch
from lhotse import Recording

from egrecho_inner.batched_long_form import transcribe_batched
from egrecho_inner.constants import MAX_INPUT_SECONDS, SAMPLING_RATE
from egrecho_inner.decode import GenArgs, whisper_windows
from egrecho_inner.decoder import DecodeArgs, WhisperDecoder
from egrecho_inner.deploy.subtitles import OUTPUT_FORMATS, render
from egrecho_inner.errors import InputError, MissingInputError
from egrecho_inner.features import load_cut_features, make_fbank_extractor
from egrecho_inner.kaldi import probe_recording, read_kaldi_mapping
from egrecho_inner.model import resolve_model
from egrecho_inner.new_language import model_languages, prompt_ids
from egrecho_inner.seeking import Segment, joined_text, seek_decode
from egrecho_inner.text import WHISPER_LANGUAGE_CODES, resolve_language
from egrecho_inner.unpadded import resolve_unpadded
from egrecho_inner.utils import atomic_path, writable_dir
from egrecho_inner.word_timing import Word

log = logging.getLogger(__name__)
ENGINES = ("hf", "ct2", "onnx", "cpp")


@dataclass
class EngineOptions:
    """What every engine decodes with (see :func:`transcribe` for each)."""

    language: Optional[str]
    task: str
    num_beams: int
    device: str
    compute_type: str
    unpadded: bool
    timed: bool
    word_timestamps: bool
    batch_size: int  # 0: sequential long form; else VAD spans decoded this many at a time


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
            id, text and segments with start, end and text), from every engine's timestamps (onnx: Whisper's
            timestamp rules in our loop; ct2: faster-whisper, so not for un-padded or added-language models).
        output_dir: timed formats: one ``<utt-id>.<format>`` file each there; None: printed.
        word_timestamps: timed formats carry each word's start and end (engine hf: cross-attention of the model's
            alignment heads aligned by DTW, words moved onto Silero VAD's speech regions; engine ct2:
            faster-whisper's own word timestamps).
        batched: cut the audio at speech pauses (Silero VAD) into spans of up to 30 s and decode ``batch_size``
            spans at once (engine hf: ours, egrecho_inner/batched_long_form.py; engine ct2: faster-whisper's
            BatchedInferencePipeline); faster on long audio, but speech the VAD misses is not decoded. Timed formats
            get segments inside each span, txt one text per span. false: sequential 30 s windows, Whisper's own way.
        batch_size: spans per batch with ``batched``.
    """
    if engine not in ENGINES:
        raise InputError(f"engine must be one of {ENGINES}, got {engine!r}")
    if output_format not in OUTPUT_FORMATS:
        raise InputError(f"output_format must be one of {OUTPUT_FORMATS}, got {output_format!r}")
    _refuse_ignored_options(engine, device, compute_type, word_timestamps, batched)
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
    generation_file = Path(model_path) / "generation_config.json"
    generation = json.loads(generation_file.read_text()) if generation_file.is_file() else {}
    unpadded = resolve_unpadded(generation, remove_whisper_encoder_input_length_restriction, model_path)
    decode = {"hf": _hf_decoder, "ct2": _ct2_decoder, "onnx": _onnx_decoder, "cpp": _cpp_decoder}[engine]
    options = EngineOptions(language, task, num_beams, device, compute_type, unpadded, timed, word_timestamps,
                            batch_size if batched else 0)
    results = []
    for utt_id, text, segments, words in decode(model_path, iter_audio(audio), options):
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


def _refuse_ignored_options(engine: str, device: str, compute_type: str, word_timestamps: bool = False,
                            batched: bool = False) -> None:
    """An option the engine would ignore is refused in one line instead."""
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
    language = opts.language
    for utt_id, recording in recordings:
        feats = load_cut_features(recording.to_cut(), extractor)
        if opts.batch_size:
            samples = recording.load_audio()[0]
            segments = transcribe_batched(decoder, [feats], [samples], [language], opts.batch_size,
                                          timestamps=opts.timed)[0].segments
        elif opts.timed:
            segments = decoder.transcribe_long([feats], [language])[0].segments
        else:
            yield utt_id, decoder.transcribe_features(feats, language), [], None
            continue
        words = (decoder.word_times(feats, segments, language, recording.load_audio()[0])
                 if opts.word_timestamps else None)
        yield utt_id, joined_text(segments), segments if opts.timed else [], words


def _ct2_decoder(model_path: str, recordings, opts: EngineOptions):
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    if not (Path(model_path) / "model.bin").is_file():
        raise MissingInputError(f"{model_path} is not a CTranslate2 model dir (no model.bin); see egrecho export-ct2")
    # faster-whisper pads every window to 30 s and knows Whisper's languages only: CTranslate2 directly otherwise
    if opts.unpadded or (opts.language is not None and opts.language not in WHISPER_LANGUAGE_CODES):
        if opts.timed or opts.word_timestamps or opts.batch_size:
            raise InputError("timestamps and --batched with engine ct2 come from faster-whisper, which pads to 30 s "
                             "and knows Whisper's languages only: use engine hf for this model")
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
    """CTranslate2 directly, window by window: for un-padded models (CTranslate2's encoder takes fewer than
    3000 frames) and for languages added by fine-tuning (prompt with their token)."""
    import ctranslate2
    from transformers import AutoTokenizer

    generation = json.loads((Path(model_path) / "generation_config.json").read_text())
    model = ctranslate2.models.Whisper(model_path, device=opts.device, compute_type=opts.compute_type)
    tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    extractor = make_fbank_extractor(model.n_mels)
    for utt_id, recording in recordings:
        texts = []
        for window in whisper_windows(load_cut_features(recording.to_cut(), extractor), opts.unpadded):
            features = ctranslate2.StorageView.from_array(window)
            lang = opts.language or model.detect_language(features)[0][0][0][2:-2]
            result = model.generate(features, [prompt_ids(generation, lang, opts.task)], beam_size=opts.num_beams)[0]
            texts.append(tokenizer.decode(result.sequences_ids[0], skip_special_tokens=True).strip())
        yield utt_id, " ".join(t for t in texts if t), [], None


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
        log.warning("this model was trained un-padded; whisper.cpp decodes it padded to 30 s")
    language = info.get("language_slots", {}).get(language, language)  # an added language sits in a slot
    model = Model(str(path / GGML_FILE), redirect_whispercpp_logs_to=None, print_progress=False,
                  print_realtime=False, n_threads=torch.get_num_threads(), translate=opts.task == "translate",
                  params_sampling_strategy=int(num_beams > 1), beam_search={"beam_size": num_beams, "patience": -1.0},
                  temperature_inc=0.0)
    for utt_id, recording in recordings:
        audio = recording.load_audio()[0].astype("float32")
        with redirect_stderr(to=None):  # whisper.cpp's own log lines (detected language, ...)
            found = model.transcribe(audio, language=language or "",
                                     no_timestamps=not timed and recording.duration <= MAX_INPUT_SECONDS)
        segments = [Segment(s.t0 / 100, s.t1 / 100, s.text.strip()) for s in found]  # whisper.cpp counts 10 ms steps
        yield utt_id, joined_text(segments), segments if timed else [], None
