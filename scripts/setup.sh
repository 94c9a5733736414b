#!/usr/bin/env bash
# Installs what StreamLake needs on a fresh Debian machine that has only the Rust toolchain:
#   - the C toolchain and headers librdkafka is built with (build-essential, pkg-config,
#     libssl-dev, zlib1g-dev), from Debian's packages, when missing;
#   - the embedded broker, tansu 0.6.0, built from crates.io with SQLite and memory storage,
#     into ${STREAMLAKE_TOOLS_DIR:-$HOME/.cache/streamlake}/tansu-0.6.0 (about 10-15 minutes
#     the first time; skipped when already installed).
# Safe to run again: it only installs what is missing.
set -euo pipefail

TANSU_VERSION=0.6.0
TOOLS_DIR="${STREAMLAKE_TOOLS_DIR:-$HOME/.cache/streamlake}"
TANSU_ROOT="$TOOLS_DIR/tansu-$TANSU_VERSION"
TANSU_BIN="$TANSU_ROOT/bin/tansu"

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

ensure_tansu() {
  if [ -x "$TANSU_BIN" ] && "$TANSU_BIN" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    log "embedded broker: tansu $TANSU_VERSION at $TANSU_BIN"
    return
  fi
  log "building the embedded broker tansu $TANSU_VERSION into $TANSU_ROOT (first time only; 10-15 minutes)"
  mkdir -p "$TOOLS_DIR"
  cargo install tansu --version "$TANSU_VERSION" --features dynostore,libsql --locked \
    --root "$TANSU_ROOT"
  "$TANSU_BIN" --version >&2
}

if command -v dpkg-query >/dev/null 2>&1; then
  ensure_debian_packages build-essential pkg-config libssl-dev zlib1g-dev
fi
ensure_tansu
