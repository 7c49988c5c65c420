#!/usr/bin/env bash
# Runs Quern's main job on the bundled example: builds a release binary, submits the
# example manifests in jobs/ (digits MLP on fixtures/) to a fresh spool, processes them
# once as cron would, and shows what landed in done/.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
swift build -c release --product quern 2>&1 | grep -v "^warning: 'main'" | tail -3
Q=.build/release/quern
SPOOL=${SPOOL:-/tmp/quern-example-spool}
rm -rf "$SPOOL"
for job in jobs/predict-digits.json jobs/evaluate-digits.json jobs/predict-digits-csv.json jobs/predict-digits-npy.json \
           jobs/predict-digits-int8.json jobs/evaluate-digits-png.json jobs/finetune-digits-mlp.json \
           jobs/finetune-digits-cnn.json jobs/finetune-digits-cnn-idx.json jobs/finetune-digits-mlp-wide.json \
           jobs/quantize-digits-mlp.json jobs/prune-digits-mlp.json \
           jobs/embed-texts.json jobs/score-queries.json jobs/score-pairs.json jobs/predict-texts.json \
           jobs/finetune-text-head.json jobs/quantize-text-encoder.json jobs/generate-chat.json \
           jobs/generate-openai-batch.json; do
  $Q submit "$job" "$SPOOL" --root .
done
$Q run --once "$SPOOL" --root .
# Round two prunes the wide mlp that round one trained. Its manifest names the model as
# done/finetune-digits-mlp-wide/model, a path inside the spool: submit resolves relative
# paths against the working directory, so the copy submitted here names it in full.
wide=$(mktemp)
sed "s#\"done/#\"$SPOOL/done/#" jobs/prune-digits-mlp-wide.json > "$wide"
$Q submit "$wide" "$SPOOL" --root .
rm -f "$wide"
$Q run --once "$SPOOL" --root .
$Q status "$SPOOL"
echo
echo "first results of done/predict-digits:"
gzip -dc "$SPOOL/done/predict-digits/results.jsonl.gz" | head -3 || true   # head closes the pipe early
echo
echo "accuracy from done/evaluate-digits/report.json:"
grep -m1 '"accuracy"' "$SPOOL/done/evaluate-digits/report.json"
echo
echo "trained, quantized and pruned models (done/*/model, plots in done/*/training.svg):"
show() { printf '  %-24s %s\n' "$1" "$(grep -m1 "\"$2\"" "$SPOOL/done/$1/report.json" | tr -d ' ,')"; }
show finetune-digits-mlp validation_accuracy
show finetune-digits-cnn validation_accuracy
show finetune-digits-cnn-idx validation_accuracy
show quantize-digits-mlp int8_accuracy
show prune-digits-mlp sparsity
show prune-digits-mlp-wide sparsity
echo
echo "text jobs on the tiny random BERT fixtures (real models: jobs/text/, after scripts/fetch-minilm.sh):"
gzip -dc "$SPOOL/done/score-queries/results.jsonl.gz" | head -2 || true
gzip -dc "$SPOOL/done/score-pairs/results.jsonl.gz" | head -2 || true
show finetune-text-head validation_accuracy
show quantize-text-encoder cosine_mean
echo
echo "generation on the tiny random decoders (real model: jobs/text/generate-smollm2.json, after scripts/fetch-smollm2.sh):"
gzip -dc "$SPOOL/done/generate-chat/results.jsonl.gz" | head -1 | cut -c1-160 || true
gzip -dc "$SPOOL/done/generate-openai-batch/results.jsonl.gz" | head -1 | cut -c1-160 || true
echo
echo "speed of the pruned models against their dense originals (report.json, metrics.speedup):"
show prune-digits-mlp speedup
show prune-digits-mlp-wide speedup
