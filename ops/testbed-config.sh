#!/usr/bin/env bash
# Prints a configuration for the test bed (ops/testbed.sh): the private sshd as origin,
# the local PostgreSQL, fast polling. Used by the demo and the benchmark.
#   ops/testbed-config.sh ORIGIN_DIR DATABASE ETL_ROOT STABILITY_WINDOW_SECS > visitas.toml
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: $0 ORIGIN_DIR DATABASE ETL_ROOT STABILITY_WINDOW_SECS" >&2; exit 2; }
TB=${VISITAS_TESTBED:-/var/tmp/visitas-testbed}
cat <<CFG
[source]
url = "sftp://visitas-sftp@127.0.0.1:$(cat "$TB/port")$1"
stability_window_secs = $4
[sftp]
known_hosts = "$TB/known_hosts"
private_key_file = "$TB/client_ed25519"
[database]
url = "postgres://postgres@127.0.0.1:5432/$2"
[paths]
root = "$3"
[performer]
poll_secs = 1
[dispatcher]
wait_poll_secs = 1
CFG
