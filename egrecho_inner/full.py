#!/usr/bin/env python3
"""Full-parameter fine-tuning of Whisper on lhotse cuts.

Usage:
    accelerate launch egrecho_inner/full.py -c config/full.yaml \
        --base_model pretrained/whisper-small --output_dir exp/whisper-small/full
    python egrecho_inner/full.py -c config/full.yaml --freeze_encoder true --print_config
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script (accelerate launch egrecho_inner/full.py)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from egrecho_inner.trainer import TrainArgs, main_cli

log = logging.getLogger(__name__)


@dataclass
class FullArgs(TrainArgs):
    """Training options plus full fine-tuning's own."""

    output_dir: str = "exp/whisper-small/full"
    learning_rate: float = 1e-5
    """full fine-tuning takes a far smaller rate than an adapter"""
    freeze_encoder: bool = False
    """train the decoder only (the encoder's weights stay as they are)"""


def prepare_model(model, args: FullArgs, total_steps: int) -> tuple:
    """Optionally freeze the encoder; every other weight trains. Returns the model and no callbacks."""
    if args.freeze_encoder:
        model.freeze_encoder()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("full fine-tune: %s of %s parameters train", f"{trainable:,}", f"{model.num_parameters():,}")
    return model, []


if __name__ == "__main__":
    main_cli(FullArgs, prepare_model, __doc__)
