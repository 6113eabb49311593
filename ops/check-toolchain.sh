#!/usr/bin/env bash
# Fails early, and clearly, when the Rust toolchain is missing or too old.
set -euo pipefail
need=1.95
if ! command -v cargo >/dev/null; then
    echo "Rust is not installed: install rustup (https://rustup.rs), then Rust >= $need" >&2
    exit 1
fi
have=$(rustc --version | awk '{print $2}')
if [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n1)" != "$need" ]; then
    echo "Rust $have is too old: this project needs >= $need (rustup update)" >&2
    exit 1
fi
if ! cargo clippy --version >/dev/null 2>&1 || ! cargo fmt --version >/dev/null 2>&1; then
    rustup component add clippy rustfmt
fi
