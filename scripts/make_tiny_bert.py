#!/usr/bin/env python3
"""Makes two tiny random BERT models and the outputs they must give, so Quern's
BertEncoder can be tested bit-for-bit-ish without torch, without network and without
the 90 MB MiniLM download:

  fixtures/models/tiny-bert/             a sentence-transformers style embedder
                                         (BertModel tensors with no prefix, modules.json,
                                         1_Pooling: mean; Normalize listed, no directory)
  fixtures/models/tiny-bert-classifier/  a BertForSequenceClassification (tensors under
                                         `bert.`, plus the pooler and a 3-way classifier)
  fixtures/text/tiny-bert-expected.jsonl ids, mean-pooled normalised embedding, CLS and
                                         max-pooled hidden states, and classifier logits
                                         for ~40 texts and a few sentence pairs

Both models share the small WordPiece tokenizer in fixtures/text/tiny-bert/ (made by
make_tokenizer_fixture.py) and a config with hidden 32, 2 layers, 4 heads, intermediate
64 and max_position_embeddings 64, so each directory stays around half a megabyte,
most of it the 3409 x 32 word embedding.

The weights are random but larger than BERT's usual init (std 0.2 rather than 0.02):
with tiny weights attention is nearly uniform and GELU nearly linear, and a wrong mask,
a wrong head split or a tanh-approximated GELU would hardly move the outputs. Here they do.

The expected outputs come from a float64 numpy forward pass over the float32 weights,
with exact GELU (math.erf), attention masked over padding, token type ids from the
tokenizer (so pairs use segment 1 for the second text) and truncation to 64 tokens.
The mean-pooled vectors of single texts can be cross-checked with
../shared/bench/bert_reference.py (plain fp32 numpy).

Deterministic (fixed seeds). Usage, from the repo root, rewriting all outputs:
    /tmp/quern-anchors/venv/bin/python scripts/make_tiny_bert.py
Needs numpy and Hugging Face `tokenizers` only.
"""
import json, math, os, shutil, struct

import numpy as np
from tokenizers import Tokenizer

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
TOKDIR = os.path.join(ROOT, "fixtures/text/tiny-bert")
EMBEDDER = os.path.join(ROOT, "fixtures/models/tiny-bert")
CLASSIFIER = os.path.join(ROOT, "fixtures/models/tiny-bert-classifier")
EXPECTED = os.path.join(ROOT, "fixtures/text/tiny-bert-expected.jsonl")
HARD = os.path.join(ROOT, "fixtures/text/tokenizer-hard-cases.jsonl")
# Short package descriptions; only the first lines are read. If the shared corpus is
# missing the script stops rather than silently writing a different text set.
DEBDESC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "corpora", "debdesc.jsonl")

# Different seeds: the two models must not share weights, or a loader that mixed them
# up would still pass. With random weights a classifier tends to pick one label for
# every input; 20273 is the first seed from 20262 on whose classifier gives each of the
# three labels the top logit on some of the inputs below (22 / 5 / 14), so a test can
# check argmax and id2label too. Changing the inputs may need a new scan.
EMBEDDER_SEED = 20261
CLASSIFIER_SEED = 20273
MAX_LENGTH = 64                # = max_position_embeddings: the longest input the model takes
LABELS = ["admin", "games", "science"]

with open(os.path.join(TOKDIR, "vocab.txt"), encoding="utf-8") as f:
    VOCAB_SIZE = sum(1 for _ in f)

CONFIG = {
    "model_type": "bert",
    "architectures": ["BertModel"],
    "vocab_size": VOCAB_SIZE,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "max_position_embeddings": MAX_LENGTH,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "hidden_act": "gelu",
    "position_embedding_type": "absolute",
    "pad_token_id": 0,
}


# ---------------------------------------------------------------- weights

def random_bert(rng, cfg):
    """BertModel tensors, named as Hugging Face names them (no prefix), float32.
    Generated in a fixed order so the seed alone fixes every value."""
    V, H, I = cfg["vocab_size"], cfg["hidden_size"], cfg["intermediate_size"]
    P, T = cfg["max_position_embeddings"], cfg["type_vocab_size"]
    w = lambda *shape: rng.normal(0.0, 0.2, shape)           # matrices and embeddings
    b = lambda n: rng.normal(0.0, 0.1, (n,))                  # biases
    g = lambda n: 1.0 + rng.normal(0.0, 0.1, (n,))            # LayerNorm gains near 1
    t = {}
    t["embeddings.word_embeddings.weight"] = w(V, H)
    # nn.Embedding(padding_idx=pad_token_id) starts (and, untrained, stays) at zero,
    # so the [PAD] row is zero as in a real checkpoint. It still matters: "[PAD]"
    # written in a text is matched as the special token and embedded.
    t["embeddings.word_embeddings.weight"][cfg["pad_token_id"]] = 0.0
    t["embeddings.position_embeddings.weight"] = w(P, H)
    t["embeddings.token_type_embeddings.weight"] = w(T, H)
    t["embeddings.LayerNorm.weight"] = g(H)
    t["embeddings.LayerNorm.bias"] = b(H)
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for n in ("query", "key", "value"):
            t[p + f"attention.self.{n}.weight"] = w(H, H)    # [out, in], as nn.Linear
            t[p + f"attention.self.{n}.bias"] = b(H)
        t[p + "attention.output.dense.weight"] = w(H, H)
        t[p + "attention.output.dense.bias"] = b(H)
        t[p + "attention.output.LayerNorm.weight"] = g(H)
        t[p + "attention.output.LayerNorm.bias"] = b(H)
        t[p + "intermediate.dense.weight"] = w(I, H)
        t[p + "intermediate.dense.bias"] = b(I)
        t[p + "output.dense.weight"] = w(H, I)
        t[p + "output.dense.bias"] = b(H)
        t[p + "output.LayerNorm.weight"] = g(H)
        t[p + "output.LayerNorm.bias"] = b(H)
    return {k: v.astype(np.float32) for k, v in t.items()}


def write_safetensors(path, tensors):
    """The safetensors layout, written by hand so no torch/safetensors is needed:
    u64 little-endian header length, a JSON header (names sorted, each with dtype,
    shape and [begin, end) byte offsets into the data), padded with spaces to a
    multiple of 8 so the data is aligned, then the raw little-endian tensor bytes."""
    header = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype="<f4")
        data = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for d in blobs:
            f.write(d)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def fresh_dir(path):
    # Rewrite from scratch so a file dropped from this script does not linger.
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)


def copy_tokenizer(dst):
    for name in ("tokenizer.json", "vocab.txt"):
        shutil.copyfile(os.path.join(TOKDIR, name), os.path.join(dst, name))


def make_embedder():
    W = random_bert(np.random.default_rng(EMBEDDER_SEED), CONFIG)
    fresh_dir(EMBEDDER)
    write_json(os.path.join(EMBEDDER, "config.json"), CONFIG)
    write_safetensors(os.path.join(EMBEDDER, "model.safetensors"), W)
    copy_tokenizer(EMBEDDER)
    write_st_modules(EMBEDDER, CONFIG["hidden_size"])
    return W


def write_st_modules(d, dimension):
    """As in a sentence-transformers model: Transformer -> Pooling (mean) -> Normalize.
    Normalize saves no files, so its directory does not exist (git could not hold it
    empty anyway); loaders must not require it."""
    write_json(os.path.join(d, "modules.json"), [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    os.makedirs(os.path.join(d, "1_Pooling"))
    write_json(os.path.join(d, "1_Pooling", "config.json"), {
        "word_embedding_dimension": dimension,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    })


def make_classifier():
    cfg = dict(CONFIG)
    cfg["architectures"] = ["BertForSequenceClassification"]
    cfg["id2label"] = {str(i): l for i, l in enumerate(LABELS)}
    cfg["label2id"] = {l: i for i, l in enumerate(LABELS)}
    cfg["problem_type"] = "single_label_classification"
    rng = np.random.default_rng(CLASSIFIER_SEED)
    bert = random_bert(rng, cfg)
    H = cfg["hidden_size"]
    head = {
        "pooler.dense.weight": rng.normal(0.0, 0.2, (H, H)),
        "pooler.dense.bias": rng.normal(0.0, 0.1, (H,)),
        "classifier.weight": rng.normal(0.0, 0.2, (len(LABELS), H)),
        "classifier.bias": rng.normal(0.0, 0.1, (len(LABELS),)),
    }
    head = {k: v.astype(np.float32) for k, v in head.items()}
    # BertForSequenceClassification.save_pretrained writes the encoder and pooler under
    # `bert.` and the head as plain `classifier.`; the file mirrors that.
    saved = {"bert." + k: v for k, v in bert.items()}
    saved["bert.pooler.dense.weight"] = head["pooler.dense.weight"]
    saved["bert.pooler.dense.bias"] = head["pooler.dense.bias"]
    saved["classifier.weight"] = head["classifier.weight"]
    saved["classifier.bias"] = head["classifier.bias"]
    fresh_dir(CLASSIFIER)
    write_json(os.path.join(CLASSIFIER, "config.json"), cfg)
    write_safetensors(os.path.join(CLASSIFIER, "model.safetensors"), saved)
    copy_tokenizer(CLASSIFIER)
    return bert, head


# ---------------------------------------------------------------- forward pass

_erf = np.vectorize(math.erf, otypes=[np.float64])   # exact erf: BERT's "gelu" is erf GELU


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def layer_norm(x, g, b, eps):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)       # biased variance, as torch
    return (x - m) / np.sqrt(v + eps) * g + b


def encode(W, cfg, ids, type_ids, mask):
    """Final hidden states [B, L, H] in float64 for a padded batch. Padded positions
    are computed but never attended to, so the real tokens' states do not depend on
    how much padding the batch has."""
    W = {k: v.astype(np.float64) for k, v in W.items()}
    B, L = ids.shape
    H, nh, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
    d = H // nh
    x = (W["embeddings.word_embeddings.weight"][ids]
         + W["embeddings.position_embeddings.weight"][np.arange(L)][None]
         + W["embeddings.token_type_embeddings.weight"][type_ids])
    x = layer_norm(x, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"], eps)
    keys_ok = mask[:, None, None, :].astype(bool)       # [B, 1(head), 1(query), L(key)]
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        lin = lambda t, n: t @ W[p + n + ".weight"].T + W[p + n + ".bias"]
        heads = lambda t: t.reshape(B, L, nh, d).transpose(0, 2, 1, 3)   # [B, nh, L, d]
        q = heads(lin(x, "attention.self.query"))
        k = heads(lin(x, "attention.self.key"))
        v = heads(lin(x, "attention.self.value"))
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d)
        s = np.where(keys_ok, s, -np.inf)               # padding gets exactly zero weight
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        c = (s @ v).transpose(0, 2, 1, 3).reshape(B, L, H)
        x = layer_norm(lin(c, "attention.output.dense") + x,
                       W[p + "attention.output.LayerNorm.weight"], W[p + "attention.output.LayerNorm.bias"], eps)
        h = gelu(lin(x, "intermediate.dense"))
        x = layer_norm(lin(h, "output.dense") + x,
                       W[p + "output.LayerNorm.weight"], W[p + "output.LayerNorm.bias"], eps)
    return x


def batch(encodings):
    L = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), L), np.int64)          # pad with [PAD] = 0
    types = np.zeros_like(ids)
    mask = np.zeros_like(ids)
    for r, e in enumerate(encodings):
        n = len(e.ids)
        ids[r, :n], types[r, :n], mask[r, :n] = e.ids, e.type_ids, 1
    return ids, types, mask


# ---------------------------------------------------------------- inputs

def inputs():
    """[(text, text_pair or None)]: short package descriptions, tokenizer hard cases
    chosen for what they exercise, and sentence pairs."""
    desc, seen = [], set()
    with open(DEBDESC, encoding="utf-8") as f:
        for line in f:
            t = json.loads(line)["text"]
            if len(t) <= 60 and t not in seen:              # short, and no repeats
                seen.add(t)
                desc.append(t)
            if len(desc) == 25:
                break
    with open(HARD, encoding="utf-8") as f:
        hard = [json.loads(l)["text"] for l in f]
    pick = lambda prefix: next(t for t in hard if t.startswith(prefix))
    chosen = [
        pick("Café"),                         # accents kept, lowercased
        pick("中文"),                          # CJK split per character
        pick("Controls:"),                    # control characters dropped
        pick("Special tokens inline"),        # [CLS]/[SEP]/[MASK]/[PAD] written in the text
        pick("   leading"),                   # outer whitespace
        "",                                   # empty: just [CLS] [SEP]
        "\u0000\u0001\u0002",                 # nothing left after cleaning: also [CLS] [SEP]
        pick("Unicode punctuation"),          # exactly 64 tokens: fits, no truncation
        pick("Numbers"),                      # 65 tokens: one over, truncated
        pick("Punctuation:"),                 # 73 tokens, truncated
        pick("aaaa"),                         # 102 tokens, truncated hard
    ]
    singles = [(t, None) for t in desc + chosen]
    pairs = [
        (desc[0], desc[4]),
        (desc[6], desc[1]),
        (pick("Café"), desc[8]),
        ("", desc[2]),                        # empty first segment
        (pick("Punctuation:"), pick("aaaa")),  # both long: longest-first truncation to 64
    ]
    return singles + pairs


# ---------------------------------------------------------------- main

def main():
    W_emb = make_embedder()
    W_cls, head = make_classifier()

    tok = Tokenizer.from_file(os.path.join(TOKDIR, "tokenizer.json"))
    tok.no_padding()
    # Truncation to the model's position limit, counting [CLS] and [SEP];
    # the default longest_first strategy for pairs, as sentence-transformers uses.
    tok.enable_truncation(MAX_LENGTH)
    items = inputs()
    encs = [tok.encode(a) if b is None else tok.encode(a, b) for a, b in items]
    assert all(len(e.ids) <= MAX_LENGTH for e in encs)
    assert any(len(tok.encode(a).ids) == MAX_LENGTH for a, b in items if b is None)
    ids, types, mask = batch(encs)
    assert types.max() == 1, "pairs must reach the model with segment 1"

    m = mask[..., None].astype(np.float64)
    h = encode(W_emb, CONFIG, ids, types, mask)
    mean = (h * m).sum(1) / m.sum(1)                       # over real tokens only
    emb = mean / np.linalg.norm(mean, axis=-1, keepdims=True)
    cls = h[:, 0]
    mx = np.where(m > 0, h, -np.inf).max(1)

    hc = encode(W_cls, CONFIG, ids, types, mask)
    f64 = {k: v.astype(np.float64) for k, v in head.items()}
    pooled = np.tanh(hc[:, 0] @ f64["pooler.dense.weight"].T + f64["pooler.dense.bias"])
    logits = pooled @ f64["classifier.weight"].T + f64["classifier.bias"]

    flo = lambda v: [float(x) for x in v]                  # json writes float repr: full precision
    with open(EXPECTED, "w", encoding="utf-8") as f:
        for r, ((a, b), e) in enumerate(zip(items, encs)):
            row = {"text": a}
            if b is not None:
                row["text_pair"] = b
            row.update({"max_length": MAX_LENGTH, "ids": e.ids,
                        "embedding": flo(emb[r]), "cls": flo(cls[r]), "max": flo(mx[r]),
                        "logits": flo(logits[r])})
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    for d in (EMBEDDER, CLASSIFIER):
        for dirpath, _, files in sorted(os.walk(d)):
            for name in sorted(files):
                p = os.path.join(dirpath, name)
                print(f"wrote {os.path.relpath(p, ROOT)} ({os.path.getsize(p)} bytes)")
    n_pairs = sum(b is not None for _, b in items)
    n_trunc = sum(1 for (a, b) in items
                  if len((tok.encode(a) if b is None else tok.encode(a, b)).ids) == MAX_LENGTH)
    print(f"wrote {os.path.relpath(EXPECTED, ROOT)} ({os.path.getsize(EXPECTED)} bytes): "
          f"{len(items)} inputs ({n_pairs} pairs, {n_trunc} at the {MAX_LENGTH}-token limit), "
          f"vocab {VOCAB_SIZE}")


if __name__ == "__main__":
    main()
