#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 10 minutes each) and
# prints libFuzzer's final numbers. Not part of CI. Needs cargo-fuzz
# (`cargo install cargo-fuzz`); the stable toolchain is told to accept the
# instrumentation flags (RUSTC_BOOTSTRAP), and no sanitizer is used: the
# code under test is safe Rust, the fuzzers look for panics and 5xx.
#   fuzz/run.sh [seconds per target] [target ...]
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(wasim_client_stream api_request_bodies)
fi
export RUSTC_BOOTSTRAP=1
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    echo "== $target, ${seconds}s"
    cargo fuzz run --sanitizer none --release "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
        -reduce_inputs=1 2>&1 | tail -n 30
done
