#!/usr/bin/env python3
"""Hugging Face `tokenizers` reference for `quern bench tokenize`.

Tokenizes the same texts Quern's benchmark does (JSONL "text" field, optionally joined
into longer texts) on one thread and prints one JSON line: texts/s and tokens/s, best
of --repeat passes, for `encode_batch` (the fast path) and a loop of `encode`.
Usage: python tokenize_anchor.py MODEL_DIR CORPUS.jsonl [--limit N] [--join K]
"""
import argparse, json, os, time

os.environ["RAYON_NUM_THREADS"] = "1"          # one thread: set before tokenizers loads
os.environ["TOKENIZERS_PARALLELISM"] = "false"
import tokenizers
from tokenizers import Tokenizer

ap = argparse.ArgumentParser()
ap.add_argument("model"); ap.add_argument("corpus")
ap.add_argument("--limit", type=int, default=20000)
ap.add_argument("--join", type=int, default=1, help="texts joined per input (longer texts)")
ap.add_argument("--repeat", type=int, default=3)
a = ap.parse_args()

raw = []
with open(a.corpus, encoding="utf-8") as f:
    for line in f:
        raw.append(json.loads(line)["text"])
        if len(raw) >= a.limit * a.join: break
texts = [" ".join(raw[i:i + a.join]) for i in range(0, len(raw), a.join)][:a.limit]
tok = Tokenizer.from_file(os.path.join(a.model, "tokenizer.json"))
tok.no_padding(); tok.no_truncation()

def best(fn):
    times = []
    for _ in range(a.repeat):
        t0 = time.perf_counter(); out = fn(); times.append(time.perf_counter() - t0)
    return min(times), out

tb, enc = best(lambda: tok.encode_batch(texts))
tl, _ = best(lambda: [tok.encode(t) for t in texts])
tokens = sum(len(e.ids) for e in enc)
print(json.dumps({"tokenizers": tokenizers.__version__, "texts": len(texts), "tokens": tokens,
                  "batch_texts_per_second": len(texts) / tb, "loop_texts_per_second": len(texts) / tl,
                  "batch_tokens_per_second": tokens / tb}))
