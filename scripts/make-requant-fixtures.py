#!/usr/bin/env python3
"""Regenerates the per-format llama.cpp oracle fixtures of the default model
(inference/tests/fixtures/requant/<format>.json). CI does not run this: the fixtures are
checked in, and inference/tests/requant_oracle.rs compares our engine against them.

For each format, llama.cpp's own quantizer (llama_model_quantize, allow_requantize) makes
the file from the default model (SmolLM2-135M-Instruct Q4_1; its rows are 576 wide, so the
K-quant types keep only some tensors in K formats and fall back to Q5_0/Q5_1/Q8_0 for the
rest). The fixture records, per tensor, the type llama.cpp chose and the sha256 of its
data: the test re-quantizes the default model itself to those types and checks it gets
the very same bytes, so the ~100 MB files need not be shipped or rebuilt with llama.cpp.
Then llama.cpp decodes PROMPT and 64 greedy tokens one at a time (f32 K/V caches, no
flash attention); per step the fixture keeps its greedy token and its 8 largest logits.

Usage: ~/.cache/neuroshard/venv-llama/bin/python scripts/make-requant-fixtures.py [MODEL]
"""

import ctypes
import hashlib
import json
import os
import struct
import sys
import tempfile

import llama_cpp as L

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "inference", "tests", "fixtures", "requant")
MODEL = os.path.expanduser("~/.cache/neuroshard/models/SmolLM2-135M-Instruct.Q4_1.gguf")
# The prompt of inference/tests/oracle.rs (a chat turn of the default model).
PROMPT = [1, 9690, 198, 504, 3458, 282, 4649, 314, 2]
STEPS = 64
TOP = 8
N_CTX = 128
FORMATS = {"q4_k_m": 15, "q5_k_m": 17, "q6_k": 18, "q8_0": 7, "q4_0": 2, "q5_0": 8,
           "q5_1": 9}


# ggml type -> (values per block, bytes per block)
BLOCKS = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24),
          8: (32, 34), 12: (256, 144), 13: (256, 176), 14: (256, 210), 30: (1, 2)}


def read_str(f):
    (n,) = struct.unpack("<Q", f.read(8))
    return f.read(n).decode()


def skip_value(f, kind):
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    if kind == 8:
        read_str(f)
    elif kind == 9:
        inner, n = struct.unpack("<IQ", f.read(12))
        for _ in range(n):
            skip_value(f, inner)
    else:
        f.read(sizes[kind])


def tensor_table(path):
    """{name: [ggml type, offset, sha256 of its data]} of a GGUF file."""
    with open(path, "rb") as f:
        magic, _version, n_tensors, n_kv = struct.unpack("<IIQQ", f.read(24))
        assert magic == 0x46554747, "not a GGUF file"
        alignment = 32
        for _ in range(n_kv):
            key = read_str(f)
            (kind,) = struct.unpack("<I", f.read(4))
            if key == "general.alignment":
                (alignment,) = struct.unpack("<I", f.read(4))
            else:
                skip_value(f, kind)
        infos = []
        for _ in range(n_tensors):
            name = read_str(f)
            (n_dims,) = struct.unpack("<I", f.read(4))
            count = 1
            for d in struct.unpack(f"<{n_dims}Q", f.read(8 * n_dims)):
                count *= d
            kind, offset = struct.unpack("<IQ", f.read(12))
            block, size = BLOCKS[kind]
            infos.append((name, kind, offset, count // block * size))
        start = (f.tell() + alignment - 1) // alignment * alignment
        table = {}
        for name, kind, offset, nbytes in infos:
            f.seek(start + offset)
            table[name] = [kind, offset, hashlib.sha256(f.read(nbytes)).hexdigest()]
        return table


def quantize(src, dst, ftype):
    p = L.llama_model_quantize_default_params()
    p.ftype = ftype
    p.nthread = 2
    p.allow_requantize = True
    if L.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p)) != 0:
        sys.exit(f"llama.cpp could not quantize {src} to type {ftype}")


def decode_all(path):
    params = L.llama_model_default_params()
    model = L.llama_model_load_from_file(path.encode(), params)
    cp = L.llama_context_default_params()
    cp.n_ctx = cp.n_batch = cp.n_ubatch = N_CTX
    cp.n_threads = cp.n_threads_batch = 2
    cp.type_k = cp.type_v = L.GGML_TYPE_F32
    cp.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_DISABLED
    ctx = L.llama_init_from_model(model, cp)
    n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
    batch = L.llama_batch_init(N_CTX, 0, 1)
    pos = 0

    def decode(tokens):
        nonlocal pos
        batch.n_tokens = len(tokens)
        for i, t in enumerate(tokens):
            batch.token[i] = t
            batch.pos[i] = pos + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = i == len(tokens) - 1
        if L.llama_decode(ctx, batch) != 0:
            sys.exit("llama_decode failed")
        pos += len(tokens)
        ptr = L.llama_get_logits_ith(ctx, len(tokens) - 1)
        return [ptr[i] for i in range(n_vocab)]

    steps = []
    logits = decode(PROMPT)
    for _ in range(STEPS):
        order = sorted(range(n_vocab), key=lambda i: (-logits[i], i))[:TOP]
        steps.append({"top": order, "logits": [float(f"{logits[i]:.5g}") for i in order]})
        logits = decode([order[0]])
    L.llama_batch_free(batch)
    L.llama_free(ctx)
    L.llama_model_free(model)
    return steps


def main():
    model = sys.argv[1] if len(sys.argv) > 1 else MODEL
    L.llama_backend_init()
    os.makedirs(OUT, exist_ok=True)
    source = tensor_table(model)
    with tempfile.TemporaryDirectory() as tmp:
        for name, ftype in FORMATS.items():
            path = os.path.join(tmp, f"{name}.gguf")
            quantize(model, path, ftype)
            table = tensor_table(path)
            assert set(table) == set(source), "llama.cpp renamed tensors"
            data = {
                "source_sha256": hashlib.sha256(open(model, "rb").read()).hexdigest(),
                "llama_cpp_python": L.__version__,
                "ftype": ftype,
                "tensors": {k: v[0] for k, v in sorted(table.items())},
                "tensor_sha256": {k: v[2] for k, v in sorted(table.items())},
                "prompt": PROMPT,
                "steps": decode_all(path),
            }
            target = os.path.join(OUT, f"{name}.json")
            with open(target, "w") as f:
                json.dump(data, f, separators=(",", ":"))
                f.write("\n")
            kinds = sorted({v[0] for v in table.values()})
            print(f"{target}: types {kinds}, greedy {[s['top'][0] for s in data['steps'][:8]]}...")


if __name__ == "__main__":
    main()
