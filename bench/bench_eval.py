#!/usr/bin/env python3
"""Evaluation speed: ``egrecho eval`` vs faster-whisper (CTranslate2) vs plain HF generate.

Usage:
    python local/get_whisper_base.py --output_dir pretrained/whisper-base   # once
    python bench/bench_eval.py --model pretrained/whisper-base --threads 2 [--num_utts 24]
    python bench/bench_eval.py --device cuda --dtype float16 --batch_size 64 --num_utts 256   # a GPU
    python bench/bench_eval.py --random_size base --decode_tokens 32 --device cuda ...  # no whisper-base needed

All runs decode the same espeak-ng English utterances greedily (beam 1, no timestamps, temperature 0,
language given), and their wall time includes feature extraction. On a CPU faster-whisper transcribes one
file at a time with VAD off, as its README's basic usage does; on a GPU its CTranslate2 model decodes
batches of ``--batch_size`` files, as ours and plain HF do everywhere. Figures are RTFx: audio seconds
decoded per wall second.

The un-padded row is what a model fine-tuned with ``remove_whisper_encoder_input_length_restriction``
decodes at: the bench first adapts whisper-base to un-padded input (a LoRA fine-tune of
``--adapt_steps`` steps on other espeak-ng sentences, merged; about a minute here), then ``egrecho eval``
decodes the same clips with the encoder run on each batch's own length, against faster-whisper on the
original model; both WERs are in the row's name. (Forcing un-padded decoding on the original whisper-base
is no shortcut: trained on 30 s windows, it loses track of where the audio ends and loops, WER 950% here.)

``--random_size base`` needs no model files (for a GPU machine without them): a randomly initialised Whisper
of that size with the real tokenizer, exported to CTranslate2, every engine made to generate exactly
``--decode_tokens`` tokens per clip (end-of-text suppressed), so the speed is that of the real model decoding
transcripts of that length; the un-padded row decodes the same weights un-padded. WERs are meaningless there.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

if __package__ in (None, ""):  # python bench/bench_eval.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import Row, espeak_cuts, print_rows, timed  # noqa: E402
from egrecho_inner.errors import MissingInputError


def adapt_unpadded(model: str, output_dir: Path, steps: int, batch_size: int = 8, device: str = "cpu") -> str:
    """A merged LoRA fine-tune of ``model`` on un-padded batches of espeak-ng English (sentences drawn with
    another seed than the bench clips'); returns its dir, which records how it was trained."""
    from lhotse import CutSet
    from peft import LoraConfig, get_peft_model

    from egrecho_inner.dataset import WhisperDataset, WhisperLabeler
    from egrecho_inner.model import load_whisper, save_processor
    from egrecho_inner.unpadded import enable_unpadded_inputs, mark_trained_unpadded

    whisper, processor = load_whisper(model)
    cuts = espeak_cuts(steps * batch_size // 2, output_dir / "wavs", seed=1).to_eager()
    dataset = WhisperDataset(WhisperLabeler(processor.tokenizer), on_the_fly_feats=True, unpadded=True)
    cut_list = list(cuts)
    batches = [dataset[CutSet.from_cuts(cut_list[i:i + batch_size])] for i in range(0, len(cut_list), batch_size)]
    lora = get_peft_model(whisper, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj", "fc1", "fc2"]))
    enable_unpadded_inputs(lora)
    lora.to(device).train()
    optimizer = torch.optim.AdamW([p for p in lora.parameters() if p.requires_grad], lr=1e-3)
    for step in range(steps):
        batch = batches[step % len(batches)]
        loss = lora(input_features=batch["input_features"].to(device), labels=batch["labels"].to(device),
                    attention_mask=batch["attention_mask"].to(device)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    merged = lora.merge_and_unload()
    mark_trained_unpadded(merged, True)
    target = output_dir / "adapted"
    merged.save_pretrained(target)
    save_processor(processor, target)
    return str(target)


def random_whisper(size: str, output_dir: Path, decode_tokens: int) -> tuple[str, str, str]:
    """A random Whisper of ``size`` that never ends a transcript early (end-of-text suppressed), its CTranslate2
    export, and an un-padded copy; returns the three dirs."""
    import contextlib
    import io

    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor

    from bench.bench_train import whisper_config
    from egrecho_inner.deploy.export_ct2 import export_ct2
    from egrecho_inner.model import save_processor, whisper_generation_config
    from egrecho_inner.tokenizer import build_whisper_tokenizer
    from egrecho_inner.unpadded import mark_trained_unpadded

    tokenizer = build_whisper_tokenizer()
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(whisper_config(size))
    model.generation_config = whisper_generation_config(tokenizer)
    model.generation_config.suppress_tokens = [tokenizer.eos_token_id]
    model.generation_config.max_length = decode_tokens
    dirs = [output_dir / "random", output_dir / "random-ct2", output_dir / "random-unpadded"]
    model.save_pretrained(dirs[0])
    save_processor(WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tokenizer), dirs[0])
    with contextlib.redirect_stdout(io.StringIO()):
        export_ct2(str(dirs[0]), str(dirs[1]))
    mark_trained_unpadded(model, True)
    model.save_pretrained(dirs[2])
    save_processor(WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tokenizer), dirs[2])
    return tuple(str(d) for d in dirs)


def run(model: str = "pretrained/whisper-base", ct2_model: str | None = None, num_utts: int = 24,
        batch_size: int = 8, threads: int = 2, device: str = "cpu", dtype: str = "float32",
        adapt_steps: int = 30, random_size: str | None = None, decode_tokens: int = 32) -> list[Row]:
    """RTFx of egrecho eval, plain HF generate and faster-whisper on the same audio."""
    from egrecho_inner.evaluate import GenArgs, evaluate

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        fixed = None
        if random_size:
            model, ct2_model, adapted_random = random_whisper(random_size, Path(tmp), decode_tokens)
            fixed = decode_tokens
        ct2_dir = ct2_model or model.rstrip("/") + "-ct2"
        if not Path(ct2_dir).is_dir():
            raise MissingInputError(f"{ct2_dir} not found: egrecho export-ct2 --model_path {model} --output_dir {ct2_dir}")
        cuts = espeak_cuts(num_utts, Path(tmp))
        cuts.to_file(Path(tmp) / "cuts.jsonl.gz")
        audios = [c.load_audio()[0] for c in cuts]
        seconds = sum(len(a) for a in audios) / 16000

        results = {}

        def ours(model_path: str, unpadded: bool):
            results[unpadded] = evaluate(
                model_path=model_path, outdir=tmp, cuts=str(Path(tmp) / "cuts.jsonl.gz"), on_the_fly_feats=True,
                max_cuts=batch_size, num_workers=0, device=device, dtype=dtype,
                gen_args=GenArgs(language="en", max_new_tokens=fixed))
        t_ours = timed(lambda: ours(model, False))
        if random_size:
            adapted = adapted_random
        else:
            adapted = adapt_unpadded(model, Path(tmp), adapt_steps, batch_size, device) if adapt_steps else None
        t_unpadded = timed(lambda: ours(adapted, True)) if adapted else float("nan")

        t_hf = time_plain_hf(model, audios, batch_size, device, dtype)
        t_fw, hyps, compute_type = time_faster_whisper(ct2_dir, audios, batch_size, device, dtype, threads, fixed)
        fw_wer = word_error_rate([c.supervisions[0].text for c in cuts], hyps) if hyps else float("nan")
    rtfx = lambda t: seconds / t  # noqa: E731
    where = f"{device} {dtype}, batch {batch_size}"
    name = f"random-weight whisper-{random_size}, {decode_tokens} tokens per clip" if random_size else "whisper-base"
    rows = [Row(f"eval {name} RTFx, {where}", "audio s per s", rtfx(t_ours), rtfx(t_fw),
                f"faster-whisper {compute_type}"),
            Row(f"eval {name} RTFx, {where}", "audio s per s", rtfx(t_ours), rtfx(t_hf), "plain HF generate")]
    if random_size:
        rows.append(Row(f"eval {name} RTFx decoded un-padded, {seconds / len(audios):.1f} s clips, {where}",
                        "audio s per s", rtfx(t_unpadded), rtfx(t_fw), f"faster-whisper {compute_type}"))
    elif adapt_steps:
        wers = (f"WER {100 * results[True]['error_rate']:.1f}, adapted on other sentences of the same word lists, vs "
                f"{100 * fw_wer:.1f}; original decoded padded {100 * results[False]['error_rate']:.1f}")
        rows.append(Row(f"eval RTFx of an un-padded fine-tune, {seconds / len(audios):.1f} s clips, {where} ({wers})",
                        "audio s per s", rtfx(t_unpadded), rtfx(t_fw), f"faster-whisper {compute_type}"))
    return rows


def time_plain_hf(model: str, audios: list, batch_size: int, device: str, dtype: str) -> float:
    """Seconds plain HF takes: its feature extractor (30 s padding) and ``generate``, batch by batch."""
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    hf = WhisperForConditionalGeneration.from_pretrained(model, dtype=getattr(torch, dtype)).to(device).eval()
    processor = WhisperProcessor.from_pretrained(model)

    def plain_hf():
        for i in range(0, len(audios), batch_size):
            feats = processor(audios[i:i + batch_size], sampling_rate=16000, return_tensors="pt").input_features
            with torch.inference_mode():
                hf.generate(feats.to(device, getattr(torch, dtype)), language="en", task="transcribe")
    return timed(plain_hf)


def time_faster_whisper(ct2_dir: str, audios: list, batch_size: int, device: str, dtype: str,
                        threads: int, fixed_tokens: int | None = None) -> tuple[float, list[str], str]:
    """Seconds faster-whisper takes, its transcripts (CPU: one file at a time, as its README transcribes;
    GPU: its CTranslate2 model on batches, as we batch) and the compute type used."""
    import ctranslate2
    import numpy as np
    from faster_whisper import WhisperModel
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer

    compute_type = "float32" if dtype == "float32" else "float16"
    fw = WhisperModel(ct2_dir, device=device, compute_type=compute_type, cpu_threads=threads)
    options = dict(language="en", beam_size=1, without_timestamps=True, vad_filter=False, temperature=0.0,
                   condition_on_previous_text=False)
    end = {}  # a random model: exactly fixed_tokens per clip, end-of-text suppressed as on our side
    if fixed_tokens:
        eot = fw.hf_tokenizer.token_to_id("<|endoftext|>")
        options.update(suppress_tokens=[eot], max_new_tokens=fixed_tokens)
        end = dict(suppress_tokens=[eot])
    hyps: list[str] = []

    def faster():
        if device.startswith("cuda"):
            tokenizer = Tokenizer(fw.hf_tokenizer, True, task="transcribe", language="en")
            prompt = list(tokenizer.sot_sequence) + [tokenizer.no_timestamps]
            for i in range(0, len(audios), batch_size):
                feats = np.stack([pad_or_trim(fw.feature_extractor(a)) for a in audios[i:i + batch_size]])
                fw.model.generate(ctranslate2.StorageView.from_array(feats.astype(np.float32)),
                                  [prompt] * len(feats), beam_size=1,
                                  max_length=len(prompt) + (fixed_tokens or 448 - len(prompt)), **end)
        else:
            for audio in audios:
                hyps.append(" ".join(s.text for s in fw.transcribe(audio, **options)[0]))
    return timed(faster), hyps, compute_type


def word_error_rate(refs: list[str], hyps: list[str]) -> float:
    """WER with the same normalisation and alignment as ``egrecho eval``."""
    from egrecho_inner.scoring import ErrorCounts, align, normalize_text

    totals = ErrorCounts()
    for ref, hyp in zip(refs, hyps):
        totals.add(align(normalize_text(ref, "en").split(), normalize_text(hyp, "en").split())[0])
    return totals.rates()["error_rate"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="pretrained/whisper-base", help="transformers model dir")
    parser.add_argument("--ct2_model", help="CTranslate2 dir of the same model (default: <model>-ct2)")
    parser.add_argument("--num_utts", type=int, default=24)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--adapt_steps", type=int, default=30,
                        help="LoRA steps adapting whisper-base to un-padded input for the un-padded row (0: no row)")
    parser.add_argument("--random_size", choices=["tiny", "base", "small", "medium"],
                        help="random weights of this size instead of --model (no model files needed)")
    parser.add_argument("--decode_tokens", type=int, default=32, help="with --random_size: tokens per clip")
    args = parser.parse_args()
    print_rows(run(args.model, args.ct2_model, args.num_utts, args.batch_size, args.threads, args.device, args.dtype,
                   args.adapt_steps, args.random_size, args.decode_tokens))


if __name__ == "__main__":
    main()
