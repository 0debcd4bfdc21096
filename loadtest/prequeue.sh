#!/usr/bin/env bash
# The opening of a sale with BIG people in the pre-queue, against the same queue without a draw;
# writes its block of BENCHMARKS.md (between the prequeue.sh markers), in one command:
#
#   bash loadtest/prequeue.sh
#
# Its own redis-server on a free port (no persistence) and a release build of `vestibule serve`.
# Each round:
#   A. a fresh scheduled event with its pre-queue open and `opens_at` an hour ahead: BIG - POOL
#      people put straight into the pre-queue by loadtest/fill.lua (with a salt: places scored
#      below zero and added to the draw, as the draw's joins are), then POOL people joined through
#      HTTP, whose tickets are polled. `opens_at` is then moved to two seconds ahead (admin API):
#      (a) one ticket polled with curl in a loop from before the opening: how long after `opens_at`
#          the first status carrying a position arrived;
#      (b) wrk polling the POOL tickets for DURATION s from the opening on, and again DURATION s
#          later (the drawn queue settled).
#   B. the same wrk run against an open FIFO event of the same BIG people (BIG - POOL by fill.lua,
#      POOL through HTTP behind them), filled once; run before A in even rounds, after A in odd.
# Compare within a round: B/A p99 and A/B req/s.
#
# Knobs (environment): BIG (1000000), POOL (10000), ROUNDS (2), DURATION (10 s per wrk run),
# CONNECTIONS (64), THREADS (2), NICE (0): the niceness of everything this script starts; a
# negative one (root) keeps other jobs on a shared machine from stealing the measured CPU.
set -euo pipefail
cd "$(dirname "$0")/.."

BIG=${BIG:-1000000}
POOL=${POOL:-10000}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
NICE=${NICE:-0}
N=(nice -n "$NICE")
OUT=BENCHMARKS.md
TOKEN="bench-$RANDOM-$RANDOM"
COMMAND="BIG=$BIG POOL=$POOL ROUNDS=$ROUNDS DURATION=$DURATION CONNECTIONS=$CONNECTIONS THREADS=$THREADS NICE=$NICE bash loadtest/prequeue.sh"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# shellcheck source=loadtest/common.sh
source loadtest/common.sh

echo "== building (release)" >&2
cargo build --release --bin vestibule --quiet

# Milliseconds since the epoch, from bash's own clock (no process started).
now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $(( t / 1000 )); }
secs_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a / b}'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

REDIS_PORT=$(free_port)
"${N[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$WORK" >"$WORK/redis.log" 2>&1 &
PIDS+=("$!")
wait_port "$REDIS_PORT"
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }

GATEWAY_PORT=$(free_port)
VESTIBULE_ADMIN_TOKEN=$TOKEN RUST_LOG=warn "${N[@]}" target/release/vestibule serve \
  --listen "127.0.0.1:$GATEWAY_PORT" --redis-url "redis://127.0.0.1:$REDIS_PORT" \
  --join-rate-per-client 0 --keys-dir "$WORK/keys" >"$WORK/gateway.log" 2>&1 &
PIDS+=("$!")
wait_port "$GATEWAY_PORT"
GATEWAY="http://127.0.0.1:$GATEWAY_PORT"

put_event() { # event valves
  curl -fsS -X PUT "$GATEWAY/admin/v1/events/$1" -H "Authorization: Bearer $TOKEN" -d "$2" >/dev/null
}
# Puts people straight into an event's queue (loadtest/fill.lua), 10000 per script call so that
# no call holds Redis for long: fill_direct event count [salt: into the pre-queue, by draw score]
fill_direct() {
  local k="vst:{ev:$1}" left=$2 n
  local keys=("$k:meta" "$k:seq" "$k:wait" "$k:hb" "$k:people" "$k:stats" "$k:active"
    "$k:admits" "$k:redeemed" "$k:audit" "$k:draw")
  while [ "$left" -gt 0 ]; do
    n=$(( left < 10000 ? left : 10000 ))
    rcli EVAL "$(cat loadtest/fill.lua)" 11 "${keys[@]}" "$n" 0 86400 ${3:+"$3"} >/dev/null
    left=$(( left - n ))
  done
}
# Joins `count` people through HTTP, four curl processes each keeping one connection, and writes
# their tickets, one a line (`vestibule-loadtest tickets` wants a position in the join answer,
# which the pre-queue does not give): join_http event count out
join_http() {
  local event=$1 count=$2 out=$3 i curls=()
  for i in 0 1 2 3; do
    local share=$(( count / 4 + (i < count % 4 ? 1 : 0) ))
    # One `url` line per join in a curl config file; -w puts each answer on its own line.
    awk -v n="$share" -v url="$GATEWAY/v1/events/$event/join" \
      'BEGIN { for (j = 0; j < n; j++) printf "url = \"%s\"\n", url }' >"$WORK/join-$i.cfg"
    "${N[@]}" curl -sS -X POST -w '\n' -K "$WORK/join-$i.cfg" >"$WORK/join-$i.out" &
    curls+=("$!")
  done
  wait "${curls[@]}"
  cat "$WORK"/join-[0-3].out >"$WORK/join.out"
  grep -oP '"ticket":"\K[^"]+' "$WORK/join.out" >"$out" || true
  local got; got=$(wc -l <"$out")
  if [ "$got" != "$count" ]; then
    echo "only $got of $count joins of $event gave a ticket; first answers:" >&2
    grep -v '"ticket"' "$WORK/join.out" | head -3 >&2
    exit 1
  fi
}
states() { grep -oP '"state":"\K[^"]+' "$WORK/join.out" | sort | uniq -c | awk '{printf "%s%s %s", sep, $1, $2; sep = ", "}'; }

# One wrk status run over a ticket file: "req/s p50_ms p99_ms non2xx errors".
run_wrk() { # tickets
  local line
  line=$("${N[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -s loadtest/wrk/status.lua \
    "$GATEWAY/v1/queue/status" -- "$1" "$POOL" | grep '^BENCH')
  awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
         printf "%.0f %.2f %.2f %d %d\n", v["requests"] / (v["duration_us"] / 1e6),
           v["p50_us"] / 1000, v["p99_us"] / 1000, v["non2xx"], v["errors"] }' <<<"$line"
}

# Polls one ticket with curl in a loop until a status carries a position (at most 60 s), and
# prints "answered_ms sent_ms polls pre_queue_answers last_pre_queue_ms" of that first
# positioned answer, times relative to the opening (ms since the epoch): poll_until_position
# ticket opening_ms
poll_until_position() {
  local ticket=$1 opening=$2 polls=0 pre=0 last_pre="-" sent body answered
  local deadline=$(( opening + 60000 ))
  while [ "$(now_ms)" -lt "$deadline" ]; do
    sent=$(now_ms)
    body=$(curl -sS "$GATEWAY/v1/queue/status" -H "Authorization: Bearer $ticket" || true)
    answered=$(now_ms)
    polls=$(( polls + 1 ))
    if grep -q '"position":[0-9]' <<<"$body"; then
      echo "$(( answered - opening )) $(( sent - opening )) $polls $pre $last_pre"
      return
    fi
    if grep -q '"state":"pre_queue"' <<<"$body"; then
      pre=$(( pre + 1 )); last_pre=$(( answered - opening ))
    else
      echo "unexpected status answer: $body" >&2
    fi
  done
  echo "- - $polls $pre $last_pre"
}

used_memory() { rcli INFO memory | awk -F: '/^used_memory:/{gsub("\r",""); print $2}'; }
MEM0=$(used_memory)

# === B: the same people, open, FIFO (filled once) ===
echo "== B: $BIG waiting, FIFO" >&2
put_event fifo '{"state":"open","heartbeat_ttl_secs":3600}'
STARTED=$(date +%s.%N)
fill_direct fifo $(( BIG - POOL ))
FIFO_FILL_SECS=$(secs_since "$STARTED")
join_http fifo "$POOL" "$WORK/tickets-fifo.txt"
FIFO_STATES=$(states)
FIFO_WAITING=$(rcli ZCARD "vst:{ev:fifo}:wait")
MEM1=$(used_memory)

declare -A A_RPS A_P99 L_RPS L_P99 B_RPS B_P99 FIRST
ROWS=""
OPENINGS=""
for ROUND in $(seq 1 "$ROUNDS"); do
  echo "== round $ROUND of $ROUNDS" >&2
  if (( ROUND % 2 == 0 )); then
    read -r rps p50 p99 non2xx errors <<<"$(run_wrk "$WORK/tickets-fifo.txt")"
    B_RPS[$ROUND]=$rps; B_P99[$ROUND]=$p99
    ROWS+="| $ROUND | B: FIFO, open | $rps | $p50 | $p99 | $non2xx | $errors |"$'\n'
  fi

  # A: a fresh event whose pre-queue is open, its opening an hour ahead.
  EV="draw$ROUND"
  NOW=$(date +%s)
  put_event "$EV" "{\"state\":\"scheduled\",\"heartbeat_ttl_secs\":3600,\"prequeue_opens_at\":$(( NOW - 60 )),\"opens_at\":$(( NOW + 3600 ))}"
  STARTED=$(date +%s.%N)
  fill_direct "$EV" $(( BIG - POOL )) "salt-$ROUND-$RANDOM"
  DRAW_FILL_SECS=$(secs_since "$STARTED")
  join_http "$EV" "$POOL" "$WORK/tickets-$EV.txt"
  DRAW_STATES=$(states)
  DRAW_WAITING=$(rcli ZCARD "vst:{ev:$EV}:wait"); DRAW_DRAWN=$(rcli ZCARD "vst:{ev:$EV}:draw")
  MEM2=$(used_memory)

  # The opening two seconds from now (whole seconds: `opens_at` is unix seconds).
  OPENS_AT=$(( $(date +%s) + 2 ))
  put_event "$EV" "{\"opens_at\":$OPENS_AT}"
  OPENING_MS=$(( OPENS_AT * 1000 ))
  poll_until_position "$(head -1 "$WORK/tickets-$EV.txt")" "$OPENING_MS" >"$WORK/first.txt" &
  POLLER=$!
  sleep "$(awk -v ms=$(( OPENING_MS - $(now_ms) )) 'BEGIN{ printf "%.3f", (ms > 0 ? ms : 0) / 1000 }')"
  WRK_LATE_MS=$(( $(now_ms) - OPENING_MS ))
  read -r rps p50 p99 non2xx errors <<<"$(run_wrk "$WORK/tickets-$EV.txt")"
  A_RPS[$ROUND]=$rps; A_P99[$ROUND]=$p99
  ROWS+="| $ROUND | A: the first ${DURATION} s after the opening (wrk started ${WRK_LATE_MS} ms after \`opens_at\`) | $rps | $p50 | $p99 | $non2xx | $errors |"$'\n'
  wait "$POLLER"
  read -r first_ms sent_ms polls pre last_pre <"$WORK/first.txt"
  FIRST[$ROUND]=$first_ms
  OPENINGS+="| $ROUND | $DRAW_WAITING ($DRAW_DRAWN drawn; $(( BIG - POOL )) filled in ${DRAW_FILL_SECS} s; joins: $DRAW_STATES) | $last_pre | $sent_ms | **$first_ms** | $polls |"$'\n'
  read -r rps p50 p99 non2xx errors <<<"$(run_wrk "$WORK/tickets-$EV.txt")"
  L_RPS[$ROUND]=$rps; L_P99[$ROUND]=$p99
  ROWS+="| $ROUND | A: the next ${DURATION} s | $rps | $p50 | $p99 | $non2xx | $errors |"$'\n'
  # A position after the opening, and where the polled tickets stand in the drawn queue.
  SAMPLE=$(curl -sS "$GATEWAY/v1/queue/status" -H "Authorization: Bearer $(sed -n 2p "$WORK/tickets-$EV.txt")")

  if (( ROUND % 2 == 1 )); then
    read -r rps p50 p99 non2xx errors <<<"$(run_wrk "$WORK/tickets-fifo.txt")"
    B_RPS[$ROUND]=$rps; B_P99[$ROUND]=$p99
    ROWS+="| $ROUND | B: FIFO, open | $rps | $p50 | $p99 | $non2xx | $errors |"$'\n'
  fi
  # The next round's event takes its place in memory.
  if [ "$ROUND" -lt "$ROUNDS" ]; then
    rcli UNLINK "vst:{ev:$EV}:seq" "vst:{ev:$EV}:wait" "vst:{ev:$EV}:hb" "vst:{ev:$EV}:people" \
      "vst:{ev:$EV}:draw" >/dev/null
  fi
done

RATIOS=""
P99R=(); RPSR=(); LP99R=()
for r in $(seq 1 "$ROUNDS"); do
  p=$(div "${B_P99[$r]}" "${A_P99[$r]}"); q=$(div "${A_RPS[$r]}" "${B_RPS[$r]}"); l=$(div "${B_P99[$r]}" "${L_P99[$r]}")
  P99R+=("$p"); RPSR+=("$q"); LP99R+=("$l")
  RATIOS+="| $r | $p | $q | $l | $(div "${L_RPS[$r]}" "${B_RPS[$r]}") | ${FIRST[$r]} |"$'\n'
done
FIRSTS=(); for r in $(seq 1 "$ROUNDS"); do FIRSTS+=("${FIRST[$r]}"); done
RATIOS+="| **median** | **$(median "${P99R[@]}")** | **$(median "${RPSR[@]}")** | **$(median "${LP99R[@]}")** | | **$(median "${FIRSTS[@]}")** |"$'\n'

CPU_MODEL=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
REDIS_VERSION=$(redis-server --version | grep -oP 'v=\K[0-9.]+')
COMMIT=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src lua loadtest Cargo.toml || echo "+changes")
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
PER_PERSON=$(( (MEM1 - MEM0) / FIFO_WAITING )); PER_DRAWN=$(( (MEM2 - MEM1) / DRAW_WAITING ))

BLOCK=$(cat <<EOF
<!-- prequeue.sh:begin (generated by loadtest/prequeue.sh; edit the notes below the end marker) -->
### Latest run

- When: $(date -u +"%Y-%m-%d %H:%M UTC"), commit \`$COMMIT\`; \`$(hostname)\`, $(nproc) cores,
  $CPU_MODEL; Redis $REDIS_VERSION. wrk, curl, the gateway and Redis share this machine with
  other jobs (load average $LOAD_BEFORE before the run, $LOAD_AFTER after): compare **within a
  round**.
- Command: \`$COMMAND\`
- A: a scheduled event with its pre-queue open: $(( BIG - POOL )) people put straight into the
  pre-queue by \`loadtest/fill.lua\` (places scored below zero, in the draw), then $POOL joined
  through HTTP (their tickets are polled; they are drawn among the others, so their positions
  spread over the whole queue). Then \`opens_at\` moved to two seconds ahead.
- B: an open FIFO event of $FIFO_WAITING waiting ($(( BIG - POOL )) by \`fill.lua\` in ${FIFO_FILL_SECS} s,
  then $POOL through HTTP, joins: $FIFO_STATES: positions near the back). Redis memory
  per person: $PER_PERSON B in B, $PER_DRAWN B in A (the draw's extra sorted set).
- wrk: $THREADS threads, $CONNECTIONS connections, ${DURATION} s, \`GET /v1/queue/status\`
  rotating the $POOL tickets. Both events have the same valves otherwise (door 1/s, heartbeat
  TTL 3600 s).

The opening: one ticket polled by curl in a loop (one process per poll, a few ms apart), times
in ms after \`opens_at\`; wrk's run was going at the same time.

| round | A's queue | last \`pre_queue\` answer | first positioned poll sent | first position answered | polls |
| --- | --- | --- | --- | --- | --- |
${OPENINGS}
A status after the opening: \`$SAMPLE\`

Status runs:

| round | queue, run | req/s | p50 ms | p99 ms | non-2xx | socket errors |
| --- | --- | --- | --- | --- | --- | --- |
${ROWS}
Ratios within each round (A: the first ${DURATION} s after the opening; A later: the next ${DURATION} s):

| round | p99 B / A | req/s A / B | p99 B / A later | req/s A later / B | first position (ms after \`opens_at\`) |
| --- | --- | --- | --- | --- | --- |
${RATIOS}<!-- prequeue.sh:end -->
EOF
)

if grep -q '<!-- prequeue.sh:begin' "$OUT"; then
  # Replace the generated block, keep everything around it (ENVIRON: no escape processing).
  BLOCK="$BLOCK" awk '
    /<!-- prequeue.sh:begin/ { print ENVIRON["BLOCK"]; skip = 1; next }
    /<!-- prequeue.sh:end -->/ { skip = 0; next }
    !skip { print }
  ' "$OUT" >"$WORK/out.md"
  cp "$WORK/out.md" "$OUT"
else
  { echo; echo "## The opening of a pre-queue"; echo
    echo "Produced by \`bash loadtest/prequeue.sh\` (see the script's header for its knobs)."; echo
    echo "$BLOCK"; } >>"$OUT"
fi
echo "== wrote $OUT" >&2
