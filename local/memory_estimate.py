#!/usr/bin/env python3
"""GPU memory of Whisper fine-tuning, computed (not measured): model states by ZeRO stage and activations
per sample, and the largest batch that fits a 24, 40 and 80 GB card. Prints the memory table of docs/scale.md.

Usage:
    python local/memory_estimate.py [--gpus 8] [--seconds 30] [--output results/memory_estimate.md]

Model states per parameter, bf16 mixed precision with AdamW (the ZeRO paper's accounting): bf16 weights 2 B,
bf16 gradients 2 B, fp32 master weights and two Adam moments 12 B. DDP keeps all 16 B on every GPU; ZeRO-2
splits gradients and optimizer states over the GPUs (2 + 14 / N); ZeRO-3 splits everything (16 / N);
ZeRO-3 with CPU offload keeps them in CPU memory (the GPU holds the layers being computed). LoRA: the frozen
base in fp32 (4 B: nothing casts it to bf16, autocast only computes in bf16) plus 16 B per adapter parameter
(r 32 on q, k, v, out, fc1, fc2).

Activations per sample (Korthikanti et al. 2022, bf16, attention through SDPA so the score matrices are not
kept): 34 * s * h bytes per layer for a sequence of s positions and width h; the encoder runs on 1500
positions for 30 s (padded) or 50 per second un-padded, the decoder on ``--label_tokens`` with cross-attention
to the encoder output, plus the fp32 logits. Gradient checkpointing keeps each layer's input (2 * s * h) and
recomputes one layer at a time. A 2 GB reserve covers the CUDA context, workspace and fragmentation.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from tabulate import tabulate
from transformers import WhisperConfig, WhisperForConditionalGeneration

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install

from egrecho_inner.utils import atomic_path, quiet_library_warnings, source_line  # noqa: E402

MODELS = {  # d_model, encoder layers, decoder layers, heads, mel bins, vocabulary
    "small": (768, 12, 12, 12, 80, 51865),
    "medium": (1024, 24, 24, 16, 80, 51865),
    "large-v3": (1280, 32, 32, 20, 128, 51866),
    "large-v3-turbo": (1280, 32, 4, 20, 128, 51866),
}
GB = 1e9
RESERVE_GB = 2.0
CARDS_GB = (24, 40, 80)


def parameter_counts(d_model: int, enc: int, dec: int, heads: int, mels: int, vocab: int) -> tuple[int, int]:
    """(model parameters, LoRA adapter parameters), counted on the meta device (no memory used)."""
    config = WhisperConfig(d_model=d_model, encoder_layers=enc, decoder_layers=dec, encoder_attention_heads=heads,
                           decoder_attention_heads=heads, encoder_ffn_dim=4 * d_model, decoder_ffn_dim=4 * d_model,
                           num_mel_bins=mels, vocab_size=vocab)
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
        total = sum(p.numel() for p in model.parameters())
        lora = get_peft_model(model, LoraConfig(r=32, target_modules=["q_proj", "k_proj", "v_proj", "out_proj",
                                                                       "fc1", "fc2"]))
        adapter = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    return total, adapter


def activations_gb(d_model: int, enc: int, dec: int, vocab: int, seconds: float, label_tokens: int,
                   checkpointing: bool) -> float:
    """Activation memory of one sample."""
    s = 1500 if seconds >= 30 else int(50 * seconds)
    per_position = 2 if checkpointing else 34
    encoder = enc * per_position * s * d_model + (34 * s * d_model if checkpointing else 0)
    decoder = dec * (per_position * label_tokens * d_model + 2 * 2 * s * d_model)  # + cross-attention keys/values
    logits = 4 * label_tokens * vocab
    return (encoder + decoder + logits) / GB


def rows(gpus: int, seconds: float, label_tokens: int) -> list[list]:
    out = []
    for name, (d, enc, dec, heads, mels, vocab) in MODELS.items():
        total, adapter = parameter_counts(d, enc, dec, heads, mels, vocab)
        setups = {
            "LoRA (fp32 base)": 4 * total + 16 * adapter,
            "full, DDP": 16 * total,
            f"full, ZeRO-2 x{gpus}": 2 * total + 14 * total / gpus,
            f"full, ZeRO-3 x{gpus}": 16 * total / gpus,
            "full, ZeRO-3 + CPU offload": 2 * total / max(enc, 1) * 4,  # a few layers gathered at a time
        }
        act = activations_gb(d, enc, dec, vocab, seconds, label_tokens, checkpointing=False)
        act_ckpt = activations_gb(d, enc, dec, vocab, seconds, label_tokens, checkpointing=True)
        for setup, states in setups.items():
            states_gb = states / GB
            fits = [max(int((card - RESERVE_GB - states_gb) // act), 0) for card in CARDS_GB]
            fits_ckpt = [max(int((card - RESERVE_GB - states_gb) // act_ckpt), 0) for card in CARDS_GB]
            out.append([f"{name} ({total / 1e6:.0f}M)", setup, f"{states_gb:.1f}", f"{act:.2f} / {act_ckpt:.2f}",
                        *(f"{a} / {b}" for a, b in zip(fits, fits_ckpt))])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", type=int, default=8, help="GPUs the ZeRO stages split over")
    parser.add_argument("--seconds", type=float, default=30.0, help="30: padded; less: un-padded clips")
    parser.add_argument("--label_tokens", type=int, default=120, help="decoder positions per sample")
    parser.add_argument("--output", help="also write the table, with this command and the commit, to this file")
    args = parser.parse_args()
    quiet_library_warnings()
    headers = ["model", "setup", "model states GB", "activations GB/sample (plain / checkpointed)",
               *(f"samples per {card} GB card (plain / checkpointed)" for card in CARDS_GB)]
    table = tabulate(rows(args.gpus, args.seconds, args.label_tokens), headers=headers, tablefmt="github")
    print(table)
    if args.output:  # the results file docs/scale.md's table is copied from (local/render_docs.py)
        command = shlex.join(["python", "local/memory_estimate.py", *sys.argv[1:]])
        with atomic_path(args.output) as tmp:
            tmp.write_text(f"# GPU memory of Whisper fine-tuning, computed\n\n{source_line(command)}\n\n{table}\n",
                           encoding="utf-8")


if __name__ == "__main__":
    main()
