#!/usr/bin/env bash
# Test bed, browser part (for the browser console's tests; not called by ops/testbed.sh
# yet): Debian's headless Chromium and ChromeDriver, with fonts so that pages have text.
# Idempotent; installs what is missing (Debian, as root). Proves, every run, that
#   - Chromium renders a page served over the loopback (python3 -m http.server) to a
#     PNG screenshot with dark text pixels where the page's heading is;
#   - Chromium started with --remote-debugging-port=0 prints its
#     "DevTools listening on ws://..." line and answers /json/version (what chromiumoxide
#     drives over CDP).
# Files under $VISITAS_TESTBED/browser:
#   flags           the flags a test passes to Chromium, one a line (plus its own
#                   --user-data-dir=<fresh temporary directory>, and --window-size)
#   env             CHROMIUM=, CHROMEDRIVER=, CHROMIUM_VERSION=, FLAGS_FILE= (KEY=VALUE lines)
#   page/index.html the page the proof renders
#   screenshot.png  what Chromium made of it (look at it: the file tool shows PNGs)
#   devtools.log    Chromium's stderr from the CDP proof
set -euo pipefail

TB=${VISITAS_TESTBED:-/var/tmp/visitas-testbed}
DIR=$TB/browser
CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver
now() { date +%s%N; }
since() { local ms=$((($(now) - $1) / 1000000)); printf '%d.%d s' $((ms / 1000)) $((ms % 1000 / 100)); }
t0=$(now)

need_apt=()
[ -x "$CHROMIUM" ] || need_apt+=(chromium)
[ -x "$CHROMEDRIVER" ] || need_apt+=(chromium-driver)
dpkg-query -W -f='${Status}' fonts-dejavu-core 2>/dev/null | grep -q 'ok installed' || need_apt+=(fonts-dejavu-core)
command -v fc-match >/dev/null || need_apt+=(fontconfig)
[ -x /usr/bin/python3 ] || need_apt+=(python3)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "testbed: installing ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
    echo "testbed: installed in $(since "$t0")"
fi
mkdir -p "$DIR/page"
chmod 755 "$DIR"

# The flags every test passes. Without the ones that stop background networking,
# Chromium's own connections (component updates, sync, QUIC probes) are refused on this
# closed network and slow it down or fill its log.
FLAGS=(
    --headless
    --no-sandbox
    --disable-gpu
    --disable-quic
    --no-first-run
    --no-default-browser-check
    --disable-background-networking
    --disable-component-update
    --disable-sync
    --disable-default-apps
    --disable-extensions
    --disable-breakpad
    --disable-dev-shm-usage
    --metrics-recording-only
    --password-store=basic
    --use-mock-keychain
    --hide-scrollbars
    --force-color-profile=srgb
)
printf '%s\n' "${FLAGS[@]}" > "$DIR/flags"
version=$("$CHROMIUM" --version 2>/dev/null | tr -s ' ' | sed 's/ *$//')
driver_version=$("$CHROMEDRIVER" --version 2>/dev/null | awk '{print $2}')
cat > "$DIR/env" <<ENV
CHROMIUM=$CHROMIUM
CHROMEDRIVER=$CHROMEDRIVER
CHROMIUM_VERSION=$(echo "$version" | awk '{print $2}')
CHROMEDRIVER_VERSION=$driver_version
FLAGS_FILE=$DIR/flags
ENV

cat > "$DIR/page/index.html" <<'HTML'
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>visitas test bed</title>
<style>
  html, body { margin: 0; background: #fff; font-family: sans-serif; }
  h1 { position: absolute; left: 40px; top: 40px; margin: 0; font-size: 48px; color: #000; }
  p  { position: absolute; left: 40px; top: 140px; margin: 0; font-size: 20px; color: #333; }
  #box { position: absolute; left: 40px; top: 220px; width: 300px; height: 80px; background: #1e6fd9; }
</style></head>
<body>
  <h1>visitas console — test bed</h1>
  <p>Rendered by headless Chromium from a page on the loopback. Ärger, façade, 1234567890.</p>
  <div id="box"></div>
</body></html>
HTML

work=$(mktemp -d)
http_pid=
chrome_pid=
cleanup() {
    [ -z "$chrome_pid" ] || kill "$chrome_pid" 2>/dev/null || true
    [ -z "$http_pid" ] || kill "$http_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# 1. A screenshot of a page served over the loopback.
t1=$(now)
/usr/bin/python3 -u -m http.server --bind 127.0.0.1 --directory "$DIR/page" 0 > "$work/http.log" 2>&1 &
http_pid=$!
port=
for _ in $(seq 50); do
    port=$(sed -n 's/.*Serving HTTP on 127\.0\.0\.1 port \([0-9]*\).*/\1/p' "$work/http.log")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "testbed: the page server did not start: $(cat "$work/http.log")" >&2; exit 1; }
rm -f "$DIR/screenshot.png"
TMPDIR=$work timeout 60 "$CHROMIUM" "${FLAGS[@]}" --user-data-dir="$work/profile-shot" \
    --window-size=1280,800 --screenshot="$DIR/screenshot.png" \
    "http://127.0.0.1:$port/" > "$work/shot.log" 2>&1 || {
    echo "testbed: chromium failed to take the screenshot:" >&2; cat "$work/shot.log" >&2; exit 1; }
grep -q '"GET / HTTP/1.1" 200' "$work/http.log" || {
    echo "testbed: chromium did not fetch the page from 127.0.0.1:$port" >&2; exit 1; }
kill "$http_pid"; wait "$http_pid" 2>/dev/null || true; http_pid=
# The PNG: its size, and dark pixels (text) in the heading's band but none in the
# margin above it; the blue box where the page puts it.
/usr/bin/python3 - "$DIR/screenshot.png" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat = 8, b""
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
assert depth == 8 and ctype in (2, 6), f"unexpected PNG format depth={depth} type={ctype}"
bpp = 3 if ctype == 2 else 4
raw, stride, rows, prev = zlib.decompress(idat), w * bpp, [], bytearray(w * bpp)
for y in range(h):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(line); prev = line
px = lambda x, y: tuple(rows[y][x * bpp:x * bpp + 3])
dark = lambda y0, y1: sum(1 for y in range(y0, y1) for x in range(0, 900) if sum(px(x, y)) < 200)
text, margin = dark(40, 100), dark(0, 35)
box = px(190, 260)
assert (w, h) == (1280, 800), f"screenshot is {w}x{h}, not 1280x800"
assert text > 500, f"no text in the heading's band ({text} dark pixels): fonts missing?"
assert margin == 0, f"{margin} dark pixels in the top margin"
assert box == (0x1e, 0x6f, 0xd9), f"the box is {box}, not #1e6fd9"
print(f"testbed: screenshot {w}x{h}, {text} dark text pixels in the heading, box {'#%02x%02x%02x' % box}")
PY
echo "testbed: screenshot in $(since "$t1") (font for sans-serif: $(fc-match sans-serif))"

# 2. The DevTools endpoint that chromiumoxide connects to.
t2=$(now)
TMPDIR=$work "$CHROMIUM" "${FLAGS[@]}" --user-data-dir="$work/profile-cdp" --remote-debugging-port=0 \
    about:blank > "$DIR/devtools.log" 2>&1 &
chrome_pid=$!
ws=
for _ in $(seq 300); do
    ws=$(sed -n 's/^DevTools listening on \(ws:\/\/.*\)$/\1/p' "$DIR/devtools.log" | head -n 1)
    [ -n "$ws" ] && break
    kill -0 "$chrome_pid" 2>/dev/null || break
    sleep 0.1
done
[ -n "$ws" ] || { echo "testbed: chromium printed no DevTools line:" >&2; cat "$DIR/devtools.log" >&2; exit 1; }
cdp_port=$(echo "$ws" | sed -n 's|^ws://127\.0\.0\.1:\([0-9]*\)/devtools/browser/.*|\1|p')
[ -n "$cdp_port" ] || { echo "testbed: unexpected DevTools address $ws" >&2; exit 1; }
/usr/bin/python3 - "$cdp_port" "$ws" <<'PY'
import json, sys, urllib.request
v = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/json/version", timeout=10))
assert v["webSocketDebuggerUrl"] == sys.argv[2], (v, sys.argv[2])
print(f"testbed: CDP answers: {v['Browser']}, protocol {v['Protocol-Version']}")
PY
kill "$chrome_pid"; wait "$chrome_pid" 2>/dev/null || true; chrome_pid=
echo "testbed: DevTools line in $(since "$t2"): DevTools listening on $ws"

echo "testbed: $version at $CHROMIUM, ChromeDriver $driver_version at $CHROMEDRIVER;" \
    "flags in $DIR/flags, screenshot $DIR/screenshot.png ($(since "$t0") in all)"
