#!/usr/bin/env bash
# The test command (README, .ci/run): set up the test bed, check (format, supply chain),
# build, lint, test.
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
