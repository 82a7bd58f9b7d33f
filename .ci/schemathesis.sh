#!/usr/bin/env bash
# The HTTP API against its contract: schemathesis generates requests from openapi.yaml (valid
# and invalid ones) and checks every answer against it, on a live engine with an executor
# attached. Two passes: without JWT, and with JWT where the executor operations require a
# bearer token (the spec's `security: [{}, {bearer: []}]` narrowed to `[{bearer: []}]`, so
# schemathesis also checks that a missing or invalid token is refused).
#
# Usage: .ci/schemathesis.sh PATH/TO/gamelan
# SCHEMATHESIS_MAX_TIME (seconds per pass, default 75) bounds the run.
set -euo pipefail

bin=$(realpath "${1:?usage: .ci/schemathesis.sh PATH/TO/gamelan}")
spec=$(realpath "$(dirname "$0")/../openapi.yaml")
max_time=${SCHEMATHESIS_MAX_TIME:-75}
work=$(mktemp -d)
pids=()

cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# GET url until it answers 200 with at least `min_executors` alive executors (0: any 200),
# within 60 s.
await_engine() {
    python3 - "$1" "$2" "${3:-}" <<'EOF'
import json, sys, time, urllib.request
url, min_executors, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + 60
last = None
while time.monotonic() < deadline:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            body = json.load(answer)
            if min_executors == 0 or sum(e["alive"] for e in body) >= min_executors:
                sys.exit(0)
            last = f"{len(body)} executors"
    except Exception as e:  # not up yet
        last = e
    time.sleep(0.1)
sys.exit(f"{url} not ready within 60 s: {last}")
EOF
}

# The status of an unauthenticated GET.
status_without_token() {
    python3 - "$1" <<'EOF'
import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as answer:
        print(answer.status)
except urllib.error.HTTPError as e:
    print(e.code)
EOF
}

# start_pair NAME [VAR=VALUE...]: an engine and an executor with the given extra environment;
# sets $engine_url.
start_pair() {
    local name=$1
    shift
    local engine_port executor_port
    engine_port=$(free_port)
    executor_port=$(free_port)
    env "$@" GAMELAN_ENGINE_HOST=127.0.0.1 GAMELAN_ENGINE_MAX_LONG_POLL_WAIT=500 \
        "$bin" engine --ephemeral --port "$engine_port" >"$work/$name-engine.log" 2>&1 &
    pids+=($!)
    engine_url="http://127.0.0.1:$engine_port"
    # Runtime id host-1: the spec's examples name its executors (host-1-calculate-tax, ...).
    env "$@" GAMELAN_EXECUTOR_ENGINE_URL="$engine_url" GAMELAN_EXECUTOR_HTTP_PORT="$executor_port" \
        GAMELAN_EXECUTOR_RUNTIME_EXECUTOR_ID=host-1 "$bin" executor >"$work/$name-executor.log" 2>&1 &
    pids+=($!)
}

# run_pass NAME SPEC [schemathesis options...]: prints the run's summary line; returns its status.
run_pass() {
    local name=$1 pass_spec=$2
    shift 2
    local status=0
    # schemathesis keeps its example database in the working directory.
    (cd "$work" && schemathesis run "$pass_spec" --url "$engine_url" --checks all \
        --max-time "$max_time" --request-timeout 5 "$@") >"$work/$name.txt" 2>&1 || status=$?
    cat "$work/$name.txt"
    summary+=("$name: $(grep -E '^=+ .* in [0-9.]+s =+$' "$work/$name.txt" | tail -n 1)")
    return "$status"
}

summary=()
failed=0

# Pass 1: no JWT; the executor operations need no credentials.
start_pair open
await_engine "$engine_url/api/v1/executors" 1
run_pass open "$spec" || failed=1

# Pass 2: JWT on.
secret=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
token=$(python3 - "$secret" <<'EOF'
import sys, time, jwt
now = int(time.time())
print(jwt.encode({"sub": "schemathesis", "iss": "gamelan-executor", "iat": now,
                  "exp": now + 3600}, sys.argv[1], algorithm="HS256"))
EOF
)
start_pair jwt GAMELAN_ENGINE_JWT_SECRET="$secret" GAMELAN_EXECUTOR_JWT_SECRET="$secret"
await_engine "$engine_url/api/v1/executors" 1 "$token"
unauthenticated=$(status_without_token "$engine_url/api/v1/executors")
if [ "$unauthenticated" != 401 ]; then
    echo "with JWT on, GET /api/v1/executors without a token answered $unauthenticated, not 401" >&2
    failed=1
fi
python3 - "$spec" "$work/openapi-jwt.json" <<'EOF'
import json, sys, yaml
spec = yaml.safe_load(open(sys.argv[1]))
for item in spec["paths"].values():
    for operation in item.values():
        if isinstance(operation, dict) and "security" in operation:
            operation["security"] = [s for s in operation["security"] if s]
json.dump(spec, open(sys.argv[2], "w"))
EOF
run_pass jwt "$work/openapi-jwt.json" --header "Authorization: Bearer $token" || failed=1

printf '%s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
    for log in "$work"/*.log; do
        echo "--- $log (last lines)"
        tail -n 20 "$log"
    done
fi
exit "$failed"
