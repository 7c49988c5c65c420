#!/usr/bin/env python3
"""Makes the fixtures for an English RoBERTa with a byte-level BPE tokenizer (the setup of
roberta-base and all-distilroberta-v1), next to the XLM-R ones from make_tiny_xlmr.py,
whose texts, numpy forward pass and helpers it reuses:

  fixtures/models/tiny-roberta/
        a sentence-transformers style embedder: a random RobertaModel (hidden 32, 2 layers,
        4 heads, intermediate 64, 66 positions = 64 + padding_idx + 1, no pooler) saved
        without prefix, config.json (model_type "roberta"), modules.json (Transformer,
        1_Pooling, Normalize), 1_Pooling (mean), sentence_bert_config.json, and
        tokenizer.json: a byte-level BPE trained here by `tokenizers` on the same
        training texts as the XLM-R tokenizers (the first debdesc lines plus the
        multilingual lines): vocab <s> <pad> </s> <unk> <mask> (ids 0-4), the 256
        byte-level characters, then the merged tokens; no normalizer;
        ByteLevel(add_prefix_space=False) pre-tokenizer (GPT-2 regex) and decoder;
        RobertaProcessing (<s> A </s> / <s> A </s></s> B </s>); <mask> an added special
        token with lstrip as in roberta-base's tokenizer.json, so "a <mask>" eats the
        space. (transformers 5's RobertaTokenizer, built from a vocabulary and merges,
        would register <mask> without lstrip and write "" rather than null for the BPE
        continuing_subword_prefix / end_of_word_suffix, as roberta-base's file has them.)
  fixtures/text/tiny-roberta-expected.jsonl
        for ~35 texts and 5 pairs: ids (truncated to 64 with </s> kept last, as
        `tokenizers` truncation + post-processor do), the mean-pooled L2-normalised
        embedding and the <s> hidden state, from make_tiny_xlmr's float64 numpy forward
        (positions from the ids), cross-checked against transformers' float32 RobertaModel
        loaded from the files. None of the ids is 1 (<pad>); a byte-level BPE has no <unk>.
  fixtures/text/bpe-roberta-golden.jsonl
        {"text", ["pair",] "ids"} from the tokenizer.json (specials included, no
        truncation) for the tokenizer hard cases, the 150 held-out debdesc texts and the
        stress texts of unigram-golden.jsonl, the extra texts below, and 10 pairs.

Weights: transformers' init with initializer_range 0.2 and the biases and LayerNorm
parameters perturbed as in make_tiny_xlmr.py; the <pad> rows of the word and position
embeddings stay zero (nn.Embedding padding_idx).

Determinism: `tokenizers`' BpeTrainer is reproducible (integer pair counts; equal counts
are ordered by the pair's ids, which follow the sorted alphabet and the merge order), so
unlike make_tiny_xlmr.py's unigram-nfkc the tokenizer is retrained on every run; if the
result differs from the file already there, the script says so.

Usage, from the repo root, rewriting all the outputs above (and nothing else):
    /tmp/quern-anchors2/venv/bin/python scripts/make_tiny_roberta.py
Same packages and versions as make_tiny_xlmr.py (which it imports, sentencepiece included).
"""
import json, os, random, sys

os.environ.setdefault("RAYON_NUM_THREADS", "1")

import numpy as np
import torch
from safetensors.numpy import load_file
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import RobertaConfig, RobertaModel

from make_tiny_bert import fresh_dir
from make_tiny_xlmr import (GOLDEN_PAIRS, HARD, MAX_LENGTH, ROOT, STRESS, encode, held_out, perturb,
                            position_ids, read_debdesc, print_sizes, training_texts, write_st_files)

EMBEDDER = os.path.join(ROOT, "fixtures/models/tiny-roberta")
TOKENIZER = os.path.join(EMBEDDER, "tokenizer.json")
EXPECTED = os.path.join(ROOT, "fixtures/text/tiny-roberta-expected.jsonl")
GOLDEN = os.path.join(ROOT, "fixtures/text/bpe-roberta-golden.jsonl")

BPE_VOCAB = 1000
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
EMBEDDER_SEED = 20264            # not a seed of the XLM-R models

# Texts that matter to a byte-level BPE and the GPT-2 pre-tokenizer regex
# ('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+), added to
# the golden file; some are also expected-output inputs.
BYTE_LEVEL = [
    "Hello world",
    " Hello world",
    "Hello  world",
    "Hello   world   ",
    "It's what we've done; they'll say I'm right, you'd agree, it isn't so. DON'T SHOUT, IT'S LOUD",
    "'s 't 're 've 'm 'll 'd ''s ' s",
    "numbers 1234567890 12,345.67 3rd 2nd v1.2.3 ٣٤٥ ०१२ ½",
    "line one\nline two\n\nline four\n",
    "\n\nleading newlines and trailing ones\n\n",
    "tabs\tand\t\tdouble tabs \t mixed\t ",
    "multiple   spaces   between   words",
    "   ",
    "\n",
    " \n \n ",
    "ends with a space ",
    "punctuation!!! ??? ... --- ,,, ;; (( )) [[ ]] {{ }}",
    "Ġ and Ċ and ĉ are the byte-level spellings of space, newline and tab",
    "bytes: é ü ñ ß ø å æ œ Œ ﬁ and more 中文 한국어 日本語",
    "emoji 😀😃😄 👍🏽 👨\u200d👩\u200d👧 🇺🇸 ❤️ 🦀",
    "a <mask> b",
    "a<mask>b <mask>c d<mask> e  <mask>  f",
    "<mask>",
    " <mask> ",
    "<s>",
    "<s> and </s> and <pad>-free <unk> and <s",
    "<S> <Mask> < mask > <mask",
    "x\u00a0y\u2009z\u3000w",
    "CamelCaseWordsAndALLCAPS and snake_case_words and kebab-case-words",
    "https://www.debian.org/doc/ and user@example.com and /usr/share/doc",
]

BYTE_LEVEL_PAIRS = [
    ("Hello world", " Hello world"),
    ("a <mask> b", "<s> c </s>"),
]


# ---------------------------------------------------------------- tokenizer

def make_tokenizer(texts):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=BPE_VOCAB, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    vocab = tok.get_vocab()
    assert [vocab[s] for s in SPECIALS] == list(range(len(SPECIALS))), [vocab[s] for s in SPECIALS]
    tok.post_processor = processors.RobertaProcessing(("</s>", vocab["</s>"]), ("<s>", vocab["<s>"]),
                                                      trim_offsets=True, add_prefix_space=False)
    # The trainer added the specials with lstrip off; this updates <mask> in place (same id).
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True)])
    assert tok.get_vocab_size() == BPE_VOCAB
    new = tok.to_str(pretty=True)
    if os.path.exists(TOKENIZER):
        with open(TOKENIZER, encoding="utf-8") as f:
            if f.read() != new:
                print(f"NOTE: retraining changed {os.path.relpath(TOKENIZER, ROOT)}")
    return new


def check_tokenizer():
    j = json.load(open(TOKENIZER, encoding="utf-8"))
    m = j["model"]
    for part in ("normalizer", "pre_tokenizer", "post_processor", "decoder"):
        print(f"  {part} {json.dumps(j[part])}")
    print(f"  model {json.dumps({k: v for k, v in m.items() if k not in ('vocab', 'merges')})}, "
          f"vocab {len(m['vocab'])}, merges {len(m['merges'])}")
    print(f"  added_tokens {json.dumps(j['added_tokens'])}")
    assert j["normalizer"] is None and j["model"]["type"] == "BPE"
    assert j["pre_tokenizer"] == {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                                  "use_regex": True}, j["pre_tokenizer"]
    assert j["post_processor"] == {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0],
                                   "trim_offsets": True, "add_prefix_space": False}, j["post_processor"]
    tok = Tokenizer.from_file(TOKENIZER)
    a, b = tok.encode("hello").ids, tok.encode("world").ids
    assert a[0] == 0 and a[-1] == 2, a
    assert tok.encode("hello", "world").ids == a + [2] + b[1:], tok.encode("hello", "world").ids
    assert tok.encode("a <mask> b").tokens == ["<s>", "a", " <mask>", "Ġb", "</s>"], tok.encode("a <mask> b").tokens
    for t in ("Hello world", "tab\there\nnew\u00a0line 😀 中文", ""):   # byte-level: lossless, no <unk>
        assert tok.decode(tok.encode(t).ids) == t, t
    return tok.get_vocab_size()


def write_golden(all_texts):
    with open(HARD, encoding="utf-8") as f:
        hard = [json.loads(l)["text"] for l in f]
    sample = random.Random(7).sample(held_out(all_texts)[-20000:], 150)    # as unigram-golden.jsonl
    singles = hard + sample + STRESS + BYTE_LEVEL
    pairs = GOLDEN_PAIRS + BYTE_LEVEL_PAIRS
    tok = Tokenizer.from_file(TOKENIZER)
    tok.no_truncation(); tok.no_padding()
    unk = 0
    with open(GOLDEN, "w", encoding="utf-8") as f:
        for t in singles:
            ids = tok.encode(t).ids
            unk += 3 in ids
            f.write(json.dumps({"text": t, "ids": ids}, ensure_ascii=False) + "\n")
        for a, b in pairs:
            ids = tok.encode(a, b).ids
            na, nb = len(tok.encode(a).ids), len(tok.encode(b).ids)
            assert len(ids) == na + nb and ids[na - 1:na + 1] == [2, 2], (a, b, ids)      # <s> A </s></s> B </s>
            f.write(json.dumps({"text": a, "pair": b, "ids": ids}, ensure_ascii=False) + "\n")
    longest = max(len(tok.encode(t).ids) for t in singles)
    print(f"wrote {os.path.relpath(GOLDEN, ROOT)} ({os.path.getsize(GOLDEN)} bytes): {len(singles) + len(pairs)} lines "
          f"({len(hard)} hard, {len(sample)} debdesc, {len(STRESS)} stress, {len(BYTE_LEVEL)} byte-level, "
          f"{len(pairs)} pairs); longest {longest} ids, {unk} with <unk>")


# ---------------------------------------------------------------- model

def build_embedder(vocab_size):
    torch.manual_seed(EMBEDDER_SEED)
    cfg = RobertaConfig(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=MAX_LENGTH + 2, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
        hidden_act="gelu", layer_norm_eps=1e-5, initializer_range=0.2, architectures=["RobertaModel"])
    model = perturb(RobertaModel(cfg, add_pooling_layer=False).eval(), EMBEDDER_SEED)
    assert torch.count_nonzero(model.embeddings.position_embeddings.weight[1]) == 0
    return model


def save_embedder(model, tokenizer_json):
    fresh_dir(EMBEDDER)
    model.save_pretrained(EMBEDDER)                 # config.json + model.safetensors, float32
    with open(TOKENIZER, "w", encoding="utf-8") as f:
        f.write(tokenizer_json)
    write_st_files(EMBEDDER)
    cfg = json.load(open(os.path.join(EMBEDDER, "config.json")))
    assert cfg["model_type"] == "roberta", cfg["model_type"]


# ---------------------------------------------------------------- expected outputs

def expected_inputs(all_texts):
    pool = held_out(all_texts)
    desc = random.Random(13).sample([t for t in pool if len(t) <= 60], 10)
    with open(HARD, encoding="utf-8") as f:
        hard = [json.loads(l)["text"] for l in f]
    pick = lambda prefix: next(t for t in hard + STRESS + BYTE_LEVEL if t.startswith(prefix))
    long_desc = " ".join(desc)
    chosen = [
        pick("Café"),                          # Latin accents: two-byte characters
        pick("Ελληνικά"),                      # Greek, Cyrillic, Hebrew, Arabic
        pick("中文"),                           # CJK: three-byte characters
        pick("Emoji:"),                        # four-byte characters, ZWJ sequences
        pick("Controls:"),                     # control characters
        pick("Whitespace:"),                   # tab, newline, CRLF, Unicode spaces
        pick("Combining:"),
        pick("   leading"),                    # outer spaces
        "",                                    # only <s> </s>
        pick("Hello world"),
        pick(" Hello world"),                  # a leading space changes the first token
        pick("Hello   world   "),
        pick("It's what"),                     # contractions of the GPT-2 regex, case-sensitive
        pick("numbers 1234567890"),
        pick("line one\n"),
        pick("\n\nleading newlines"),
        pick("tabs\tand"),
        pick("Ġ and Ċ"),                       # the byte-level characters written in the text
        pick("<s> literal"),                   # "<s>", "</s>", "<unk>", " <mask> " in the text
        pick("a<mask>b"),                      # <mask> with lstrip, with and without spaces
        pick(" <mask> "),
        pick("Punctuation:"),
        pick("Code:"),
        long_desc,                             # long: truncated to 64
    ]
    singles = [(t, None) for t in desc + chosen]
    pairs = [
        (desc[0], desc[3]),
        ("", desc[5]),                         # empty first segment
        (pick("   leading"), pick("a <mask> b")),
        (pick("Punctuation:"), long_desc),     # both long: longest-first truncation to 64
        (pick("Café"), pick("emoji")),
    ]
    return singles + pairs


def tokenize_inputs(items):
    tok = Tokenizer.from_file(TOKENIZER)
    tok.no_padding()
    tok.enable_truncation(MAX_LENGTH)
    encs = [tok.encode(a) if b is None else tok.encode(a, b) for a, b in items]
    for (a, b), e in zip(items, encs):
        assert len(e.ids) <= MAX_LENGTH and e.ids[0] == 0 and e.ids[-1] == 2 and 1 not in e.ids, (a, e.ids)
        assert set(e.type_ids) == {0} and set(e.attention_mask) == {1}, (a, e.type_ids)
        if b is not None:
            assert e.ids.count(2) >= 3, (a, b, e.ids)          # <s> A </s></s> B </s>
    tok.no_truncation()
    full = [len((tok.encode(a) if b is None else tok.encode(a, b)).ids) for a, b in items]
    assert any(n > MAX_LENGTH for n, (_, b) in zip(full, items) if b is None), "no single text is truncated"
    assert any(n > MAX_LENGTH for n, (_, b) in zip(full, items) if b is not None), "no pair is truncated"
    return [e.ids for e in encs], full


def write_expected(items, ids_list, full):
    cfg = json.load(open(os.path.join(EMBEDDER, "config.json")))
    W = load_file(os.path.join(EMBEDDER, "model.safetensors"))
    assert all(v.dtype == np.float32 for v in W.values())
    assert not any(k.startswith("roberta.") for k in W), sorted(W)[:3]
    assert not np.any(W["embeddings.word_embeddings.weight"][1]) and not np.any(W["embeddings.position_embeddings.weight"][1])
    t_emb, info = RobertaModel.from_pretrained(EMBEDDER, add_pooling_layer=False, output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    t_emb.eval()
    make_positions = type(t_emb.embeddings).create_position_ids_from_input_ids

    worst = {"hidden": 0.0, "embedding": 0.0}
    rows = []
    flo = lambda v: [float(x) for x in v]
    for (a, b), ids in zip(items, ids_list):
        assert make_positions(torch.tensor([ids]), 1)[0].tolist() == position_ids(ids, 1).tolist(), ids
        h = encode(W, cfg, ids)
        mean = h.mean(0)
        emb = mean / np.linalg.norm(mean)
        with torch.no_grad():
            th = t_emb(torch.tensor([ids])).last_hidden_state[0].double().numpy()
        tmean = th.mean(0)
        worst["hidden"] = max(worst["hidden"], float(np.abs(th - h).max()))
        worst["embedding"] = max(worst["embedding"], float(np.abs(tmean / np.linalg.norm(tmean) - emb).max()))
        row = {"text": a}
        if b is not None:
            row["text_pair"] = b
        row.update({"max_length": MAX_LENGTH, "ids": ids, "embedding": flo(emb), "cls": flo(h[0])})
        rows.append(row)
    print("torch float32 vs numpy float64, worst |diff|: " + ", ".join(f"{k} {v:.2e}" for k, v in worst.items()))
    assert max(worst.values()) < 1e-4, worst
    with open(EXPECTED, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    n_pairs = sum(b is not None for _, b in items)
    n_cut = sum(n > MAX_LENGTH for n in full)
    print(f"wrote {os.path.relpath(EXPECTED, ROOT)} ({os.path.getsize(EXPECTED)} bytes): {len(items)} inputs "
          f"({n_pairs} pairs, {n_cut} cut at {MAX_LENGTH} tokens: untruncated "
          f"{[n for n in full if n > MAX_LENGTH]})")


# ---------------------------------------------------------------- main

def main():
    torch.set_num_threads(1)
    all_texts = read_debdesc()
    tokenizer_json = make_tokenizer(training_texts(all_texts))
    vocab_size = len(json.loads(tokenizer_json)["model"]["vocab"])
    save_embedder(build_embedder(vocab_size), tokenizer_json)
    assert check_tokenizer() == vocab_size
    write_golden(all_texts)
    items = expected_inputs(all_texts)
    ids_list, full = tokenize_inputs(items)
    write_expected(items, ids_list, full)

    print_sizes(EMBEDDER, vocab_size)


if __name__ == "__main__":
    main()
