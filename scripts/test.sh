#!/usr/bin/env bash
# Runs the whole test suite on this machine: installs what is missing (scripts/setup.sh), checks
# formatting and lints, then runs every test. Integration tests start their own embedded broker
# on a free loopback port, so nothing needs to be running beforehand.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/streamlake/target}"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
