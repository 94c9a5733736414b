#!/usr/bin/env bash
# Runs the whole test suite on this machine: installs what is missing (scripts/setup.sh), checks
# formatting, lints, the API docs' links and the dependencies' licences and sources, starts one
# Apache Kafka for the whole run (`streamlake broker`, on free loopback ports, storage in a
# temporary directory) and runs every test against it, then Schemathesis against the served
# OpenAPI documents (scripts/schemathesis.sh). Tests that stop, kill or replicate
# brokers (failover on three nodes) start their own.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/streamlake/target}"
# Incremental state is for editing sessions; a whole-suite run gains little from it and would
# add gigabytes to the shared target directory each time.
export CARGO_INCREMENTAL=0
# The shared target directory keeps every superseded test binary and incremental session (tens
# of GB within days); what no build touched for two days is dropped, and rebuilt if needed.
if [[ -d "$CARGO_TARGET_DIR/debug" ]]; then
  find "$CARGO_TARGET_DIR/debug/incremental" -mindepth 1 -maxdepth 1 -mtime +2 -exec rm -rf {} + 2>/dev/null || true
  find "$CARGO_TARGET_DIR/debug/deps" -maxdepth 1 -type f -mtime +2 \
    \( -name 'libstreamlake*' -o -name 'streamlake*' -o \( -perm -u+x ! -name '*.so' \) \) -delete 2>/dev/null || true
  # A busy day can still fill the disk: above 40 GB the incremental state goes, and so do this
  # workspace's own artifacts and test executables no build touched for two hours.
  if [[ "$(du -s --block-size=1G "$CARGO_TARGET_DIR" 2>/dev/null | cut -f1)" -gt 40 ]]; then
    rm -rf "$CARGO_TARGET_DIR/debug/incremental"
    find "$CARGO_TARGET_DIR/debug/deps" -maxdepth 1 -type f -mmin +120 \
      \( -name 'libstreamlake*' -o -name 'streamlake*' -o \( -perm -u+x ! -name '*.so' \) \) -delete 2>/dev/null || true
  fi
fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
cargo deny --log-level error check bans licenses sources
cargo build -p streamlake

work="$(mktemp -d)"
broker_pid=""
cleanup() {
  if [ -n "$broker_pid" ]; then
    kill -TERM "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Two consecutive free ports for the node's client and controller listeners, below the
# ephemeral range, so no client connection takes one before Kafka binds it.
port="$(python3 - <<'PY'
import random, socket
for _ in range(200):
    p = random.randrange(15000, 32000)
    socks = [socket.socket(), socket.socket()]
    try:
        socks[0].bind(("127.0.0.1", p)); socks[1].bind(("127.0.0.1", p + 1)); print(p); break
    except OSError:
        pass
    finally:
        for s in socks: s.close()
PY
)"
"$CARGO_TARGET_DIR/debug/streamlake" broker --data-dir "$work/data" --listen "127.0.0.1:$port" \
  >"$work/broker.out" 2>&1 &
broker_pid=$!
for _ in $(seq 1 240); do
  grep -q "Kafka is up" "$work/broker.out" && break
  kill -0 "$broker_pid" 2>/dev/null || { cat "$work/broker.out" >&2; echo "the test broker did not start" >&2; exit 1; }
  sleep 0.5
done
grep -q "Kafka is up" "$work/broker.out" || { cat "$work/broker.out" >&2; echo "the test broker did not start in 2 minutes" >&2; exit 1; }
export STREAMLAKE_TEST_BOOTSTRAP="127.0.0.1:$port"
echo "test broker: Apache Kafka at $STREAMLAKE_TEST_BOOTSTRAP" >&2

log="$work/test.log"
status=0
cargo test --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?
# The served API against its OpenAPI documents (generated requests, fixed seed).
schemathesis_status=0
scripts/schemathesis.sh >"$work/schemathesis.log" 2>&1 || schemathesis_status=$?
grep -E "^schemathesis:|generated," "$work/schemathesis.log" || true
if [ "$schemathesis_status" -ne 0 ]; then
  cat "$work/schemathesis.log" >&2
  status=1
fi
# One closing line over every test binary (cargo prints one result line per binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "\ntotal: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
