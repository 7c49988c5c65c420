#!/usr/bin/env python3
"""scikit-learn's LogisticRegression on Quern's sentence embeddings: the baseline a
`finetune` head on the frozen encoder must match (quern bench classify).

Usage: text_head_anchor.py TRAIN.jsonl TRAIN_EMB.jsonl.gz TEST.jsonl TEST_EMB.jsonl.gz [--label section]
TRAIN/TEST.jsonl: records with "id" and the label field; *_EMB: results of Quern embed
jobs on them ({"id", "embedding"}). Prints one JSON line: test accuracy, fit seconds."""
import argparse, gzip, json, time
import numpy as np
from sklearn.linear_model import LogisticRegression

ap = argparse.ArgumentParser()
ap.add_argument("train"); ap.add_argument("train_emb"); ap.add_argument("test"); ap.add_argument("test_emb")
ap.add_argument("--label", default="section")
a = ap.parse_args()

def load(records, embeddings):
    labels = {}
    for line in open(records):
        o = json.loads(line)
        labels[str(o["id"])] = o[a.label]
    x, y = [], []
    for line in gzip.open(embeddings, "rt"):
        o = json.loads(line)
        x.append(o["embedding"]); y.append(labels[o["id"]])
    return np.array(x, np.float32), np.array(y)

xtr, ytr = load(a.train, a.train_emb)
xte, yte = load(a.test, a.test_emb)
t = time.perf_counter()
clf = LogisticRegression(max_iter=2000).fit(xtr, ytr)
fit = time.perf_counter() - t
print(json.dumps({"system": "sklearn LogisticRegression (lbfgs, C=1.0)", "train": len(ytr), "test": len(yte),
                  "test_accuracy": float((clf.predict(xte) == yte).mean()), "fit_seconds": round(fit, 2)}))
