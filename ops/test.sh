#!/usr/bin/env bash
# The test command (README, .ci/run): set up the test bed, check, build, test.
set -euo pipefail
cd "$(dirname "$0")/.."
ops/check-toolchain.sh
ops/testbed.sh
cargo fmt --all -- --check
cargo build --workspace --bins
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
