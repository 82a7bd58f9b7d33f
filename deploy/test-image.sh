#!/usr/bin/env bash
# Builds the `prebuilt` image from a binary built on this host and runs it for real:
# an engine and two executor containers, 1,000 `sleep` tasks submitted from the host, the
# probe paths of deploy/k8s/*.yaml and the health checks of deploy/docker-compose.yml asked
# of the running containers, and one executor stopped with `docker stop` mid-run, which must
# drain within its grace period, exit 0 and lose no task.
#
# Usage: deploy/test-image.sh [BINARY]      (default target/release/gamelan)
# Needs Debian's docker.io and debootstrap (.ci/install.sh), python3 with PyYAML and curl.
# Starts dockerd (--bridge=none --iptables=false) when none runs and stops it again at the
# end; makes debian:bookworm-slim with debootstrap when the daemon lacks it. Every container
# uses the host network on free loopback ports: this machine reaches loopback only, so there
# are no bridge networks and no registry pulls.
set -euo pipefail
cd "$(dirname "$0")/.."

BINARY=${1:-target/release/gamelan}
TASKS=${GAMELAN_IMAGE_TEST_TASKS:-1000}
# Debian's client, matching the daemon and with BuildKit built in (a newer docker CLI without
# the buildx plugin refuses DOCKER_BUILDKIT=1); BuildKit builds only the stages the target
# needs, so the Rust build image is never pulled.
DOCKER=${DOCKER:-/usr/bin/docker}
GRACE=45 # terminationGracePeriodSeconds of deploy/k8s/executor.yaml
TAG=gamelan:image-test
NAME=gamelan-image-test-$$

[ -x "$BINARY" ] || { echo "no executable binary at $BINARY" >&2; exit 2; }
BINARY=$(realpath "$BINARY")
work=$(mktemp -d)
dockerd_pid=
dockerd_ready=
containers=()
submit_pid=

log() { printf '[image-test %(%H:%M:%S)T] %s\n' -1 "$*"; }
fail() { log "FAILED: $*"; exit 1; }

cleanup() {
    local rc=$?
    set +e
    [ -n "$submit_pid" ] && kill "$submit_pid" 2>/dev/null && wait "$submit_pid" 2>/dev/null
    if [ ${#containers[@]} -gt 0 ]; then
        if [ "$rc" -ne 0 ]; then
            for c in "${containers[@]}"; do
                echo "---- last log lines of $c"
                "$DOCKER" logs --tail 30 "$c" 2>&1
            done
        fi
        "$DOCKER" rm -f "${containers[@]}" >/dev/null 2>&1
    fi
    if [ -n "$dockerd_pid" ]; then
        kill -TERM "$dockerd_pid" 2>/dev/null
        # dockerd stops its containerd and exits within seconds; wait for it, bounded.
        timeout 30 tail --pid="$dockerd_pid" -f /dev/null 2>/dev/null || kill -KILL "$dockerd_pid"
        [ "$rc" -ne 0 ] && [ -z "$dockerd_ready" ] && tail -n 20 "$work/dockerd.log"
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits until COMMAND succeeds, at most SECONDS, trying every 0.2 s: for readiness of daemons
# and containers that offer nothing to block on.
wait_for() {
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || fail "$what not within ${seconds}s"
        sleep 0.2
    done
}

start_dockerd() {
    if "$DOCKER" info >/dev/null 2>&1; then
        log "using the running docker daemon"
        return
    fi
    if pgrep -x dockerd >/dev/null; then
        log "a dockerd is starting; waiting for it"
    else
        log "starting dockerd --bridge=none --iptables=false"
        dockerd --bridge=none --iptables=false >"$work/dockerd.log" 2>&1 &
        dockerd_pid=$!
    fi
    wait_for 60 "docker daemon answering" "$DOCKER" info
    dockerd_ready=1
}

# debian:bookworm-slim without a registry: debootstrap's minbase variant from the mirror apt
# already uses, trimmed as the official slim image is (no docs, man pages, locales, apt lists).
make_base_image() {
    if "$DOCKER" image inspect debian:bookworm-slim >/dev/null 2>&1; then
        return
    fi
    local mirror
    mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$mirror" ] || fail "no Debian mirror found in the apt sources"
    log "making debian:bookworm-slim with debootstrap (about a minute)"
    local root=$work/rootfs
    debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
        || { tail -n 20 "$work/debootstrap.log"; fail "debootstrap"; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
        "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
    find "$root/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
    cat >"$root/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
    # As in the official image: apt keeps no package caches or downloaded lists in layers.
    cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
    rm -f "$root"/var/cache/apt/*.bin
    tar -C "$root" -c . | "$DOCKER" import - debian:bookworm-slim >/dev/null
    rm -rf "$root"
}

# A context of its own holding only the binary keeps the upload small whatever target/ holds.
build_image() {
    mkdir -p "$work/context"
    cp "$BINARY" "$work/context/gamelan"
    log "building $TAG (target prebuilt) from $BINARY"
    # The previous run's image would stay behind untagged; the base image and layers stay.
    "$DOCKER" rmi "$TAG" >/dev/null 2>&1 || true
    DOCKER_BUILDKIT=1 "$DOCKER" build --network host -f deploy/Dockerfile --target prebuilt \
        --build-arg BINARY=gamelan -t "$TAG" "$work/context" >"$work/build.log" 2>&1 \
        || { tail -n 30 "$work/build.log"; fail "docker build"; }
    IMAGE_BYTES=$("$DOCKER" image inspect -f '{{.Size}}' "$TAG")
    local base_bytes
    base_bytes=$("$DOCKER" image inspect -f '{{.Size}}' debian:bookworm-slim)
    log "image $TAG: $((IMAGE_BYTES / 1000000)) MB ($((base_bytes / 1000000)) MB of it debian:bookworm-slim)"
    local user env
    user=$("$DOCKER" image inspect -f '{{.Config.User}}' "$TAG")
    [ "$user" = "10001:10001" ] || fail "image user is '$user', not 10001:10001"
    env=$("$DOCKER" image inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$TAG")
    if grep -q '^RUST_LOG=' <<<"$env"; then
        fail "the image sets RUST_LOG, which would override configured log levels"
    fi
}

free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

run() { # NAME ARGS...: a detached container on the host network
    local name=$1
    shift
    containers+=("$name")
    "$DOCKER" run -d --name "$name" --network host "$@" >/dev/null
}

ready() { curl -fsS -o /dev/null "http://127.0.0.1:$1/q/health/ready"; }

# Prints "KIND PATH" for every HTTP probe of deploy/k8s/*.yaml (KIND: the container's first
# argument, engine or executor) and "compose KIND URL" for every health check of the Compose
# file, so the paths are checked as the manifests name them.
probe_paths() {
    python3 - deploy/k8s/*.yaml deploy/docker-compose.yml <<'EOF'
import sys, yaml
for path in sys.argv[1:]:
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    for doc in docs:
        if path.endswith("docker-compose.yml"):
            for svc in doc.get("services", {}).values():
                test = (svc.get("healthcheck") or {}).get("test") or []
                if test[:3] == ["CMD", "gamelan", "probe"]:
                    print("compose", svc["command"][0], test[3])
            continue
        if doc.get("kind") != "Deployment":
            continue
        for c in doc["spec"]["template"]["spec"]["containers"]:
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                get = (c.get(probe) or {}).get("httpGet")
                if get:
                    print(c["args"][0], get["path"])
EOF
}

check_probes() {
    local kind path url port c status
    local checked=0
    while read -r kind path url; do
        if [ "$kind" = compose ]; then
            # The Compose health check runs `gamelan probe URL` inside the container, as the
            # image's non-root user; only the port differs on the host network.
            case $path in
                engine) c=$NAME-engine port=$ENGINE_PORT ;;
                *) c=$NAME-exec-b port=$HTTP_B ;;
            esac
            url=$(sed -E "s#(//localhost):[0-9]+#\1:$port#" <<<"$url")
            "$DOCKER" exec "$c" gamelan probe "$url" \
                || fail "compose health check 'gamelan probe $url' failed in $c"
            checked=$((checked + 1))
            continue
        fi
        case $kind in
            engine) set -- "$ENGINE_PORT" ;;
            executor) set -- "$HTTP_A" "$HTTP_B" ;;
            *) fail "probe for unknown container kind '$kind'" ;;
        esac
        for port; do
            status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$path")
            [ "$status" = 200 ] || fail "probe $path of the $kind on :$port answered $status"
            checked=$((checked + 1))
        done
    done < <(probe_paths)
    [ "$checked" -gt 0 ] || fail "no probe found in deploy/"
    log "$checked probe checks answered 200 (deploy/k8s probes, Compose health checks)"
}

# The engine's view of the `sleep` executor of the runtime whose executor id starts with
# PREFIX, as "inFlight completedTasks", or nothing while none is registered.
sleep_executor() {
    curl -fsS "http://127.0.0.1:$ENGINE_PORT/api/v1/executors" | python3 -c '
import json, sys
for e in json.load(sys.stdin):
    if e["executorType"] == "sleep" and e["alive"] and e["executorId"].startswith(sys.argv[1]):
        print(e["inFlight"], e["completedTasks"])
' "$1"
}

both_registered() {
    [ -n "$(sleep_executor ci-exec-a)" ] && [ -n "$(sleep_executor ci-exec-b)" ]
}

started_mid_run() {
    local view
    view=$(sleep_executor ci-exec-a)
    [ -n "$view" ] || return 1
    read -r in_flight completed <<<"$view"
    [ "$in_flight" -gt 0 ] && [ "$completed" -ge 50 ]
}

# Counts the finished tasks in the engine's completion feed: prints "completed failed distinct".
count_completions() {
    curl -fsS "http://127.0.0.1:$ENGINE_PORT/api/v1/tasks/completions?after=0&max=10000" \
        | python3 -c '
import json, sys
items = json.load(sys.stdin)["items"]
done = [t for t in items if t["status"] == "COMPLETED" and t.get("output", {}).get("sleptMs") == 200]
failed = [t for t in items if t["status"] != "COMPLETED"]
print(len(done), len(failed), len({(t["runId"], t["nodeId"]) for t in items}))
'
}

start_dockerd
make_base_image
build_image

read -r ENGINE_PORT HTTP_A GRPC_A HTTP_B GRPC_B <<<"$(free_ports 5)"
log "ports: engine $ENGINE_PORT, executor a $HTTP_A/$GRPC_A, executor b $HTTP_B/$GRPC_B"

# The engine keeps its durable store in the image user's home (non-root uid 10001).
run "$NAME-engine" \
    -e GAMELAN_ENGINE_HOST=127.0.0.1 -e GAMELAN_ENGINE_PORT="$ENGINE_PORT" \
    -e GAMELAN_ENGINE_DATA_DIR=/var/lib/gamelan/data \
    "$TAG" engine
wait_for 60 "engine ready" ready "$ENGINE_PORT"
uid=$("$DOCKER" exec "$NAME-engine" id -u)
[ "$uid" = 10001 ] || fail "the engine runs as uid $uid, not 10001"
executor_env=(-e GAMELAN_EXECUTOR_ENGINE_URL="http://127.0.0.1:$ENGINE_PORT" -e GAMELAN_EXECUTOR_TRANSPORT=grpc)
run "$NAME-exec-a" "${executor_env[@]}" \
    -e GAMELAN_EXECUTOR_HTTP_PORT="$HTTP_A" -e GAMELAN_EXECUTOR_GRPC_PORT="$GRPC_A" \
    -e GAMELAN_EXECUTOR_RUNTIME_EXECUTOR_ID=ci-exec-a \
    --stop-timeout "$GRACE" "$TAG"
# Executor b logs at DEBUG through configuration alone: the image must not pin the level.
run "$NAME-exec-b" "${executor_env[@]}" \
    -e GAMELAN_EXECUTOR_HTTP_PORT="$HTTP_B" -e GAMELAN_EXECUTOR_GRPC_PORT="$GRPC_B" \
    -e GAMELAN_EXECUTOR_RUNTIME_EXECUTOR_ID=ci-exec-b -e GAMELAN_EXECUTOR_LOG_LEVEL=DEBUG \
    --stop-timeout "$GRACE" "$TAG" executor
wait_for 60 "executor a ready" ready "$HTTP_A"
wait_for 60 "executor b ready" ready "$HTTP_B"
check_probes
"$DOCKER" logs "$NAME-exec-b" 2>&1 | grep -q DEBUG \
    || fail "executor b configured DEBUG (GAMELAN_EXECUTOR_LOG_LEVEL) but logged no DEBUG line"
if "$DOCKER" logs "$NAME-exec-a" 2>&1 | grep -q DEBUG; then
    fail "executor a logged DEBUG lines at the default level INFO"
fi
wait_for 30 "both sleep executors registered" both_registered

log "submitting $TASKS sleep tasks (200 ms each) from the host"
"$BINARY" submit --engine "http://127.0.0.1:$ENGINE_PORT" --type sleep --input '{"ms": 200}' \
    --count "$TASKS" --timeout-secs 300 >"$work/submit.out" 2>&1 &
submit_pid=$!

wait_for 120 "executor a running tasks mid-run" started_mid_run
read -r before _ _ <<<"$(count_completions)"
log "stopping executor a mid-run ($before of $TASKS finished): docker stop -t $GRACE"
t0=$(date +%s%N)
"$DOCKER" stop -t "$GRACE" "$NAME-exec-a" >/dev/null
t1=$(date +%s%N)
DRAIN_MS=$(((t1 - t0) / 1000000))
exit_code=$("$DOCKER" inspect -f '{{.State.ExitCode}}' "$NAME-exec-a")
log "executor a stopped in ${DRAIN_MS} ms with exit code $exit_code"
[ "$exit_code" = 0 ] || fail "executor a exited $exit_code after SIGTERM, not 0"
[ "$DRAIN_MS" -lt $((GRACE * 1000)) ] || fail "executor a needed the whole grace period"
"$DOCKER" logs "$NAME-exec-a" 2>&1 | grep -q 'shutdown: draining running tasks' \
    || fail "executor a did not log its drain"
[ "$before" -lt "$TASKS" ] || fail "the stop did not land mid-run (all $TASKS had finished)"

wait "$submit_pid" && submit_rc=0 || submit_rc=$?
submit_pid=
tail -n 8 "$work/submit.out"
[ "$submit_rc" = 0 ] || fail "gamelan submit exited $submit_rc"
read -r completed failed distinct <<<"$(count_completions)"
log "engine completion feed: $completed completed with the right output, $failed failed, $distinct distinct tasks"
if [ "$completed" != "$TASKS" ] || [ "$failed" != 0 ] || [ "$distinct" != "$TASKS" ]; then
    fail "expected $TASKS distinct completed tasks"
fi
read -r _ completed_b <<<"$(sleep_executor ci-exec-b)"
[ -n "$("$DOCKER" exec "$NAME-engine" ls -A /var/lib/gamelan/data)" ] \
    || fail "the engine (uid 10001) stored nothing in its data dir"
log "executor b finished $completed_b, executor a $((TASKS - completed_b)) (before and while draining)"

# The rest stop gracefully too.
for c in "$NAME-exec-b" "$NAME-engine"; do
    "$DOCKER" stop -t "$GRACE" "$c" >/dev/null
    code=$("$DOCKER" inspect -f '{{.State.ExitCode}}' "$c")
    [ "$code" = 0 ] || fail "$c exited $code after SIGTERM"
done
log "OK: image $((IMAGE_BYTES / 1000000)) MB; drain on docker stop ${DRAIN_MS} ms, exit 0; $TASKS of $TASKS tasks completed"
