#!/usr/bin/env bash
# benches/ingest.sh — `postflow serve` (embedded store) under wrk: events/s, p50/p99, server CPU µs per
# event and peak RSS, on two payloads: 100 distinct error envelopes of ~2.9 KiB (the shape of Stackpit's
# own benchmark) and the real sentry-python exception envelope (gzip, as the SDK sends it). No event ids,
# so nothing is de-duplicated. Afterwards every 2xx is checked against the events on the embedded stream
# (`GET /_postflow/stats`).
#
#   benches/ingest.sh                      # target/release/postflow; 16 and 64 connections; 5 s warm-up, 15 s measured
#   BIN=... SECS=15 WARM=5 CONNS="16 64" ROUNDS=1 PAYLOADS="stackpit sdk" benches/ingest.sh
#   SOAK=600 EVENT_DEDUPE_SECS=60 benches/ingest.sh
#                                          # one long run (Stackpit-shaped payload, 16 connections):
#                                          # RSS and events every 30 s (the server gets the environment,
#                                          # so EVENT_DEDUPE_SECS sets its de-duplication window)
#   PEER_URL=http://127.0.0.1:8000 PEER_PATH=/api/1/envelope/ PEER_KEY=... benches/ingest.sh
#                                          # the same load against a peer already running on loopback
#                                          # (nothing of it is built or fetched here)
#
# Needs wrk (Debian: apt-get install wrk) and python3. Binds 127.0.0.1 only; stops the server by PID.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN=${BIN:-target/release/postflow}
SECS=${SECS:-15}
WARM=${WARM:-5}
CONNS=${CONNS:-"16 64"}
ROUNDS=${ROUNDS:-1}
PEER_URL=${PEER_URL:-}
command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)" >&2; exit 1; }
[[ -x $BIN ]] || { echo "$BIN is missing (cargo build --release)" >&2; exit 1; }

TMP=$(mktemp -d)
PID=""
cleanup() { [[ -n $PID ]] && kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM

python3 benches/ingest/make_payloads.py "$TMP" >&2
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=warn "$BIN" serve --port "$PORT" --seed events/seed.json >"$TMP/serve.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.1; done
URL="http://127.0.0.1:$PORT"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }     # utime + stime, clock ticks
hz=$(getconf CLK_TCK)
# Events on the embedded stream (-1 when the server has no stats endpoint, e.g. an older build).
records() {
    curl -s "$URL/_postflow/stats" | python3 -c 'import json,sys
try: print(int(json.load(sys.stdin)["stream_records"]))
except Exception: print(-1)'
}

run_wrk() {  # url conns secs payload -> wrk output
    local url=$1 conns=$2 secs=$3 payload=$4
    ls "$TMP/$payload"/*.env >"$TMP/list"
    PAYLOAD_LIST="$TMP/list" PAYLOAD_GZIP=$([[ $payload == sdk ]] && echo 1 || echo 0) \
        wrk -t1 -c"$conns" -d"${secs}s" --latency -s benches/ingest/post.lua "$url"
}

field() { { grep -E "$1" || true; } | head -1 | awk "{print \$$2}"; }
to_ms() { python3 -c "import sys; v=sys.argv[1]; print(float(v[:-2])/1000 if v.endswith('us') else float(v[:-2]) if v.endswith('ms') else float(v[:-1])*1000)" "$1"; }

if [[ -n ${SOAK:-} ]]; then
    echo "soak: ${SOAK} s, stackpit payload, 16 connections, EVENT_DEDUPE_SECS=${EVENT_DEDUPE_SECS:-3600 (default)}"
    run_wrk "$URL" 16 "$SOAK" stackpit >"$TMP/soak.out" &
    WRK=$!
    printf '%8s %9s %16s\n' seconds "RSS MiB" "events streamed"
    start=$(date +%s)
    while kill -0 "$WRK" 2>/dev/null; do
        sleep 30
        kill -0 "$WRK" 2>/dev/null || break
        rss=$(awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$PID/status")
        printf '%8s %9s %16s\n' "$(( $(date +%s) - start ))" "$rss" "$(records)"
    done
    wait "$WRK" || true
    echo "events/s over the run: $(field 'Requests/sec' 2 <"$TMP/soak.out"); peak RSS $(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$PID/status") MiB"
    exit 0
fi

printf '%-10s %5s %5s %10s %9s %9s %9s %12s %9s %s\n' payload conns round "events/s" "p50 ms" "p99 ms" "max ms" "CPU µs/ev" "RSS MiB" "verified"
failed=0
for payload in ${PAYLOADS:-stackpit sdk}; do
    for conns in $CONNS; do
        for round in $(seq 1 "$ROUNDS"); do
            run_wrk "$URL" "$conns" "$WARM" "$payload" >/dev/null
            r0=$(records); t0=$(ticks "$PID")
            out=$(run_wrk "$URL" "$conns" "$SECS" "$payload")
            t1=$(ticks "$PID"); r1=$(records)
            reqs=$(echo "$out" | field 'requests in' 1)
            non2xx=$(echo "$out" | field 'Non-2xx' 5); non2xx=${non2xx:-0}
            rps=$(echo "$out" | field 'Requests/sec' 2)
            p50=$(to_ms "$(echo "$out" | field ' 50%' 2)"); p99=$(to_ms "$(echo "$out" | field ' 99%' 2)")
            max=$(to_ms "$(echo "$out" | field 'Latency ' 4)")   # wrk: Latency avg stdev max +/-
            cpu=$(python3 -c "print(f'{($t1-$t0)/$hz*1e6/max($reqs,1):.0f}')")
            rss=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$PID/status")
            ok=$((reqs - non2xx)); streamed=$((r1 - r0))
            # Every 2xx wrk counted is on the stream; up to one request per connection may have been
            # answered after wrk stopped counting (streamed, not counted).
            verdict="ok ($ok 2xx, $streamed streamed)"
            if ((r0 < 0 || r1 < 0)); then
                verdict="unverified ($ok 2xx; no stats endpoint)"
            elif ((streamed < ok || streamed > ok + conns)); then
                verdict="MISMATCH: $ok answered 2xx, $streamed streamed"
                failed=1
            fi
            printf '%-10s %5s %5s %10.0f %9.2f %9.2f %9.2f %12s %9s %s\n' "$payload" "$conns" "$round" "$rps" "$p50" "$p99" "$max" "$cpu" "$rss" "$verdict"
        done
    done
done
if [[ -n $PEER_URL ]]; then
    echo "peer $PEER_URL (its own server; CPU and storage are not measured here)"
    for payload in ${PAYLOADS:-stackpit sdk}; do
        for conns in $CONNS; do
            run_wrk "$PEER_URL" "$conns" "$WARM" "$payload" >/dev/null
            out=$(INGEST_PATH=${PEER_PATH:-/api/42/envelope/} DSN_KEY=${PEER_KEY:-c0ffee0c0ffee0c0ffee0c0ffee0c0ff} run_wrk "$PEER_URL" "$conns" "$SECS" "$payload")
            printf '%-10s %5s %10s %s\n' "$payload" "$conns" "$(echo "$out" | field 'Requests/sec' 2)" "$(echo "$out" | grep -E 'Non-2xx' || true)"
        done
    done
fi
exit $failed
