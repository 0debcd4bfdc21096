#!/usr/bin/env bash
# Produces or refreshes BENCHMARKS.md at the repository root, in one command:
#
#   bash loadtest/bench.sh
#
# It starts its own redis-server on a free port (no persistence), a release build of
# `vestibule serve` against it, and `bench-baseline` (axum: /bare, and /eval = one EVALSHA of a
# trivial script through fred) against the same Redis. Then:
#   1. memory: used_memory before and after FILL joins made through HTTP
#      (`vestibule-loadtest tickets`), divided by FILL;
#   2. wrk, ROUNDS times in turn: /bare, /eval, status (rotating POOL of those tickets), join;
#      the CPU each process used per request, and Redis's own time per EVALSHA. Status also
#      with SMALL and BIG waiting: BIG - POOL people put straight into the queue by
#      loadtest/fill.lua (joining a million through HTTP takes minutes), then POOL joined
#      through HTTP behind them, whose tickets the run polls;
#   3. the sweeper: GHOSTS ghosts (put in by fill.lua with a stale heartbeat) evicted with nothing
#      else running (Redis time per ghost, time until the last is gone), then again during a
#      status run (its p99 beside the plain status runs');
#   4. a simulated sale of CROWD people polling every 2 s for HOLD s, every position checked.
# Only the block between the bench.sh markers in BENCHMARKS.md is rewritten: notes below it stay.
#
# Knobs (environment): DURATION (s per wrk run, 10), CONNECTIONS (64), THREADS (2), ROUNDS (2),
# FILL (100000), POOL (10000), SMALL (10000), BIG (1000000), GHOSTS (100000), CROWD (10000 people
# for a simulated sale; 0: none), HOLD (15 s), PERF=1 to also profile the gateway during one status run,
# NICE (0): the niceness of everything this script starts; a negative one (root) keeps other jobs
# on a shared machine from stealing the measured processes' CPU.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-2}
FILL=${FILL:-100000}
POOL=${POOL:-10000}
PERF=${PERF:-0}
CROWD=${CROWD:-10000}
HOLD=${HOLD:-15}
SMALL=${SMALL:-10000}
BIG=${BIG:-1000000}
GHOSTS=${GHOSTS:-100000}
NICE=${NICE:-0}
N=(nice -n "$NICE")
OUT=BENCHMARKS.md
TOKEN="bench-$RANDOM-$RANDOM"
COMMAND="DURATION=$DURATION CONNECTIONS=$CONNECTIONS THREADS=$THREADS ROUNDS=$ROUNDS FILL=$FILL POOL=$POOL SMALL=$SMALL BIG=$BIG GHOSTS=$GHOSTS CROWD=$CROWD HOLD=$HOLD PERF=$PERF NICE=$NICE bash loadtest/bench.sh"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# shellcheck source=loadtest/common.sh
source loadtest/common.sh

echo "== building (release)" >&2
cargo build --release --workspace --quiet
cargo build --release -p vestibule-loadtest --example costs --quiet

# CPU time (clock ticks, user + system) a process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# The machine's busy and total clock ticks so far (all cores).
machine_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }

REDIS_PORT=$(free_port)
"${N[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --slowlog-log-slower-than 1000 --slowlog-max-len 100000 --dir "$WORK" >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!; PIDS+=("$REDIS_PID")
wait_port "$REDIS_PORT"
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }

GATEWAY_PORT=$(free_port)
VESTIBULE_ADMIN_TOKEN=$TOKEN RUST_LOG=warn "${N[@]}" target/release/vestibule serve \
  --listen "127.0.0.1:$GATEWAY_PORT" --redis-url "redis://127.0.0.1:$REDIS_PORT" \
  --join-rate-per-client 0 --keys-dir "$WORK/keys" >"$WORK/gateway.log" 2>&1 &
GATEWAY_PID=$!; PIDS+=("$GATEWAY_PID")

BASELINE_PORT=$(free_port)
"${N[@]}" target/release/bench-baseline --listen "127.0.0.1:$BASELINE_PORT" \
  --redis-url "redis://127.0.0.1:$REDIS_PORT" >"$WORK/baseline.log" 2>&1 &
BASELINE_PID=$!; PIDS+=("$BASELINE_PID")
wait_port "$GATEWAY_PORT"
wait_port "$BASELINE_PORT"

GATEWAY="http://127.0.0.1:$GATEWAY_PORT"
BASELINE="http://127.0.0.1:$BASELINE_PORT"
put_event() { # event [valves]
  local valves='{"state":"open","heartbeat_ttl_secs":3600}'
  curl -fsS -X PUT "$GATEWAY/admin/v1/events/$1" -H "Authorization: Bearer $TOKEN" \
    -d "${2:-$valves}" >/dev/null
}
# Puts people straight into an event's queue (loadtest/fill.lua), 10000 per script call so that
# no call holds Redis for long: fill_direct event count heartbeat-age-ms
fill_direct() {
  local k="vst:{ev:$1}" left=$2 n
  while [ "$left" -gt 0 ]; do
    n=$(( left < 10000 ? left : 10000 ))
    rcli EVAL "$(cat loadtest/fill.lua)" 10 "$k:meta" "$k:seq" "$k:wait" "$k:hb" "$k:people" \
      "$k:stats" "$k:active" "$k:admits" "$k:redeemed" "$k:audit" "$n" "$3" 86400 >/dev/null
    left=$(( left - n ))
  done
}
waiting() { rcli ZCARD "vst:{ev:$1}:wait"; }
# 10000 -> 10k, 1000000 -> 1M
human() { awk -v n="$1" 'BEGIN{ if (n >= 1e6 && n % 1e6 == 0) printf "%dM", n / 1e6; else if (n >= 1e3 && n % 1e3 == 0) printf "%dk", n / 1e3; else print n }'; }
# `bench` holds the waiting people (nobody is evicted within the hour); `benchjoin` takes the
# join run's newcomers, so the status run's queue stays FILL long.
put_event bench
put_event benchjoin

# === 1. memory per waiting person ===
echo "== memory: $FILL joins through HTTP" >&2
used_memory() { rcli INFO memory | awk -F: '/^used_memory:/{gsub("\r",""); print $2}'; }
MEM_BEFORE=$(used_memory)
FILL_LINE=$("${N[@]}" target/release/vestibule-loadtest tickets --target "$GATEWAY" --event bench \
  --count "$FILL" --concurrency 64 --out "$WORK/tickets.txt")
MEM_AFTER=$(used_memory)
FILLED=$(wc -l <"$WORK/tickets.txt")
PER_PERSON=$(( (MEM_AFTER - MEM_BEFORE) / FILLED ))
FILL_RATE=$(sed -E 's/.*\(([0-9]+)\/s\).*/\1/' <<<"$FILL_LINE")
key_line() {
  local key="vst:{ev:bench}:$1"
  echo "| \`$1\` | $(rcli TYPE "$key") | $(rcli OBJECT ENCODING "$key") | $(rcli MEMORY USAGE "$key" SAMPLES 0) |"
}
KEYS_TABLE=$(for k in wait hb people; do key_line "$k"; done)

# === status at other queue lengths: SMALL joined through HTTP; BIG mostly put in directly ===
S_NAME="status@$(human "$SMALL")"; B_NAME="status@$(human "$BIG")"
echo "== queues of $SMALL and $BIG waiting" >&2
put_event benchsmall
"${N[@]}" target/release/vestibule-loadtest tickets --target "$GATEWAY" --event benchsmall \
  --count "$SMALL" --concurrency 64 --out "$WORK/tickets-small.txt" >/dev/null
put_event benchbig
BIG_STARTED=$(date +%s.%N)
fill_direct benchbig $(( BIG - POOL )) 0
BIG_FILL_SECS=$(awk -v a="$BIG_STARTED" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}')
"${N[@]}" target/release/vestibule-loadtest tickets --target "$GATEWAY" --event benchbig \
  --count "$POOL" --concurrency 64 --out "$WORK/tickets-big.txt" >/dev/null
SMALL_WAITING=$(waiting benchsmall); BIG_WAITING=$(waiting benchbig)

# === 2. throughput and latency ===
ROWS=""
RATIOS=""
# Figures by "endpoint,round".
declare -A RPS P99 SCPU RCPU
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# The median over rounds of one figure of one endpoint.
med() { local -n table=$1; local v=() r; for r in $(seq 1 "$ROUNDS"); do v+=("${table[$2,$r]}"); done; median "${v[@]}"; }
div() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a / b}'; }
run_wrk() { # name url script [wrk script args...]
  local name=$1 url=$2 script=$3; shift 3
  rcli CONFIG RESETSTAT >/dev/null
  local g0 b0 r0 out
  g0=$(cpu_ticks "$GATEWAY_PID"); b0=$(cpu_ticks "$BASELINE_PID"); r0=$(cpu_ticks "$REDIS_PID")
  local m0 m1; read -ra m0 <<<"$(machine_ticks)"
  # wrk's own CPU comes from bash's `times` of this subshell's children.
  out=$( { "${N[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -s "$script" "$url" -- "$@"; times; } )
  read -ra m1 <<<"$(machine_ticks)"
  local busy wrk_s
  busy=$(awk -v b=$(( m1[0] - m0[0] )) -v t=$(( m1[1] - m0[1] )) 'BEGIN{printf "%.0f", 100 * b / t}')
  # `times` prints the shell's and then its children's user/system time, e.g. 0m1.234s.
  wrk_s=$(tail -1 <<<"$out" | awk '{ s = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] } print s }')
  local line; line=$(grep '^BENCH' <<<"$out")
  local requests duration p50 p99 non2xx errors
  requests=$(grep -oP 'requests=\K[0-9]+' <<<"$line")
  duration=$(grep -oP 'duration_us=\K[0-9]+' <<<"$line")
  p50=$(grep -oP 'p50_us=\K[0-9]+' <<<"$line")
  p99=$(grep -oP 'p99_us=\K[0-9]+' <<<"$line")
  non2xx=$(grep -oP 'non2xx=\K[0-9]+' <<<"$line")
  errors=$(grep -oP ' errors=\K[0-9]+' <<<"$line")
  local server_pid=$GATEWAY_PID server_t0=$g0
  if [[ $url == "$BASELINE"* ]]; then server_pid=$BASELINE_PID; server_t0=$b0; fi
  local server_ticks redis_ticks hz
  hz=$(getconf CLK_TCK)
  server_ticks=$(( $(cpu_ticks "$server_pid") - server_t0 ))
  redis_ticks=$(( $(cpu_ticks "$REDIS_PID") - r0 ))
  local evalsha
  evalsha=$(rcli INFO commandstats | grep -oP 'cmdstat_evalsha:.*usec_per_call=\K[0-9.]+' || echo "-")
  local rps
  rps=$(awk -v r="$requests" -v d="$duration" 'BEGIN{printf "%.0f", r / (d / 1e6)}')
  RPS[$name,$ROUND]=$rps
  local server_us redis_us
  server_us=$(awk -v t="$server_ticks" -v hz="$hz" -v r="$requests" 'BEGIN{printf "%.1f", t * 1e6 / hz / r}')
  redis_us=$(awk -v t="$redis_ticks" -v hz="$hz" -v r="$requests" 'BEGIN{printf "%.1f", t * 1e6 / hz / r}')
  local wrk_us
  wrk_us=$(awk -v s="$wrk_s" -v r="$requests" 'BEGIN{printf "%.1f", s * 1e6 / r}')
  P99[$name,$ROUND]=$(awk -v v="$p99" 'BEGIN{printf "%.2f", v/1000}')
  SCPU[$name,$ROUND]=$server_us
  RCPU[$name,$ROUND]=$redis_us
  ROWS+="| $name | $ROUND | $rps | $(awk -v v="$p50" 'BEGIN{printf "%.2f", v/1000}') | $(awk -v v="$p99" 'BEGIN{printf "%.2f", v/1000}') | $non2xx | $errors | $server_us | $redis_us | $wrk_us | $busy% | $evalsha |"$'\n'
  echo "   $name: $rps req/s, p99 $p99 us, non-2xx $non2xx, errors $errors" >&2
}

PERF_TOP=""
for ROUND in $(seq 1 "$ROUNDS"); do
  echo "== round $ROUND of $ROUNDS" >&2
  run_wrk "/bare" "$BASELINE/bare" loadtest/wrk/plain.lua
  run_wrk "/eval" "$BASELINE/eval" loadtest/wrk/plain.lua
  run_wrk "status" "$GATEWAY/v1/queue/status" loadtest/wrk/status.lua "$WORK/tickets.txt" "$POOL"
  run_wrk "join" "$GATEWAY/v1/events/benchjoin/join" loadtest/wrk/plain.lua POST
  run_wrk "$S_NAME" "$GATEWAY/v1/queue/status" loadtest/wrk/status.lua "$WORK/tickets-small.txt" "$POOL"
  run_wrk "$B_NAME" "$GATEWAY/v1/queue/status" loadtest/wrk/status.lua "$WORK/tickets-big.txt" "$POOL"
done

# Per round: throughput ratios, and the same comparison in CPU: what one /eval costs the
# answering process and Redis together, over what one status costs them (steadier than
# throughput when other jobs share the cores).
cost() { awk -v s="${SCPU[$1,$2]}" -v r="${RCPU[$1,$2]}" 'BEGIN{printf "%.1f", s + r}'; }
declare -A SE SB JE CE
for r in $(seq 1 "$ROUNDS"); do
  SE[x,$r]=$(div "${RPS[status,$r]}" "${RPS[/eval,$r]}")
  SB[x,$r]=$(div "${RPS[status,$r]}" "${RPS[/bare,$r]}")
  JE[x,$r]=$(div "${RPS[join,$r]}" "${RPS[/eval,$r]}")
  CE[x,$r]=$(div "$(cost /eval "$r")" "$(cost status "$r")")
  RATIOS+="| $r | ${SE[x,$r]} | ${SB[x,$r]} | ${JE[x,$r]} | ${CE[x,$r]} | ${RPS[join,$r]} |"$'\n'
done
MED_SE=$(med SE x); MED_CE=$(med CE x); MED_JOIN=$(med RPS join)
RATIOS+="| **median** | **$MED_SE** | **$(med SB x)** | **$(med JE x)** | **$MED_CE** | **$MED_JOIN** |"$'\n'
SUMMARY=""
for e in /bare /eval status join "$S_NAME" "$B_NAME"; do
  SUMMARY+="| $e | $(med RPS "$e") | $(med P99 "$e") | $(med SCPU "$e") | $(med RCPU "$e") |"$'\n'
done

if [ "$PERF" = 1 ] && command -v perf >/dev/null; then
  echo "== perf: gateway during a status run" >&2
  perf record -F 999 -g -o "$WORK/perf.data" -p "$GATEWAY_PID" -- sleep "$DURATION" >/dev/null 2>&1 &
  PERF_PID=$!
  "${N[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -s loadtest/wrk/status.lua \
    "$GATEWAY/v1/queue/status" -- "$WORK/tickets.txt" "$POOL" >/dev/null
  wait "$PERF_PID" || true
  PERF_DSO=$(perf report -i "$WORK/perf.data" --no-children --sort dso --stdio 2>/dev/null \
    | grep -E '^ +[0-9.]+%' | head -5 | awk '{printf "%s%s %s", sep, $2, $1; sep = ", "}' || true)
  PERF_TOP=$(perf report -i "$WORK/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null \
    | grep -E '^ +[0-9.]+%' | head -25 | cut -c1-160 | sed -E 's/ +$//' || true)
fi
P99_SMALL=$(med P99 "$S_NAME"); P99_BIG=$(med P99 "$B_NAME")
P99_RATIO=$(div "$P99_BIG" "$P99_SMALL")

# === the sweeper: GHOSTS ghosts, alone and under a status run ===
echo "== sweeper: $GHOSTS ghosts" >&2
# The sweeper runs its script by EVALSHA, the filler by EVAL: commandstats tells them apart.
put_event benchghosts '{"state":"open","heartbeat_ttl_secs":60}'
fill_direct benchghosts "$GHOSTS" 7200000
rcli CONFIG RESETSTAT >/dev/null
SWEEP_STARTED=$(date +%s.%N)
for _ in $(seq 1 1200); do [ "$(waiting benchghosts)" = 0 ] && break; sleep 0.1; done
SWEEP_SECS=$(awk -v a="$SWEEP_STARTED" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}')
SWEEP_LEFT=$(waiting benchghosts)
SWEEP_USEC=$(rcli INFO commandstats | grep -oP 'cmdstat_evalsha:.*usec=\K[0-9]+' || echo 0)
SWEEP_US_PER_GHOST=$(div "$SWEEP_USEC" "$GHOSTS")
fill_direct benchghosts "$GHOSTS" 7200000
ROUND=sweep
run_wrk "status+sweep" "$GATEWAY/v1/queue/status" loadtest/wrk/status.lua "$WORK/tickets.txt" "$POOL"
for _ in $(seq 1 1200); do [ "$(waiting benchghosts)" = 0 ] && break; sleep 0.1; done
SWEEP_LEFT_LOADED=$(waiting benchghosts)
P99_SWEEP=${P99[status+sweep,sweep]}

# === A simulated sale: the load tool, with its truth checks, at this scale ===
SALE=""
if [ "$CROWD" -gt 0 ]; then
  echo "== a simulated sale: $CROWD people" >&2
  SALE_ARGS=(--target "$GATEWAY" --event benchsale --admin-token "$TOKEN" --people "$CROWD"
    --arrive-secs 10 --hold-secs "$HOLD" --heartbeat-ttl-secs 10 --fast-poll-ms 1000
    --slow-poll-ms 2000 --quiet)
  SALE=$("${N[@]}" target/release/vestibule-loadtest "${SALE_ARGS[@]}" 2>&1 || true)
  SALE_ARGS[5]="…"  # the admin token stays out of the report
fi
SLOW=$(rcli SLOWLOG LEN)
SLOW_TOP=$(rcli SLOWLOG GET 100000 | awk 'prev ~ /^[0-9]+$/ && $0 ~ /^[a-zA-Z]+$/ {print toupper($0)} {prev = $0}' \
  | sort | uniq -c | sort -rn | head -5 | awk '{printf "%s%s x%s", sep, $2, $1; sep = ", "}')

# === Redis alone: the status script against `return 1`, no gateway, no HTTP ===
echo "== Redis alone (redis-benchmark)" >&2
script_alone() { # script-text args... -> usec_per_call of EVALSHA
  local sha; sha=$(rcli SCRIPT LOAD "$1"); shift
  rcli CONFIG RESETSTAT >/dev/null
  "${N[@]}" redis-benchmark -p "$REDIS_PORT" -n 200000 -c 16 -q EVALSHA "$sha" "$@" >/dev/null 2>&1
  # A script that fails answers fast: such a figure would mean nothing.
  if rcli INFO commandstats | grep -q 'cmdstat_evalsha:.*failed_calls=[1-9]'; then
    echo "failed"; return
  fi
  rcli INFO commandstats | grep -oP 'cmdstat_evalsha:.*usec_per_call=\K[0-9.]+'
}
# The last to join: far behind the door, as nearly everyone who polls.
ONE_TICKET=$(tail -1 "$WORK/tickets.txt" | cut -d. -f2 | tr '_-' '/+')
ONE_TICKET=$(printf '%s' "$ONE_TICKET" | base64 -d 2>/dev/null || true)
ONE_SUB=$(grep -oP '"sub":"\K[^"]+' <<<"$ONE_TICKET")
ONE_SEQ=$(grep -oP '"seq":\K[0-9]+' <<<"$ONE_TICKET")
K="vst:{ev:bench}"
# The bundle the gateway loads (src/store/redis/scripts.rs); '' for the clock: Redis TIME.
ALONE_STATUS=$(script_alone "$(cat lua/clock.lua lua/queue/lib.lua lua/queue/door.lua lua/queue/status.lua)" 10 \
  "$K:meta" "$K:seq" "$K:wait" "$K:hb" "$K:people" "$K:stats" "$K:active" "$K:admits" \
  "$K:redeemed" "$K:audit" "" "$ONE_SUB" "$ONE_SEQ")
ALONE_ONE=$(script_alone "return 1" 0)
echo "== costs: the status path piece by piece, in process" >&2
COSTS=$("${N[@]}" target/release/examples/costs "redis://127.0.0.1:$REDIS_PORT")

# === 3. BENCHMARKS.md ===
CPU_MODEL=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
MEM_GIB=$(awk '/^MemTotal/{printf "%.0f", $2/1048576}' /proc/meminfo)
REDIS_VERSION=$(redis-server --version | grep -oP 'v=\K[0-9.]+')
COMMIT=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src lua loadtest Cargo.toml || echo "+changes")
met() { awk -v a="$1" -v b="$2" -v op="$3" 'BEGIN{ok = (op == ">=") ? a >= b : a <= b; print ok ? "met" : "**missed**"}'; }
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

BLOCK=$(cat <<EOF
<!-- bench.sh:begin (generated by loadtest/bench.sh; edit the notes below the end marker) -->
## Latest run

- When: $(date -u +"%Y-%m-%d %H:%M UTC"), commit \`$COMMIT\`
- Machine: \`$(hostname)\`, $(nproc) cores (\`nproc\`), $CPU_MODEL, ${MEM_GIB} GiB; Redis $REDIS_VERSION.
  Everything (wrk, gateway, baseline, Redis) runs on this one machine, shared with other jobs
  (load average $LOAD_BEFORE before the run, $LOAD_AFTER after): compare figures **within a
  round**; absolute figures mean little beyond this machine and moment.
- Command: \`$COMMAND\`
- wrk: $THREADS threads, $CONNECTIONS connections, ${DURATION} s per run, $ROUNDS rounds of /bare, /eval,
  status, join in turn. The gateway is \`vestibule serve\` (release) against its own
  \`redis-server\` (no persistence), with the join limit off.
- \`/bare\`: axum answering a small JSON; \`/eval\`: the same plus one EVALSHA of \`return 1\` through
  fred (one connection, as the gateway's store): the ceiling for status. status:
  \`GET /v1/queue/status\` rotating $POOL tickets of a queue $FILLED long (HMAC check, one script:
  HGET, TIME, ZADD XX, ZRANK, HMGET). join: \`POST /v1/events/benchjoin/join\`, empty body, a new
  anonymous person each time.

### Throughput, latency and cost (medians over rounds)

| endpoint | req/s | p99 ms | server CPU µs/req | Redis CPU µs/req |
| --- | --- | --- | --- | --- |
${SUMMARY}
- server CPU: CPU time of the answering process (gateway or baseline) over the run, per request;
  Redis likewise.

| round | status / eval (target ≥ 0.8) | status / bare | join / eval | CPU: eval cost / status cost | join req/s (target ≥ 20000) |
| --- | --- | --- | --- | --- | --- |
${RATIOS}
- CPU: (server + Redis CPU per /eval) / (server + Redis CPU per status), the same ratio counted
  in CPU rather than throughput: steadier when other jobs take turns on the cores.

Every run, in detail:

| endpoint | round | req/s | p50 ms | p99 ms | non-2xx | socket errors | server CPU µs/req | Redis CPU µs/req | wrk CPU µs/req | machine busy | Redis µs per EVALSHA |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${ROWS}
- machine busy: all cores over the run (100%: both cores busy, so the figures are CPU-bound and
  every process took from the same two cores). Redis µs per EVALSHA: \`INFO commandstats\`, wall
  time inside Redis (script included), which grows when Redis is preempted by other processes
  (on /bare it is the sweeper's script, the only one running).

### Redis memory per waiting person

$FILLED people joined through HTTP (\`vestibule-loadtest tickets\`, 64 joins in flight: $FILL_RATE joins/s)
into an event nobody else used: \`used_memory\` went from $MEM_BEFORE to $MEM_AFTER bytes,
**$PER_PERSON B per waiting person** (target ≤ 400 B). Where it is:

| key | type | encoding | MEMORY USAGE (bytes) |
| --- | --- | --- | --- |
$KEYS_TABLE

### Targets

| target | median over rounds | verdict |
| --- | --- | --- |
| status ≥ 0.8 × the axum + one EVAL ceiling | ${MED_SE} × (CPU: ${MED_CE} ×) | $(met "$MED_SE" 0.8 ">=") |
| join ≥ 20000/s | ${MED_JOIN}/s | $(met "$MED_JOIN" 20000 ">=") |
| ≤ 400 B Redis per waiting person | $PER_PERSON B | $(met "$PER_PERSON" 400 "<=") |
| status p99 with $(human "$BIG") waiting ≤ 1.5 × with $(human "$SMALL") | ${P99_BIG} ms / ${P99_SMALL} ms = ${P99_RATIO} × | $(met "$P99_RATIO" 1.5 "<=") |

### Queue length and status

Status runs (above, medians over rounds) against three queues: $SMALL_WAITING waiting (all joined
through HTTP), $FILLED (the memory fill), and $BIG_WAITING ($(( BIG - POOL )) put straight into the
queue by \`loadtest/fill.lua\` in ${BIG_FILL_SECS} s, then $POOL joined through HTTP behind them,
whose tickets are polled: positions near the back). The script's only per-queue cost is ZRANK and
ZADD on sorted sets, O(log n).

| queue | req/s | p99 ms |
| --- | --- | --- |
| $SMALL_WAITING | $(med RPS "$S_NAME") | $P99_SMALL |
| $FILLED | $(med RPS status) | $(med P99 status) |
| $BIG_WAITING | $(med RPS "$B_NAME") | $P99_BIG |

### The sweeper

$GHOSTS ghosts (heartbeat two hours old, TTL 60 s) put into an event, with nothing else running:
all evicted $SWEEP_SECS s after the fill ended ($SWEEP_LEFT left), in batches of 500, at most
20 batches per event per round, one round a second: a backlog drains at 10000 per second by
design, so that one event's ghosts never hold Redis for long. Redis spent $SWEEP_USEC µs in the
sweeper's scripts, **$SWEEP_US_PER_GHOST µs per evicted ghost** (the rounds' other scripts
included). Again during a status run of the $FILLED-person queue: status p99 **$P99_SWEEP ms**
against $(med P99 status) ms without ghosts; $SWEEP_LEFT_LOADED ghosts left after it.

Redis commands slower than 1 ms during the runs (\`SLOWLOG LEN\`): $SLOW (most frequent: ${SLOW_TOP:-none}).

Redis alone (\`redis-benchmark\`, 16 clients, after the runs, same Redis): the status script
(\`lua/queue/status.lua\` with its helpers, the last of the $FILLED waiting) takes **$ALONE_STATUS µs** per
EVALSHA inside Redis, \`return 1\` takes **$ALONE_ONE µs**.

The status path piece by piece, in one process without sockets
(\`cargo run --release -p vestibule-loadtest --example costs -- redis://…\`, same Redis):

\`\`\`
$COSTS
\`\`\`
EOF
)
if [ -n "$SALE" ]; then
  BLOCK+=$'\n\n'"### A simulated sale"$'\n\n'"\`vestibule-loadtest ${SALE_ARGS[*]}\` against the same gateway, after the runs above (flash-crowd arrivals, 20% close the tab, 5% leave; every position shown is checked):"$'\n\n```\n'"$SALE"$'\n```'
fi
if [ -n "$PERF_TOP" ]; then
  BLOCK+=$'\n\n'"Gateway profile during one status run (\`perf record -g\`, self time by library: $PERF_DSO; top symbols):"$'\n\n```\n'"$PERF_TOP"$'\n```'
fi
BLOCK+=$'\n'"<!-- bench.sh:end -->"

if [ -f "$OUT" ] && grep -q '<!-- bench.sh:begin' "$OUT"; then
  # Replace the generated block, keep everything around it (ENVIRON: no escape processing).
  BLOCK="$BLOCK" awk '
    /<!-- bench.sh:begin/ { print ENVIRON["BLOCK"]; skip = 1; next }
    /<!-- bench.sh:end -->/ { skip = 0; next }
    !skip { print }
  ' "$OUT" >"$WORK/out.md"
  cp "$WORK/out.md" "$OUT"
else
  { echo "# Benchmarks"; echo; echo "Produced by \`bash loadtest/bench.sh\` (see the script's header for its knobs)."; echo
    echo "$BLOCK"; echo; echo "## Notes"; echo; echo "Observations that the numbers above do not say by themselves."; } >"$OUT"
fi
echo "== wrote $OUT" >&2
