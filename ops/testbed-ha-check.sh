#!/usr/bin/env bash
# Proves the HA test bed (ops/testbed-ha.sh) does what docs/testbed-ha.md says: a client
# writing through HAProxy (127.0.0.1:5440) the whole time, reconnecting after every error,
# while the primary is killed (SIGKILL of its whole process tree), the killed node is started
# again, and a planned switchover is made. Checks that every INSERT acknowledged to the client
# is there afterwards, on both nodes (synchronous replication: no acknowledged write lost), and
# measures the outages as the client saw them. Exits non-zero on a lost write or a timeout.
#   ops/testbed-ha-check.sh [--fresh]   --fresh: reset the cluster first and time `up` from nothing
# The client is Python with psycopg2 from Patroni's venv (a persistent connection, as a
# service's pool has); its logs stay in $VISITAS_TESTBED/ha-check.
set -euo pipefail
cd "$(dirname "$0")"

TB=${VISITAS_TESTBED:-/var/tmp/visitas-testbed}
VENV=${VISITAS_PATRONI_VENV:-/opt/visitas-patroni}
OUT=$TB/ha-check
HA=./testbed-ha.sh
now() { date +%s.%N; }
say() { echo "ha-check: $*"; }

if [ "${1:-}" = --fresh ]; then
    $HA reset >/dev/null
    t=$(now)
    $HA up
    say "up from nothing (reset state, packages installed) took $(awk -v a="$t" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s"
else
    $HA up
fi
$HA wait-healthy 120 >/dev/null

rm -rf "$OUT"
mkdir -p "$OUT"
psql() { command psql -h 127.0.0.1 -p "$1" -U postgres -d postgres -X -v ON_ERROR_STOP=1 -Atq "${@:2}"; }
psql 5440 -c "SET client_min_messages = warning" -c "DROP TABLE IF EXISTS ha_check" -c "CREATE TABLE ha_check (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())"

# The client: one INSERT every ~20 ms; logs "id sent_epoch acked_epoch server_port" for each
# acknowledged INSERT, "epoch sqlstate class message" for each error.
cat >"$OUT/client.py" <<'PY'
import os, sys, time
import psycopg2
out, stop, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
acks = open(f"{out}/acks", "a", buffering=1)
errors = open(f"{out}/errors", "a", buffering=1)
conn, i, end = None, 0, time.time() + limit
while not os.path.exists(stop) and time.time() < end:
    try:
        if conn is None:
            conn = psycopg2.connect(host="127.0.0.1", port=5440, user="postgres", dbname="postgres",
                                    connect_timeout=2, application_name="testbed-ha-check")
            conn.autocommit = True
            cur = conn.cursor()
        i += 1
        sent = time.time()
        cur.execute("INSERT INTO ha_check (id) VALUES (%s) RETURNING inet_server_port()", (i,))
        port = cur.fetchone()[0]
        # A COMMIT whose wait for the standby was cancelled returns success with a WARNING:
        # such a write was not replicated, so it is not counted as acknowledged.
        if any("synchronous replication" in n for n in conn.notices):
            errors.write(f"{time.time():.3f} - SyncWarning {conn.notices[-1].strip().splitlines()[0]}\n")
            del conn.notices[:]
            continue
        acks.write(f"{i} {sent:.3f} {time.time():.3f} {port}\n")
    except psycopg2.Error as e:
        msg = (str(e).strip().splitlines() or [""])[0]
        errors.write(f"{time.time():.3f} {e.pgcode or '-'} {type(e).__name__} {msg}\n")
        try:
            conn.close()
        except Exception:
            pass
        conn = None
        time.sleep(0.05)
    time.sleep(0.02)
PY
"$VENV/bin/python" "$OUT/client.py" "$OUT" "$OUT/stop" 300 &
client=$!
trap 'touch "$OUT/stop"; kill $client 2>/dev/null || true' EXIT

sleep 3
$HA kill-primary | tee "$OUT/kill"
killed=$(awk '{ print $1 }' "$TB/ha/last-kill")
kill_at=$(awk '{ print $2 }' "$TB/ha/last-kill")
$HA wait-leader 90 | tee "$OUT/wait-leader"
sleep 3
restart_at=$(now)
$HA restart-node "$killed" | tee "$OUT/restart"
sleep 3
switch_at=$(now)
$HA switchover | tee "$OUT/switchover"
$HA wait-healthy 120
sleep 3
# The synchronous standby dies: writes wait for it until Patroni drops it from
# synchronous_standby_names (synchronous_mode_strict off), then go on without it.
standby=$(sed -n 's/.*switchover \([^ ]*\) -> .*/\1/p' "$OUT/switchover")
$HA kill-node "$standby" | tee "$OUT/kill-standby"
standby_at=$(awk '{ print $2 }' "$TB/ha/last-kill")
sleep 8
$HA restart-node "$standby"
sleep 3
touch "$OUT/stop"
wait $client
trap - EXIT

# Every row, from each node directly (both must have all of them: synchronous replication).
for port in 5441 5442; do psql "$port" -c "SELECT id FROM ha_check ORDER BY id" >"$OUT/rows.$port"; done

"$VENV/bin/python" - "$OUT" "$kill_at" "$switch_at" "$killed" "$standby_at" "$standby" "$restart_at" <<'PY'
import collections, sys
out, kill_at, switch_at, killed = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
standby_at, standby, restart_at = float(sys.argv[5]), sys.argv[6], float(sys.argv[7])
acks = [l.split() for l in open(f"{out}/acks")]
acks = [(int(i), float(s), float(a), int(p)) for i, s, a, p in acks]
rows = {p: set(int(x) for x in open(f"{out}/rows.{p}").read().split()) for p in (5441, 5442)}
errors = [l.rstrip("\n").split(" ", 3) for l in open(f"{out}/errors")]
acked = {a[0] for a in acks}
attempted = max(a[0] for a in acks)
ok = True
print(f"ha-check: {len(acked)} INSERTs acknowledged, {len(errors)} errors, "
      f"rows on 5441: {len(rows[5441])}, on 5442: {len(rows[5442])}")
for p, have in rows.items():
    lost = sorted(acked - have)
    if lost:
        ok = False
        print(f"ha-check: LOST on {p}: {len(lost)} acknowledged rows missing, e.g. {lost[:10]}")
if rows[5441] != rows[5442]:
    ok = False
    print(f"ha-check: the nodes differ: {len(rows[5441] ^ rows[5442])} rows")
extra = sorted(rows[5441] - acked)
print(f"ha-check: rows present whose INSERT was not acknowledged (an error cut the answer): {len(extra)} {extra[:10]}")

def outage(t0, label):
    before = [a for a in acks if a[2] <= t0]
    after = [a for a in acks if a[2] > t0]
    # The first write on another server than the one before t0, and the gap around it.
    old_port = before[-1][3]
    moved = next(a for a in after if a[3] != old_port)
    last_old = max(a[2] for a in acks if a[3] == old_port and a[2] < moved[2])
    errs = collections.Counter(f"{e[1]} {e[2]}: {e[3][:110]}" for e in errors if last_old <= float(e[0]) <= moved[2])
    print(f"ha-check: {label}: first acknowledged write on the new primary ({moved[3]}) "
          f"{moved[2] - t0:.2f} s after the {label.split()[0]}; no write acknowledged for "
          f"{moved[2] - last_old:.2f} s (last on {old_port} at {last_old - t0:+.2f} s)")
    for k, n in errs.most_common():
        print(f"    {n:4d} x {k}")
    return moved[2] - t0

outage(kill_at, f"kill of the primary {killed}")
alone = [a for a in acks if kill_at < a[2] < kill_at + 60 and a[3] != acks[0][3]]
print(f"ha-check: {len([a for a in alone if a[2] < restart_at])} writes acknowledged by the new primary alone, "
      f"before {killed} was started again")
outage(switch_at, "switchover")
after = [a[2] for a in acks if a[2] > standby_at - 0.5]
gap = max((b - a, a) for a, b in zip(after, after[1:]))
errs = collections.Counter(f"{e[1]} {e[2]}: {e[3][:110]}" for e in errors if gap[1] <= float(e[0]) <= gap[1] + gap[0])
print(f"ha-check: kill of the synchronous standby {standby}: writes stalled {gap[0]:.2f} s "
      f"(from {gap[1] - standby_at:+.2f} s), then went on without it; {len(errs)} kinds of error")
for k, n in errs.most_common():
    print(f"    {n:4d} x {k}")
print("ha-check: " + ("OK, no acknowledged write lost" if ok else "FAILED"))
sys.exit(0 if ok else 1)
PY
