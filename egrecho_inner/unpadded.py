"""Un-padded Whisper: let the encoder take inputs shorter than 30 s, with padding masked out.

Whisper pads every input to 3000 frames, so a 5 s clip costs six times the encoder work it needs.
``enable_unpadded_inputs(model)`` adapts one model instance (no installed code is edited):

* ``WhisperModel.forward`` keeps the frame-level ``attention_mask`` ``(B, T)`` of the batch (HF drops it);
* the encoder accepts any even ``T <= 3000``, adds the first ``T/2`` positional embeddings, zeroes padded
  frames (so a cut's convolutions see what they would see alone) and masks padded positions as keys
  in self-attention;
* each decoder layer masks the same positions in cross-attention.

Batches then only need padding to their longest cut (see ``WhisperDataset(unpadded=True)``). The masks
are kept on a small holder between the encoder and decoder calls of one forward (or one ``generate``).
HF's ``generate`` pads its input back to 3000 frames, so decoding keeps the masking (the model sees
what it was trained on) but not the encoder saving; training gets both. With the option off nothing is
touched and the model is exactly Whisper.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutput

CONV_STRIDE = 2  # conv2 halves the frame rate: 3000 frames -> 1500 positions


@dataclass
class _MaskHolder:
    frames: Optional[torch.Tensor] = None  # (B, T) 1 = real frame

    def key_mask(self, num_positions: int, dtype: torch.dtype) -> Optional[torch.Tensor]:
        """Additive mask ``(B, 1, 1, P)``: 0 for positions holding audio, the dtype's minimum for padding."""
        if self.frames is None:
            return None
        keep = self.frames[:, ::CONV_STRIDE][:, :num_positions].bool()
        keep = nn.functional.pad(keep, (0, num_positions - keep.shape[1]))  # generate() re-padded to 30 s
        mask = torch.zeros(keep.shape, dtype=dtype, device=keep.device)
        return mask.masked_fill(~keep, torch.finfo(dtype).min)[:, None, None, :]


def _encoder_forward(self, input_features, attention_mask=None, **kwargs):
    holder: _MaskHolder = self._unpadded_masks
    if attention_mask is not None:
        holder.frames = attention_mask
    if input_features.shape[-1] % CONV_STRIDE or input_features.shape[-1] > self.config.max_source_positions * CONV_STRIDE:
        raise ValueError(f"un-padded Whisper takes an even number of frames up to 3000, got {input_features.shape[-1]}")
    if holder.frames is not None:
        # generate() pads inputs back to 3000 frames with zeros: those frames are padding too
        holder.frames = nn.functional.pad(holder.frames, (0, input_features.shape[-1] - holder.frames.shape[-1]))
        input_features = input_features * holder.frames[:, None, :].to(input_features.dtype)
    x = nn.functional.gelu(self.conv1(input_features))
    x = nn.functional.gelu(self.conv2(x)).permute(0, 2, 1)  # (B, P, d)
    x = x + self.embed_positions.weight[: x.shape[1]]
    x = nn.functional.dropout(x, p=self.dropout, training=self.training)
    mask = holder.key_mask(x.shape[1], x.dtype)
    for layer in self.layers:
        if self.training and self.layerdrop > 0.0 and torch.rand([]) < self.layerdrop:
            continue
        x = layer(x, mask, **kwargs)
    return BaseModelOutput(last_hidden_state=self.layer_norm(x))


def _wrap_model_forward(whisper_model, holder: _MaskHolder):
    original = whisper_model.forward

    def forward(*args, attention_mask=None, **kwargs):
        if attention_mask is not None:
            holder.frames = attention_mask
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


def enable_unpadded_inputs(model) -> None:
    """Adapt a ``WhisperForConditionalGeneration`` (or a PEFT/DDP wrapper's inner model) in place."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    whisper = base.model  # WhisperModel
    if getattr(whisper.encoder, "_unpadded_masks", None) is not None:
        return
    holder = _MaskHolder()
    whisper.encoder._unpadded_masks = holder
    whisper.encoder.forward = types.MethodType(_encoder_forward, whisper.encoder)
    _wrap_model_forward(whisper, holder)
    for layer in whisper.decoder.layers:
        _wrap_decoder_layer(layer, holder)
