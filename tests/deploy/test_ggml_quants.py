"""ggml's q8_0, q5_0 and q4_0 blocks as egrecho export-ggml writes them: one block of known values gives the bytes
worked out by hand from ggml's layout; random rows give the bytes of ggml's own quantizer (the libggml-base
that pywhispercpp's whisper.cpp runs, called through ctypes); a dequantizer written here from the
layout, independently of the writer, agrees with ggml's and reads the values back within each format's bound.
An unknown --quant is refused in one line that names the choices."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest

from egrecho_inner import cli
from egrecho_inner.deploy.ggml_quants import GGML_TYPE, QUANTS, block_bytes, header_ftype, quantize

LEVELS = {"q8_0": 127, "q5_0": 16, "q4_0": 8}  # d = max|x| / 127, or -(the largest-magnitude value) / 16 or / 8


def dequantize(raw: bytes, kind: str) -> np.ndarray:
    """ggml blocks back to float32, read field by field from the byte layout (not through the writer's dtypes)."""
    blocks = np.frombuffer(raw, np.uint8).reshape(-1, {"q8_0": 34, "q5_0": 22, "q4_0": 18}[kind])
    d = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n, 1)
    if kind == "q8_0":
        q = blocks[:, 2:].view(np.int8).astype(np.int32)
    else:
        nibbles = blocks[:, -16:]  # value j: low nibble of byte j; value j + 16: its high nibble
        q = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.int32)
        if kind == "q5_0":
            q |= np.unpackbits(blocks[:, 2:6], axis=1, bitorder="little").astype(np.int32) << 4  # qh bit j: value j
        q -= LEVELS[kind]
    return (q * d).reshape(-1)


def libggml_base() -> ctypes.CDLL:
    import pywhispercpp

    site = Path(pywhispercpp.__file__).resolve().parent.parent
    found = sorted(site.glob("pywhispercpp.libs/libggml-base*.so*")) or sorted(site.glob("libggml-base.so*"))
    assert found, f"no libggml-base beside pywhispercpp in {site}"
    return ctypes.CDLL(str(found[0]))


HAND_BLOCKS = {
    # d = 127 / 127 = 1.0 (fp16 0x3C00); C's roundf sends halves away from zero (2.5 -> 3, -0.5 -> -1)
    "q8_0": ({0: -127, 1: 0.5, 2: -0.5, 3: 2.5, 4: 126.4, 31: 1.49},
             bytes([0x00, 0x3C, 0x81, 0x01, 0xFF, 0x03, 0x7E] + [0] * 26 + [0x01])),
    # the first value of largest magnitude is +16 (the later -16 ties and loses): d = 16 / -16 = -1 (fp16 0xBC00);
    # q = min(31, trunc(x / d + 16.5)): 16 -> 0, -16 -> 31 (clamped from 32), 1 -> 15, -1 -> 17,
    # 15.6 -> 0, 0 -> 16; low nibbles pair value j with j + 16; qh has bit j set where q_j >= 16: all but 0, 3, 17
    "q5_0": ({0: 16, 1: -16, 3: 1, 16: -1, 17: 15.6},
             bytes([0x00, 0xBC, 0xF6, 0xFF, 0xFD, 0xFF, 0x10, 0x0F, 0x00, 0x0F] + [0] * 12)),
    # d = -8 / -8 = 1.0; q = min(15, trunc(x + 8.5)): -8 -> 0, 8 -> 15 (clamped from 16), 0.49 -> 8, 0.5 -> 9,
    # -3 -> 5, 7.4 -> 15, -1.5 -> 7, 0 -> 8
    "q4_0": ({0: -8, 1: 8, 2: 0.49, 3: 0.5, 16: -3, 17: 7.4, 31: -1.5},
             bytes([0x00, 0x3C, 0x50, 0xFF, 0x88, 0x89] + [0x88] * 11 + [0x78])),
}


@pytest.mark.parametrize("kind", QUANTS)
def test_one_block_by_hand(kind):
    values, expected = HAND_BLOCKS[kind]
    x = np.zeros(32, np.float32)
    for i, v in values.items():
        x[i] = v
    assert block_bytes(kind) == len(expected)
    assert quantize(x, kind).hex(" ") == expected.hex(" ")


def random_rows(seed: int = 0) -> np.ndarray:
    """(64, 512) float32: normal rows at scales from 1e-4 to 10, an all-zero block, and a row whose q8_0 blocks
    have d = 0.25 and values on a 1/8 grid, so half of x / d are ties for roundf."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((64, 512)).astype(np.float32) * np.logspace(-4, 1, 64, dtype=np.float32)[:, None]
    x[3, 64:96] = 0
    x[6] = rng.integers(-254, 255, 512) / 8
    x[6, ::32] = -31.75  # 127 * 0.25
    return x


@pytest.mark.parametrize("kind", QUANTS)
def test_same_bytes_as_ggml(kind):
    """ggml_quantize_chunk, the call whisper.cpp's quantize tool makes for each matrix (no importance matrix:
    ggml's reference quantizer, row after row)."""
    lib = libggml_base()
    x = random_rows()
    chunk = lib.ggml_quantize_chunk  # (type, src, dst, start, nrows, n_per_row, imatrix) -> bytes written
    chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p] + [ctypes.c_int64] * 3 + [ctypes.c_void_p]
    chunk.restype = ctypes.c_size_t
    theirs = ctypes.create_string_buffer(x.size // 32 * block_bytes(kind))
    assert chunk(GGML_TYPE[kind], x.ctypes.data, theirs, 0, *x.shape, None) == len(theirs.raw)
    ours = quantize(x, kind)
    assert ours == theirs.raw

    dequantize_ref = getattr(lib, f"dequantize_row_{kind}")
    dequantize_ref.argtypes, dequantize_ref.restype = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int64], None
    back = np.empty(x.size, np.float32)
    dequantize_ref(ours, back.ctypes.data, x.size)
    assert np.array_equal(dequantize(ours, kind), back)  # the dequantizer below reads as ggml does


@pytest.mark.parametrize("kind", QUANTS)
def test_dequantized_within_the_format_bound(kind):
    """|x - d q| <= |d| / 2 (rounding) plus |q| times the fp16 rounding of d (relative 2^-11, but absolute 2^-25
    below fp16's normal range, which q8_0 reaches for blocks whose max|x| < 0.0078); q4_0/q5_0 clamp values
    within 1/16 (1/32) of the maximum magnitude but of the other sign to +7 (+15), an error of up to |d|."""
    x = random_rows(1)
    blocks = x.reshape(-1, 32)
    d = np.abs(blocks).max(axis=1, keepdims=True) / LEVELS[kind]
    back = dequantize(quantize(x, kind), kind).reshape(-1, 32)
    err = np.abs(back - blocks)
    slack = LEVELS[kind] * np.abs(d - d.astype(np.float16)) + 1e-6 * np.abs(blocks)  # fp16 d; float32 arithmetic
    rounding = err <= d / 2 + slack
    if kind == "q8_0":
        assert rounding.all()
    else:
        assert (err <= d + slack).all()
        clamped = np.abs(blocks) >= d * (LEVELS[kind] - 0.5)  # only near the maximum magnitude
        assert rounding[~clamped].all()
    normal = d[:, 0] >= 2.0**-14  # the rounding error is uniform in (-d/2, d/2) where fp16 holds d precisely
    assert np.sqrt(np.mean((err[normal] / d[normal]) ** 2)) == pytest.approx(12**-0.5, rel=0.1)
    assert (back.reshape(-1)[3 * 512 + 64:3 * 512 + 96] == 0).all()  # an all-zero block stays zero


def test_header_ftype():
    """whisper.cpp's quantize writes GGML_QNT_VERSION (2) * 1000 + the ggml_ftype; f16 and f32 files carry 1, 0."""
    assert [header_ftype(k) for k in ("f32", "f16", "q4_0", "q8_0", "q5_0")] == [0, 1, 2002, 2007, 2008]


def test_unknown_quant_is_refused_in_one_line(tmp_path):
    with pytest.raises(SystemExit) as refused:
        cli.main(["export-ggml", "--model_path", str(tmp_path), "--output_dir", str(tmp_path / "out"),
                  "--quant", "q3_k"])
    message = str(refused.value)
    assert "\n" not in message and "q3_k" in message and all(k in message for k in QUANTS), message
    with pytest.raises(SystemExit, match="drop --dtype f32"):
        cli.main(["export-ggml", "--model_path", str(tmp_path), "--output_dir", str(tmp_path / "out"),
                  "--quant", "q8_0", "--dtype", "f32"])
