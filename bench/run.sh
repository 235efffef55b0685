#!/usr/bin/env bash
# Runs every promptvault benchmark in release mode and prints each result beside its baseline:
#   1. `prompt serve` time to ready (first line printed and /readyz answering), fresh and existing
#      data directory, median of 5 starts each, against the 500 ms target;
#   2. the load benchmarks of crates/bench (serve path vs a bare-axum baseline, write path vs the
#      1,000 versions/s target) on SQLite, and on PostgreSQL when PROMPTVAULT_TEST_POSTGRES_URL is
#      set;
#   3. with --scale (opt-in, several minutes): the scale benchmarks — latency at 1k vs 1M stored
#      versions (cache hit and miss, both backends) and the RSS of `prompt serve` with 100k
#      prompts (see bench/README.md).
# Extra arguments go to the benchmark binary (e.g. --seconds 10 --connections 64).
set -euo pipefail
cd "$(dirname "$0")/.."

scale=false
args=()
for arg in "$@"; do
  if [ "$arg" = "--scale" ]; then scale=true; else args+=("$arg"); fi
done
set -- ${args[@]+"${args[@]}"}

cargo build --release -q -p promptvault-cli -p promptvault-bench
bin=target/release

ms() { echo $(( $(date +%s%N) / 1000000 )); }

start_once() {
  local data_dir=$1 out started line port
  out=$(mktemp)
  started=$(ms)
  "$bin/prompt" --data-dir "$data_dir" serve --listen 127.0.0.1:0 >"$out" 2>/dev/null &
  local pid=$!
  until line=$(head -n1 "$out") && [ -n "$line" ]; do sleep 0.002; done
  port=${line##*:}
  until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.002; done
  echo $(( $(ms) - started ))
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -f "$out"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "== prompt serve: time to ready (ms, median of 5; target < 500)"
fresh=$(for _ in 1 2 3 4 5; do d=$(mktemp -d); start_once "$d/data"; rm -rf "$d"; done | median)
existing_dir=$(mktemp -d)
start_once "$existing_dir/data" >/dev/null
existing=$(for _ in 1 2 3 4 5; do start_once "$existing_dir/data"; done | median)
rm -rf "$existing_dir"
echo "fresh data dir (runs migrations): ${fresh} ms   ($(awk "BEGIN {printf \"%.2f\", $fresh/500}")x the 500 ms target)"
echo "existing data dir:                ${existing} ms   ($(awk "BEGIN {printf \"%.2f\", $existing/500}")x the 500 ms target)"

echo
echo "== load"
"$bin/promptvault-bench" "$@"

if $scale; then
  echo
  echo "== scale"
  "$bin/promptvault-bench" --scale "$@"
fi
