#!/usr/bin/env bash
# The sshds of origins that refuse what the service would rather do (issue 21), beside
# the test bed's sshd (ops/testbed.sh makes it first: same user, keys and directory):
#   norename  127.0.0.1:2230  refuses rename, posix-rename and hardlink: files are read in place
#   readonly  127.0.0.1:2231  refuses those and remove: read-only for the service
# internal-sftp -P refuses the named requests with "permission denied"
# (`/usr/lib/openssh/sftp-server -Q requests` lists the names). Idempotent: writes each
# config, starts what is not running, adds each port to known_hosts once, writes
# $TB/port_<name>, and proves each refuses what it should and only that.
set -euo pipefail

TB=${VISITAS_TESTBED:-/var/tmp/visitas-testbed}
SFTP_USER=visitas-sftp
[ -f "$TB/sshd_config" ] || { echo "testbed-sshd-refusing: run ops/testbed.sh first" >&2; exit 1; }

sftp_batch() { # port; commands on stdin
    sftp -q -b - -P "$1" -i "$TB/client_ed25519" \
        -o UserKnownHostsFile="$TB/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes \
        "$SFTP_USER@127.0.0.1"
}

refusing_sshd() { # name, port, refused requests
    local name=$1 port=$2 refused=$3
    local config="$TB/sshd_$name.config" pid="$TB/sshd_$name.pid"
    sed -e "s/^Port .*/Port $port/" -e "s|^PidFile .*|PidFile $pid|" \
        -e "s|^Subsystem sftp .*|Subsystem sftp internal-sftp -P $refused|" \
        -e "s|^ForceCommand .*|ForceCommand internal-sftp -P $refused|" \
        "$TB/sshd_config" > "$config"
    /usr/sbin/sshd -t -f "$config"
    running() { [ -f "$pid" ] && kill -0 "$(cat "$pid")" 2>/dev/null; }
    if ! running; then
        /usr/sbin/sshd -f "$config" -E "$TB/sshd_$name.log"
        for _ in $(seq 50); do running && break; sleep 0.1; done
    fi
    running || { echo "testbed-sshd-refusing: sshd $name did not start; see $TB/sshd_$name.log" >&2; exit 1; }
    local entry="[127.0.0.1]:$port $(cut -d' ' -f1-2 "$TB/host_ed25519.pub")"
    grep -qxF "$entry" "$TB/known_hosts" || echo "$entry" >> "$TB/known_hosts"
    echo "$port" > "$TB/port_$name"
}

refusing_sshd norename "${VISITAS_SSHD_NORENAME_PORT:-2230}" rename,posix-rename,hardlink
refusing_sshd readonly "${VISITAS_SSHD_READONLY_PORT:-2231}" rename,posix-rename,hardlink,remove

# Each refuses renames; only readonly refuses removes; both list and read.
probe="$TB/sftp/.testbed-probe"
rm -f "$probe" "$probe.moved"
printf 'x' > "$probe"
chown "$SFTP_USER:" "$probe"
for name in norename readonly; do
    port=$(cat "$TB/port_$name")
    echo "get $probe /dev/null" | sftp_batch "$port" >/dev/null
    if echo "rename $probe $probe.moved" | sftp_batch "$port" >/dev/null 2>&1; then
        echo "testbed-sshd-refusing: the sshd on $port ($name) did not refuse a rename" >&2; exit 1
    fi
done
if echo "rm $probe" | sftp_batch "$(cat "$TB/port_readonly")" >/dev/null 2>&1; then
    echo "testbed-sshd-refusing: the sshd on $(cat "$TB/port_readonly") did not refuse a remove" >&2; exit 1
fi
echo "rm $probe" | sftp_batch "$(cat "$TB/port_norename")" >/dev/null
echo "testbed: sshd on 127.0.0.1:$(cat "$TB/port_norename") refusing renames," \
    "on 127.0.0.1:$(cat "$TB/port_readonly") refusing renames and removes"
