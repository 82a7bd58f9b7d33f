#!/usr/bin/env bash
# Every end-to-end benchmark of BENCHMARKS.md, one after the other, on the release build.
# Prints each report's JSON line and appends it to bench/results/<date>.jsonl.
#
#   bench/run-all.sh [TASKS]          (default 100000)
#
# Build first: cargo build --release -p gamelan
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tasks="${1:-100000}"
bin="${GAMELAN_BIN:-target/release/gamelan}"
out="bench/results/$(date -u +%Y-%m-%dT%H%M%SZ).jsonl"
mkdir -p bench/results
run() {
  echo "== gamelan bench $*" >&2
  "$bin" bench "$@" --json | tee -a "$out"
}
{
  nproc; grep -m1 'model name' /proc/cpuinfo; free -m | sed -n 2p; uptime
} | sed 's/^/# /' >>"$out"
run --transport grpc --tasks "$tasks"
run --transport rest --tasks "$tasks"
run --transport grpc --tasks "$tasks" --executors 2
run --transport rest --tasks "$tasks" --executors 2
run --transport local --tasks "$tasks"
run --transport kafka --tasks 20000
run --transport grpc --tasks 10000 --rate 1000
run --transport rest --tasks 10000 --rate 1000
run --transport local --tasks 10000 --rate 1000
run --transport kafka --tasks 5000 --rate 1000
run --transport grpc --tasks 20000 --compare celery
echo "results in $out" >&2
