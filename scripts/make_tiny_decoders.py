#!/usr/bin/env python3
"""Makes three tiny random decoder language models and what transformers computes with
them, so Quern's decoder family can be checked exactly without the 500 MB SmolLM2:

  fixtures/models/tiny-llama/   LlamaForCausalLM: grouped-query attention (4 query heads,
                                2 key/value heads), untied output embeddings, rope_theta
                                10000 with "llama3" rope scaling; F32 weights
  fixtures/models/tiny-qwen2/   Qwen2ForCausalLM: q/k/v biases, tied embeddings, no
                                scaling; BF16 weights (the loader widens them)
  fixtures/models/tiny-gpt2/    GPT2LMHeadModel: learned positions, LayerNorm, tanh GELU,
                                Conv1D ([in, out]) weights; F16 weights
  fixtures/text/tiny-decoders-expected.jsonl
                                per model and prompt: the prompt's ids, the full logits
                                at its last position, the eight largest at every
                                position (teacher forcing), and 24 greedy tokens with
                                the smallest top-two logit margin along them

All three share one byte-level BPE tokenizer of 384 tokens trained here with Hugging
Face `tokenizers` on the first debdesc texts (ByteLevel pre-tokenizer with the GPT-2
regex, specials <|endoftext|> <|im_start|> <|im_end|>) and a ChatML chat template.

The reference is transformers itself run in float64 on the stored weights (widened
exactly), so it is the model's true output and Quern's fp32 is measured against it.
Weights are random with std 0.25 (not the usual 0.02): tiny weights give near-uniform
attention and near-tied logits, under which a wrong rotary layout or head grouping
would hardly show and greedy decoding would hinge on rounding.

Deterministic (fixed seeds). Usage, from the repo root, rewriting all outputs:
    /tmp/quern-llm-anchors/venv/bin/python scripts/make_tiny_decoders.py
Needs torch, transformers, safetensors and tokenizers (../shared/bench/setup-llm-anchors.sh).
"""
import json, os, shutil

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM)

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT = os.path.join(ROOT, "fixtures/models")
EXPECTED = os.path.join(ROOT, "fixtures/text/tiny-decoders-expected.jsonl")
SAMPLE = os.path.join(ROOT, "fixtures/text/debdesc-sample.jsonl")
VOCAB = 384
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
          " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
          "{% endif %}")
GREEDY = 24

texts = [json.loads(l)["text"] for l in open(SAMPLE, encoding="utf-8")]


def tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    assert tok.get_vocab_size() == VOCAB, tok.get_vocab_size()
    return tok


def save(name, model, dtype, tok, extra_config=None):
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    model.config.save_pretrained(d)
    if extra_config:
        c = json.load(open(os.path.join(d, "config.json")))
        c.update(extra_config)
        json.dump(c, open(os.path.join(d, "config.json"), "w"), indent=2, sort_keys=True)
    # Tied output embeddings are stored once, as transformers does.
    state = {k: v.to(dtype).contiguous() for k, v in model.state_dict().items()
             if not (model.config.tie_word_embeddings and k == "lm_head.weight")}
    save_file(state, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    tok.save(os.path.join(d, "tokenizer.json"))
    json.dump({"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|im_end|>",
               "unk_token": "<|endoftext|>", "chat_template": CHATML,
               "tokenizer_class": "PreTrainedTokenizerFast"},
              open(os.path.join(d, "tokenizer_config.json"), "w"), indent=2)
    json.dump({"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2},
              open(os.path.join(d, "generation_config.json"), "w"), indent=2)
    return d


def randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or ".ln_" in name or name.startswith("transformer.ln_f"):
                # Norm gains near 1, not 0 ± 0.25: a sign-flipped or zero gain is not a norm.
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.25 * torch.randn(p.shape, generator=g))


def reference(model_class, d):
    """transformers in float64 on the stored weights."""
    m = model_class.from_pretrained(d, dtype=torch.float64)
    m.eval()
    return m


def main():
    tok = tokenizer()
    prompts = [texts[i] for i in (0, 3, 7, 12, 20, 33, 41, 58)]
    prompts.append("<|im_start|>user\nWhat is a compiler?<|im_end|>\n<|im_start|>assistant\n")
    prompts.append("x")
    specs = [
        ("tiny-llama", LlamaForCausalLM, torch.float32, LlamaConfig(
            vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
            rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
            rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                             "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 32}), 20271),
        ("tiny-qwen2", Qwen2ForCausalLM, torch.bfloat16, Qwen2Config(
            vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=256,
            rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}), 20272),
        ("tiny-gpt2", GPT2LMHeadModel, torch.float16, GPT2Config(
            vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=128, bos_token_id=1,
            eos_token_id=2, layer_norm_epsilon=1e-5, tie_word_embeddings=True), 20273),
    ]
    rows = []
    for name, cls, dtype, config, seed in specs:
        torch.manual_seed(seed)
        model = cls(config)
        randomise(model, seed)
        d = save(name, model, dtype, tok)
        ref = reference(cls, d)
        for text in prompts:
            ids = tok.encode(text).ids
            with torch.no_grad():
                logits = ref(torch.tensor([ids])).logits[0]
                out = ref.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                   max_new_tokens=GREEDY, min_new_tokens=GREEDY, do_sample=False,
                                   pad_token_id=2, eos_token_id=None)[0][len(ids):]
            # The smallest gap between the best and second-best logit along the greedy
            # path: where it is tiny, fp32 may legitimately choose the other token.
            with torch.no_grad():
                path = torch.cat([torch.tensor(ids), out])
                pl = ref(path[None]).logits[0][len(ids) - 1:-1]
                top2 = torch.topk(pl, 2, dim=-1).values
                margin = float((top2[:, 0] - top2[:, 1]).min())
            # Full logits at the last position; at every position the eight largest
            # (id and value), which is what a wrong position or mask would move.
            top = torch.topk(logits, 8, dim=-1)
            rows.append({"model": name, "text": text, "ids": ids,
                         "last_logits": [float(f"{v:.9g}") for v in logits[-1]],
                         "top_ids": top.indices.tolist(),
                         "top_logits": [[float(f"{v:.9g}") for v in r] for r in top.values],
                         "greedy": [int(t) for t in out], "greedy_margin": margin})
        print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, "
              f"{os.path.getsize(os.path.join(d, 'model.safetensors'))} bytes of weights")
    with open(EXPECTED, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{len(rows)} expected rows in {os.path.relpath(EXPECTED, ROOT)}")


main()
