#!/usr/bin/env bash
# The test command (README, .ci/run): set up the test bed, check (format, supply chain),
# build, lint, test; then, as their own step, the failover tests on the HA test bed.
set -euo pipefail
cd "$(dirname "$0")/.."
ops/check-toolchain.sh
ops/testbed.sh
cargo fmt --all -- --check
ops/supply-chain.sh
# The e2e tests run these binaries; they need the test-only fault hooks (shared/src/local/fault.rs).
cargo build --workspace --bins --features dispatcher/fault-hooks,performer/fault-hooks
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
# The failover tests (tests/e2e/failover.rs) kill and switch over the shared HA cluster
# (ops/testbed-ha.sh, docs/testbed-ha.md): one at a time, after everything else.
ops/testbed-ha.sh up
psql -h 127.0.0.1 -p 5440 -U postgres -d postgres -Atqc \
    "SELECT datname FROM pg_database WHERE datname LIKE 'visitas_test_%'" |
    while read -r db; do psql -h 127.0.0.1 -p 5440 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true; done
started=$(date +%s)
cargo test --test e2e -- --ignored failover:: --test-threads=1 --nocapture
echo "failover tests: $(($(date +%s) - started)) s"
