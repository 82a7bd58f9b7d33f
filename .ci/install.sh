#!/usr/bin/env bash
# System packages and tools the build and the tests need. Idempotent: skips what is present.
set -euo pipefail

need_apt=()
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
if [ ${#need_apt[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# Kafka: librdkafka (vendored by rdkafka) needs cmake and the curl headers to build; the
# tests need the tansu broker and Python's confluent-kafka as an independent client.
kafka_apt=()
command -v cmake >/dev/null 2>&1 || kafka_apt+=(cmake)
[ -f /usr/include/curl/curl.h ] || [ -f /usr/include/x86_64-linux-gnu/curl/curl.h ] \
    || dpkg -s libcurl4-openssl-dev >/dev/null 2>&1 || kafka_apt+=(libcurl4-openssl-dev)
if [ ${#kafka_apt[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${kafka_apt[@]}"
fi
if ! command -v tansu >/dev/null 2>&1 && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/tansu" ]; then
    # About 20-25 minutes on 2 cores; `dynostore` is what `--storage-engine memory://` needs.
    cargo install tansu --version 0.6.0 --locked --features dynostore
fi
if ! python3 -c 'import confluent_kafka' >/dev/null 2>&1; then
    python3 -m pip install --quiet confluent-kafka
fi

# Fuzzing (.ci/fuzz.sh): libFuzzer needs a nightly compiler and cargo-fuzz.
if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null 2>&1 && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo-fuzz" ]; then
    cargo install cargo-fuzz --locked
fi
