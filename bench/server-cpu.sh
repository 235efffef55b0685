#!/usr/bin/env bash
# The server's own CPU time per request, with the load generator in another process (`wrk`):
# the bare axum baseline (`promptvault-bench --serve-baseline`) against `prompt serve` answering
# `GET /api/resolve` from its cache (resolve + render, 3 params), on SQLite.
#
# The in-process benchmark (`promptvault-bench`) reports throughput with the client on the same
# cores; this script separates what the server spends from what the client spends, which is what
# to look at when working on the hot path. Needs `wrk` (apt-get install wrk) and a release build.
#
#   bench/server-cpu.sh [--seconds N] [--connections N] [--record-runs] [--log LEVEL]
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=10 connections=64 record=false log=info
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --record-runs) record=true; shift ;;
    --log) log="$2"; shift 2 ;;
    *) echo "unknown argument $1; use --seconds N --connections N --record-runs --log LEVEL" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
cargo build --release -q -p promptvault-bench -p promptvault-cli

work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# user + system CPU time of a process, in clock ticks
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# context switches of all its threads (voluntary + involuntary)
switches() { cat /proc/$1/task/*/status | awk '/ctxt_switches/ {n += $2} END {print n}'; }
wait_http() { for _ in $(seq 100); do curl -fs -o /dev/null "$@" && return 0; sleep 0.05; done; echo "no answer from $*" >&2; exit 1; }

# Runs wrk against URL (extra wrk args after it) while measuring process PID; prints
# "req/s cpu-µs-per-request".
measure() {
  local pid="$1" url="$2"; shift 2
  local before after out requests
  before=$(cpu_ticks "$pid")
  out=$(wrk -t1 -c"$connections" -d"${seconds}s" --latency "$@" "$url")
  after=$(cpu_ticks "$pid")
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  local rps p99
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  local hz; hz=$(getconf CLK_TCK)
  echo "$rps $(awk -v t=$((after - before)) -v hz="$hz" -v n="$requests" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}') $p99"
}

port=$(free_port)
target/release/promptvault-bench --serve-baseline "127.0.0.1:$port" >/dev/null &
pids+=($!)
baseline_pid=$!
wait_http "http://127.0.0.1:$port/constant"
read -r base_rps base_cpu base_p99 < <(measure "$baseline_pid" "http://127.0.0.1:$port/constant")

token=pv_benchbenchbenchbenchbenchbenchbenchbenchbenchbenchbenchbenchbench
port=$(free_port)
PROMPTVAULT_BOOTSTRAP_TOKEN=$token PROMPTVAULT_RUNS__RECORD=$record RUST_LOG=$log \
  target/release/prompt serve --data-dir "$work/data" --listen "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
pids+=($!)
serve_pid=$!
server="http://127.0.0.1:$port"
wait_http "$server/readyz"
curl -fs -o /dev/null -H "Authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"name":"bench/greet","content":"Hello {{ name }}, welcome to {{ city }}. Summarize in {{ words }} words.",
       "parameter_schema":{"type":"object","properties":{"name":{"type":"string"},"city":{"type":"string"},"words":{"type":"integer","minimum":1}},"required":["name","city","words"]},
       "labels":["stable"]}' "$server/api/prompts"
resolve="$server/api/resolve?name=bench%2Fgreet&label=stable&params=%7B%22name%22%3A%22Ada%22%2C%22city%22%3A%22Paris%22%2C%22words%22%3A20%7D"
curl -fs -o /dev/null -H "Authorization: Bearer $token" "$resolve"
read -r rps cpu p99 < <(measure "$serve_pid" "$resolve" -H "Authorization: Bearer $token")

printf '%-44s %10s %8s %16s\n' run req/s p99 "server CPU/req"
printf '%-44s %10.0f %8s %13s µs\n' "bare axum baseline (GET constant)" "$base_rps" "$base_p99" "$base_cpu"
printf '%-44s %10.0f %8s %13s µs   %.2fx the baseline'"'"'s req/s, %.2fx its CPU/req\n' \
  "resolve+render, cache hit (runs=$record, log=$log)" "$rps" "$p99" "$cpu" \
  "$(awk -v a="$rps" -v b="$base_rps" 'BEGIN {print a / b}')" \
  "$(awk -v a="$cpu" -v b="$base_cpu" 'BEGIN {print a / b}')"
