#!/usr/bin/env python3
"""Training throughput of Whisper: samples/s (and model-FLOPs utilisation on a GPU).

Usage:
    python bench/bench_train.py --model_size tiny --batch_size 4 --steps 5          # this CPU
    python bench/bench_train.py --model_size small --dtype bf16 --batch_size 32       # a GPU (see bench/gpu.sh)
    python bench/bench_train.py --model_path pretrained/whisper-small --lora true

Models are randomly initialised from OpenAI's sizes (no download; the same FLOPs as the released
weights). Each step is a full 30 s input batch ``(B, n_mels, 3000)`` with ``--label_tokens`` labels,
forward + backward + AdamW step (fused on a GPU), as the recipe trains; ``--unpadded_seconds 5`` feeds 5 s
inputs to the un-padded model instead. FLOPs and MFU count the input actually fed (30 s, or the un-padded
length). Attention runs through PyTorch's SDPA (transformers' default); ``--compile true`` adds torch.compile.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional

import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

if __package__ in (None, ""):  # python bench/bench_train.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import Row  # noqa: E402

SIZES = {  # d_model, layers (encoder = decoder), heads, as released by OpenAI
    "tiny": (384, 4, 6), "base": (512, 6, 8), "small": (768, 12, 12), "medium": (1024, 24, 16),
}
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense tensor-core peaks


def whisper_config(size: str) -> WhisperConfig:
    d, layers, heads = SIZES[size]
    return WhisperConfig(d_model=d, encoder_layers=layers, decoder_layers=layers, encoder_attention_heads=heads,
                         decoder_attention_heads=heads, encoder_ffn_dim=4 * d, decoder_ffn_dim=4 * d, vocab_size=51865)


def train_flops_per_sample(config: WhisperConfig, label_tokens: int, frames: Optional[int] = None) -> float:
    """Matmul FLOPs of one training sample (forward x 3) of ``frames`` mel frames (default: 30 s), e.g. 1.21e12
    for whisper-small with 50 labels at 30 s."""
    frames = frames or 2 * config.max_source_positions
    d, n_mels, vocab = config.d_model, config.num_mel_bins, config.vocab_size
    t, L = frames // 2, label_tokens
    convs = 2 * frames * n_mels * 3 * d + 2 * t * d * 3 * d
    encoder = config.encoder_layers * (24 * d * d * t + 4 * t * t * d)
    decoder_layer = 28 * d * d * L + 4 * t * d * d + 4 * L * L * d + 4 * L * t * d
    decoder = config.decoder_layers * decoder_layer + 2 * L * d * vocab
    return 3.0 * (convs + encoder + decoder)


def measure(model_size: str = "tiny", model_path: Optional[str] = None, batch_size: int = 4, steps: int = 5,
            warmup: int = 2, label_tokens: int = 50, dtype: str = "fp32", device: str = "cpu", lora: bool = False,
            gradient_checkpointing: bool = False, unpadded_seconds: float = 0.0,
            compile: bool = False, lora_dropout: float = 0.05, lora_cast_input: bool = True,
            profile: int = 0) -> tuple[float, str]:
    """Training samples/s of one setting, and a line describing it (device, MFU on a known GPU). LoRA is the
    recipe's (r 32, alpha 64, dropout 0.05 on every attention and MLP linear); ``lora_cast_input`` false stops
    peft casting each adapter's input to the adapter's fp32 under autocast. ``profile`` > 0: print the kernels
    that took most device time over that many extra steps."""
    torch.manual_seed(0)
    if model_path:
        model = WhisperForConditionalGeneration.from_pretrained(model_path)
    else:
        model = WhisperForConditionalGeneration(whisper_config(model_size))
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=32, lora_alpha=64, lora_dropout=lora_dropout, target_modules=[
            "q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]))
        if not lora_cast_input:
            for module in model.modules():
                if hasattr(module, "cast_input_dtype_enabled"):
                    module.cast_input_dtype_enabled = False
        if gradient_checkpointing:
            model.enable_input_require_grads()
    frames = 2 * model.config.max_source_positions
    if unpadded_seconds > 0:
        from egrecho_inner.unpadded import enable_unpadded_inputs

        enable_unpadded_inputs(model)
        frames = int(unpadded_seconds * 100) // 2 * 2
    model.to(device).train()
    config = model.config
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5,
                                  fused=device.startswith("cuda"))
    forward = torch.compile(model) if compile else model
    features = torch.randn(batch_size, config.num_mel_bins, frames, device=device)
    mask = {"attention_mask": torch.ones(batch_size, frames, dtype=torch.long, device=device)} if unpadded_seconds > 0 else {}
    labels = torch.randint(0, 50257, (batch_size, label_tokens), device=device)
    autocast = torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=dtype == "bf16")

    def step() -> None:
        with autocast:
            loss = forward(input_features=features, labels=labels, **mask).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    samples_per_s = batch_size * steps / (time.perf_counter() - start)
    if profile:
        print_top_kernels(step, profile, device)

    name = torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU x{torch.get_num_threads()} threads"
    flops = train_flops_per_sample(config, label_tokens, frames)
    inputs = f"{unpadded_seconds:g} s un-padded" if unpadded_seconds > 0 else "30 s padded"
    inputs += ", compiled" if compile else ""
    if lora:
        inputs += f", LoRA dropout {lora_dropout:g}" + ("" if lora_cast_input else ", no input cast")
    line = (f"{name} | whisper-{model_path or model_size} {dtype} lora={str(lora).lower()} batch {batch_size} "
            f"{inputs}: {samples_per_s:.2f} samples/s, {flops / 1e12:.2f} TFLOP/sample, "
            f"{samples_per_s * flops / 1e12:.1f} TFLOP/s achieved")
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    if peak and dtype == "bf16":
        line += f", MFU {100 * samples_per_s * flops / 1e12 / peak:.1f}% of {peak:.0f} TFLOP/s bf16"
    return samples_per_s, line


def print_top_kernels(step, steps: int, device: str, top: int = 12) -> None:
    """The operators that took most time over ``steps`` more training steps (device time on a GPU)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if device.startswith("cuda") else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=top, max_name_column_width=60))


def run(model_size: str = "base", batch_size: int = 8, clip_seconds: float = 5.0, steps: int = 2,
        warmup: int = 1, threads: int = 2) -> list[Row]:
    """Un-padded vs padded (Whisper's and the HF examples' default) training on short clips, this CPU."""
    torch.set_num_threads(threads)
    padded, line_padded = measure(model_size, batch_size=batch_size, steps=steps, warmup=warmup)
    unpadded, line_unpadded = measure(model_size, batch_size=batch_size, steps=steps, warmup=warmup,
                                      unpadded_seconds=clip_seconds)
    print(line_padded, line_unpadded, sep="\n")
    return [Row(f"training whisper-{model_size}, {clip_seconds:g} s clips, batch {batch_size}, fp32, {threads} threads",
                "samples/s",
                unpadded, padded, "padded to 30 s, the default")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--model_path", help="a local model dir instead of a random model")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--label_tokens", type=int, default=50)
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--lora", choices=["true", "false"], default="false")
    parser.add_argument("--gradient_checkpointing", choices=["true", "false"], default="false")
    parser.add_argument("--unpadded_seconds", type=float, default=0.0,
                        help="> 0: un-padded inputs of this length (egrecho_inner/unpadded.py) instead of 30 s")
    parser.add_argument("--compile", choices=["true", "false"], default="false", help="torch.compile the model")
    parser.add_argument("--lora_dropout", type=float, default=0.05, help="the recipe's default")
    parser.add_argument("--lora_cast_input", choices=["true", "false"], default="true",
                        help="false: peft does not cast adapter inputs to fp32 under autocast")
    parser.add_argument("--profile", type=int, default=0, help="> 0: print the top operators over this many steps")
    args = parser.parse_args()
    _, line = measure(args.model_size, args.model_path, args.batch_size, args.steps, args.warmup, args.label_tokens,
                      args.dtype, args.device, args.lora == "true", args.gradient_checkpointing == "true",
                      args.unpadded_seconds, args.compile == "true", args.lora_dropout, args.lora_cast_input == "true",
                      args.profile)
    print(line)


if __name__ == "__main__":
    main()
