#!/usr/bin/env bash
# Celery peer benchmark: N no-op tasks through a Celery worker (redis broker and result
# backend) with the given concurrency. Prints tasks/s and, last, one JSON line.
#
#   bench/celery/run.sh [--tasks N] [--concurrency C] [--payload-bytes B]
#
# Installs what is missing: celery and redis (the Python client) from PyPI, Debian's
# redis-server. Starts redis-server on a free loopback port and stops everything on exit.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tasks=10000
concurrency=2
payload=128
while [ $# -gt 0 ]; do
  case "$1" in
    --tasks) tasks="$2"; shift 2 ;;
    --concurrency) concurrency="$2"; shift 2 ;;
    --payload-bytes) payload="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

python="${PYTHON:-python3}"
if ! "$python" -c 'import celery, redis, packaging' >/dev/null 2>&1; then
  echo "installing celery, redis and packaging (PyPI)..." >&2
  "$python" -m pip install --quiet celery redis packaging >&2
fi
if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing Debian's redis-server..." >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get install -y redis-server >&2 || { $sudo apt-get update >&2 && $sudo apt-get install -y redis-server >&2; }
fi

port="$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$work" --daemonize no >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 200); do
  if "$python" -c "import redis,sys; redis.Redis(port=$port).ping()" >/dev/null 2>&1; then break; fi
  sleep 0.05
done

export CELERY_BENCH_REDIS="redis://127.0.0.1:$port/0"
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
cd "$here"
"$python" -m celery -A noop_tasks worker --concurrency "$concurrency" --pool prefork \
  --loglevel WARNING --without-gossip --without-mingle --without-heartbeat \
  >"$work/worker.log" 2>&1 &
pids+=($!)

"$python" "$here/drive.py" --tasks "$tasks" --payload-bytes "$payload" --concurrency "$concurrency" || {
  echo "celery worker log:" >&2; tail -20 "$work/worker.log" >&2; exit 1; }
