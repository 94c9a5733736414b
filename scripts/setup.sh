#!/usr/bin/env bash
# Installs what StreamLake needs on a fresh Debian machine that has only the Rust toolchain:
#   - the C toolchain and headers librdkafka is built with (build-essential, pkg-config,
#     libssl-dev, zlib1g-dev), from Debian's packages, when missing;
#   - a Java 17+ runtime and Maven (Debian's openjdk-17-jre-headless and maven) when missing;
#   - Apache Kafka 4.4.0, the broker StreamLake manages on one machine: its jars, fetched by
#     Maven from Maven Central as named in crates/streamlake-broker/kafka/pom.xml, into
#     ${STREAMLAKE_TOOLS_DIR:-$HOME/.cache/streamlake}/kafka-4.4.0/libs (skipped when there);
#   - PostgreSQL on 127.0.0.1:5432 for the PostgreSQL sink and its tests: when nothing answers
#     there, the Debian package is installed and its cluster started, and the `postgres` role
#     gets the password `postgres` (the tests' default URL; override with
#     STREAMLAKE_TEST_POSTGRES_URL);
#   - Mosquitto on 127.0.0.1:1883 for MQTT ingestion and its tests: when nothing answers there,
#     the Debian package is installed and started (override with STREAMLAKE_TEST_MQTT);
#   - Chromium (Debian's `chromium`), the headless browser the web console's tests render pages
#     with, when missing (override with STREAMLAKE_CHROMIUM);
#   - cargo-deny, which checks the dependencies' licences and sources (built from crates.io once,
#     about 2.5 minutes);
#   - Schemathesis, which tests the served API against its OpenAPI documents
#     (scripts/schemathesis.sh): from PyPI into a virtual environment under the tools directory,
#     with Debian's python3-venv when missing.
# Safe to run again: it only installs what is missing.
set -euo pipefail

KAFKA_VERSION=4.4.0
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS_DIR="${STREAMLAKE_TOOLS_DIR:-$HOME/.cache/streamlake}"
KAFKA_LIBS="$TOOLS_DIR/kafka-$KAFKA_VERSION/libs"

log() { printf '[setup] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else log "need root to run: $*"; return 1
  fi
}

ensure_debian_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}"
  fi
}

java_major() {
  # `java -version` prints e.g. `openjdk version "17.0.15" 2025-04-15` (or "1.8.0_392") on stderr.
  java -version 2>&1 | awk -F'"' '/version/ { split($2, v, "."); print (v[1] == 1 ? v[2] : v[1]); exit }'
}

ensure_java() {
  if command -v java >/dev/null 2>&1 && [ "$(java_major)" -ge 17 ] 2>/dev/null; then
    log "Java: $(java -version 2>&1 | head -n 1)"
  else
    ensure_debian_packages openjdk-17-jre-headless
  fi
  command -v mvn >/dev/null 2>&1 || ensure_debian_packages maven
}

ensure_kafka() {
  # The marker is written last, so an interrupted copy is redone rather than half used.
  if [ -f "$KAFKA_LIBS/.complete" ]; then
    log "Apache Kafka $KAFKA_VERSION: $KAFKA_LIBS"
    return
  fi
  log "fetching Apache Kafka $KAFKA_VERSION with Maven into $KAFKA_LIBS"
  local staging="$KAFKA_LIBS.partial"
  rm -rf "$staging"
  mkdir -p "$staging"
  mvn -q -B -Dstyle.color=never -f "$ROOT/crates/streamlake-broker/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$staging"
  ls "$staging"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null
  rm -rf "$KAFKA_LIBS"
  mv "$staging" "$KAFKA_LIBS"
  touch "$KAFKA_LIBS/.complete"
  log "Apache Kafka $KAFKA_VERSION: $(ls "$KAFKA_LIBS" | wc -l) jars, $(du -sh "$KAFKA_LIBS" | cut -f1)"
}

CARGO_DENY_VERSION=0.20.2

ensure_cargo_deny() {
  if cargo deny --version 2>/dev/null | grep -q "$CARGO_DENY_VERSION"; then
    log "cargo-deny $CARGO_DENY_VERSION"
    return
  fi
  log "building cargo-deny $CARGO_DENY_VERSION (first time only; about 2.5 minutes)"
  cargo install cargo-deny --version "$CARGO_DENY_VERSION" --locked --quiet
}

SCHEMATHESIS_VERSION=4.32.5
SCHEMATHESIS_VENV="$TOOLS_DIR/schemathesis-$SCHEMATHESIS_VERSION"

ensure_schemathesis() {
  if "$SCHEMATHESIS_VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    log "Schemathesis $SCHEMATHESIS_VERSION"
    return
  fi
  if ! python3 -c 'import ensurepip' 2>/dev/null && command -v dpkg-query >/dev/null 2>&1; then
    ensure_debian_packages python3-venv
  fi
  log "installing Schemathesis $SCHEMATHESIS_VERSION from PyPI"
  rm -rf "$SCHEMATHESIS_VENV"
  python3 -m venv "$SCHEMATHESIS_VENV"
  "$SCHEMATHESIS_VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 60); do
    port_open "$1" "$2" && return 0
    sleep 0.5
  done
  return 1
}

ensure_postgres() {
  if port_open 127.0.0.1 5432; then
    log "PostgreSQL: answering on 127.0.0.1:5432"
    return
  fi
  if ! command -v dpkg-query >/dev/null 2>&1; then
    log "PostgreSQL is not running on 127.0.0.1:5432 and this is not a Debian machine: start one, or set STREAMLAKE_TEST_POSTGRES_URL"
    return 1
  fi
  ensure_debian_packages postgresql
  local version
  version="$(ls /etc/postgresql | sort -V | tail -n 1)"
  if [ -z "$(ls -A "/etc/postgresql/$version" 2>/dev/null)" ]; then
    as_root pg_createcluster "$version" main
  fi
  log "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_port 127.0.0.1 5432 || { log "PostgreSQL did not start on 127.0.0.1:5432"; return 1; }
  as_root su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
}

ensure_mosquitto() {
  if port_open 127.0.0.1 1883; then
    log "Mosquitto: answering on 127.0.0.1:1883"
    return
  fi
  if ! command -v dpkg-query >/dev/null 2>&1; then
    log "no MQTT broker on 127.0.0.1:1883 and this is not a Debian machine: start one, or set STREAMLAKE_TEST_MQTT"
    return 1
  fi
  ensure_debian_packages mosquitto
  log "starting Mosquitto"
  # Without systemd nothing creates the directory of its pid file, and it refuses to start.
  as_root install -d -o mosquitto -g mosquitto /run/mosquitto
  as_root mosquitto -d -c /etc/mosquitto/mosquitto.conf
  wait_port 127.0.0.1 1883 || { log "Mosquitto did not start on 127.0.0.1:1883"; return 1; }
}

ensure_chromium() {
  if [ -n "${STREAMLAKE_CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1; then
    log "Chromium: ${STREAMLAKE_CHROMIUM:-$(command -v chromium)}"
    return
  fi
  ensure_debian_packages chromium
}

if command -v dpkg-query >/dev/null 2>&1; then
  ensure_debian_packages build-essential pkg-config libssl-dev zlib1g-dev
  ensure_chromium
fi
ensure_postgres
ensure_mosquitto
ensure_java
ensure_kafka
ensure_cargo_deny
ensure_schemathesis
