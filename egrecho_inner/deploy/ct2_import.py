"""Convert a CTranslate2 Whisper model (faster-whisper's format) into a Hugging Face model dir.

``model.bin`` is CTranslate2's spec file (little endian): u32 version, spec name, u32 revision,
u32 variable count; per variable a name (u16 length including NUL), u8 rank, u32 dims, u8 dtype,
u32 byte count and the data; then u32 alias count and (alias, target) name pairs. Whisper's
self-attention q/k/v are fused in ``linear_0`` (its k bias is stored as zeros), cross-attention k/v in
``attention/linear_1``; ``gamma``/``beta`` are LayerNorm weight/bias.
"""

from __future__ import annotations

import json
import logging
import re
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor

from egrecho_inner.constants import MAX_LABEL_TOKENS
from egrecho_inner.errors import InputError, MissingInputError
from egrecho_inner.model import save_processor, whisper_generation_config
from egrecho_inner.tokenizer import repair_ct2_tokenizer
from egrecho_inner.utils import Pathlike, atomic_path

log = logging.getLogger(__name__)

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_BFLOAT16 = 5


def _u32(f: BinaryIO) -> int:
    return struct.unpack("<I", f.read(4))[0]


def _name(f: BinaryIO) -> str:
    length = struct.unpack("<H", f.read(2))[0]
    return f.read(length)[:-1].decode("utf-8")


def read_ct2_variables(model_bin: Pathlike) -> dict[str, torch.Tensor]:
    """All variables of a CTranslate2 ``model.bin`` (aliases resolved), as tensors."""
    variables: dict[str, torch.Tensor] = {}
    with open(model_bin, "rb") as f:
        version = _u32(f)
        if version < 5:
            raise InputError(f"{model_bin}: CTranslate2 spec version {version} is not supported (need >= 5)")
        spec, _, count = _name(f), _u32(f), _u32(f)  # the middle one is the spec revision
        if spec != "WhisperSpec":
            raise InputError(f"{model_bin} holds a {spec}, not a WhisperSpec")
        for _ in range(count):
            name = _name(f)
            rank = f.read(1)[0]
            dims = [_u32(f) for _ in range(rank)]
            code, nbytes = f.read(1)[0], _u32(f)
            raw = f.read(nbytes)
            if code == _BFLOAT16:
                tensor = torch.frombuffer(bytearray(raw), dtype=torch.bfloat16).float()
            else:
                tensor = torch.from_numpy(np.frombuffer(raw, dtype=_DTYPES[code]).copy())
            variables[name] = tensor.reshape(dims)
        for _ in range(_u32(f)):
            alias, target = _name(f), _name(f)
            variables[alias] = variables[target]
    return variables


def _linear(sd: dict, hf: str, ct2: str, v: dict, bias: bool = True) -> None:
    sd[f"{hf}.weight"] = v[f"{ct2}/weight"]
    if bias:
        sd[f"{hf}.bias"] = v[f"{ct2}/bias"]


def _norm(sd: dict, hf: str, ct2: str, v: dict) -> None:
    sd[f"{hf}.weight"], sd[f"{hf}.bias"] = v[f"{ct2}/gamma"], v[f"{ct2}/beta"]


def _fused(sd: dict, hf: str, names: tuple[str, ...], ct2: str, v: dict) -> None:
    """Split a fused projection (q/k/v or k/v) into HF's separate ones; k has no bias in HF."""
    weights = v[f"{ct2}/weight"].chunk(len(names))
    biases = v[f"{ct2}/bias"].chunk(len(names))
    for name, weight, bias in zip(names, weights, biases):
        sd[f"{hf}.{name}.weight"] = weight
        if name != "k_proj":
            sd[f"{hf}.{name}.bias"] = bias


def ct2_to_hf_state_dict(v: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename (and un-fuse) CTranslate2 Whisper variables into HF ``WhisperForConditionalGeneration`` keys."""
    sd: dict[str, torch.Tensor] = {}
    for conv in ("conv1", "conv2"):
        _linear(sd, f"model.encoder.{conv}", f"encoder/{conv}", v)
    sd["model.encoder.embed_positions.weight"] = v["encoder/position_encodings/encodings"]
    sd["model.decoder.embed_positions.weight"] = v["decoder/position_encodings/encodings"]
    sd["model.decoder.embed_tokens.weight"] = v["decoder/embeddings/weight"]
    for side in ("encoder", "decoder"):
        _norm(sd, f"model.{side}.layer_norm", f"{side}/layer_norm", v)
        for i in range(num_layers(v, side)):
            hf, ct2 = f"model.{side}.layers.{i}", f"{side}/layer_{i}"
            _norm(sd, f"{hf}.self_attn_layer_norm", f"{ct2}/self_attention/layer_norm", v)
            _fused(sd, f"{hf}.self_attn", ("q_proj", "k_proj", "v_proj"), f"{ct2}/self_attention/linear_0", v)
            _linear(sd, f"{hf}.self_attn.out_proj", f"{ct2}/self_attention/linear_1", v)
            _norm(sd, f"{hf}.final_layer_norm", f"{ct2}/ffn/layer_norm", v)
            _linear(sd, f"{hf}.fc1", f"{ct2}/ffn/linear_0", v)
            _linear(sd, f"{hf}.fc2", f"{ct2}/ffn/linear_1", v)
            if side == "decoder":
                _norm(sd, f"{hf}.encoder_attn_layer_norm", f"{ct2}/attention/layer_norm", v)
                _linear(sd, f"{hf}.encoder_attn.q_proj", f"{ct2}/attention/linear_0", v)
                _fused(sd, f"{hf}.encoder_attn", ("k_proj", "v_proj"), f"{ct2}/attention/linear_1", v)
                _linear(sd, f"{hf}.encoder_attn.out_proj", f"{ct2}/attention/linear_2", v)
    return sd


def num_layers(v: dict, side: str) -> int:
    return len({m.group(1) for k in v if (m := re.match(rf"{side}/layer_(\d+)/", k))})


def whisper_config_from_ct2(v: dict[str, torch.Tensor]) -> WhisperConfig:
    vocab, d_model = v["decoder/embeddings/weight"].shape
    heads = int(v["encoder/num_heads"].item()) if "encoder/num_heads" in v else d_model // 64
    return WhisperConfig(
        vocab_size=vocab, num_mel_bins=v["encoder/conv1/weight"].shape[1], d_model=d_model,
        encoder_layers=num_layers(v, "encoder"), decoder_layers=num_layers(v, "decoder"),
        encoder_attention_heads=heads, decoder_attention_heads=heads,
        encoder_ffn_dim=v["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=v["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=v["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=v["decoder/position_encodings/encodings"].shape[0],
        decoder_start_token_id=50258, pad_token_id=50257, bos_token_id=50257, eos_token_id=50257,
        activation_function="gelu",  # exact GELU, as OpenAI's Whisper
    )


def import_ct2(ct2_dir: str, output_dir: str, dtype: str = "float32") -> str:
    """Convert a CTranslate2 Whisper dir (model.bin, config.json, tokenizer.json) to a transformers model dir.

    Args:
        ct2_dir: the CTranslate2 model dir (e.g. faster-whisper-base).
        output_dir: where the transformers model, processor and generation config go.
        dtype: float32 or float16 weights in the output (the CTranslate2 weights are float16).
    """
    src = Path(ct2_dir)
    for name in ("model.bin", "config.json", "tokenizer.json"):
        if not (src / name).is_file():
            raise MissingInputError(f"{src / name} not found: not a CTranslate2 Whisper dir")
    if dtype not in ("float32", "float16"):
        raise InputError(f"dtype must be float32 or float16, got {dtype!r}")
    variables = read_ct2_variables(src / "model.bin")
    config = whisper_config_from_ct2(variables)
    model = WhisperForConditionalGeneration(config)
    state = {k: t.to(torch.float32) for k, t in ct2_to_hf_state_dict(variables).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if set(missing) - {"proj_out.weight"} or unexpected:  # proj_out is tied to the token embeddings
        raise InputError(f"weight mismatch: missing {missing}, unexpected {unexpected}")
    model.tie_weights()

    tokenizer = repair_ct2_tokenizer(src / "tokenizer.json")
    ct2_config = json.loads((src / "config.json").read_text())
    generation = whisper_generation_config(tokenizer)
    generation.suppress_tokens = ct2_config.get("suppress_ids", [])
    generation.begin_suppress_tokens = ct2_config.get("suppress_ids_begin", [220, 50257])
    if ct2_config.get("alignment_heads"):
        generation.alignment_heads = ct2_config["alignment_heads"]
    generation.max_length = MAX_LABEL_TOKENS
    model.generation_config = generation
    if (src / "preprocessor_config.json").is_file():
        feature_extractor = WhisperFeatureExtractor.from_pretrained(src)
    else:
        feature_extractor = WhisperFeatureExtractor(feature_size=config.num_mel_bins)

    with atomic_path(output_dir) as tmp:
        model.to(getattr(torch, dtype)).save_pretrained(tmp)
        save_processor(WhisperProcessor(feature_extractor, tokenizer), tmp)
    n = sum(p.numel() for p in model.parameters())
    print(f"imported {src} ({n:,} parameters, {config.encoder_layers}+{config.decoder_layers} layers) to {output_dir}")
    return output_dir
