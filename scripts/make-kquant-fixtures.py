#!/usr/bin/env python3
"""Regenerates inference/kernels/src/fixtures/kquant_ref.json: rows quantized by
llama.cpp's own reference K quantizers (`quantize_row_q4_K_ref`, `quantize_row_q5_K_ref`,
`quantize_row_q6_K_ref` of the libggml-base that llama-cpp-python 0.3.36 ships; the path
`llama_model_quantize` takes without an imatrix). The kernels crate's tests quantize the
same rows with its ports (`quantize_k.rs`) and require the very same bytes. CI does not
run this: the fixture is checked in.

Rows: random ones of several distributions (normal, uniform, heavy-tailed, small) and
edge rows (all zeros, constant, negative only, positive only, one huge value, tiny
values, a sparse row, mixed magnitudes). Inputs are kept as the f32 bit patterns.

Usage: ~/.cache/neuroshard/venv-llama/bin/python scripts/make-kquant-fixtures.py
"""

import ctypes
import json
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "inference", "kernels", "src", "fixtures", "kquant_ref.json")
LIB = os.path.expanduser(
    "~/.cache/neuroshard/venv-llama/lib/python3.11/site-packages/llama_cpp/lib/libggml-base.so")
QK_K = 256
# format -> (reference quantizer, bytes per 256-value super-block)
FORMATS = {"q4_k": ("quantize_row_q4_K_ref", 144), "q5_k": ("quantize_row_q5_K_ref", 176),
           "q6_k": ("quantize_row_q6_K_ref", 210)}


def rows():
    rng = np.random.default_rng(27)
    out = {}
    for i in range(4):
        out[f"normal_{i}"] = rng.normal(0.0, 0.02 * (i + 1), 2 * QK_K)
    out["uniform"] = rng.uniform(-1.0, 1.0, 2 * QK_K)
    out["heavy_tailed"] = rng.standard_t(2.0, 2 * QK_K) * 0.05
    out["small"] = rng.normal(0.0, 1e-6, QK_K)
    out["zeros"] = np.zeros(QK_K)
    out["constant"] = np.full(QK_K, 0.375)
    out["negative_constant"] = np.full(QK_K, -1.25)
    out["negative_only"] = -np.abs(rng.normal(0.0, 0.1, QK_K))
    out["positive_only"] = np.abs(rng.normal(0.0, 0.1, QK_K))
    huge = rng.normal(0.0, 0.01, QK_K)
    huge[77] = 1000.0
    out["one_huge"] = huge
    neg_huge = rng.normal(0.0, 0.01, QK_K)
    neg_huge[200] = -3.0e4
    out["one_huge_negative"] = neg_huge
    out["tiny"] = rng.normal(0.0, 1e-20, QK_K)
    sparse = np.zeros(QK_K)
    sparse[rng.choice(QK_K, 12, replace=False)] = rng.normal(0.0, 1.0, 12)
    out["sparse"] = sparse
    mixed = rng.normal(0.0, 1.0, QK_K) * np.repeat(10.0 ** rng.integers(-4, 3, 16), 16)
    out["mixed_magnitudes"] = mixed
    out["ramp"] = np.linspace(-2.0, 1.0, QK_K)
    return {k: v.astype(np.float32) for k, v in out.items()}


def main():
    lib = ctypes.CDLL(LIB)
    fixture = {"rows": {}}
    for name, x in rows().items():
        entry = {"bits": [int(b) for b in x.view(np.uint32)]}
        for fmt, (fn, size) in FORMATS.items():
            buf = ctypes.create_string_buffer(size * (len(x) // QK_K))
            f = getattr(lib, fn)
            f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
            f.restype = None
            f(x.ctypes.data, buf, len(x))
            entry[fmt] = buf.raw.hex()
        fixture["rows"][name] = entry
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT}: {len(fixture['rows'])} rows")


if __name__ == "__main__":
    main()
