"""``egrecho eval``: batched Whisper transcription of a cut set, scored with jiwer.

Writes ``<outdir>/errs-<part>.json`` (error/ins/del/sub rates, reference length, RTF, ...) and
``<outdir>/recogs-<part>.txt`` (REF, HYP and alignment of every utterance).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Optional

import torch
from lhotse import CutSet, load_manifest
from lhotse.dataset import SimpleCutSampler
from tqdm import tqdm

from egrecho_inner.constants import MAX_INPUT_SECONDS, SAMPLING_RATE
from egrecho_inner.data_module import LhotseLoader
from egrecho_inner.dataset import WhisperDataset
from egrecho_inner.decode import GenArgs, generate_kwargs, long_form_features, transcribe_batch
from egrecho_inner.features import make_fbank_extractor
from egrecho_inner.kaldi import load_kaldi_dir
from egrecho_inner.model import load_whisper
from egrecho_inner.scoring import ErrorCounts, align, by_characters, normalize_text, scoring_units
from egrecho_inner.text import resolve_language
from egrecho_inner.utils import atomic_path

log = logging.getLogger(__name__)


def load_eval_cuts(cuts: Optional[str], kaldi_dir: Optional[str], manifest_dir: str, prefix_name: str, part: str,
                   language: Optional[str]) -> tuple[CutSet, bool]:
    """The cuts to score and whether they need features computed from audio."""
    if kaldi_dir:
        recordings, supervisions, report = load_kaldi_dir(kaldi_dir, language)
        log.info("%s: %s", kaldi_dir, report.summary())
        return CutSet.from_manifests(recordings=recordings, supervisions=supervisions).resample(SAMPLING_RATE), True
    path = Path(cuts or Path(manifest_dir) / f"{prefix_name}_cuts_{part}.jsonl.gz")
    if not path.is_file():
        raise FileNotFoundError(f"cut manifest {path} not found (run prepare.sh, or pass --cuts / --kaldi_dir)")
    cutset = load_manifest(path)
    if cutset is None or len(cutset) == 0:
        raise ValueError(f"cut manifest {path} holds no cuts")
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
        gen_args: decoding options.
    """
    start_total = time.perf_counter()
    by_characters(metric, None)  # rejects an unknown metric before any work
    default_language = resolve_language(gen_args.language, "gen_args.language") if gen_args.language else None
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    torch_dtype = getattr(torch, dtype)
    if torch_dtype != torch.float32 and not str(device).startswith("cuda"):
        log.warning("%s needs a GPU; evaluating in float32 on %s", dtype, device)
        torch_dtype = torch.float32
    model, processor = load_whisper(model_path, local_files_only)
    model.to(device=device, dtype=torch_dtype).eval()

    # 1. Data: sorted by duration so batches waste little; long cuts go one by one.
    cutset, from_audio = load_eval_cuts(cuts, kaldi_dir, manifest_dir, prefix_name, part, default_language)
    from_audio = from_audio or on_the_fly_feats
    cutset = cutset.sort_by_duration(ascending=False)
    no_text = [c.id for c in cutset if not c.supervisions or not any(s.text for s in c.supervisions)]
    if no_text:
        log.warning("%d cuts have no reference text; transcribed but not scored: %s", len(no_text), no_text[:10])
    long_cuts = cutset.filter(lambda c: c.duration > MAX_INPUT_SECONDS).to_eager()
    short_cuts = cutset.filter(lambda c: c.duration <= MAX_INPUT_SECONDS).to_eager()
    num_mel_bins = model.config.num_mel_bins
    extractor = make_fbank_extractor(num_mel_bins) if from_audio else None
    kwargs = generate_kwargs(gen_args, processor, device)

    def language_of(cut) -> Optional[str]:
        return (cut.supervisions[0].language if cut.supervisions else None) or default_language

    # 2. Transcribe.
    hyps, gen_seconds = {}, 0.0
    if len(short_cuts):
        loader = LhotseLoader(SimpleCutSampler(short_cuts, max_cuts=max_cuts, max_duration=max_duration),
                              WhisperDataset(None, on_the_fly_feats=from_audio, num_mel_bins=num_mel_bins), num_workers)
        by_id = {c.id: c for c in short_cuts}
        for batch in tqdm(loader, desc=f"eval {part}", unit="batch"):
            languages = [language_of(by_id[i]) for i in batch["cut_ids"]]
            t0 = time.perf_counter()
            texts = transcribe_batch(model, processor, batch["input_features"].to(device, torch_dtype), languages, kwargs)
            gen_seconds += time.perf_counter() - t0
            hyps.update(zip(batch["cut_ids"], texts))
    for cut in tqdm(long_cuts, desc=f"eval {part} (over 30 s)", unit="cut"):
        feats, mask = long_form_features(cut, extractor, torch_dtype)
        t0 = time.perf_counter()
        hyps[cut.id] = transcribe_batch(model, processor, feats.to(device), [language_of(cut)],
                                   {**kwargs, "return_timestamps": True}, mask.to(device))[0]
        gen_seconds += time.perf_counter() - t0

    # 3. Score and write.
    audio_seconds = sum(c.duration for c in cutset)
    totals, lines, metrics_used = ErrorCounts(), [], set()
    for cut in sorted(cutset, key=lambda c: c.id):
        if cut.id in no_text:
            lines.append(f"{cut.id}:\tHYP: {hyps[cut.id]}\t(no reference)")
            continue
        language = language_of(cut)
        ref = " ".join(s.text for s in cut.supervisions if s.text)
        hyp = hyps[cut.id]
        if normalize:
            ref, hyp = normalize_text(ref, language), normalize_text(hyp, language)
        chars = by_characters(metric, language)
        metrics_used.add("cer" if chars else "wer")
        counts, alignment = align(scoring_units(ref, chars), scoring_units(hyp, chars))
        totals.add(counts)
        lines += [f"{cut.id}:\tREF: {ref}", f"{cut.id}:\tHYP: {hyp}", f"{cut.id}:\tALI: {alignment.text()}"]
    result = totals.rates()
    result["RTF"] = round(gen_seconds / max(audio_seconds, 1e-9), 5)
    result.update(
        num_utts=len(cutset), num_unscored=len(no_text), audio_seconds=round(audio_seconds, 3),
        metric=metrics_used.pop() if len(metrics_used) == 1 else "mixed",  # cer for zh/ja/..., wer otherwise
        RTF_total=round((time.perf_counter() - start_total) / max(audio_seconds, 1e-9), 5),
    )
    out = Path(outdir)
    with atomic_path(out / f"recogs-{part}.txt") as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with atomic_path(out / f"errs-{part}.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return result
