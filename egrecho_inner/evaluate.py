"""``egrecho eval``: batched Whisper transcription of a cut set, scored with jiwer.

Writes ``<outdir>/errs-<part>.json`` (error/ins/del/sub rates, reference length, RTF, and the fields of
``egrecho_inner.quality``: language identification, repetition, text on non-speech; word-start error when the
references carry word times) and
``<outdir>/recogs-<part>.txt`` (REF, HYP and alignment of every utterance).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable, Optional

from lhotse import CutSet, load_manifest

from egrecho_inner.constants import SAMPLING_RATE
from egrecho_inner.decode import GenArgs
from egrecho_inner.decoder import DecodeArgs, WhisperDecoder, cut_language
from egrecho_inner.errors import InputError, MissingInputError
from egrecho_inner.features import check_mel_bins
from egrecho_inner.kaldi import load_kaldi_dir
from egrecho_inner.model import resolve_model
from egrecho_inner.new_language import model_languages
from egrecho_inner.quality import quality_fields, timing_fields, window_fields
from egrecho_inner.scoring import ErrorCounts, align, by_characters, normalize_text, scoring_units
from egrecho_inner.text import resolve_language
from egrecho_inner.utils import atomic_path, writable_dir

log = logging.getLogger(__name__)


def load_eval_cuts(cuts: Optional[str], kaldi_dir: Optional[str], manifest_dir: str, prefix_name: str, part: str,
                   language: Optional[str], new_languages: tuple[str, ...] = ()) -> tuple[CutSet, bool]:
    """The cuts to score and whether they need features computed from audio."""
    if kaldi_dir:
        recordings, supervisions, report = load_kaldi_dir(kaldi_dir, language, new_languages=new_languages,
                                                          keep_empty_text=True)  # empty: non-speech
        log.info("%s: %s", kaldi_dir, report.summary())
        return CutSet.from_manifests(recordings=recordings, supervisions=supervisions).resample(SAMPLING_RATE), True
    path = Path(cuts or Path(manifest_dir) / f"{prefix_name}_cuts_{part}.jsonl.gz")
    if not path.is_file():
        raise MissingInputError(f"cut manifest {path} not found (run prepare.sh, or pass --cuts / --kaldi_dir)")
    cutset = load_manifest(path)
    if cutset is None or len(cutset) == 0:
        raise InputError(f"cut manifest {path} holds no cuts")
    return cutset, False


def evaluate(
    model_path: str = "exp/whisper-small/lora/checkpoint-final-lora-merge",
    outdir: str = "exp/whisper-small/lora",
    manifest_dir: str = "data/fbank_whisper80",
    prefix_name: str = "demo_vi",
    part: str = "test",
    cuts: Optional[str] = None,
    kaldi_dir: Optional[str] = None,
    max_cuts: int = 16,
    max_duration: Optional[float] = None,
    on_the_fly_feats: bool = False,
    device: str = "auto",
    dtype: str = "float32",
    local_files_only: bool = True,
    metric: str = "auto",
    normalize: bool = True,
    num_workers: int = 2,
    remove_whisper_encoder_input_length_restriction: Optional[bool] = None,
    gen_args: GenArgs = GenArgs(),
) -> dict:
    """Transcribe a test set with a Whisper model and score it.

    Args:
        model_path: a Whisper model dir (a full fine-tune's checkpoint-final or a merged LoRA).
        outdir: where errs-<part>.json and recogs-<part>.txt go.
        manifest_dir: where prepare.sh wrote the cuts.
        prefix_name: the --prefix given to prepare.sh.
        part: which part to score (<prefix>_cuts_<part>.jsonl.gz).
        cuts: any cut manifest instead of manifest_dir/prefix_name/part.
        kaldi_dir: a Kaldi data dir instead (features computed from audio).
        max_cuts: cuts per batch.
        max_duration: or: seconds of audio per batch.
        on_the_fly_feats: compute features from audio even if stored ones exist.
        device: auto (GPU if there is one), cpu, cuda, cuda:1, ...
        dtype: float32, float16 or bfloat16 (half precision on GPU only).
        local_files_only: never reach for the hub.
        metric: auto (CER for zh/ja/th/lo/my/yue, WER otherwise), wer or cer.
        normalize: Whisper-style text normalisation of references and hypotheses before scoring.
        num_workers: dataloader worker processes.
        remove_whisper_encoder_input_length_restriction: null: decode as the model was trained (recorded in its
            generation config); true: un-padded (batches padded to their longest cut, the encoder run on that
            length, padding masked); false: every input padded to 30 s.
        gen_args: decoding options.
    """
    start_total = time.perf_counter()
    by_characters(metric, None)  # rejects an unknown metric before any work
    model_path = resolve_model(model_path, local_files_only)  # a dir, or a hub id found in the HF cache
    writable_dir(outdir)  # before the work, not after it
    known = model_languages(model_path)  # Whisper's and any added by new_language
    default_language = resolve_language(gen_args.language, "gen_args.language", known) if gen_args.language else None

    # 1. Data: sorted by duration so batches waste little.
    cutset, from_audio = load_eval_cuts(cuts, kaldi_dir, manifest_dir, prefix_name, part, default_language, known)
    cutset = cutset.sort_by_duration(ascending=False)
    nonspeech = {c.id for c in cutset if c.supervisions and all(s.text == "" for s in c.supervisions)}
    no_text = {c.id for c in cutset if not any(s.text for s in c.supervisions)} - nonspeech
    if no_text:
        log.warning("%d cuts have no reference text; transcribed but not scored: %s", len(no_text), sorted(no_text)[:10])
    language_of = cut_language(cutset, default_language, known, model_path)

    # 2. Transcribe; 3. score.
    decoder = WhisperDecoder.load(DecodeArgs(model_path, device, dtype, local_files_only,
                                             remove_whisper_encoder_input_length_restriction, gen_args), language_of)
    if not (from_audio or on_the_fly_feats):
        check_mel_bins(cutset, cuts or f"{manifest_dir}/{prefix_name}_cuts_{part}", decoder.num_mel_bins,
                       model_path)
    # with timestamps, cuts of several reference segments are decoded like those over 30 s: sequentially
    with_times = ([c for c in cutset if sum(bool(s.text) for s in c.supervisions) > 1]
                  if gen_args.return_timestamps else [])
    hyps = decoder.transcribe_cuts(cutset, from_audio or on_the_fly_feats, max_cuts, max_duration, num_workers, part,
                                   frozenset(c.id for c in with_times))
    totals, lines, metric_name = score_cuts(cutset, hyps, no_text, nonspeech, language_of, metric, normalize)
    audio_seconds = max(sum(c.duration for c in cutset), 1e-9)
    result = totals.rates()
    result["RTF"] = round(decoder.seconds / audio_seconds, 5)
    result.update(
        num_utts=len(cutset), num_unscored=len(no_text), audio_seconds=round(audio_seconds, 3), metric=metric_name,
        unpadded=decoder.unpadded,
        RTF_total=round((time.perf_counter() - start_total) / audio_seconds, 5),
    )
    expected = {c.id: None if c.id in nonspeech else language_of(c) for c in cutset}
    result.update(quality_fields(hyps, nonspeech, expected, decoder.detected))
    if gen_args.return_timestamps:  # references with times: several supervisions in a cut
        errors = [e for c in with_times for e in decoder.segment_start_errors(c)]
        result.update(timing_fields(errors, len(with_times)))
    word_timed = [c for c in cutset if c.id not in no_text | nonspeech and c.supervisions
                  and (c.supervisions[0].alignment or {}).get("word")]
    if word_timed:  # references with word times (local/make_word_timed.py): time the transcript's words
        with_audio = from_audio or on_the_fly_feats
        errors = [e for c in word_timed for e in decoder.word_start_errors(c, hyps[c.id], with_audio)]
        result.update(timing_fields(errors, len(word_timed), "word_start_error_ms", "words"))
    result.update(window_fields(decoder.windows_well_formed))
    out = Path(outdir)
    with atomic_path(out / f"recogs-{part}.txt") as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with atomic_path(out / f"errs-{part}.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return result


def score_cuts(cutset: CutSet, hyps: dict[str, str], no_text: set[str], nonspeech: set[str], language_of: Callable,
               metric: str, normalize: bool) -> tuple[ErrorCounts, list[str], str]:
    """Summed error counts, the recogs lines (REF, HYP, ALI per cut, by id) and the metric's name.
    Cuts without a reference and non-speech cuts are listed, not scored."""
    totals, lines, metrics_used = ErrorCounts(), [], set()
    for cut in sorted(cutset, key=lambda c: c.id):
        if cut.id in no_text or cut.id in nonspeech:
            kind = "non-speech" if cut.id in nonspeech else "no reference"
            lines.append(f"{cut.id}:\tHYP: {hyps[cut.id]}\t({kind})")
            continue
        language = language_of(cut)
        ref, hyp = " ".join(s.text for s in cut.supervisions if s.text), hyps[cut.id]
        if normalize:
            ref, hyp = normalize_text(ref, language), normalize_text(hyp, language)
        chars = by_characters(metric, language)
        metrics_used.add("cer" if chars else "wer")
        counts, alignment = align(scoring_units(ref, chars), scoring_units(hyp, chars))
        totals.add(counts)
        lines += [f"{cut.id}:\tREF: {ref}", f"{cut.id}:\tHYP: {hyp}", f"{cut.id}:\tALI: {alignment.text()}"]
    name = metrics_used.pop() if len(metrics_used) == 1 else "mixed"  # mixed: cer for zh/ja/..., wer otherwise
    return totals, lines, name

