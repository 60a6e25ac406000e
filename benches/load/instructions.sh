#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: a figure that does
# not move with the machine's load, unlike req/s and CPU time.
#
#   benches/load/instructions.sh     # after benches/load/run.sh (uses its tokens and configs)
#
# Runs each proxy under valgrind --tool=callgrind on core 1, the upstream (nginx)
# on core 0, warms it up, then counts only while wrk sends the bench traffic
# (all cache hits): scopegate, nginx as the plain proxy of run.sh (one
# process, `master_process off`), and floor.rs (a bare hyper proxy) with
# hyper-util's pooled client and with one upstream connection per client
# connection. valgrind's CPU model has no SHA extensions, so scopegate's
# SHA-256 of the token costs ~15k instructions here against a few hundred
# cycles natively: the script prints that share separately.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-$ROOT/target/loadbench}
UP=18081; SG=18083; FL=18090
[ -f "$OUT/tokens.txt" ] || { echo "run benches/load/run.sh first (QUICK=1 is enough)" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 1; }
(cd "$ROOT" && cargo build --release -q --bin scopegate --example floor)
cd "$OUT"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
taskset -c 0 nginx -p "$OUT" -c "$OUT/upstream.conf" -g 'daemon off;' 2>>logs/upstream-error.log &
PIDS+=($!)

count() { # name port command...
  local name=$1 port=$2; shift 2
  rm -f "callgrind.$name".*
  taskset -c 1 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="callgrind.$name.%p" "$@" \
    >"logs/cg-$name.out" 2>"logs/cg-$name.err" &
  local vp=$!
  for _ in $(seq 240); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.5; done
  taskset -c 0 wrk -t1 -c16 -d3s -s "$ROOT/benches/load/tokens.lua" "http://127.0.0.1:$port" -- hits tokens.txt - 0 >/dev/null
  callgrind_control -i on "$vp" >/dev/null 2>&1
  local out
  out=$(taskset -c 0 wrk -t1 -c16 -d8s -s "$ROOT/benches/load/tokens.lua" "http://127.0.0.1:$port" -- hits tokens.txt - 0)
  callgrind_control -i off "$vp" >/dev/null 2>&1
  callgrind_control -d "$vp" >/dev/null 2>&1
  kill "$vp"; wait "$vp" 2>/dev/null || true
  local reqs non2 f total sha
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  non2=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  f=$(ls "callgrind.$name".*.1 | head -1)
  total=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
  sha=$(callgrind_annotate --inclusive=yes "$f" 2>/dev/null | awk '/sha256_block_data_order/ && !s {gsub(",","",$1); s=$1} END {print s+0}')
  awk -v n="$name" -v r="$reqs" -v t="$total" -v s="${sha:-0}" -v e="${non2:-0}" \
    'BEGIN{printf "%-12s %8d requests  %7.0f instructions/request  (SHA-256: %5.0f)  non-2xx %s\n", n, r, t/r, s/r, e}'
}

# (Environment through the function call: valgrind must start the program itself.)
SCOPEGATE_WORKERS=1 count scopegate $SG "$ROOT/target/release/scopegate" serve --config scopegate.toml
count nginx 18082 nginx -p "$OUT" -c "$OUT/proxy.conf" -g 'daemon off; master_process off;'
count floor $FL "$ROOT/target/release/examples/floor" "127.0.0.1:$FL" "http://127.0.0.1:$UP"
FLOOR_POOL=conn count floor-conn $FL "$ROOT/target/release/examples/floor" "127.0.0.1:$FL" "http://127.0.0.1:$UP"
