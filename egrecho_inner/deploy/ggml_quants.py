"""ggml's block-quantized tensor types q8_0, q5_0 and q4_0, written with numpy byte for byte as ggml's reference
quantizers (``quantize_row_*_ref`` in ggml-quants.c, which whisper.cpp's ``quantize`` tool runs) write them.

Each row of a weight matrix (ggml's ``ne[0]``, numpy's last axis) is cut into blocks of 32 values; a block is
an fp16 scale ``d`` followed by the 32 values as small integers ``q``, and ggml reads back ``x = d * q``:

- q8_0 (34 bytes): ``d = max|x| / 127``, ``q = round(x / d)`` (half away from zero) as int8.
- q5_0 (22 bytes): ``d = m / -16`` with ``m`` the value of largest magnitude (its sign kept), ``q + 16`` as
  5 bits: the low 4 bits in ``qs[16]``, value ``j`` in the low nibble of ``qs[j]`` and value ``j + 16`` in the
  high nibble, and the 5th bit of value ``j`` as bit ``j`` of the little-endian uint32 ``qh``.
- q4_0 (18 bytes): ``d = m / -8``, ``q + 8`` in 4 bits, nibbles paired as in q5_0.

The signed scale puts the largest-magnitude value at exactly -8 (-16), the end of the range that has room;
a value of the same magnitude and the other sign clamps to +7 (+15).
"""

from __future__ import annotations

import numpy as np

QK = 32  # values per block, the same for the three types
GGML_TYPE = {"f32": 0, "f16": 1, "q4_0": 2, "q5_0": 6, "q8_0": 8}  # enum ggml_type: a tensor's type in the file
GGML_FTYPE = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 7, "q5_0": 8}  # enum ggml_ftype: the file's, in its header
GGML_QNT_VERSION = 2  # the quantization format version whisper.cpp's quantize adds to a quantized file's ftype,
GGML_QNT_VERSION_FACTOR = 1000  # times this (the loader reads ftype % 1000)
QUANTS = ("q8_0", "q5_0", "q4_0")

_BLOCK = {
    "q8_0": np.dtype([("d", "<f2"), ("qs", "i1", QK)]),
    "q5_0": np.dtype([("d", "<f2"), ("qh", "<u4"), ("qs", "u1", QK // 2)]),
    "q4_0": np.dtype([("d", "<f2"), ("qs", "u1", QK // 2)]),
}


def header_ftype(kind: str) -> int:
    """The ``ftype`` whisper.cpp's header carries for a file of ``kind`` (f32, f16 or one of :data:`QUANTS`)."""
    return GGML_FTYPE[kind] + (GGML_QNT_VERSION * GGML_QNT_VERSION_FACTOR if kind in QUANTS else 0)


def block_bytes(kind: str) -> int:
    """Bytes per block of 32 values: 34 (q8_0), 22 (q5_0), 18 (q4_0)."""
    return _BLOCK[kind].itemsize


def quantize(x: np.ndarray, kind: str) -> bytes:
    """``x`` (any shape whose last axis is a multiple of 32) as ggml ``kind`` blocks, row after row."""
    if x.shape[-1] % QK:
        raise ValueError(f"{kind} needs rows of a multiple of {QK} values, got {x.shape[-1]}")
    blocks = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, QK)  # (n_blocks, 32)
    out = np.empty(len(blocks), dtype=_BLOCK[kind])
    if kind == "q8_0":
        d = np.abs(blocks).max(axis=1) / np.float32(127)
        out["d"] = d
        out["qs"] = _round_half_away(blocks * _inverse(d)[:, None])
        return out.tobytes()
    levels = {"q5_0": 16, "q4_0": 8}[kind]  # ggml's nmax; q = trunc(x / d + nmax + 0.5), at most 2 * nmax - 1
    d = _signed_max(blocks) / np.float32(-levels)
    scaled = blocks * _inverse(d)[:, None] + np.float32(levels + 0.5)
    q = np.minimum(scaled.astype(np.int8), 2 * levels - 1).astype(np.uint8)  # (n_blocks, 32), the cast truncates
    low, high = q[:, :QK // 2], q[:, QK // 2:]
    out["d"] = d
    out["qs"] = (low & 0x0F) | ((high & 0x0F) << 4)
    if kind == "q5_0":
        fifth = (q >> 4).astype(np.uint32)  # (n_blocks, 32): the 5th bit of each value
        out["qh"] = (fifth << np.arange(QK, dtype=np.uint32)).sum(axis=1, dtype=np.uint32)
    return out.tobytes()


def _inverse(d: np.ndarray) -> np.ndarray:
    """1 / d in float32, 0 where d is 0 (an all-zero block), as ggml's ``id = d ? 1.0f/d : 0.0f``."""
    safe = np.where(d == 0, np.float32(1), d)
    return np.where(d == 0, np.float32(0), np.float32(1) / safe).astype(np.float32)


def _signed_max(blocks: np.ndarray) -> np.ndarray:
    """Each block's value of largest magnitude, sign kept; on a tie the first, as ggml's strict ``<`` scan."""
    first = np.abs(blocks).argmax(axis=1)
    return np.take_along_axis(blocks, first[:, None], axis=1)[:, 0]


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """C's ``roundf``: to nearest, halves away from zero (numpy's ``round`` sends them to even)."""
    whole = np.trunc(x)
    return whole + np.where(np.abs(x - whole) >= 0.5, np.sign(x), 0).astype(x.dtype)
