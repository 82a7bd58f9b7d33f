#!/usr/bin/env bash
# System packages and tools the build and the tests need. Idempotent: skips what is present.
set -euo pipefail

# `bash .ci/install.sh build` installs only what compiling the workspace needs on a fresh
# Debian machine (cmake and the curl headers for the vendored librdkafka, see below): enough
# for `cargo run --release -- demo`. Without an argument, everything the tests need too.
if [ "${1:-}" = build ]; then
    build_apt=()
    command -v cmake >/dev/null 2>&1 || build_apt+=(cmake)
    dpkg -s libcurl4-openssl-dev >/dev/null 2>&1 || build_apt+=(libcurl4-openssl-dev)
    if [ ${#build_apt[@]} -gt 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${build_apt[@]}"
    fi
    exit 0
fi

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

# HTTP API contract: schemathesis (pinned: its checks change between releases) and PyJWT to
# mint the bearer token of the JWT pass of .ci/schemathesis.sh.
schemathesis_version=4.32.5
if [ "$(python3 -m pip show schemathesis 2>/dev/null | sed -n 's/^Version: //p')" != "$schemathesis_version" ]; then
    python3 -m pip install --quiet "schemathesis==$schemathesis_version"
fi
if ! python3 -c 'import jwt, yaml' >/dev/null 2>&1; then
    python3 -m pip install --quiet pyjwt pyyaml
fi

# Deployment checks (deploy/): Debian's docker.io (daemon and a client with BuildKit built
# in) and debootstrap (the base image made without a registry) for deploy/test-image.sh,
# docker-compose to validate the Compose file, curl for the probes, and kubernetes-validate,
# which ships the Kubernetes API schemas so the manifests are checked offline (and brings
# PyYAML, which test-image.sh reads the manifests with).
deploy_apt=()
[ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] || deploy_apt+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || deploy_apt+=(debootstrap)
command -v docker-compose >/dev/null 2>&1 || deploy_apt+=(docker-compose)
command -v curl >/dev/null 2>&1 || deploy_apt+=(curl)
if [ ${#deploy_apt[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${deploy_apt[@]}"
fi
if [ "$(kubernetes-validate --version 2>/dev/null)" != "1.37.0" ]; then
    python3 -m pip install --quiet 'kubernetes-validate==1.37.0'
fi

# Fuzzing (.ci/fuzz.sh): libFuzzer needs a nightly compiler and cargo-fuzz.
if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null 2>&1 && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo-fuzz" ]; then
    cargo install cargo-fuzz --locked
fi
