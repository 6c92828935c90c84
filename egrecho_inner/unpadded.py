"""Un-padded Whisper: let the encoder take inputs shorter than 30 s, with padding masked out.

Whisper pads every input to 3000 frames, so a 5 s clip costs six times the encoder work it needs.
``enable_unpadded_inputs(model)`` adapts one model instance (no installed code is edited):

* ``WhisperModel.forward`` keeps the frame-level ``attention_mask`` ``(B, T)`` of the batch (HF drops it)
  for the duration of that call only;
* the encoder accepts any even ``T <= 3000``, adds the first ``T/2`` positional embeddings, zeroes padded
  frames (so a cut's convolutions see what they would see alone) and masks padded positions as keys
  in self-attention;
* each decoder layer masks the same positions in cross-attention.

Batches then only need padding to their longest cut (see ``WhisperDataset(unpadded=True)``). Decoding
runs the encoder on that length and hands its output to ``generate`` (``egrecho_inner.decode``), which
passes the mask to every decoder step. With the option off nothing is touched and the model is exactly
Whisper.

A model trained this way records it in its generation config (``UNPADDED_KEY``), which travels with
checkpoints, LoRA adapters, merged models and exports; decoding reads it from there.
"""

from __future__ import annotations

import contextlib
import logging
import types
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutput

from egrecho_inner.errors import InputError

log = logging.getLogger(__name__)

CONV_STRIDE = 2  # conv2 halves the frame rate: 3000 frames -> 1500 positions
UNPADDED_KEY = "remove_whisper_encoder_input_length_restriction"  # generation config key and option name


@dataclass
class _MaskHolder:
    frames: Optional[torch.Tensor] = None  # (B, T) 1 = real frame; set only while one forward call runs
    cross: Optional[torch.Tensor] = None  # their key mask, built once for a whole generate call (frame_mask)

    @contextlib.contextmanager
    def holding(self, frames: Optional[torch.Tensor]):
        """Keep ``frames`` for the calls inside the block (a no-op when None or already held)."""
        if frames is None or self.frames is not None:
            yield
            return
        self.frames = frames
        try:
            yield
        finally:
            self.frames = self.cross = None

    def key_mask(self, num_positions: int, dtype: torch.dtype) -> Optional[torch.Tensor]:
        """The held frames' key mask (None when nothing is held): the one built for the block when it fits,
        else built now."""
        if self.frames is None:
            return None
        cross = self.cross
        if cross is not None and cross.shape[-1] == num_positions and cross.dtype == dtype:
            return cross
        return key_mask(self.frames, num_positions, dtype)


def key_mask(frames: torch.Tensor, num_positions: int, dtype: torch.dtype) -> torch.Tensor:
    """Additive mask ``(B, 1, 1, P)`` of frame mask ``(B, T)``: 0 where positions hold audio, the dtype's
    minimum for padding."""
    keep = frames[:, ::CONV_STRIDE][:, :num_positions].bool()
    keep = nn.functional.pad(keep, (0, num_positions - keep.shape[1]))  # generate() re-padded to 30 s
    mask = torch.zeros(keep.shape, dtype=dtype, device=keep.device)
    return mask.masked_fill(~keep, torch.finfo(dtype).min)[:, None, None, :]


def _encoder_forward(self, input_features, attention_mask=None, **kwargs):
    holder: _MaskHolder = self._unpadded_masks
    if input_features.shape[-1] % CONV_STRIDE or input_features.shape[-1] > self.config.max_source_positions * CONV_STRIDE:
        raise InputError(f"un-padded Whisper takes an even number of frames up to 3000, got {input_features.shape[-1]}")
    with holder.holding(attention_mask):
        frames = holder.frames
        mask = None
        if frames is not None:
            # generate() may pad inputs back to 3000 frames with zeros: those frames are padding too
            frames = nn.functional.pad(frames, (0, input_features.shape[-1] - frames.shape[-1]))
            input_features = input_features * frames[:, None, :].to(input_features.dtype)
        x = nn.functional.gelu(self.conv1(input_features))
        x = nn.functional.gelu(self.conv2(x)).permute(0, 2, 1)  # (B, P, d)
        x = x + self.embed_positions.weight[: x.shape[1]]
        x = nn.functional.dropout(x, p=self.dropout, training=self.training)
        if frames is not None:
            mask = key_mask(frames, x.shape[1], x.dtype)
        for layer in self.layers:
            if self.training and self.layerdrop > 0.0 and torch.rand([]) < self.layerdrop:
                continue
            x = layer(x, mask, **kwargs)
    return BaseModelOutput(last_hidden_state=self.layer_norm(x))


def _wrap_model_forward(whisper_model, holder: _MaskHolder):
    original = whisper_model.forward

    def forward(*args, attention_mask=None, **kwargs):
        with holder.holding(attention_mask):
            return original(*args, attention_mask=attention_mask, **kwargs)

    whisper_model.forward = forward


def _wrap_decoder_layer(layer, holder: _MaskHolder):
    original = layer.forward

    def forward(hidden_states, *args, encoder_attention_mask=None, **kwargs):
        encoder_hidden_states = args[1] if len(args) > 1 else kwargs.get("encoder_hidden_states")
        if encoder_attention_mask is None and encoder_hidden_states is not None:
            encoder_attention_mask = holder.key_mask(encoder_hidden_states.shape[1], hidden_states.dtype)
            if encoder_attention_mask is not None and encoder_attention_mask.shape[0] != hidden_states.shape[0]:
                # generate() expands the batch (beams, ...) after the encoder ran
                repeat = hidden_states.shape[0] // encoder_attention_mask.shape[0]
                encoder_attention_mask = encoder_attention_mask.repeat_interleave(repeat, dim=0)
        return original(hidden_states, *args, encoder_attention_mask=encoder_attention_mask, **kwargs)

    layer.forward = forward


def _whisper(model):
    """The ``WhisperForConditionalGeneration`` inside a PEFT wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def enable_unpadded_inputs(model) -> None:
    """Adapt a ``WhisperForConditionalGeneration`` (or a PEFT/DDP wrapper's inner model) in place."""
    base = _whisper(model)
    whisper = base.model  # WhisperModel
    if getattr(whisper.encoder, "_unpadded_masks", None) is not None:
        return
    holder = _MaskHolder()
    whisper.encoder._unpadded_masks = holder
    whisper.encoder.forward = types.MethodType(_encoder_forward, whisper.encoder)
    _wrap_model_forward(whisper, holder)
    for layer in whisper.decoder.layers:
        _wrap_decoder_layer(layer, holder)


@contextlib.contextmanager
def frame_mask(model, attention_mask: torch.Tensor, dtype: Optional[torch.dtype] = None):
    """Within the block, every encoder and decoder call of an adapted model masks the padding of
    ``attention_mask`` ``(B, T)`` (rows repeated for beams), also calls that get no mask themselves
    (e.g. ``generate``'s language detection). ``dtype``: the decoder's; its cross-attention mask is then
    built once here instead of at every decoding step."""
    holder = _whisper(model).model.encoder._unpadded_masks
    with holder.holding(attention_mask):
        if dtype is not None and holder.frames is attention_mask:
            holder.cross = key_mask(attention_mask, attention_mask.shape[-1] // CONV_STRIDE, dtype)
        yield


def mark_trained_unpadded(model, unpadded: bool) -> None:
    """Record in the model's generation config whether it is being trained on un-padded inputs; the
    config is saved with every checkpoint, adapter and merged model, and read back when decoding."""
    setattr(_whisper(model).generation_config, UNPADDED_KEY, unpadded)


def trained_unpadded(generation_config) -> bool:
    """Whether a model was trained un-padded, from its generation config (object or dict)."""
    if isinstance(generation_config, dict):
        return bool(generation_config.get(UNPADDED_KEY, False))
    return bool(getattr(generation_config, UNPADDED_KEY, False))


def resolve_unpadded(generation_config, requested: Optional[bool], model_path: str) -> bool:
    """How to decode: as the model was trained (``requested`` None), or as asked, warning on a mismatch."""
    trained = trained_unpadded(generation_config)
    if requested is None:
        return trained
    if requested != trained:
        how = "un-padded" if trained else "padded to 30 s"
        log.warning("%s was trained on inputs %s; decoding it %s as asked (%s: %s)", model_path, how,
                    "un-padded" if requested else "padded", UNPADDED_KEY, str(requested).lower())
    return requested
