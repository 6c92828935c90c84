"""A forgetting guard for LoRA fine-tuning: on cuts of other languages and voices, train the model towards
what the base model predicts, not towards a transcript.

For cuts marked ``kl_to_base`` (``DataArgs.kl_to_base``) the loss is KL(base || fine-tune) of the
next-token distributions at every label position, the base being the same LoRA model with its adapters
disabled (peft's ``disable_adapter()``: no second model in memory, one extra forward without gradients
for those rows). The labels only give the token sequence both are compared on, so a cut with no transcript
still contributes (its prompt tokens and end of text); a pseudo-label gives more positions. Other cuts get
Whisper's cross-entropy. Both are summed over tokens and divided by the batch's label tokens, so a batch
without marked cuts has exactly Whisper's own loss.

The base sees its rows as Whisper was trained to see them, padded to 30 s with no frame mask, even when the
fine-tune trains un-padded: an original Whisper fed un-padded audio rarely ends its transcript (it never saw
audio end before the window did), and a first version that compared the two on un-padded input taught the
fine-tune exactly that: it looped on every language but the trained one (English WER 6.8% -> 366%).

At LoRA's initialisation (B = 0) the two models are the same function: on padded batches the KL is exactly 0
and grows only as the adapter moves the model; on un-padded ones it starts at the gap between the model's
un-padded and padded predictions, which the adapter learns to close on those cuts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from egrecho_inner.constants import IGNORE_INDEX
from egrecho_inner.features import pad_batch
from egrecho_inner.unpadded import CONV_STRIDE


def as_whisper_input(inputs: dict, num_frames: int) -> dict:
    """An un-padded batch (``attention_mask`` holds its frame mask) as Whisper's own input: each row padded to
    ``num_frames`` the way HF pads audio (:func:`features.pad_batch`), no mask.
    A padded batch is returned as it is."""
    frames = inputs.get("attention_mask")
    if frames is None:
        return inputs
    feats = inputs["input_features"]  # (R, n_mels, T)
    real = [f[:, :n].T for f, n in zip(feats, frames.sum(dim=1).tolist())]  # (T_i, n_mels) each
    padded = pad_batch(real, num_frames).to(feats.device, feats.dtype)
    return {**{k: v for k, v in inputs.items() if k != "attention_mask"}, "input_features": padded}


def base_logits(peft_model, inputs: dict, rows: torch.Tensor) -> torch.Tensor:
    """Logits of the base model (adapters off, no gradients, Whisper's 30 s input) for the batch rows
    ``rows``: ``(R, L, V)``."""
    batch_size = inputs["labels"].shape[0]
    picked = {k: v[rows] if torch.is_tensor(v) and v.dim() and v.shape[0] == batch_size else v
              for k, v in inputs.items()}
    num_frames = CONV_STRIDE * peft_model.get_base_model().config.max_source_positions  # 3000
    with torch.no_grad(), peft_model.disable_adapter():
        return peft_model(**as_whisper_input(picked, num_frames)).logits


def guarded_loss(logits: torch.Tensor, labels: torch.Tensor, kl_rows: torch.Tensor,
                 teacher_logits: torch.Tensor, kl_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy on unmarked rows plus ``kl_weight`` x KL(teacher || model) on ``kl_rows``, per label token.

    Args:
        logits: the fine-tuned model's ``(B, L, V)``.
        labels: ``(B, L)``, IGNORE_INDEX where padded.
        kl_rows: ``(B,)`` bool, the rows trained towards the teacher.
        teacher_logits: ``(R, L, V)`` for the ``R`` rows of ``kl_rows``, in order.

    Returns:
        the loss, and the mean KL per token over the marked rows (for logging).
    """
    valid = labels != IGNORE_INDEX  # (B, L)
    log_probs = F.log_softmax(logits.float(), dim=-1)
    token_ce = -log_probs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (B, L)
    teacher = F.log_softmax(teacher_logits.float(), dim=-1)
    token_kl = (teacher.exp() * (teacher - log_probs[kl_rows])).sum(-1)  # (R, L)
    ce_sum = (token_ce * (valid & ~kl_rows.unsqueeze(1))).sum()
    kl_valid = valid[kl_rows]
    kl_sum = (token_kl * kl_valid).sum()
    loss = (ce_sum + kl_weight * kl_sum) / valid.sum().clamp(min=1)
    return loss, kl_sum.detach() / kl_valid.sum().clamp(min=1)

