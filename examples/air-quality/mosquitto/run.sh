#!/usr/bin/env bash
# Runs Mosquitto with per-tenant credentials and ./acl on 127.0.0.1:PORT (default 1884), in the
# foreground. The development passwords are written to a password file in DIR (default a new
# temporary directory); production brokers set their own.
#
#   examples/air-quality/mosquitto/run.sh [PORT] [DIR]
#
# Users: streamlake / dev-mqtt-streamlake (reads every tenant), tenant-a / dev-mqtt-tenant-a,
# tenant-b / dev-mqtt-tenant-b (each publishes under streamlake/{its tenant}/ only).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
port="${1:-1884}"
dir="${2:-$(mktemp -d)}"
mkdir -p "$dir"
passwd="$dir/passwd"
: > "$passwd"
chmod 600 "$passwd"
for user in streamlake tenant-a tenant-b; do
  mosquitto_passwd -b "$passwd" "$user" "dev-mqtt-$user"
done
conf="$dir/mosquitto.conf"
sed "s/^listener 1884 /listener $port /" "$here/mosquitto.conf" > "$conf"
# Started as root, Mosquitto would switch to its own user, which cannot read this password file.
printf 'user %s\npassword_file %s\nacl_file %s\n' "$(id -un)" "$passwd" "$here/acl" >> "$conf"
exec mosquitto -c "$conf"
