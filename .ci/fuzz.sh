#!/usr/bin/env bash
# Builds every fuzz target once, then runs each for a bounded time (FUZZ_SECONDS, default
# 30) from the committed seeds (fuzz/seeds/) plus what earlier runs found (fuzz/corpus/,
# not committed). Fails on the first crash: libFuzzer exits non-zero and leaves the input in
# fuzz/artifacts/<target>/ (see docs/FUZZING.md for reproducing and fixing one).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-30}"
# The instrumented build of everything the targets link takes long on two cores; it goes to a
# directory outside the checkout, so a second run on the same machine (a new clone included)
# rebuilds only the project's own crates.
target_dir="${GAMELAN_FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/gamelan/fuzz-target}"
mkdir -p "$target_dir"

cargo +nightly fuzz build --target-dir "$target_dir"
for target in $(cargo +nightly fuzz list); do
    mkdir -p "corpus/$target"
    echo "fuzzing $target for ${seconds} s"
    cargo +nightly fuzz run --target-dir "$target_dir" "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1
done
