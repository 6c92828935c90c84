#!/usr/bin/env python3
"""Training throughput of Whisper: samples/s (and model-FLOPs utilisation on a GPU).

Usage:
    python bench/bench_train.py --model_size tiny --batch_size 4 --steps 5          # this CPU
    python bench/bench_train.py --model_size small --dtype bf16 --batch_size 32       # a GPU (see bench/gpu.sh)
    python bench/bench_train.py --model_path pretrained/whisper-small --lora true

Models are randomly initialised from OpenAI's sizes (no download; the same FLOPs as the released
weights). Each step is a full 30 s input batch ``(B, n_mels, 3000)`` with ``--label_tokens`` labels,
forward + backward + AdamW step, as the recipe trains; ``--unpadded_seconds 5`` feeds 5 s inputs to the
un-padded model instead. FLOPs and MFU are those of the 30 s input.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for --unpadded_seconds

SIZES = {  # d_model, layers (encoder = decoder), heads, as released by OpenAI
    "tiny": (384, 4, 6), "base": (512, 6, 8), "small": (768, 12, 12), "medium": (1024, 24, 16),
}
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense tensor-core peaks


def whisper_config(size: str) -> WhisperConfig:
    d, layers, heads = SIZES[size]
    return WhisperConfig(d_model=d, encoder_layers=layers, decoder_layers=layers, encoder_attention_heads=heads,
                         decoder_attention_heads=heads, encoder_ffn_dim=4 * d, decoder_ffn_dim=4 * d, vocab_size=51865)


def train_flops_per_sample(config: WhisperConfig, label_tokens: int) -> float:
    """Matmul FLOPs of one training sample (forward x 3), e.g. 1.21e12 for whisper-small with 50 labels."""
    d, n_mels, frames, vocab = config.d_model, config.num_mel_bins, 2 * config.max_source_positions, config.vocab_size
    t, L = config.max_source_positions, label_tokens
    convs = 2 * frames * n_mels * 3 * d + 2 * t * d * 3 * d
    encoder = config.encoder_layers * (24 * d * d * t + 4 * t * t * d)
    decoder_layer = 28 * d * d * L + 4 * t * d * d + 4 * L * L * d + 4 * L * t * d
    decoder = config.decoder_layers * decoder_layer + 2 * L * d * vocab
    return 3.0 * (convs + encoder + decoder)


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
    args = parser.parse_args()

    torch.manual_seed(0)
    if args.model_path:
        model = WhisperForConditionalGeneration.from_pretrained(args.model_path)
    else:
        model = WhisperForConditionalGeneration(whisper_config(args.model_size))
    if args.gradient_checkpointing == "true":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if args.lora == "true":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=32, lora_alpha=64, target_modules=[
            "q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]))
        if args.gradient_checkpointing == "true":
            model.enable_input_require_grads()
    frames = 2 * model.config.max_source_positions
    if args.unpadded_seconds > 0:
        from egrecho_inner.unpadded import enable_unpadded_inputs

        enable_unpadded_inputs(model)
        frames = int(args.unpadded_seconds * 100) // 2 * 2
    model.to(args.device).train()
    config = model.config
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    features = torch.randn(args.batch_size, config.num_mel_bins, frames, device=args.device)
    mask = {"attention_mask": torch.ones(args.batch_size, frames, dtype=torch.long, device=args.device)} if args.unpadded_seconds > 0 else {}
    labels = torch.randint(0, 50257, (args.batch_size, args.label_tokens), device=args.device)
    autocast = torch.autocast(args.device.split(":")[0], dtype=torch.bfloat16, enabled=args.dtype == "bf16")

    def step() -> None:
        with autocast:
            loss = model(input_features=features, labels=labels, **mask).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    samples_per_s = args.batch_size * args.steps / elapsed

    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU x{torch.get_num_threads()} threads"
    flops = train_flops_per_sample(config, args.label_tokens)
    inputs = f"{args.unpadded_seconds:g} s un-padded" if args.unpadded_seconds > 0 else "30 s padded"
    line = (f"{name} | whisper-{args.model_size if not args.model_path else args.model_path} {args.dtype} "
            f"lora={args.lora} batch {args.batch_size} {inputs}: {samples_per_s:.2f} samples/s, "
            f"{flops / 1e12:.2f} TFLOP/sample, {samples_per_s * flops / 1e12:.1f} TFLOP/s achieved")
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    if peak and args.dtype == "bf16":
        line += f", MFU {100 * samples_per_s * flops / 1e12 / peak:.1f}% of {peak:.0f} TFLOP/s bf16"
    print(line)


if __name__ == "__main__":
    main()
