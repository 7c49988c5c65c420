#!/usr/bin/env bash
# Fuzzes every parser of untrusted bytes with libFuzzer and AddressSanitizer.
#
#   scripts/fuzz.sh [--seconds N] [--jobs J] [--seed S] [NAME...]
#
# NAME: harnesses to run (default: all; `quern-fuzz` lists them). Each runs N seconds
# (default 60), J at a time (default 1); --seed makes a run repeatable (CI). The corpus
# grows in .build/fuzz-corpus/NAME, seeded from Tests/Fuzz/NAME; a finding is saved as
# .build/fuzz-findings/NAME-crash-* (or -timeout-, -oom-, -leak-) and the script exits
# 1. To debug one:
#   swift build --product quern-fuzz && .build/debug/quern-fuzz NAME FILE
# then add the file to Tests/Fuzz/NAME/ as finding-WHAT so the tests replay it.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
jobs=1
seed=0
names=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) names+=("$1"); shift ;;
    esac
done
if [ ${#names[@]} -eq 0 ]; then
    mapfile -t names < <(find Tests/Fuzz -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort)
fi

# SwiftPM's --sanitize=fuzzer links libFuzzer's main (and drops the replay main via
# QUERN_LIBFUZZER); the -Xswiftc flag is what instruments the Swift modules for coverage.
build=.build/fuzz
swift build --build-path "$build" --product quern-fuzz \
    --sanitize=fuzzer --sanitize=address \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DQUERN_LIBFUZZER 2>&1 |
    grep -vE "Cannot export local symbol|^\[[0-9]+/[0-9]+\]" || true
binary="$build/debug/quern-fuzz"
[ -x "$binary" ] || { echo "fuzz: build failed" >&2; exit 1; }

mkdir -p .build/fuzz-findings .build/fuzz-logs
# Swift's crash handler would wait on a symbolizer; libFuzzer reports the crash itself.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}"

run_one() {
    local name="$1" corpus=".build/fuzz-corpus/$1" log=".build/fuzz-logs/$1.log"
    mkdir -p "$corpus"
    # -malloc_limit_mb: one allocation this large is a finding (sizes from headers must
    # be bounded first); -timeout: one input this slow is a hang.
    if QUERN_FUZZ_TARGET="$name" "$binary" "$corpus" "Tests/Fuzz/$name" \
        -max_total_time="$seconds" -seed="$seed" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
        -artifact_prefix=".build/fuzz-findings/$name-" -print_final_stats=1 >"$log" 2>&1; then
        status=ok
    else
        status=FOUND
    fi
    local runs cov
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo 0)
    printf 'fuzz %-12s %-5s %9s runs in %ss, coverage %s edges, corpus %s\n' \
        "$name" "$status" "${runs:-0}" "$seconds" "${cov:-0}" "$(find "$corpus" -type f | wc -l)"
    if [ "$status" = FOUND ]; then
        grep -E "quern-fuzz:|ERROR:|Fatal error|SUMMARY|Test unit written" "$log" | head -8 | sed 's/^/    /'
        return 1
    fi
}

failed=0
running=0
for name in "${names[@]}"; do
    [ -d "Tests/Fuzz/$name" ] || { echo "fuzz: no harness seeds in Tests/Fuzz/$name" >&2; exit 2; }
    run_one "$name" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || failed=1
        running=$((running - 1))
    fi
done
while [ "$running" -gt 0 ]; do
    wait -n || failed=1
    running=$((running - 1))
done
if [ "$failed" -ne 0 ]; then
    echo "fuzz: findings in .build/fuzz-findings (logs in .build/fuzz-logs)" >&2
    exit 1
fi
echo "fuzz: ${#names[@]} harnesses, no findings"
