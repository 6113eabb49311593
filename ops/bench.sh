#!/usr/bin/env bash
# Throughput benchmark, in one run on the real test bed (PostgreSQL + private OpenSSH
# sshd), release build. Measures the floors again in the same run and prints one table:
# wall time, rows/s, peak RSS and each ratio to its floor. Ends by checking the
# invariants of docs/data-contract.md §5 after every scenario. `--quick` runs a smaller set.
#
#   floor  sftp        OpenSSH `sftp` download of the 1M-row file
#   floor  \copy       psql \copy of that file's valid rows, with the same columns
#                      (bitacora_id, archivo, linea and the 15 typed fields), into a table
#                      with estadisticas' identity, defaults, constraints and indexes
#   product 1 file     queued -> SFTP download -> validated -> committed -> backed up -> deleted
#   product 20 files   the same, 2 workers
#   queue              10,000 empty items claimed and completed by 4 workers
#   night              1,000 files of 50 rows through `dispatcher run` with a performer
#                      serving (2 workers, stability_window_secs = 1), and where each
#                      file's time went (the per-file log's ms_by_step)
#   5M rows            peak RSS stays bounded (streaming batches), full mode only
#   history            N earlier nights (--history-nights N; default 11 = 10.45 M valid rows,
#                      quick 2), each placed on its own past day, then the 1M-row file
#                      again on a same-month night, on the
#                      first night of a month and on the first night of a year, each as a
#                      ratio to the same file into empty tables; database size, peak RSS
#
# The 1M-row product, its \copy floor and the queue are run 3 times (1 with --quick) and
# their medians reported: this machine's speed drifts by a fifth within minutes.
# `--night` runs the night of small files alone (with its time by step).
# `--compare DIR` runs the 1M-row product alone, in turns with the release `dispatcher` and
# `performer` in DIR (another build, e.g. the one before a change): medians of each.
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=0 HISTORY_NIGHTS="" ONLY_NIGHT=0 COMPARE=""
while [ $# -gt 0 ]; do
    case $1 in
        --quick) QUICK=1 ;;
        --history-nights) HISTORY_NIGHTS=$2; shift ;;
        --night) ONLY_NIGHT=1 ;;
        --compare) COMPARE=$(cd "$2" && pwd); shift ;;
        *) echo "usage: ops/bench.sh [--quick] [--history-nights N] [--night] [--compare DIR]" >&2; exit 2 ;;
    esac
    shift
done
if [ $QUICK = 1 ]; then
    ROWS=100000 EMAILS=30000 SET_FILES=5 SET_ROWS=20000 QUEUE_ITEMS=2000 NIGHT_FILES=100 BIG_ROWS=0 REPEATS=1
    HISTORY_NIGHTS=${HISTORY_NIGHTS:-2}
else
    ROWS=1000000 EMAILS=300000 SET_FILES=20 SET_ROWS=50000 QUEUE_ITEMS=10000 NIGHT_FILES=1000 BIG_ROWS=5000000 REPEATS=3
    HISTORY_NIGHTS=${HISTORY_NIGHTS:-11}
fi

ops/check-toolchain.sh
# VISITAS_BENCH_NO_TESTBED=1: the test bed is up already (ops/testbed.sh would drop the
# test databases of anyone else testing on this machine).
[ -n "${VISITAS_BENCH_NO_TESTBED:-}" ] || ops/testbed.sh >/dev/null
[ -x /usr/bin/time ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
cargo build --release --workspace --bins --quiet --features dispatcher/fixtures
BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release

TB=${VISITAS_TESTBED:-/var/tmp/visitas-testbed}
PORT=$(cat "$TB/port")
WORK=${VISITAS_BENCH:-/var/tmp/visitas-bench}
# VISITAS_BENCH_NAME: the origin directory and database of this run (two runs at once
# must not share them).
NAME=${VISITAS_BENCH_NAME:-bench}
ORIGIN=$TB/sftp/$NAME
DB=visitas_$NAME
PSQL=(psql -h 127.0.0.1 -U postgres -X -q -v ON_ERROR_STOP=1)
export PGOPTIONS="-c client_min_messages=warning"
rm -rf "$WORK" "$ORIGIN"
mkdir -p "$WORK/gen" "$ORIGIN"
chown visitas-sftp: "$ORIGIN"
ops/testbed-config.sh "$ORIGIN" "$DB" "$WORK/etl" 0 > "$WORK/visitas.toml"
export VISITAS_CONFIG=$WORK/visitas.toml RUST_LOG=${RUST_LOG:-info}
COLUMNS="bitacora_id, archivo, linea, email, jyv, badmail, baja, fecha_envio, fecha_open, opens, opens_virales, fecha_click, clicks, clicks_virales, links, ips, navegadores, plataformas"

now() { date +%s.%N; }
since() { python3 -c "print(f'{$(now) - $1:.2f}')"; }
fresh_db() {
    "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
    "$BIN/dispatcher" migrate >/dev/null
    rm -rf "$WORK/etl"
}
check_invariants() {
    local broken
    broken=$("${PSQL[@]}" -d $DB -At -F ' ' -f sql/checks/invariants.sql | awk '$NF != 0')
    [ -z "$broken" ] || { echo "INVARIANT BROKEN after $1: $broken" >&2; exit 1; }
    INVARIANTS+=("$1: invariants hold")
}
# Before a timed run: dirty pages written out and a checkpoint taken, so no run pays
# for the writes of the one before it (the generated files, the last load's WAL).
settle() {
    sync
    "${PSQL[@]}" -d postgres -c CHECKPOINT
}
# The day between two nights: what autovacuum does in a day's idle time (visibility map,
# hint bits, statistics) is done before each night, untimed.
between_nights() { "${PSQL[@]}" -d $DB -c "VACUUM (ANALYZE)"; }
# Runs a command under /usr/bin/time; sets WALL (s) and RSS (MiB: GNU time's KiB / 1024).
measure() {
    settle
    local out=$WORK/time.txt
    /usr/bin/time -f '%e %M' -o "$out" "$@"
    read -r WALL RSS_KB < "$out"
    RSS=$((RSS_KB / 1024))
}
# Times psql \copy of the valid rows now in estadisticas into an empty copy of its shape:
# COPY_SECS with estadisticas' reference guard (the statement triggers that make every
# bitacora_id exist in bitacora_control: the constraint a FOREIGN KEY would be, which
# LIKE … INCLUDING ALL leaves out with all triggers), BARE_SECS without it.
copy_floor() {
    "${PSQL[@]}" -d $DB -c "\\copy (SELECT $COLUMNS FROM estadisticas) TO '$WORK/valid.csv' CSV"
    # The guard also refuses rows of a file that another load wrote: these are the same
    # rows again, so the loaded ones go first (each scenario ends with this floor).
    "${PSQL[@]}" -d $DB -c "TRUNCATE estadisticas"
    local guard
    for guard in 0 1; do
        "${PSQL[@]}" -d $DB -c "DROP TABLE IF EXISTS floor_estadisticas" \
            -c "CREATE TABLE floor_estadisticas (LIKE estadisticas INCLUDING ALL)"
        [ $guard = 0 ] || "${PSQL[@]}" -d $DB -c "CREATE TRIGGER floor_reference AFTER INSERT ON floor_estadisticas
            REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION visitas_details_have_audit_row('estadisticas')"
        settle
        local t0; t0=$(now)
        "${PSQL[@]}" -d $DB -c "\\copy floor_estadisticas ($COLUMNS) FROM '$WORK/valid.csv' CSV"
        if [ $guard = 0 ]; then BARE_SECS=$(since "$t0"); else COPY_SECS=$(since "$t0"); fi
    done
    VALID_ROWS=$("${PSQL[@]}" -d $DB -At -c "SELECT count(*) FROM floor_estadisticas")
    "${PSQL[@]}" -d $DB -c "DROP TABLE floor_estadisticas"
}
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
rate() { python3 -c "print(f'{$1 / $2:,.0f}')"; }
ROWS_OUT=()
row() { ROWS_OUT+=("$(printf '%-34s %9s %12s %9s %s' "$@")"); }
INVARIANTS=()
# The 1M-row file ($BIG) loaded once by $BIN's performer into a fresh database, timed
# (WALL, RSS); the performer's log to $1.
load_big() {
    fresh_db
    cp "$BIG" "$ORIGIN/report_1.txt"
    touch -d '-1 hour' "$ORIGIN/report_1.txt"
    "$BIN/dispatcher" run --no-wait >/dev/null
    between_nights
    measure "$BIN/performer" run --once --workers 1 > "$1"
}

if [ -n "$COMPARE" ]; then
    "$BIN/dispatcher" generate --dir "$WORK/gen" --files 1 --rows "$ROWS" --emails "$EMAILS" --invalid-pct 5 --seed 7 >/dev/null
    BIG=$WORK/gen/report_1.txt
    SIZE_MIB=$(python3 -c "import os; print(f'{os.path.getsize(\"$BIG\") / 2**20:.1f}')")
    THIS=$BIN
    declare -A RUNS=() PEAK=()
    for run in $(seq "$REPEATS"); do
        for build in this other; do
            if [ $build = this ]; then BIN=$THIS; else BIN=$COMPARE; fi
            echo "== compare: 1 file of $ROWS rows, $build build ($BIN), run $run of $REPEATS"
            load_big "$WORK/performer_$build.log"
            check_invariants "compare, $build build, run $run"
            RUNS[$build]="${RUNS[$build]:-} $WALL"
            [ "$RSS" -gt "${PEAK[$build]:-0}" ] && PEAK[$build]=$RSS
        done
    done
    BIN=$THIS
    for build in this other; do
        # shellcheck disable=SC2086 # the runs are words
        m=$(median ${RUNS[$build]})
        row "1 file, $ROWS rows: $build build" "$m" "$(rate "$ROWS" "$m")" "${PEAK[$build]}" \
            "RSS $(ratio "${PEAK[$build]}" "$SIZE_MIB") x file of ${SIZE_MIB} MiB; median of:${RUNS[$build]}"
    done
    printf '%-34s %9s %12s %9s %s\n' "scenario" "wall (s)" "rows/s" "RSS MiB" "notes"
    printf '%s\n' "${ROWS_OUT[@]}" "${INVARIANTS[@]}"
    echo "this build / other build: $(ratio "$(median ${RUNS[this]})" "$(median ${RUNS[other]})") x the time"
    exit 0
fi

if [ "$ONLY_NIGHT" = 0 ]; then
echo "== generating: 1 x $ROWS rows ($EMAILS e-mails, 5% invalid), $SET_FILES x $SET_ROWS rows, $NIGHT_FILES small files"
"$BIN/dispatcher" generate --dir "$WORK/gen" --files 1 --rows "$ROWS" --emails "$EMAILS" --invalid-pct 5 --seed 7 >/dev/null
BIG=$WORK/gen/report_1.txt
SIZE_MB=$(python3 -c "import os; print(f'{os.path.getsize(\"$BIG\") / 1e6:.1f}')")
# Memory is compared in one unit: peak RSS in MiB against the file in MiB.
SIZE_MIB=$(python3 -c "import os; print(f'{os.path.getsize(\"$BIG\") / 2**20:.1f}')")

echo "== floor: OpenSSH sftp download of the ${SIZE_MB} MB file"
cp "$BIG" "$ORIGIN/report_1.txt"
settle
t0=$(now)
echo "get $ORIGIN/report_1.txt $WORK/sftp_copy.txt" | sftp -q -b - -P "$PORT" -i "$TB/client_ed25519" \
    -o UserKnownHostsFile="$TB/known_hosts" -o BatchMode=yes visitas-sftp@127.0.0.1 >/dev/null
SFTP_SECS=$(since "$t0")
SFTP_MBS=$(python3 -c "print(f'{$SIZE_MB / $SFTP_SECS:.0f}')")

# The product and its floor in turns, so a drift in the machine's speed hits both.
E2E_RUNS=() FLOOR_RUNS=() BARE_RUNS=() E2E_RSS=0
for run in $(seq "$REPEATS"); do
    echo "== product: 1 file end to end (1 worker), run $run of $REPEATS"
    load_big "$WORK/performer_single.log"
    E2E_RUNS+=("$WALL")
    [ "$RSS" -gt "$E2E_RSS" ] && E2E_RSS=$RSS
    [ "$run" = 1 ] && OUR_MBS=$(grep -h '"message":"downloaded"' "$WORK/performer_single.log" | python3 -c 'import json,sys; print(round(json.loads(sys.stdin.readline())["mb_per_s"]))')
    check_invariants "1 file, run $run"
    echo "== floor: psql \\copy of the same valid rows into the same shape and indexes, run $run of $REPEATS"
    copy_floor
    FLOOR_RUNS+=("$COPY_SECS") BARE_RUNS+=("$BARE_SECS")
done
E2E_SECS=$(median "${E2E_RUNS[@]}") COPY_SECS=$(median "${FLOOR_RUNS[@]}") BARE_SECS=$(median "${BARE_RUNS[@]}")
SINGLE_VALID=$VALID_ROWS
row "floor: OpenSSH sftp download" "$SFTP_SECS" "-" "-" "${SFTP_MBS} MB/s"
row "product: SFTP download" "-" "-" "-" "${OUR_MBS} MB/s = $(ratio "$OUR_MBS" "$SFTP_MBS") x sftp (target >= 0.80)"
row "floor: psql \\copy $SINGLE_VALID rows" "$COPY_SECS" "$(rate "$SINGLE_VALID" "$COPY_SECS")" "-" "with the reference guard; median of: ${FLOOR_RUNS[*]}"
row "floor: the same, no guard" "$BARE_SECS" "$(rate "$SINGLE_VALID" "$BARE_SECS")" "-" "LIKE … INCLUDING ALL alone; median of: ${BARE_RUNS[*]}"
row "product: 1 file, $ROWS rows" "$E2E_SECS" "$(rate "$ROWS" "$E2E_SECS")" "$E2E_RSS" \
    "$(ratio "$E2E_SECS" "$COPY_SECS") x \\copy (target <= 1.3), $(ratio "$E2E_SECS" "$BARE_SECS") x \\copy without the guard; RSS $(ratio "$E2E_RSS" "$SIZE_MIB") x file of ${SIZE_MIB} MiB (target <= 1.5); median of: ${E2E_RUNS[*]}"

# History: the nightly cost must not grow with what earlier nights loaded. The measured
# file is the 1M-row file above; each measured night loads it with one more trailing
# blank line (ignored: docs/data-contract.md §2), so its rows are the same but its SHA-256 is new. The
# first night of 2027 loads the same file generated for 2027 (same rows and visitors,
# dated a year later): a January night's rows fall in January's year.
echo "== history: $HISTORY_NIGHTS earlier nights of $ROWS rows (same month), then 3 measured nights"
fresh_db
rm -rf "$ORIGIN"/* "$WORK/history"
mkdir -p "$WORK/history"
"$BIN/dispatcher" generate --dir "$WORK/history" --files "$HISTORY_NIGHTS" --rows "$ROWS" --emails "$EMAILS" --invalid-pct 5 --first 1000 --seed 1000 >/dev/null
# The bench loads its nights minutes apart, so they would all share today's partition;
# the service loads each night on its own day, into that day's (migration 10). So after
# each night its rows move, untimed, to the partitions of the day it stands for, $1 days
# ago (as the tests place rows "as if loaded then"), and today's emptied partitions are
# made anew: each night starts as it would on its own day.
relocate_night() {
    local id day t today
    id=$("${PSQL[@]}" -d $DB -At -c "SELECT max(id) FROM bitacora_control")
    day=$("${PSQL[@]}" -d $DB -At -c "SELECT ((now() AT TIME ZONE 'UTC')::date - $1) || ' 12:00+00'")
    # Its audit row first: no load writes rows older than their audit row.
    "${PSQL[@]}" -d $DB -c "UPDATE bitacora_control SET creado_en = '$day' WHERE id = $id"
    for t in estadisticas errores; do
        today=$("${PSQL[@]}" -d $DB -At -c "SELECT particion FROM visitas_particion_de_carga('$t', now())")
        [[ $today =~ _[0-9]{4}_[0-9]{2}_[0-9]{2}$ ]] || { echo "$today is not a day's partition" >&2; exit 1; }
        "${PSQL[@]}" -d $DB -c "SELECT visitas_particion_de_carga('$t', '$day')" \
            -c "UPDATE $t SET creado_en = '$day' WHERE bitacora_id = $id" -c "DROP TABLE $today"
    done
    "$BIN/dispatcher" partitions ensure >/dev/null
}
HISTORY_RUNS=()
for n in $(seq "$HISTORY_NIGHTS"); do
    between_nights
    mv "$WORK/history/report_$((999 + n)).txt" "$ORIGIN/"
    touch -d '-1 hour' "$ORIGIN"/*.txt
    "$BIN/dispatcher" run --no-wait >/dev/null
    measure "$BIN/performer" run --once --workers 1 --as-of "2026-11-$(printf %02d $((n > 27 ? 27 : n)))" > "$WORK/performer_history.log"
    HISTORY_RUNS+=("$WALL")
    relocate_night $((HISTORY_NIGHTS + 4 - n))
done
HISTORY_ROWS=$("${PSQL[@]}" -d $DB -At -c "SELECT (SELECT count(*) FROM estadisticas) + (SELECT count(*) FROM errores)")
HISTORY_VALID=$("${PSQL[@]}" -d $DB -At -c "SELECT count(*) FROM estadisticas")
db_size() { "${PSQL[@]}" -d $DB -At -c "SELECT pg_size_pretty(pg_database_size(current_database()))"; }
HISTORY_SIZE=$(db_size)
check_invariants "history of $HISTORY_NIGHTS nights"
row "history: $HISTORY_NIGHTS nights x $ROWS" "-" "-" "-" \
    "$HISTORY_VALID valid + $((HISTORY_ROWS - HISTORY_VALID)) rejected rows, database $HISTORY_SIZE; nights (s): ${HISTORY_RUNS[*]}"
"$BIN/dispatcher" generate --dir "$WORK/gen2027" --files 1 --rows "$ROWS" --emails "$EMAILS" --invalid-pct 5 --seed 7 --year 2027 >/dev/null
night_after_history() { # label, as-of, blank lines appended, target note, file, days back
    cp "$5" "$ORIGIN/report_1.txt"
    for _ in $(seq "$3"); do echo >> "$ORIGIN/report_1.txt"; done
    touch -d '-1 hour' "$ORIGIN/report_1.txt"
    "$BIN/dispatcher" run --no-wait >/dev/null
    between_nights
    measure "$BIN/performer" run --once --workers 1 --as-of "$2" > "$WORK/performer_$1.log"
    local status
    status=$("${PSQL[@]}" -d $DB -At -c "SELECT estatus FROM bitacora_control ORDER BY id DESC LIMIT 1")
    [ "$status" = COMPLETADO_CON_ERRORES ] || { echo "the $1 night ended $status" >&2; exit 1; }
    check_invariants "$1 night after history"
    row "history: $1 night, $ROWS rows" "$WALL" "$(rate "$ROWS" "$WALL")" "$RSS" \
        "$(ratio "$WALL" "$E2E_SECS") x the same file into empty tables (${E2E_SECS} s)$4; database $(db_size)"
    relocate_night "$6"
}
night_after_history "same-month" 2026-11-28 1 " (target <= 1.2)" "$BIG" 3
night_after_history "first-of-month" 2026-12-01 2 " (target <= 1.2)" "$BIG" 2
night_after_history "first-of-year" 2027-01-01 3 " (target <= 1.2)" "$WORK/gen2027/report_1.txt" 1

echo "== product: $SET_FILES files x $SET_ROWS rows, 2 workers"
fresh_db
"$BIN/dispatcher" generate --dir "$ORIGIN" --files "$SET_FILES" --rows "$SET_ROWS" --emails "$EMAILS" --first 100 --seed 11 >/dev/null
rm -f "$ORIGIN/report_1.txt"
touch -d '-1 hour' "$ORIGIN"/*.txt
"$BIN/dispatcher" run --no-wait >/dev/null
measure "$BIN/performer" run --once --workers 2 > "$WORK/performer_set.log"
SET_SECS=$WALL SET_RSS=$RSS
check_invariants "$SET_FILES files"
copy_floor
row "product: $SET_FILES files x $SET_ROWS, 2 workers" "$SET_SECS" "$(rate $((SET_FILES * SET_ROWS)) "$SET_SECS")" "$SET_RSS" \
    "$(ratio "$SET_SECS" "$COPY_SECS") x \\copy of its $VALID_ROWS valid rows (${COPY_SECS} s)"

echo "== queue alone: $QUEUE_ITEMS empty items, 4 workers"
CLAIM_RUNS=()
for run in $(seq "$REPEATS"); do
    fresh_db
    QUEUE_LINE=$("$BIN/performer" bench-queue --items "$QUEUE_ITEMS" --workers 4 | grep '^queue:')
    CLAIM_RUNS+=("$(echo "$QUEUE_LINE" | sed -E 's/.* = ([0-9]+) claims\/s.*/\1/')")
done
row "queue: $QUEUE_ITEMS claims, 4 workers" "-" "-" "-" "$(median "${CLAIM_RUNS[@]}") claims/s (target >= 2000); median of: ${CLAIM_RUNS[*]}"

fi

echo "== a night of $NIGHT_FILES small files of 50 rows, 2 workers"
fresh_db
rm -rf "$ORIGIN"/*
"$BIN/dispatcher" generate --dir "$ORIGIN" --files "$NIGHT_FILES" --rows 50 --emails 5000 --seed 13 >/dev/null
touch -d '-1 hour' "$ORIGIN"/*.txt
# The night as the service runs it: listings a second apart (stability_window_secs = 1),
# the dispatcher waiting for the queue to drain (wait_poll_secs = 1), then the close.
# A file counts as complete once seen unchanged for a second (min_file_age_secs = 1):
# the default minute is a wait the sender's habits call for, not a cost of the files.
ops/testbed-config.sh "$ORIGIN" "$DB" "$WORK/etl" 1 | sed 's/^stability_window_secs = 1$/&\nmin_file_age_secs = 1/' > "$WORK/visitas_night.toml"
grep -q '^min_file_age_secs = 1$' "$WORK/visitas_night.toml"
export VISITAS_CONFIG=$WORK/visitas_night.toml
"$BIN/performer" run --workers 2 > "$WORK/performer_night.log" 2>&1 &
PERFORMER=$!
trap 'kill -TERM $PERFORMER 2>/dev/null || true' EXIT
measure "$BIN/dispatcher" run > "$WORK/dispatcher_night.log"
kill -TERM $PERFORMER && wait $PERFORMER
trap - EXIT
export VISITAS_CONFIG=$WORK/visitas.toml
NIGHT_SECS=$WALL
DONE=$("${PSQL[@]}" -d $DB -At -c "SELECT count(*) FROM bitacora_control WHERE estatus LIKE 'COMPLETADO%'")
check_invariants "night of $NIGHT_FILES files"
row "night: $NIGHT_FILES small files" "$NIGHT_SECS" "-" "-" "$DONE loaded (target < 20 s); breakdown below"
# Where a small file's time goes: each step's mean over the night's files (the per-file
# log's ms_by_step, on each file's last line), and the rest of the night's worker time (2 workers for
# the whole wall time) that no item's own time accounts for.
NIGHT_BREAKDOWN=$(python3 - "$WORK/performer_night.log" "$NIGHT_SECS" 2 <<'PY'
import json, sys
path, wall, workers = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
steps = ["claim", "connect", "take", "download", "hash", "load", "backup", "delete", "finish", "rest"]
items = []
for line in open(path):
    try:
        j = json.loads(line)
    except ValueError:
        continue
    fields = j.get("fields", j)
    if "ms_by_step" in fields:
        pairs = dict(p.split("=", 1) for p in fields["ms_by_step"].split())
        items.append({**{k + "_ms": int(v) for k, v in pairs.items() if k != "connection"},
                      "connection": pairs.get("connection", "?")})
n = len(items)
if n == 0:
    print("  no ms_by_step in the performer's log")
    sys.exit()
mean = {s: sum(i[s + "_ms"] for i in items) / n for s in steps}
total = sum(i["total_ms"] for i in items) / n
kinds = {}
for i in items:
    kinds[i.get("connection", "?")] = kinds.get(i.get("connection", "?"), 0) + 1
print(f"  per file, mean of {n} (ms): " + ", ".join(f"{s} {mean[s]:.1f}" for s in steps) + f"; total {total:.1f}")
print("  connections: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
      + " (kept: the worker's connection, its connect the liveness check alone)")
outside = wall * 1000 * workers / n - total
print(f"  the night: {wall:.2f} s x {workers} workers = {wall * 1000 * workers / n:.1f} ms of worker time per file; "
      f"{total:.1f} ms inside the items, {outside:.1f} ms outside them (the listings and their "
      f"stability window before the first claim, idle workers waiting for the queue, the dispatcher's "
      f"wait poll after the last item, the close)")
PY
)

if [ "$BIG_ROWS" -gt 0 ] && [ "$ONLY_NIGHT" = 0 ]; then
    echo "== product: 1 file of $BIG_ROWS rows (bounded memory)"
    fresh_db
    rm -rf "$ORIGIN"/*
    "$BIN/dispatcher" generate --dir "$ORIGIN" --files 1 --rows "$BIG_ROWS" --emails "$EMAILS" --first 500 --seed 17 >/dev/null
    BIG_MIB=$(python3 -c "import os; print(f'{os.path.getsize(\"$ORIGIN/report_500.txt\") / 2**20:.0f}')")
    touch -d '-1 hour' "$ORIGIN"/*.txt
    "$BIN/dispatcher" run --no-wait >/dev/null
    measure "$BIN/performer" run --once --workers 1 > "$WORK/performer_5m.log"
    check_invariants "$BIG_ROWS rows"
    row "product: 1 file, $BIG_ROWS rows" "$WALL" "$(rate "$BIG_ROWS" "$WALL")" "$RSS" "file ${BIG_MIB} MiB: RSS $(ratio "$RSS" "$BIG_MIB") x file"
fi

echo
printf '%-34s %9s %12s %9s %s\n' "scenario" "wall s" "rows/s" "RSS MiB" "ratio / note"
printf '%s\n' "${ROWS_OUT[@]}"
echo
echo "night of $NIGHT_FILES small files, time by step:"
echo "$NIGHT_BREAKDOWN"
echo
printf '%s\n' "${INVARIANTS[@]}"
