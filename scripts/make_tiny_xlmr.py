#!/usr/bin/env python3
"""Makes the fixtures for Quern's SentencePiece Unigram tokenizer (read from a Hugging
Face tokenizer.json) and its XLM-RoBERTa encoder family, so both can be checked against
Hugging Face `tokenizers` and a float64 forward pass without network or large downloads:

  fixtures/text/unigram-spm/tokenizer.json
        the XLM-R pipeline: a `sentencepiece` Unigram model (nmt_nfkc normalization, so it
        carries a precompiled charsmap) trained here, converted by transformers'
        XLMRobertaConverter (vocab <s> <pad> </s> <unk>, the SentencePiece pieces shifted
        by one as fairseq does, <mask> last; normalizer Precompiled, Strip(right),
        Replace(" {2,}" -> "▁") as transformers 5 writes it, where older conversions such
        as xlm-roberta-base's have Precompiled, Replace(" {2,}" -> " "); Metaspace;
        <s> A </s> / <s> A </s></s> B </s>), with the five special tokens added the way
        XLMRobertaTokenizerFast adds them (<mask> with lstrip). Saved compact (one line).
  fixtures/text/unigram-nfkc/tokenizer.json
        a Unigram trained by `tokenizers` itself (NFKC + collapse of space runs,
        Metaspace, the same template); no charsmap, so a different normalizer path
  fixtures/text/unigram-golden.jsonl
        the ids `tokenizers` gives with each (specials included, no truncation) for the
        tokenizer hard cases, 150 held-out debdesc texts, ~50 texts written below to stress
        the normalizers and Metaspace, and 10 sentence pairs. On a few of them `tokenizers`
        and sentencepiece disagree (the script prints which): tokenizers' Precompiled
        normalizer maps whole grapheme clusters shorter than 6 bytes, or else character
        by character, so e.g. "a\u0323\u0302" becomes "ạ" (the circumflex is lost) and
        half-width "ｶﾞ" stays two characters; the ids here are tokenizers'.
  fixtures/models/tiny-xlmr/
        a sentence-transformers style embedder: a random XLMRobertaModel (hidden 32,
        2 layers, 4 heads, intermediate 64, 66 positions = 64 + padding_idx + 1) saved
        without prefix, modules.json, 1_Pooling (mean), Normalize listed, and the
        unigram-spm tokenizer.json
  fixtures/models/tiny-xlmr-classifier/
        a random XLMRobertaForSequenceClassification (tensors under `roberta.`, head
        `classifier.dense` / `classifier.out_proj`, 3 labels), same tokenizer
  fixtures/text/tiny-xlmr-expected.jsonl
        for ~40 texts and 5 pairs: ids (truncated to 64 with </s> kept last, as
        `tokenizers` truncation + post-processor do), the mean-pooled normalised
        embedding, the <s> hidden state and the classifier's logits; none of these
        contains id 1 (<pad>). Then 2 rows (PAD_TEXTS) whose text holds the literal added
        token "<pad>", so id 1 sits inside the sequence: RoBERTa numbers positions from
        the ids, and the tokenizer's attention mask is all ones for it (see below)

The expected outputs come from a float64 numpy forward pass written here over the
float32 weights read back from the files (exact erf GELU, LayerNorm eps 1e-5, RoBERTa
positions from the ids as transformers' create_position_ids_from_input_ids makes them:
a <pad> id gets padding_idx, every other token padding_idx + its running count of
non-<pad> tokens, which is padding_idx + 1 + index when there is no <pad>; token types
0, head out_proj(tanh(dense(h_<s>)))), and are cross-checked against transformers'
float32 model loaded from the same files.
A literal "<pad>" in the text is an ordinary token apart from its position: the
tokenizer's attention_mask is 1 for it, so attention sees it and sentence-transformers'
mean pooling (weighted by that mask) averages over it; the numpy pass attends to and
pools over every token, and the torch cross-check of those rows passes attention_mask =
all ones explicitly so transformers does not mask the pad.
Weights are transformers' init with initializer_range 0.2 (not 0.02, so attention is far
from uniform and GELU far from linear), and the biases and LayerNorm gains/shifts, which
transformers starts at 0 and 1, are set to random values so a dropped bias or a wrong
norm shows. The word-embedding row of <pad> stays zero as nn.Embedding(padding_idx) keeps it.

The SentencePiece vocabulary is smaller than "about 2000" on purpose: the nmt_nfkc
charsmap alone is 240 KB (320 KB of base64 in tokenizer.json), and with 1200 pieces each
model directory stays near 600 KB.

Determinism: sentencepiece training (one thread, no sampling or shuffling, fixed seed)
and everything else are reproducible, but `tokenizers`' UnigramTrainer is not: its EM
sums in hash-map order, so the scores differ in the last bits from run to run (same
pieces). So unigram-nfkc/tokenizer.json is trained only when missing (or with
--retrain-nfkc) and otherwise read back; the golden ids are computed from the file.

Usage, from the repo root, rewriting all outputs:
    /tmp/quern-anchors2/venv/bin/python scripts/make_tiny_xlmr.py [--retrain-nfkc]
    /tmp/quern-anchors2/venv/bin/python scripts/make_tiny_xlmr.py --scan-classifier-seed
Needs numpy, tokenizers, transformers, torch and safetensors (the anchors venv) plus
sentencepiece and protobuf; made with numpy 2.4.6, tokenizers 0.23.3, transformers
5.25.0, torch 2.13.0+cpu, safetensors 0.8.0, sentencepiece 0.2.3, protobuf 7.36.2
(`pip install sentencepiece==0.2.3 protobuf==7.36.2`). They are not in
requirements-fixtures.txt, which pins only make_fixtures.py's scikit-learn set.
"""
import json, math, os, random, shutil, sys, tempfile

os.environ.setdefault("RAYON_NUM_THREADS", "1")          # a small machine; not needed for determinism

import numpy as np
import sentencepiece as spm
import torch
from safetensors.numpy import load_file
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification, XLMRobertaModel
from transformers.convert_slow_tokenizer import SLOW_TO_FAST_CONVERTERS
from transformers.utils import logging as hf_logging

# The float64 building blocks and file helpers the tiny BERT's script already has.
from make_tiny_bert import fresh_dir, gelu, layer_norm, write_json, write_st_modules

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SPM_DIR = os.path.join(ROOT, "fixtures/text/unigram-spm")
NFKC_DIR = os.path.join(ROOT, "fixtures/text/unigram-nfkc")
GOLDEN = os.path.join(ROOT, "fixtures/text/unigram-golden.jsonl")
EMBEDDER = os.path.join(ROOT, "fixtures/models/tiny-xlmr")
CLASSIFIER = os.path.join(ROOT, "fixtures/models/tiny-xlmr-classifier")
EXPECTED = os.path.join(ROOT, "fixtures/text/tiny-xlmr-expected.jsonl")
HARD = os.path.join(ROOT, "fixtures/text/tokenizer-hard-cases.jsonl")
DEBDESC = os.path.join(ROOT, "..", "shared", "corpora", "debdesc.jsonl")
if not os.path.exists(DEBDESC):
    DEBDESC = "/work/shared/corpora/debdesc.jsonl"

TRAIN_LINES = 20000          # the first debdesc lines train both tokenizers; tests use later ones
SPM_VOCAB = 1200             # SentencePiece pieces; XLM-R's vocabulary is these + <pad> + <mask>
SPM_SEED = 20264
NFKC_VOCAB = 1500
MULTI_REPEAT = 10            # so the few non-Latin lines get pieces longer than one character
MAX_LENGTH = 64              # tokens, specials included: max_position_embeddings - padding_idx - 1
LABELS = ["admin", "games", "science"]
# Different seeds so a loader that mixed the two models up would not pass. With random
# weights a classifier tends to give one label to everything; CLASSIFIER_SEED is the first
# seed from 20270 on (--scan-classifier-seed) whose classifier gives each of the three
# labels the top logit on at least MIN_PER_LABEL of the expected-output inputs (8 / 33 / 3),
# so a test can check argmax and id2label too. Changing the inputs may need a rescan.
EMBEDDER_SEED = 20262
CLASSIFIER_SEED = 20279
MIN_PER_LABEL = 3
PERTURB_OFFSET = 1000        # the bias/LayerNorm perturbation uses seed + this

# Lines added to the SentencePiece/Unigram training text so non-Latin scripts get pieces
# (debdesc is nearly all ASCII English). Repeated MULTI_REPEAT times.
MULTILINGUAL = [
    "Ελληνικά: η γλώσσα είναι όμορφη και παλιά.",
    "Το πρόγραμμα διαβάζει αρχεία κειμένου και εικόνες.",
    "Русский язык: программа для обработки текста.",
    "Библиотека для работы с сетью и файлами.",
    "Українська мова: бібліотека для роботи з файлами.",
    "עברית: ספרייה לעיבוד טקסט וקבצים.",
    "العربية: مكتبة لمعالجة النصوص والملفات.",
    "مرحبا بالعالم، هذا برنامج حر ومفتوح المصدر.",
    "فارسی: کتابخانه برای پردازش متن.",
    "हिन्दी: पाठ और फ़ाइलों को संसाधित करने के लिए पुस्तकालय।",
    "नमस्ते दुनिया, यह एक मुक्त सॉफ़्टवेयर है।",
    "বাংলা: পাঠ্য প্রক্রিয়াকরণের জন্য লাইব্রেরি।",
    "தமிழ்: உரை செயலாக்க நூலகம்.",
    "ภาษาไทย: ไลบรารีสำหรับประมวลผลข้อความและไฟล์",
    "สวัสดีชาวโลก นี่คือซอฟต์แวร์เสรี",
    "中文：用于处理文本和文件的库。",
    "机器学习是人工智能的一个分支，自由软件。",
    "繁體中文：處理文字與檔案的程式庫。",
    "日本語：テキストとファイルを処理するライブラリです。",
    "ひらがなとカタカナ、そして漢字を使います。",
    "한국어: 텍스트와 파일을 처리하는 라이브러리입니다.",
    "안녕하세요 세계, 이것은 자유 소프트웨어입니다.",
    "ქართული: ბიბლიოთეკა ტექსტის დამუშავებისთვის.",
    "Հայերեն: գրադարան տեքստի մշակման համար:",
    "Tiếng Việt: thư viện xử lý văn bản và tệp tin.",
    "Türkçe: metin ve dosya işleme kütüphanesi; İstanbul, ığdır.",
    "Deutsch: Bibliothek zur Verarbeitung von Text und Dateien, Straße, Größe.",
    "Français : bibliothèque pour traiter le texte, les fichiers et les données.",
    "Español: biblioteca para procesar texto y archivos, año, niño.",
    "Polski: biblioteka do przetwarzania tekstu, żółć, źdźbło.",
    "Čeština: knihovna pro zpracování textu, příliš žluťoučký kůň.",
    "Português: biblioteca para processar texto e ficheiros, ação, coração.",
    "Emoji 😀 👍 ❤️ 🎉 ✅ and symbols © ® ™ € £ ¥ ° ± × ÷",
]

# Written to stress normalizers (nmt_nfkc charsmap and NFKC) and Metaspace.
STRESS = [
    "ＡＢＣ１２３ ｆｕｌｌｗｉｄｔｈ Ｌａｔｉｎ ａｎｄ ｄｉｇｉｔｓ",
    "Ｈｅｌｌｏ，　ｗｏｒｌｄ！（ｆｕｌｌｗｉｄｔｈ　ｐｕｎｃｔｕａｔｉｏｎ）",
    "ﬁnance ﬂow ﬀ ﬃ ﬄ ﬅ ﬆ ligatures",
    "① ② ⑩ ⑳ ㎏ ㎞ ㎡ ㏄ ½ ¼ ¾ ™ ℃ № ℡ ㈱",
    "Ⅻ ⅻ Ⅳ ℌ ℍ ℕ 𝐀𝐁𝐂 𝒜 𝔄 𝟏𝟐𝟑 x² H₂O m³",
    "Ǆ ǅ ǆ Ĳ ĳ ŉ ſ µ K Å Ω",
    "non\u00a0breaking\u00a0space and narrow\u202fno-break and figure\u2007space",
    "spaces:\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2008\u2009\u200a|\u3000|\u205f|\u1680|",
    "cafe\u0301 vs caf\u00e9, Ame\u0301lie vs Amélie, n\u0303 vs ñ",
    "e\u0301",
    "\u0301 a combining mark with nothing before it",
    "stacked e\u0301\u0302\u0303\u0304 and a\u0323\u0302 vs ậ",
    "Hangul jamo \u1100\u1161\u11a8 vs syllable \uac01; \u1112\u1161\u11ab\u1100\u1173\u11af vs 한글",
    "half-width jamo ﾡﾢﾣ and compatibility jamo ㄱㄴㄷ",
    "family 👨\u200d👩\u200d👧\u200d👦 skin 👍🏻👍🏿 astronaut 🧑🏽\u200d🚀 heart ❤\ufe0f",
    "flags 🇯🇵🇩🇪🇧🇷 and 🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
    "机器学习是人工智能的一个分支。中文没有空格",
    "ひらがな カタカナ ﾊﾝｶｸｶﾀｶﾅ ｶﾞｷﾞｸﾞ ﾊﾟﾋﾟ ｰ ｡｢｣､･",
    "日本語のテキスト、漢字とかな。",
    "مرحبا بالعالم، هذا نص عربي. ﻻ ﷺ ﷲ",
    "नमस्ते दुनिया, क़ ख़ ग़ and क\u093c",
    "สวัสดีครับ ภาษาไทยไม่มีช่องว่างระหว่างคำ",
    "עברית עם ניקוד: שָׁלוֹם",
    "Русский текст с ёлкой и Ё, Ukrainian ї є ґ",
    "Tiếng Việt có dấu: Nguyễn, Trường, điện thoại",
    "tab\there\nnewline\r\nCRLF\rCR end",
    "null\u0000bell\u0007escape\u001bdel\u007f end",
    "\u0000",
    "\t\n\r",
    "a  b   c    d     e",
    "  two leading spaces",
    "trailing spaces   ",
    "   both   ",
    " ",
    "      ",
    "\u00a0",
    "\u3000\u3000",
    "",
    "<s> literal </s> specials <unk> and <mask> here",
    "<s></s><unk><mask>",
    "a<mask>b and a <mask> b and a  <mask>  b",
    "<pad> and <PAD> and < s > and <s",
    "▁ the metaspace character ▁▁ itself and ▁word and word▁",
    "▁",
    "▁▁ ▁",
    "Ünïcödé ÀÉÎÕÜ àéîõü ñ ç ß ø å æ œ",
    "…‥ ″ ‴ ﹏ ＿ ～ ｰ — – ‐ ‒",
    "soft\u00adhyphen zero\u200bwidth \ufeffbom left\u200eto\u200fright joiner\u200dnon\u200cjoiner",
    "line\u2028separator\u2029paragraph\u0085next line",
    "emoji text 😀😃😄 and rare ones 🦀 🦄 🫠 🪿",
    "numbers 1,234.56 and ٣٤٥ and ०१२ and 一二三",
    "private use \ue000 and replacement \ufffd and noncharacter \ufdd0",
]

# Sentence pairs for the golden file (indices into the stress list / literal texts).
GOLDEN_PAIRS = [
    ("Real-time strategy game", "Library for processing text"),
    ("", "only the second segment"),
    ("only the first segment", ""),
    ("", ""),
    ("<mask> at the start", "and </s> in the second"),
    ("  spaces around  ", "  and here  "),
    ("ＡＢＣ１２３", "ﬁ ﬂ ① ㎏"),
    ("中文字符", "日本語のテキスト"),
    ("cafe\u0301", "caf\u00e9"),
    ("▁leading metaspace", "trailing metaspace▁"),
]

# Single texts with the literal added token "<pad>" (id 1) inside, written after every
# other row of tiny-xlmr-expected.jsonl: positions skip the pad (it gets padding_idx), and
# it is attended to and mean-pooled like any token (the tokenizer's attention_mask is 1).
PAD_TEXTS = [
    "one <pad> two three",
    "<pad> at the start and <pad> inside",
]


# ---------------------------------------------------------------- texts

def read_debdesc():
    if not os.path.exists(DEBDESC):
        sys.exit(f"missing corpus {DEBDESC}")
    with open(DEBDESC, encoding="utf-8") as f:
        return [json.loads(l)["text"] for l in f]


def training_texts(all_texts):
    return all_texts[:TRAIN_LINES] + MULTILINGUAL * MULTI_REPEAT


def held_out(all_texts):
    """Texts from after the training lines that are not training lines themselves, in file order."""
    train = set(all_texts[:TRAIN_LINES])
    out, seen = [], set()
    for t in all_texts[TRAIN_LINES:]:
        if t not in train and t not in seen:
            seen.add(t)
            out.append(t)
    return out


# ---------------------------------------------------------------- tokenizers

class _SlowXLMRobertaStandIn:
    """What XLMRobertaConverter reads from the slow (sentencepiece) XLMRobertaTokenizer.
    transformers 5 no longer has that class (its XLMRobertaTokenizer is tokenizers-backed
    and builds a different pipeline: WhitespaceSplit + Metaspace, no space collapsing);
    convert_slow_tokenizer would call the same converter with the slow tokenizer."""

    def __init__(self, vocab_file):
        self.vocab_file = vocab_file
        self.add_prefix_space = True       # the slow tokenizer's sentencepiece adds a dummy prefix

    def convert_tokens_to_ids(self, token):
        return {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}[token]


def make_spm_tokenizer(texts):
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "train.txt"), "w", encoding="utf-8") as f:
            for t in texts:
                f.write(" ".join(t.splitlines()) + "\n")
        spm.set_random_generator_seed(SPM_SEED)
        spm.SentencePieceTrainer.train(
            input=os.path.join(tmp, "train.txt"), model_prefix=os.path.join(tmp, "spm"),
            model_type="unigram", vocab_size=SPM_VOCAB, character_coverage=1.0,
            normalization_rule_name="nmt_nfkc",       # the default; spelled out: it gives the charsmap
            num_threads=1, input_sentence_size=0, shuffle_input_sentence=False, minloglevel=2)
        model_file = os.path.join(tmp, "spm.model")
        tok = SLOW_TO_FAST_CONVERTERS["XLMRobertaTokenizer"](_SlowXLMRobertaStandIn(model_file)).converted()
        sp = spm.SentencePieceProcessor(model_file=model_file)
    # XLMRobertaTokenizerFast then registers its special tokens (the converter adds only
    # the control pieces <s> </s>); <mask> with lstrip, so "a <mask>" eats the space.
    tok.add_special_tokens([
        AddedToken("<s>", normalized=False, special=True),
        AddedToken("<pad>", normalized=False, special=True),
        AddedToken("</s>", normalized=False, special=True),
        AddedToken("<unk>", normalized=False, special=True),
        AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True),
    ])
    os.makedirs(SPM_DIR, exist_ok=True)
    for name in os.listdir(SPM_DIR):
        os.remove(os.path.join(SPM_DIR, name))
    # Compact: the charsmap and vocabulary pretty-printed would add 40 KB to each model directory.
    tok.save(os.path.join(SPM_DIR, "tokenizer.json"), pretty=False)
    return sp


def make_nfkc_tokenizer(texts, retrain):
    path = os.path.join(NFKC_DIR, "tokenizer.json")
    if os.path.exists(path) and not retrain:
        print(f"kept {os.path.relpath(path, ROOT)} (UnigramTrainer is not bit-reproducible; --retrain-nfkc to remake it)")
        return
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()                # "▁", prepend_scheme "always", split
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=NFKC_VOCAB, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                      unk_token="<unk>", show_progress=False)
    tok.train_from_iterator(texts, trainer)
    vocab = tok.get_vocab()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", vocab["<s>"]), ("</s>", vocab["</s>"])])
    fresh_dir(NFKC_DIR)
    tok.save(path)
    print(f"trained {os.path.relpath(path, ROOT)}")


def describe(name, path):
    j = json.load(open(path, encoding="utf-8"))
    kinds = lambda c, key: None if c is None else (
        f"{c['type']}[{', '.join(kinds(x, key) for x in c[key])}]" if c["type"] == "Sequence" else c["type"])
    print(f"{name}: normalizer {kinds(j['normalizer'], 'normalizers')}, pre_tokenizer "
          f"{kinds(j['pre_tokenizer'], 'pretokenizers')}, model {j['model']['type']}, post_processor "
          f"{j['post_processor']['type']}, decoder {kinds(j['decoder'], 'decoders')}")
    for part in ("normalizer", "pre_tokenizer", "decoder"):
        c = j[part]
        for x in (c.get("normalizers") or c.get("pretokenizers") or c.get("decoders") or [c]):
            if x["type"] == "Precompiled":
                import base64
                print(f"  {part} Precompiled: precompiled_charsmap {len(base64.b64decode(x['precompiled_charsmap']))} bytes")
            else:
                print(f"  {part} {json.dumps(x, ensure_ascii=False)}")
    m = j["model"]
    scores = [s for _, s in m["vocab"]]
    zero = [p for p, s in m["vocab"] if s == 0.0]
    print(f"  model unk_id {m['unk_id']}, byte_fallback {m.get('byte_fallback')}, vocab {len(m['vocab'])}, "
          f"scores {min(scores):.4f}..{max(s for s in scores if s != 0.0):.4f}, score 0.0: {zero}")
    print(f"  added_tokens {[(a['id'], a['content'], 'lstrip' if a['lstrip'] else '') for a in j['added_tokens']]}")
    return j


def check_tokenizers():
    spm_json = describe("unigram-spm", os.path.join(SPM_DIR, "tokenizer.json"))
    nfkc_json = describe("unigram-nfkc", os.path.join(NFKC_DIR, "tokenizer.json"))
    norm = spm_json["normalizer"]
    steps = norm["normalizers"] if norm["type"] == "Sequence" else [norm]
    assert any(s["type"] == "Precompiled" and s["precompiled_charsmap"] for s in steps), norm
    assert spm_json["pre_tokenizer"]["type"] == "Metaspace", spm_json["pre_tokenizer"]
    for j in (spm_json, nfkc_json):
        assert j["model"]["type"] == "Unigram"
    for d in (SPM_DIR, NFKC_DIR):
        tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        a, b = tok.encode("hello").tokens, tok.encode("world").tokens
        assert a[0] == "<s>" and a[-1] == "</s>", a
        assert tok.encode("hello", "world").tokens == a + ["</s>"] + b[1:], tok.encode("hello", "world").tokens
        assert tok.token_to_id("<s>") == 0 and tok.token_to_id("<pad>") == 1 and tok.token_to_id("</s>") == 2


def write_golden(all_texts, sp):
    with open(HARD, encoding="utf-8") as f:
        hard = [json.loads(l)["text"] for l in f]
    sample = random.Random(7).sample(held_out(all_texts)[-20000:], 150)
    singles = hard + sample + STRESS
    spm_mismatch = []
    with open(GOLDEN, "w", encoding="utf-8") as f:
        for name, d in (("unigram-spm", SPM_DIR), ("unigram-nfkc", NFKC_DIR)):
            tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
            tok.no_truncation(); tok.no_padding()
            for t in singles:
                ids = tok.encode(t).ids
                f.write(json.dumps({"tokenizer": name, "text": t, "ids": ids}, ensure_ascii=False) + "\n")
                if name == "unigram-spm":
                    # Informational: sentencepiece itself, ids moved to XLM-R's numbering.
                    ref = [{0: 3, 1: 0, 2: 2}.get(i, i + 1) for i in sp.encode(t)]
                    if ref != ids[1:-1]:
                        spm_mismatch.append(t)
            for a, b in GOLDEN_PAIRS:
                f.write(json.dumps({"tokenizer": name, "text": a, "pair": b, "ids": tok.encode(a, b).ids},
                                   ensure_ascii=False) + "\n")
    n = 2 * (len(singles) + len(GOLDEN_PAIRS))
    print(f"wrote {os.path.relpath(GOLDEN, ROOT)} ({os.path.getsize(GOLDEN)} bytes): {n} lines "
          f"({len(hard)} hard, {len(sample)} debdesc, {len(STRESS)} stress, {len(GOLDEN_PAIRS)} pairs per tokenizer)")
    print(f"  sentencepiece itself differs from tokenizers (unigram-spm) on {len(spm_mismatch)} of {len(singles)} texts:")
    for t in spm_mismatch:
        print(f"    {t[:70]!r}")


# ---------------------------------------------------------------- models

def config(vocab_size, **extra):
    return XLMRobertaConfig(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=MAX_LENGTH + 2, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
        hidden_act="gelu", layer_norm_eps=1e-5, initializer_range=0.2, **extra)


def perturb(model, seed):
    """transformers starts every bias at 0 and LayerNorm at (1, 0): give them random values."""
    g = torch.Generator().manual_seed(seed + PERTURB_OFFSET)
    with torch.no_grad():
        for _, m in model.named_modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.copy_(1.0 + 0.1 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
            elif isinstance(m, torch.nn.Linear) and m.bias is not None:
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
    emb = model.get_input_embeddings().weight
    assert torch.count_nonzero(emb[1]) == 0, "the <pad> row must stay zero"
    return model


def build_embedder(vocab_size):
    torch.manual_seed(EMBEDDER_SEED)
    cfg = config(vocab_size, architectures=["XLMRobertaModel"])
    return perturb(XLMRobertaModel(cfg, add_pooling_layer=False).eval(), EMBEDDER_SEED)


def build_classifier(vocab_size, seed):
    torch.manual_seed(seed)
    cfg = config(vocab_size, architectures=["XLMRobertaForSequenceClassification"], num_labels=len(LABELS),
                 id2label=dict(enumerate(LABELS)), label2id={l: i for i, l in enumerate(LABELS)},
                 problem_type="single_label_classification")
    return perturb(XLMRobertaForSequenceClassification(cfg).eval(), seed)


def save_model(model, d):
    fresh_dir(d)
    model.save_pretrained(d)                      # config.json + model.safetensors, float32
    shutil.copyfile(os.path.join(SPM_DIR, "tokenizer.json"), os.path.join(d, "tokenizer.json"))


def write_st_files(d):
    write_st_modules(d, 32)
    write_json(os.path.join(d, "sentence_bert_config.json"), {"max_seq_length": MAX_LENGTH, "do_lower_case": False})


# ---------------------------------------------------------------- numpy forward pass

def position_ids(ids, pad):
    """transformers' create_position_ids_from_input_ids (fairseq's make_positions): a <pad>
    id gets position pad, any other token pad + the number of non-<pad> ids up to and
    including it; with no <pad> in ids that is pad + 1 + index."""
    mask = (np.asarray(ids, np.int64) != pad).astype(np.int64)
    return np.cumsum(mask) * mask + pad


def encode(W, cfg, ids, prefix=""):
    """Last hidden state [L, H] in float64 of one unpadded sequence; every token, a literal
    <pad> included, is attended to (attention_mask all ones)."""
    W = {k[len(prefix):]: v.astype(np.float64) for k, v in W.items() if k.startswith(prefix)}
    L, H, nh, eps = len(ids), cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
    d = H // nh
    positions = position_ids(ids, cfg["pad_token_id"])       # RoBERTa: numbered from the ids
    x = (W["embeddings.word_embeddings.weight"][ids]
         + W["embeddings.position_embeddings.weight"][positions]
         + W["embeddings.token_type_embeddings.weight"][np.zeros(L, np.int64)])
    x = layer_norm(x, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"], eps)
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        lin = lambda t, n: t @ W[p + n + ".weight"].T + W[p + n + ".bias"]
        heads = lambda t: t.reshape(L, nh, d).transpose(1, 0, 2)     # [nh, L, d]
        q, k, v = (heads(lin(x, f"attention.self.{n}")) for n in ("query", "key", "value"))
        s = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        c = (s @ v).transpose(1, 0, 2).reshape(L, H)
        x = layer_norm(lin(c, "attention.output.dense") + x,
                       W[p + "attention.output.LayerNorm.weight"], W[p + "attention.output.LayerNorm.bias"], eps)
        h = gelu(lin(x, "intermediate.dense"))
        x = layer_norm(lin(h, "output.dense") + x, W[p + "output.LayerNorm.weight"], W[p + "output.LayerNorm.bias"], eps)
    return x


def head(W, h0):
    f = lambda n: W[n].astype(np.float64)
    t = np.tanh(h0 @ f("classifier.dense.weight").T + f("classifier.dense.bias"))
    return t @ f("classifier.out_proj.weight").T + f("classifier.out_proj.bias")


# ---------------------------------------------------------------- expected outputs

def expected_inputs(all_texts):
    """[(text, text_pair or None)]: short held-out descriptions, hard cases and stress
    texts chosen for what they exercise, a long text, and pairs."""
    pool = held_out(all_texts)
    desc = random.Random(11).sample([t for t in pool if len(t) <= 60], 18)
    with open(HARD, encoding="utf-8") as f:
        hard = [json.loads(l)["text"] for l in f]
    pick = lambda prefix: next(t for t in hard + STRESS if t.startswith(prefix))
    chosen = [
        pick("Café"),                         # Latin accents
        pick("Ελληνικά"),                     # Greek, Cyrillic, Hebrew, Arabic
        pick("中文"),                          # CJK without spaces
        pick("Emoji"),                        # mostly <unk>
        pick("Controls:"),                    # control characters
        pick("Whitespace:"),                  # Unicode spaces, zero-width characters
        pick("Greek question mark"),          # compatibility forms, full width
        pick("Combining:"),                   # combining marks
        pick("   leading"),                   # outer spaces
        "",                                   # only <s> </s>
        pick("ＡＢＣ１２３"),
        pick("ﬁnance"),
        pick("<s> literal"),                  # special tokens written in the text
        pick("a<mask>b"),                     # <mask> with lstrip
        pick("a  b   c"),                     # runs of spaces
        pick("ひらがな"),                      # half-width katakana
        pick("नमस्ते"),
        pick("สวัสดี"),
        pick("Punctuation:"),                 # long: truncated to 64
        pick("URLs"),
        " ".join(desc[:12]),                  # long: truncated to 64
    ]
    singles = [(t, None) for t in desc + chosen]
    pairs = [
        (desc[0], desc[4]),
        (desc[6], desc[1]),
        (pick("Café"), desc[8]),
        ("", desc[2]),                        # empty first segment
        (pick("Punctuation:"), " ".join(desc[:12])),   # both long: longest-first truncation to 64
    ]
    return singles + pairs


def tokenize_inputs(items):
    tok = Tokenizer.from_file(os.path.join(SPM_DIR, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(MAX_LENGTH)   # counts the specials; the post-processor adds </s> after cutting
    encs = [tok.encode(a) if b is None else tok.encode(a, b) for a, b in items]
    for e in encs:
        assert len(e.ids) <= MAX_LENGTH and e.ids[0] == 0 and e.ids[-1] == 2 and 1 not in e.ids
        assert set(e.type_ids) == {0}
    tok.no_truncation()
    full = [len((tok.encode(a) if b is None else tok.encode(a, b)).ids) for a, b in items]
    assert any(n > MAX_LENGTH for n, (_, b) in zip(full, items) if b is None), "no single text is truncated"
    assert any(n > MAX_LENGTH for n, (_, b) in zip(full, items) if b is not None), "no pair is truncated"
    return [e.ids for e in encs]


def tokenize_pad_texts():
    """Ids of PAD_TEXTS, each with the literal "<pad>" as id 1 and an all-ones attention mask."""
    tok = Tokenizer.from_file(os.path.join(SPM_DIR, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(MAX_LENGTH)
    out = []
    for t in PAD_TEXTS:
        e = tok.encode(t)
        assert e.ids[0] == 0 and e.ids[-1] == 2 and len(e.ids) < MAX_LENGTH, (t, e.ids)
        assert e.ids.count(1) == t.count("<pad>") >= 1, (t, e.ids)
        assert set(e.attention_mask) == {1} and set(e.type_ids) == {0}, (t, e.attention_mask)
        # a pad before some later token, so its positions are not padding_idx + 1 + index
        assert list(position_ids(e.ids, 1)) != list(2 + np.arange(len(e.ids))), (t, e.ids)
        out.append(e.ids)
    return out


def scan_classifier_seed(all_texts, vocab_size, start=20270, tries=200):
    ids = tokenize_inputs(expected_inputs(all_texts))
    for seed in range(start, start + tries):
        m = build_classifier(vocab_size, seed)
        with torch.no_grad():
            top = [int(m(torch.tensor([x])).logits[0].argmax()) for x in ids]
        counts = [top.count(i) for i in range(len(LABELS))]
        print(seed, counts)
        if min(counts) >= MIN_PER_LABEL:
            return seed


def write_expected(items, ids_list, pad_ids):
    """Rows for items (no <pad> id), then for PAD_TEXTS (pad_ids, a literal <pad> inside)."""
    emb_cfg = json.load(open(os.path.join(EMBEDDER, "config.json")))
    cls_cfg = json.load(open(os.path.join(CLASSIFIER, "config.json")))
    W_emb = load_file(os.path.join(EMBEDDER, "model.safetensors"))
    W_cls = load_file(os.path.join(CLASSIFIER, "model.safetensors"))
    assert all(v.dtype == np.float32 for v in list(W_emb.values()) + list(W_cls.values()))
    assert not any(k.startswith("roberta.") for k in W_emb)
    assert all(k.startswith(("roberta.", "classifier.")) for k in W_cls)
    # transformers' float32 models, loaded from the same files, for the cross-check
    # add_pooling_layer=False as it was made: a plain AutoModel load would report the
    # (unused) pooler missing, as it does for sentence-transformers checkpoints without one
    t_emb, info = XLMRobertaModel.from_pretrained(EMBEDDER, add_pooling_layer=False, output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    t_cls, info = XLMRobertaForSequenceClassification.from_pretrained(CLASSIFIER, output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    t_emb.eval(); t_cls.eval()

    worst = {"hidden": 0.0, "embedding": 0.0, "classifier hidden": 0.0, "logits": 0.0}
    worst_pad = dict(worst)                        # the PAD_TEXTS rows, reported apart
    rows, tops = [], []
    flo = lambda v: [float(x) for x in v]          # json writes float repr: full precision
    make_positions = type(t_emb.embeddings).create_position_ids_from_input_ids
    inputs = [(a, b, ids, False) for (a, b), ids in zip(items, ids_list)]
    inputs += [(t, None, ids, True) for t, ids in zip(PAD_TEXTS, pad_ids)]
    for a, b, ids, literal_pad in inputs:
        assert (1 in ids) == literal_pad, (a, ids)
        assert make_positions(torch.tensor([ids]), 1)[0].tolist() == position_ids(ids, 1).tolist(), ids
        h = encode(W_emb, emb_cfg, ids)
        mean = h.mean(0)                           # the attention mask is all ones: every token counts
        emb = mean / np.linalg.norm(mean)
        hc = encode(W_cls, cls_cfg, ids, prefix="roberta.")
        logits = head(W_cls, hc[0])
        if not literal_pad:
            tops.append(int(np.argmax(logits)))
        with torch.no_grad():
            x = torch.tensor([ids])
            # a literal <pad>: attention_mask all ones as the tokenizer gives it, so the pad is
            # attended to (positions still come from the ids inside transformers)
            kw = {"attention_mask": torch.ones_like(x)} if literal_pad else {}
            th = t_emb(x, **kw).last_hidden_state[0].double().numpy()
            tout = t_cls(x, output_hidden_states=True, **kw)
            thc = tout.hidden_states[-1][0].double().numpy()
            tl = tout.logits[0].double().numpy()
        tmean = th.mean(0)
        w = worst_pad if literal_pad else worst
        for k, diff in (("hidden", np.abs(th - h).max()), ("embedding", np.abs(tmean / np.linalg.norm(tmean) - emb).max()),
                        ("classifier hidden", np.abs(thc - hc).max()), ("logits", np.abs(tl - logits).max())):
            w[k] = max(w[k], float(diff))
        row = {"text": a}
        if b is not None:
            row["text_pair"] = b
        row.update({"max_length": MAX_LENGTH, "ids": ids, "embedding": flo(emb), "cls": flo(h[0]),
                    "logits": flo(logits)})
        rows.append(row)
    print("torch float32 vs numpy float64, worst |diff|: " + ", ".join(f"{k} {v:.2e}" for k, v in worst.items()))
    print(f"  the {len(PAD_TEXTS)} literal <pad> rows: " + ", ".join(f"{k} {v:.2e}" for k, v in worst_pad.items()))
    assert max(worst.values()) < 1e-4, worst
    assert max(worst_pad.values()) < 1e-4, worst_pad
    counts = [tops.count(i) for i in range(len(LABELS))]
    assert min(counts) >= MIN_PER_LABEL, f"classifier seed {CLASSIFIER_SEED} does not use every label: {counts}"
    with open(EXPECTED, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    n_pairs = sum(b is not None for _, b in items)
    n_full = sum(len(i) == MAX_LENGTH for i in ids_list)
    print(f"wrote {os.path.relpath(EXPECTED, ROOT)} ({os.path.getsize(EXPECTED)} bytes): {len(items)} inputs "
          f"({n_pairs} pairs, {n_full} at the {MAX_LENGTH}-token limit), top labels {dict(zip(LABELS, counts))}, "
          f"then {len(PAD_TEXTS)} with a literal <pad>")


# ---------------------------------------------------------------- main

def main():
    torch.set_num_threads(1)
    all_texts = read_debdesc()
    texts = training_texts(all_texts)
    sp = make_spm_tokenizer(texts)
    make_nfkc_tokenizer(texts, "--retrain-nfkc" in sys.argv)
    check_tokenizers()
    vocab_size = Tokenizer.from_file(os.path.join(SPM_DIR, "tokenizer.json")).get_vocab_size()
    if "--scan-classifier-seed" in sys.argv:
        print("first seed using all labels:", scan_classifier_seed(all_texts, vocab_size))
        return
    write_golden(all_texts, sp)

    save_model(build_embedder(vocab_size), EMBEDDER)
    write_st_files(EMBEDDER)
    save_model(build_classifier(vocab_size, CLASSIFIER_SEED), CLASSIFIER)

    items = expected_inputs(all_texts)
    write_expected(items, tokenize_inputs(items), tokenize_pad_texts())

    for d in (SPM_DIR, NFKC_DIR, EMBEDDER, CLASSIFIER):
        print_sizes(d, vocab_size if d != NFKC_DIR else NFKC_VOCAB)


def print_sizes(d, vocab_size):
    """Each file of directory `d` and the total, as the fixtures' budget is checked."""
    total = 0
    for dirpath, _, files in sorted(os.walk(d)):
        for name in sorted(files):
            p = os.path.join(dirpath, name)
            total += os.path.getsize(p)
            print(f"  {os.path.relpath(p, ROOT)} ({os.path.getsize(p)} bytes)")
    print(f"{os.path.relpath(d, ROOT)}: {total} bytes, vocab {vocab_size}")


if __name__ == "__main__":
    main()
