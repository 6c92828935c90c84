"""``egrecho export-onnx``: write a Whisper as ONNX graphs for onnxruntime.

Three graphs, named as Hugging Face Optimum names them so existing runtimes recognise them:

- ``encoder_model.onnx``: ``input_features (B, n_mels, 3000)`` -> ``last_hidden_state (B, 1500, d)``; a model
  trained un-padded (``egrecho_inner.unpadded``) takes any even number of frames ``T <= 3000`` -> ``T/2``
- ``decoder_model.onnx``: first step: ``input_ids, encoder_hidden_states`` -> ``logits`` and the
  ``present.{i}.{decoder,encoder}.{key,value}`` cache (self- and cross-attention, per layer)
- ``decoder_with_past_model.onnx``: later steps: ``input_ids`` and ``past_key_values.{i}.*`` ->
  ``logits`` and ``present.{i}.decoder.{key,value}`` (cross-attention keys are reused as given)

Cache tensors are ``(B, heads, T, head_dim)``. The processor and generation config are copied beside.
"""

from __future__ import annotations

import logging
import warnings

import torch
from torch import nn
from transformers import WhisperForConditionalGeneration
from transformers.cache_utils import EncoderDecoderCache

from egrecho_inner.constants import N_FRAMES
from egrecho_inner.model import load_whisper, resolve_full_model, save_processor
from egrecho_inner.unpadded import enable_unpadded_inputs, trained_unpadded
from egrecho_inner.utils import atomic_path

log = logging.getLogger(__name__)

ENCODER_FILE = "encoder_model.onnx"
DECODER_FILE = "decoder_model.onnx"
DECODER_WITH_PAST_FILE = "decoder_with_past_model.onnx"
CACHE_KINDS = ("decoder.key", "decoder.value", "encoder.key", "encoder.value")


def cache_names(prefix: str, num_layers: int, kinds=CACHE_KINDS) -> list[str]:
    """``prefix.{layer}.{kind}`` for every layer, layer-major (the order the graphs use)."""
    return [f"{prefix}.{i}.{kind}" for i in range(num_layers) for kind in kinds]


class _Encoder(nn.Module):
    def __init__(self, model: WhisperForConditionalGeneration):
        super().__init__()
        self.encoder = model.get_encoder()

    def forward(self, input_features):
        return self.encoder(input_features).last_hidden_state


class _Decoder(nn.Module):
    """Decoder step returning logits and the flattened cache; ``with_past`` takes a cache as input."""

    def __init__(self, model: WhisperForConditionalGeneration, with_past: bool):
        super().__init__()
        self.decoder = model.get_decoder()
        self.proj_out = model.proj_out
        self.with_past = with_past

    def forward(self, input_ids, *tensors):
        if self.with_past:
            layers = [tensors[i : i + 4] for i in range(0, len(tensors), 4)]
            # cross-attention reads its keys/values from the cache; any non-None encoder_hidden_states
            # switches it on, so pass a cache tensor (not read, not an input of the graph)
            out = self.decoder(input_ids=input_ids, encoder_hidden_states=tensors[2],
                               cache=EncoderDecoderCache(layers), use_cache=True)
        else:
            out = self.decoder(input_ids=input_ids, encoder_hidden_states=tensors[0], use_cache=True)
        cache = out.cache
        flat = []
        for i in range(len(cache.self_attention_cache.layers)):
            self_layer = cache.self_attention_cache.layers[i]
            flat += [self_layer.keys, self_layer.values]
            if not self.with_past:
                cross_layer = cache.cross_attention_cache.layers[i]
                flat += [cross_layer.keys, cross_layer.values]
        return (self.proj_out(out.last_hidden_state), *flat)


def export_onnx(model_path: str, output_dir: str, opset: int = 18, local_files_only: bool = True) -> str:
    """Export a Whisper dir (full fine-tune or merged LoRA) to ONNX with its processor files.

    The encoder and the decoder with key/value cache run in onnxruntime (``egrecho transcribe --engine onnx``).

    Args:
        model_path: the model dir (with its processor files).
        output_dir: where the ONNX dir goes.
        opset: ONNX opset version.
        local_files_only: a hub id is looked up in the Hugging Face cache only (false: downloaded if missing).
    """
    model_path = resolve_full_model(model_path, local_files_only)
    model, processor = load_whisper(model_path)
    model = model.float().eval()
    unpadded = trained_unpadded(model.generation_config)
    if unpadded:  # one utterance at a time at its own length: no padding, so no mask needed
        enable_unpadded_inputs(model)
    layers = model.config.decoder_layers
    # example inputs: batch 2, 3 prompt tokens (and, un-padded, 1000 frames), so no size becomes a constant
    features = torch.randn(2, model.config.num_mel_bins, 1000 if unpadded else N_FRAMES)
    ids = torch.full((2, 3), model.config.decoder_start_token_id, dtype=torch.long)
    with torch.no_grad():
        hidden = model.get_encoder()(features).last_hidden_state
        past = _Decoder(model, with_past=False)(ids, hidden)[1:]

    b, t, p, e = "batch_size", "decoder_sequence_length", "past_sequence_length", "encoder_sequence_length"
    frames = {0: b, 2: "frames"} if unpadded else {0: b}
    present, present_self = cache_names("present", layers), cache_names("present", layers, CACHE_KINDS[:2])
    past_names = cache_names("past_key_values", layers)
    jobs = [  # module, example inputs, file, input names, output names, dynamic axes
        (_Encoder(model), (features,), ENCODER_FILE, ["input_features"], ["last_hidden_state"],
         {"input_features": frames, "last_hidden_state": {0: b, 1: e}}),
        (_Decoder(model, False), (ids, hidden), DECODER_FILE, ["input_ids", "encoder_hidden_states"],
         ["logits", *present],
         {"input_ids": {0: b, 1: t}, "encoder_hidden_states": {0: b, 1: e}, "logits": {0: b, 1: t},
          **{n: {0: b, 2: t} if ".decoder." in n else {0: b, 2: e} for n in present}}),
        (_Decoder(model, True), (ids[:, :1], *past), DECODER_WITH_PAST_FILE, ["input_ids", *past_names],
         ["logits", *present_self],
         {"input_ids": {0: b}, "logits": {0: b}, **{n: {0: b, 2: f"{p} + 1"} for n in present_self},
          **{n: {0: b, 2: p} if ".decoder." in n else {0: b, 2: e} for n in past_names}}),
    ]
    # TorchScript exporter: torch.export (dynamo=True) silently fixes the cache length of transformers'
    # Whisper decoder to the example's, so a with-past graph from it fails at the next step.
    # Its deprecation notices and the tracer's warnings (shape tests in transformers' code) are muted
    # here only: the tests check the graphs against transformers.
    with atomic_path(output_dir) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        tmp.mkdir()
        for module, args, name, inputs, outputs, axes in jobs:
            log.info("exporting %s", name)
            torch.onnx.export(module, args, str(tmp / name), input_names=inputs, output_names=outputs,
                              dynamic_axes=axes, opset_version=opset, dynamo=False)
        save_processor(processor, tmp)
        model.config.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
    print(f"exported {model_path} to {output_dir} (ONNX opset {opset})")
    return output_dir
