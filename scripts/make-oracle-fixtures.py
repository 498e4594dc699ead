#!/usr/bin/env python3
"""Regenerates the llama.cpp oracle fixtures of the model families
(inference/tests/fixtures/oracle/<family>.json). CI does not run this: the fixtures are
checked in, and inference/tests/families_oracle.rs compares our engine against them.

For each tiny random-weight GGUF that `tiny_gguf::tiny_family` describes (written by the
`tiny_ggufs` example, so both engines read the very same bytes), llama.cpp
(llama-cpp-python, see scripts/install-llama-cpp.sh) decodes a fixed prompt, then 32
greedy tokens one at a time. A fixture records the file's sha256, the prompt, llama.cpp's
logits at the last prompt position and at the last greedy step, and the greedy tokens.
llama.cpp runs with f32 K/V caches and without flash attention, so its own rounding stays
small next to the differences under test.

Usage: ~/.cache/neuroshard/venv-llama/bin/python scripts/make-oracle-fixtures.py
       [GGUF_DIR OUT_DIR]   (fixtures of other files, e.g. variants while debugging)
"""

import ctypes
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import llama_cpp as L

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "inference", "tests", "fixtures", "oracle")
PROMPT = [1, 17, 42, 99, 3, 250, 7, 128]
STEPS = 32
N_CTX = 128


def write_ggufs(directory):
    env = dict(os.environ)
    env.setdefault("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/nt-models"))
    out = subprocess.run(
        ["cargo", "run", "-q", "-p", "neuroshard-inference", "--example",
         "tiny_ggufs", "--", "families", directory],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if line.endswith(".gguf")]


class Context:
    def __init__(self, path):
        params = L.llama_model_default_params()
        self.model = L.llama_model_load_from_file(path.encode(), params)
        if not self.model:
            sys.exit(f"llama.cpp could not load {path}")
        cp = L.llama_context_default_params()
        cp.n_ctx = N_CTX
        cp.n_batch = N_CTX
        cp.n_ubatch = N_CTX
        cp.n_threads = 2
        cp.n_threads_batch = 2
        cp.type_k = L.GGML_TYPE_F32
        cp.type_v = L.GGML_TYPE_F32
        cp.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self.ctx = L.llama_init_from_model(self.model, cp)
        if not self.ctx:
            sys.exit(f"llama.cpp could not make a context for {path}")
        self.n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(self.model))
        self.batch = L.llama_batch_init(N_CTX, 0, 1)
        self.pos = 0

    def decode(self, tokens):
        """Decodes `tokens` at the next positions; the logits of the last one."""
        b = self.batch
        b.n_tokens = len(tokens)
        for i, t in enumerate(tokens):
            b.token[i] = t
            b.pos[i] = self.pos + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            b.logits[i] = i == len(tokens) - 1
        if L.llama_decode(self.ctx, b) != 0:
            sys.exit("llama_decode failed")
        self.pos += len(tokens)
        ptr = L.llama_get_logits_ith(self.ctx, len(tokens) - 1)
        return [ptr[i] for i in range(self.n_vocab)]

    def close(self):
        L.llama_batch_free(self.batch)
        L.llama_free(self.ctx)
        L.llama_model_free(self.model)


def argmax(values):
    return max(range(len(values)), key=lambda i: (values[i], -i))


def fixture(path):
    ctx = Context(path)
    logits = ctx.decode(PROMPT)
    prompt_logits = logits
    greedy = []
    for _ in range(STEPS):
        token = argmax(logits)
        greedy.append(token)
        logits = ctx.decode([token])
    ctx.close()
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    rounded = lambda v: [float(f"{x:.5g}") for x in v]
    return {
        "gguf_sha256": digest,
        "llama_cpp_python": L.__version__,
        "prompt": PROMPT,
        "prompt_logits": rounded(prompt_logits),
        "greedy": greedy,
        # Logits after the last greedy token (position len(PROMPT) + STEPS - 1).
        "final_logits": rounded(logits),
    }


def save(paths, out):
    os.makedirs(out, exist_ok=True)
    for path in paths:
        name = os.path.basename(path)[: -len(".gguf")]
        data = fixture(path)
        target = os.path.join(out, f"{name}.json")
        with open(target, "w") as f:
            json.dump(data, f, separators=(",", ":"))
            f.write("\n")
        print(f"{target}: greedy {data['greedy'][:8]}...")


def main():
    L.llama_backend_init()
    if len(sys.argv) == 3:
        # Other files (for example variants while debugging): GGUF_DIR OUT_DIR.
        src = sys.argv[1]
        save(sorted(os.path.join(src, n) for n in os.listdir(src) if n.endswith(".gguf")),
             sys.argv[2])
        return
    with tempfile.TemporaryDirectory() as tmp:
        save(write_ggufs(tmp), OUT)


if __name__ == "__main__":
    main()
