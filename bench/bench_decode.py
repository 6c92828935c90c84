#!/usr/bin/env python3
"""The decoder loop on a GPU: plain HF generate vs ``decode.generate_batch`` padded, un-padded, and with the static
decoder (static KV cache, decoding step compiled into CUDA graphs), on the same features.

Usage:
    python bench/bench_decode.py --device cuda --dtype float16 --batch_size 64 --clip_seconds 5   # a GPU
    python bench/bench_decode.py --device cpu --model_size tiny --batch_size 4 --batches 1           # a smoke run

A randomly initialised Whisper of ``--model_size`` (the real model's FLOPs; no model files) with end-of-text
suppressed, so that every clip decodes exactly ``--decode_tokens`` tokens, as a real transcript of that length
would; features are random (B, 80, T) clips of ``--clip_seconds``. Plain HF pads them to 30 s, as HF's feature
extractor does; ours runs the encoder on 30 s (padded) or on the clips' length (un-padded). RTFx: audio seconds
per wall second over ``--batches`` batches after warm-up batches (which hold any compilation). The rows say how
many clips decoded the same tokens as plain HF (padded rows) or our eager un-padded decoder (un-padded rows);
random weights in fp16 have near-ties, so a few can flip.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import torch
from transformers import GenerationConfig, WhisperForConditionalGeneration

if __package__ in (None, ""):  # python bench/bench_decode.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.bench_train import whisper_config  # noqa: E402
from egrecho_inner.decode import GenArgs, generate_batch, generate_kwargs  # noqa: E402
from egrecho_inner.unpadded import enable_unpadded_inputs  # noqa: E402


def generation_config(path: Optional[str]) -> GenerationConfig:
    """Whisper's multilingual generation config: from a saved one (a GPU machine without the tokenizer files), or
    built from the tokenizer."""
    if path:
        return GenerationConfig.from_pretrained(path)
    from egrecho_inner.model import whisper_generation_config
    from egrecho_inner.tokenizer import build_whisper_tokenizer

    return whisper_generation_config(build_whisper_tokenizer())


def random_model(size: str, config: GenerationConfig, decode_tokens: int, device: str, dtype: torch.dtype):
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(whisper_config(size))
    model.generation_config = GenerationConfig.from_dict(config.to_dict())
    model.generation_config.suppress_tokens = [model.generation_config.eos_token_id]
    model.generation_config.max_length = decode_tokens
    return model.to(device, dtype).eval()


def rtfx(decode: Callable[[torch.Tensor], torch.Tensor], batches: list[torch.Tensor], warmup: int, seconds: float,
         device: str) -> tuple[float, list[torch.Tensor]]:
    """Audio seconds per wall second of ``decode`` over ``batches`` (after ``warmup`` calls), and its tokens."""
    for i in range(warmup):
        decode(batches[i % len(batches)])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    tokens = [decode(b) for b in batches]
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return seconds * sum(len(b) for b in batches) / (time.perf_counter() - start), tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_size", default="base", choices=["tiny", "base", "small", "medium"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float16", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--clip_seconds", type=float, default=5.0)
    parser.add_argument("--decode_tokens", type=int, default=32)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--generation_config", help="dir of a saved Whisper generation_config.json")
    args = parser.parse_args()
    device, dtype = args.device, getattr(torch, args.dtype)
    model = random_model(args.model_size, generation_config(args.generation_config), args.decode_tokens, device, dtype)
    frames = int(args.clip_seconds * 100) // 2 * 2
    torch.manual_seed(1)
    clips = [torch.randn(args.batch_size, 80, frames, device=device, dtype=dtype) for _ in range(args.batches)]
    padded = [torch.nn.functional.pad(c, (0, 3000 - frames)) for c in clips]
    mask = torch.ones(args.batch_size, frames, dtype=torch.long, device=device)

    def ours(unpadded: bool, static: bool) -> Callable[[torch.Tensor], torch.Tensor]:
        kwargs = generate_kwargs(GenArgs(static_decoder=static), None, device)

        def decode(features: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                return generate_batch(model, features, mask if unpadded else None, unpadded, "en", **kwargs)[0]
        return decode

    def plain_hf(features: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model.generate(features, language="en", task="transcribe")

    results = {"plain HF generate, padded to 30 s": rtfx(plain_hf, padded, args.warmup, args.clip_seconds, device)}
    results["ours, padded"] = rtfx(ours(False, False), padded, args.warmup, args.clip_seconds, device)
    enable_unpadded_inputs(model)  # padded inputs without a mask decode exactly as before
    results["ours, un-padded"] = rtfx(ours(True, False), clips, args.warmup, args.clip_seconds, device)
    results["ours, un-padded, static decoder"] = rtfx(ours(True, True), clips, args.warmup, args.clip_seconds,
                                                      device)
    results["ours, padded, static decoder"] = rtfx(ours(False, True), padded, args.warmup, args.clip_seconds, device)
    name = torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU x{torch.get_num_threads()}"
    print(f"{name} | random-weight whisper-{args.model_size} {args.dtype}, batch {args.batch_size}, "
          f"{args.clip_seconds:g} s clips, {args.decode_tokens} tokens per clip")
    baseline = results["plain HF generate, padded to 30 s"][0]
    rows = []
    for label, (speed, tokens) in results.items():
        reference = results["ours, un-padded" if "un-padded" in label else "plain HF generate, padded to 30 s"]
        last = args.decode_tokens
        same = (torch.cat(tokens)[:, -last:] == torch.cat(reference[1])[:, -last:]).all(1).float().mean()
        rows.append({"decoder": label, "rtfx": round(speed, 1), "vs_plain_hf": round(speed / baseline, 2),
                     "same_tokens_as_eager": round(float(same), 3)})
        print(f"  {label:36s} RTFx {speed:10,.1f}  {speed / baseline:5.2f}x plain HF   "
              f"same tokens as eager: {100 * float(same):.0f}%")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
