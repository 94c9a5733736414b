#!/usr/bin/env bash
# Runs StreamLake on this machine: installs what is missing (scripts/setup.sh), builds the
# release binary and starts `streamlake up` on the air-quality example with the embedded broker
# on 127.0.0.1:9092 and data under ./streamlake-data. Extra arguments go to `streamlake`, e.g.
#   scripts/up.sh --config examples/seed-pipeline/streamlake.toml
# Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/streamlake/target}"
cargo build --release -p streamlake
config=(--config examples/air-quality/streamlake.toml)
for a in "$@"; do case "$a" in --config|--config=*|-c) config=() ;; esac; done
exec "$CARGO_TARGET_DIR/release/streamlake" up "${config[@]}" "$@"
