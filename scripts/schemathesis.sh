#!/usr/bin/env bash
# Tests the served API against its two OpenAPI documents with Schemathesis: generated requests
# (valid and invalid) to every operation of /openapi.json (ingestion, as a tenant) and of
# /api/openapi.json (admin API, with the admin token), each answer checked against the document
# (status, content type, headers, body schema) and for server errors; the admin API once more
# with the tenant's key.
#
# Runs `streamlake up` (the debug build) on a free port against the Kafka at
# $STREAMLAKE_TEST_BOOTSTRAP, with two tenants of unique names; scripts/test.sh calls it after the
# Rust tests. Schemathesis comes from scripts/setup.sh. The seed is fixed so a run repeats;
# STREAMLAKE_ST_EXAMPLES (default 30 per operation) and STREAMLAKE_ST_SEED widen or vary it.
#
# Left out, by design:
#   - the check that every request valid for the document is accepted: an event body is valid
#     when the tenant's dataset schema says so, which the document cannot know (a 422 with the
#     reason is the documented answer);
#   - POST /api/labs/{name}: a lab runs for tens of seconds with its own topics and groups, and
#     has its own tests;
#   - the stateful phase for the admin's topic changes (delete, purge, partitions, configs):
#     they get generated names only, so they cannot take the running platform's own topics
#     apart under the other operations.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${STREAMLAKE_TEST_BOOTSTRAP:?set it to a Kafka bootstrap address (scripts/test.sh does)}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/streamlake/target}"
TOOLS_DIR="${STREAMLAKE_TOOLS_DIR:-$HOME/.cache/streamlake}"
st="$(ls -d "$TOOLS_DIR"/schemathesis-*/bin/st 2>/dev/null | sort -V | tail -n 1)"
[ -x "$st" ] || { echo "Schemathesis is not installed: run scripts/setup.sh" >&2; exit 1; }
bin="$CARGO_TARGET_DIR/debug/streamlake"
[ -x "$bin" ] || cargo build -p streamlake

work="$(mktemp -d)"
up_pid=""
cleanup() {
  if [ -n "$up_pid" ]; then
    kill -TERM "$up_pid" 2>/dev/null || true
    wait "$up_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
suffix="$(date +%s)-$$"
tenant="st-a-$suffix"
other="st-b-$suffix"
admin="st-admin-$suffix"
key="st-key-$suffix"
cp examples/air-quality/schemas/tenant-a-air-quality.json "$work/schema.json"
cat >"$work/streamlake.toml" <<EOF
data_dir = "$work/data"
[http]
listen = "127.0.0.1:$port"
[admin]
dev_token = "$admin"
[topic_defaults]
partitions = 2
[tenants.$tenant]
dev_api_key = "$key"
[tenants.$tenant.datasets.readings]
schema = "schema.json"
key = "/sensor_id"
[tenants.$other]
dev_api_key = "st-other-key-$suffix"
[tenants.$other.datasets.readings]
schema = "schema.json"
key = "/sensor_id"
EOF
group="st-group-$suffix"
# Path parameters name a tenant, dataset and consumer group that exist; everything else is
# generated.
cat >"$work/schemathesis.toml" <<EOF
[parameters]
"path.tenant" = "$tenant"
"path.dataset" = "readings"
"path.id" = "$group"
EOF

"$bin" -c "$work/streamlake.toml" -b "$STREAMLAKE_TEST_BOOTSTRAP" up >"$work/up.out" 2>&1 &
up_pid=$!
for _ in $(seq 1 120); do
  grep -q "StreamLake is up" "$work/up.out" && break
  kill -0 "$up_pid" 2>/dev/null || { cat "$work/up.out" >&2; echo "streamlake up did not start" >&2; exit 1; }
  sleep 0.5
done
grep -q "StreamLake is up" "$work/up.out" || { cat "$work/up.out" >&2; echo "streamlake up did not start in 60 s" >&2; exit 1; }

# A group with committed offsets (and no members) for the group operations to find.
for i in 1 2 3; do
  curl -sf -o /dev/null -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d "{\"sensor_id\": $i, \"timestamp\": \"2026-12-02 10:00:0$i\", \"tenant_id\": \"tenantA\", \"location_id\": 1, \"lat\": 48.5, \"lon\": 9.2, \"pm10_P1\": 1.5, \"pm2_5_P2\": 0.5, \"source\": \"st\"}" \
    "http://127.0.0.1:$port/v1/tenants/$tenant/datasets/readings/events"
done
"$bin" -b "$STREAMLAKE_TEST_BOOTSTRAP" consume "$tenant.readings.raw" --from-beginning --group "$group" \
  -n 3 --idle-timeout 30 >/dev/null

run() {
  local doc="$1" token="$2"
  shift 2
  echo "schemathesis: $doc" >&2
  (cd "$work" && "$st" run "http://127.0.0.1:$port$doc" \
    --header "Authorization: Bearer $token" \
    --checks all --exclude-checks positive_data_acceptance \
    --max-examples "${STREAMLAKE_ST_EXAMPLES:-30}" --seed "${STREAMLAKE_ST_SEED:-20261202}" \
    --request-timeout 30 --no-color "$@")
}

status=0
run /openapi.json "$key" || status=$?
# Changes to topics (delete, purge, partitions, configs) only with generated names: followed
# from the topic list (the stateful phase), they would take the running platform's own
# topics apart under the other operations.
destructive='^(delete_topic|purge|add_partitions|alter_configs)$'
run /api/openapi.json "$admin" \
  --exclude-operation-id-regex '^(run_lab|delete_topic|purge|add_partitions|alter_configs)$' || status=$?
run /api/openapi.json "$admin" --include-operation-id-regex "$destructive" \
  --phases examples,coverage,fuzzing || status=$?
# The admin API again as the tenant: what it may not see answers as documented too.
run /api/openapi.json "$key" --exclude-path-regex '^/api/labs/' || status=$?
if [ "$status" -ne 0 ]; then
  echo "schemathesis found answers that differ from the OpenAPI documents (log of the server: below)" >&2
  tail -n 50 "$work/up.out" >&2
fi
exit "$status"
