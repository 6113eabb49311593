#!/usr/bin/env bash
# Test bed: makes sure PostgreSQL runs and starts a private OpenSSH sshd on a
# loopback port, with its own host key, client key and known_hosts, serving
# $VISITAS_TESTBED/sftp as user visitas-sftp. Idempotent; installs what is missing
# (Debian/Ubuntu, as root). Prints the facts tests and the demo read. The TLS-only
# PostgreSQL cluster on 5433 is ops/testbed-pgtls.sh; the sshds that refuse renames
# (2230) and renames and removes (2231), ops/testbed-sshd-refusing.sh; the SMTP server the
# e-mail alerts' tests read (ports 2525, 2587, 2465, 2526) is ops/testbed-smtp.sh, started
# from here; headless Chromium, for the console's browser tests, is
# ops/testbed-browser.sh (called at the end). docs/testbed.md.
set -euo pipefail

TB=${VISITAS_TESTBED:-/var/tmp/visitas-testbed}
PORT=${VISITAS_SSHD_PORT:-2222}
SFTP_USER=visitas-sftp

need_apt=()
command -v psql >/dev/null || need_apt+=(postgresql postgresql-client)
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh-keygen >/dev/null || need_apt+=(openssh-client)
command -v sftp >/dev/null || need_apt+=(openssh-client)
command -v ssh-keyscan >/dev/null || need_apt+=(openssh-client)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
command -v unzip >/dev/null || need_apt+=(unzip)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "testbed: installing ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# PostgreSQL: running, reachable on 127.0.0.1:5432 with trust auth for local tests.
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    cluster=$(ls /etc/postgresql | sort -V | tail -n 1)
    # Exit 2 is "already running" (a cluster still starting, say): then wait for it.
    pg_ctlcluster --skip-systemctl-redirect "$cluster" main start || [ $? = 2 ]
    for _ in $(seq 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 >/dev/null || { echo "testbed: PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
# Test databases left by earlier runs.
psql -h 127.0.0.1 -U postgres -d postgres -Atqc \
    "SELECT datname FROM pg_database WHERE datname LIKE 'visitas_test_%'" 2>/dev/null |
    xargs -r -P 4 -I{} psql -h 127.0.0.1 -U postgres -d postgres -qc 'DROP DATABASE IF EXISTS "{}" WITH (FORCE)' >/dev/null 2>&1 || true
# The second cluster, TLS only, with its test CAs (and the main one made plain).
"$(dirname "$0")/testbed-pgtls.sh"
# The SMTP server (its certificate from the same test CA). Its kept mail is never cleared
# here: tests of other clones may be reading it; each test finds its own by a recipient.
"$(dirname "$0")/testbed-smtp.sh" up >/dev/null

# The SFTP user: unlocked (with UsePAM no, a passwordless account is refused even for keys).
if ! id "$SFTP_USER" >/dev/null 2>&1; then
    useradd --system --home-dir "$TB/sftp" --no-create-home --shell /usr/sbin/nologin "$SFTP_USER"
fi
usermod -p '*' "$SFTP_USER"

mkdir -p "$TB/sftp" /run/sshd
chmod 755 "$TB"
chown "$SFTP_USER:" "$TB/sftp"
[ -f "$TB/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C visitas-testbed-host -f "$TB/host_ed25519"
[ -f "$TB/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C visitas-testbed-client -f "$TB/client_ed25519"
# A second host key, never served: tests present it to prove a changed key is refused.
[ -f "$TB/other_host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C visitas-other-host -f "$TB/other_host_ed25519"
# Files tests read while other runs of this script may be going: written only when they
# change, and then by an atomic rename (a reader never sees one half-written).
put() { # put FILE (content on stdin)
    local tmp
    tmp=$(mktemp "$1.XXXXXX")
    cat > "$tmp"
    if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else chmod 644 "$tmp"; mv -f "$tmp" "$1"; fi
}
put "$TB/authorized_keys" < "$TB/client_ed25519.pub"
echo "[127.0.0.1]:$PORT $(cut -d' ' -f1-2 "$TB/host_ed25519.pub")" | put "$TB/known_hosts"
echo "[127.0.0.1]:$PORT $(cut -d' ' -f1-2 "$TB/other_host_ed25519.pub")" | put "$TB/known_hosts.changed"
echo "$PORT" | put "$TB/port"

put "$TB/sshd_config" <<CFG
Port $PORT
ListenAddress 127.0.0.1
HostKey $TB/host_ed25519
PidFile $TB/sshd.pid
AuthorizedKeysFile $TB/authorized_keys
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AllowUsers $SFTP_USER
Subsystem sftp internal-sftp
ForceCommand internal-sftp
MaxStartups 100:30:200
MaxSessions 50
CFG
/usr/sbin/sshd -t -f "$TB/sshd_config"

running() { [ -f "$TB/sshd.pid" ] && kill -0 "$(cat "$TB/sshd.pid")" 2>/dev/null; }
if ! running; then
    /usr/sbin/sshd -f "$TB/sshd_config" -E "$TB/sshd.log"
    for _ in $(seq 50); do running && break; sleep 0.1; done
fi
running || { echo "testbed: sshd did not start; see $TB/sshd.log" >&2; exit 1; }
# Prove the whole chain (host key, client key, sftp subsystem) works.
echo "ls" | sftp -q -b - -P "$PORT" -i "$TB/client_ed25519" \
    -o UserKnownHostsFile="$TB/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes \
    "$SFTP_USER@127.0.0.1" >/dev/null

# The sshds of origins that refuse renames, and renames and removes (issue 21).
"$(dirname "$0")/testbed-sshd-refusing.sh"
echo "testbed: PostgreSQL on 127.0.0.1:5432, sshd on 127.0.0.1:$PORT serving $TB/sftp as $SFTP_USER"
# Headless Chromium for the console's browser tests (installed once; proved every run).
"$(dirname "$0")/testbed-browser.sh" | tail -n 1
