#!/usr/bin/env python3
"""Regenerates inference/tests/fixtures/tokenizers.json: llama.cpp's tokenization of a
few texts with a synthetic byte-level BPE vocabulary (`tiny_vocab`, written by the
`tiny_ggufs` example) under each kind of `tokenizer.ggml.pre`, and llama.cpp's
add-BOS default for it. CI does not run this; inference/tests/tokenizer_pre.rs rebuilds
the same files and compares our tokenizer.

Usage: ~/.cache/neuroshard/venv-llama/bin/python scripts/make-tokenizer-fixtures.py
"""

import hashlib
import json
import os
import subprocess
import tempfile

import llama_cpp as L

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "inference", "tests", "fixtures", "tokenizers.json")
TEXTS = [
    "Hello world",
    "I'm sure they'll say it's fine, DON'T worry",
    "numbers 1234567 and 2024, 3.14159",
    "HelloWorld camelCase snake_case XMLHttpRequest",
    "  two spaces\n\nnew lines\t tab   end  ",
    "Café naïve 日本語 🚀 emoji",
    "fn main() { let x = 42; x += 1; } // done!!!",
    "<|im_start|>user\nHi<|im_end|>",
]


def main():
    env = dict(os.environ)
    env.setdefault("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/nt-models"))
    files = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["cargo", "run", "-q", "-p", "neuroshard-inference", "--example",
             "tiny_ggufs", "--", "vocabularies", tmp],
            cwd=ROOT, env=env, check=True, capture_output=True, text=True)
        for path in out.stdout.split():
            pre = os.path.basename(path)[: -len(".gguf")]
            llm = L.Llama(path, vocab_only=True, verbose=False)
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            ids = [llm.tokenize(t.encode(), add_bos=False, special=True) for t in TEXTS]
            add_bos = bool(L.llama_vocab_get_add_bos(L.llama_model_get_vocab(llm.model)))
            files[pre] = {"gguf_sha256": digest, "add_bos": add_bos, "ids": ids}
            print(pre, ids[1])
    with open(OUT, "w") as f:
        json.dump({"llama_cpp_python": L.__version__, "texts": TEXTS, "files": files}, f,
                  ensure_ascii=False)
        f.write("\n")
    print(OUT)


if __name__ == "__main__":
    main()
