#!/usr/bin/env bash
# Load benchmark: scopegate against nginx as a plain reverse proxy (issue #7).
#
#   benches/load/run.sh            # full run, about 20 minutes
#   QUICK=1 benches/load/run.sh    # smoke run, about 2 minutes
#   VARIANTS="hits tls" LOADS=30 benches/load/run.sh   # a subset
#
# Everything on 127.0.0.1. Layout (2-core machine; override with CORE_LOAD / CORE_PROXY):
#   core CORE_LOAD  (0): wrk / the open-loop generator, and the upstream (nginx serving static JSON)
#   core CORE_PROXY (1): the proxy under test: nginx (worker_processes 1) or scopegate (SCOPEGATE_WORKERS=1)
#   variant hits_2w: nginx with 2 workers and scopegate with 2 worker threads, on both cores (shared
#   with wrk and the upstream).
# Targets: direct (wrk -> upstream), nginx (wrk -> nginx -> upstream), scopegate (wrk -> scopegate -> upstream,
# gateway-minted tokens, route policy, revocation check, parent substitution).
# Like for like: both proxies log every request in batches of up to 20 ms (nginx `buffer=64k flush=20ms`,
# scopegate `[log] flush = "20ms"`); variant hits_unbuf runs both with one write per request. Both keep
# upstream connections alive and set the same forwarding headers.
# Results: $OUT/runs.tsv (every run), $OUT/openloop.tsv, $OUT/exchange.tsv, $OUT/summary.txt.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# Where cargo puts the binaries: CARGO_TARGET_DIR, build.target-dir in a cargo config, or target/.
TARGET_DIR=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
OUT=${OUT:-$TARGET_DIR/loadbench}
QUICK=${QUICK:-0}
CORE_LOAD=${CORE_LOAD:-0}
CORE_PROXY=${CORE_PROXY:-1}
CONNS=${CONNS:-64}
if [ "$QUICK" = 1 ]; then
  ROUNDS=${ROUNDS:-1}; DUR=${DUR:-2}; WARM=1; OL_ROUNDS=${OL_ROUNDS:-1}; OL_DUR=${OL_DUR:-3}; NTOK=${NTOK:-200}
  EX_ROUNDS=${EX_ROUNDS:-1}; EX_DUR=${EX_DUR:-2}
else
  # Many short rounds: the same time spread over more interleaved pairs.
  ROUNDS=${ROUNDS:-9}; DUR=${DUR:-3}; WARM=2; OL_ROUNDS=${OL_ROUNDS:-5}; OL_DUR=${OL_DUR:-6}; NTOK=${NTOK:-1000}
  EX_ROUNDS=${EX_ROUNDS:-3}; EX_DUR=${EX_DUR:-5}
fi
VARIANTS=${VARIANTS:-"hits miss revoked tls hits_unbuf hits_2w redact"}
LOADS=${LOADS:-"30 50"}
EXCHANGE=${EXCHANGE:-1}
PARENT="bench-parent-token-0123456789abcdefABCDEF"
UP=18081; UPS=18444; NGX=18082; NGXS=18445; SG=18083; SGA=19093; SGS=18446; SGSA=19094
NGXU=18084; SGU=18085; SGUA=19095; NGX2=18086; SG2=18087; SG2A=19097

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

# ---- tools ----
need=()
command -v nginx >/dev/null || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null 2>&1 ||
    { $SUDO apt-get update -q >/dev/null; $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null; }
fi
log "building scopegate and the load generator (release)"
SCOPEGATE=$TARGET_DIR/release/scopegate
LOADGEN=$TARGET_DIR/release/examples/loadgen
(cd "$ROOT" && cargo build --release -q --bin scopegate)
# The generator does not use the library's code, so it is rebuilt only when its own source changed
# (as a Cargo example it would otherwise relink a release build of the library with dev features).
if [ ! -x "$LOADGEN" ] || [ "$ROOT/benches/load/loadgen.rs" -nt "$LOADGEN" ]; then
  (cd "$ROOT" && cargo build --release -q --example loadgen)
fi

rm -rf "$OUT"; mkdir -p "$OUT"/{logs,tmp,static,data,data-tls,data-unbuf,data-2w}
cd "$OUT"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# ---- certificates, keyring ----
openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 2 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1
"$SCOPEGATE" keygen --id b1 > keyring.toml

# ---- upstream: nginx serving Box-shaped static JSON ----
cat > upstream.conf <<NGINX
worker_processes 1;
pid $OUT/upstream.pid;
error_log $OUT/logs/upstream-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_body_temp_path $OUT/tmp/ub; proxy_temp_path $OUT/tmp/up; fastcgi_temp_path $OUT/tmp/uf;
  uwsgi_temp_path $OUT/tmp/uu; scgi_temp_path $OUT/tmp/us;
  default_type application/json;
  server {
    listen 127.0.0.1:$UP;
    listen 127.0.0.1:$UPS ssl;
    ssl_certificate $OUT/cert.pem; ssl_certificate_key $OUT/key.pem;
    location = /2.0/users/me { return 200 '{"type":"user","id":"11446498","name":"Bench User","login":"bench@example.com","status":"active"}'; }
    location ~ ^/2\.0/files/(\d+)$ { return 200 '{"type":"file","id":"\$1","name":"file-\$1.pdf","etag":"1","sequence_id":"1","sha1":"85136c79cbf9fe36bb9d05d0639c70c265c18d37","file_version":{"type":"file_version","id":"9\$1","sha1":"85136c79cbf9fe36bb9d05d0639c70c265c18d37"}}'; }
    location ~ ^/2\.0/files/(\d+)/content$ { default_type application/pdf; return 200 '%PDF-1.4 bench content of file \$1 .......................................................'; }
    location ~ ^/2\.0/files/(\d+)/thumbnail\.png$ { default_type image/png; return 200 'PNG bench thumbnail of file \$1 ........................................'; }
    location ~ ^/2\.0/folders/(\d+)$ { return 200 '{"type":"folder","id":"\$1","name":"folder-\$1","etag":"1","sequence_id":"1"}'; }
    location ~ ^/2\.0/folders/(\d+)/items$ { root $OUT/static; try_files /listing.json =404; }
    location = /__requests { stub_status; }
  }
}
NGINX
# A folder listing of 100 entries, each with a shared link (for the redaction variant).
python3 - > static/listing.json <<'PY'
import json
entries = [{"type": "file", "id": str(7000 + i), "name": f"report-{i}.pdf", "size": 1000 + i,
            "modified_at": "2026-11-30T10:00:00-08:00",
            "shared_link": {"url": f"https://app.box.com/s/{i:032x}", "download_url": f"https://app.box.com/shared/static/{i:032x}.pdf",
                            "access": "open", "permissions": {"can_download": True, "can_preview": True}}}
           for i in range(100)]
print(json.dumps({"total_count": 100, "entries": entries, "offset": 0, "limit": 100, "order": [{"by": "type", "direction": "ASC"}]}))
PY
upstream_requests() { curl -s "http://127.0.0.1:$UP/__requests" | awk '/^ *[0-9]+ +[0-9]+ +[0-9]+/ {print $3}'; }

# ---- nginx as a plain reverse proxy, no auth ----
ngxconf() { # name workers port [tls-port] log-options
  cat <<NGINX
worker_processes $2;
pid $OUT/$1.pid;
error_log $OUT/logs/$1-error.log warn;
events { worker_connections 4096; }
http {
  access_log $OUT/logs/$1-access.log$5;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_body_temp_path $OUT/tmp/pb; proxy_temp_path $OUT/tmp/pp; fastcgi_temp_path $OUT/tmp/pf;
  uwsgi_temp_path $OUT/tmp/pu; scgi_temp_path $OUT/tmp/ps;
  upstream api { server 127.0.0.1:$UP; keepalive 128; keepalive_requests 10000000; keepalive_timeout 300s; }
  server {
    listen 127.0.0.1:$3;
    $( [ -n "$4" ] && echo "listen 127.0.0.1:$4 ssl;" )
    ssl_certificate $OUT/cert.pem; ssl_certificate_key $OUT/key.pem;
    location / {
      proxy_pass http://api;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$host;
      proxy_set_header X-Request-Id \$request_id;
    }
  }
}
NGINX
}
ngxconf proxy 1 $NGX $NGXS " combined buffer=64k flush=20ms" > proxy.conf
ngxconf proxy-unbuf 1 $NGXU "" "" > proxy-unbuf.conf
ngxconf proxy-2w 2 $NGX2 "" " combined buffer=64k flush=20ms" > proxy-2w.conf

# ---- scopegate: plain and TLS instances (same keyring, so tokens work on both) ----
sgconf() { # public admin data_dir [tls|unbuf]
  cat <<TOML
[listen]
public = "127.0.0.1:$1"
admin = "127.0.0.1:$2"
$( [ "${4:-}" = tls ] && printf '[tls]\ncert = "%s/cert.pem"\nkey = "%s/key.pem"\n' "$OUT" "$OUT" )
[upstream]
api = "http://127.0.0.1:$UP"
[tokens]
keyring = "$OUT/keyring.toml"
external = "reject"
[parent]
mode = "probe"
[policy]
file = "$ROOT/config/policy-box.toml"
[revocation]
data_dir = "$OUT/$3"
[log]
flush = "$( [ "${4:-}" = unbuf ] && echo 0s || echo 20ms )"
[oauth]
# The benchmark mints its tokens from one address: no rate limit in the way.
rate_per_second = 1000000.0
rate_burst = 1000000
TOML
}
sgconf $SG $SGA data > scopegate.toml
sgconf $SGS $SGSA data-tls tls > scopegate-tls.toml
sgconf $SGU $SGUA data-unbuf unbuf > scopegate-unbuf.toml
sgconf $SG2 $SG2A data-2w > scopegate-2w.toml

log "starting upstream (core $CORE_LOAD), nginx and scopegate (core $CORE_PROXY)"
taskset -c "$CORE_LOAD" nginx -p "$OUT" -c "$OUT/upstream.conf" -g 'daemon off;' 2>>logs/upstream-error.log &
PIDS+=($!)
taskset -c "$CORE_PROXY" nginx -p "$OUT" -c "$OUT/proxy.conf" -g 'daemon off;' 2>>logs/proxy-error.log &
NGX_MASTER=$!; PIDS+=($NGX_MASTER)
taskset -c "$CORE_PROXY" nginx -p "$OUT" -c "$OUT/proxy-unbuf.conf" -g 'daemon off;' 2>>logs/proxy-error.log &
NGXU_MASTER=$!; PIDS+=($NGXU_MASTER)
nginx -p "$OUT" -c "$OUT/proxy-2w.conf" -g 'daemon off;' 2>>logs/proxy-error.log &
NGX2_MASTER=$!; PIDS+=($NGX2_MASTER)
SCOPEGATE_WORKERS=1 taskset -c "$CORE_PROXY" "$SCOPEGATE" serve --config scopegate.toml >logs/scopegate.out 2>logs/scopegate.log &
SG_PID=$!; PIDS+=($SG_PID)
SCOPEGATE_WORKERS=1 taskset -c "$CORE_PROXY" "$SCOPEGATE" serve --config scopegate-tls.toml >logs/scopegate-tls.out 2>logs/scopegate-tls.log &
SGS_PID=$!; PIDS+=($SGS_PID)
SCOPEGATE_WORKERS=1 taskset -c "$CORE_PROXY" "$SCOPEGATE" serve --config scopegate-unbuf.toml >logs/scopegate-unbuf.out 2>logs/scopegate-unbuf.log &
SGU_PID=$!; PIDS+=($SGU_PID)
SCOPEGATE_WORKERS=2 "$SCOPEGATE" serve --config scopegate-2w.toml >logs/scopegate-2w.out 2>logs/scopegate-2w.log &
SG2_PID=$!; PIDS+=($SG2_PID)
up() { for f in "$@"; do grep -q listening "logs/$f.out" 2>/dev/null || return 1; done; }
for i in $(seq 100); do
  up scopegate scopegate-tls scopegate-unbuf scopegate-2w &&
    curl -s -o /dev/null http://127.0.0.1:$UP/2.0/users/me && curl -s -o /dev/null http://127.0.0.1:$NGX/2.0/users/me &&
    curl -s -o /dev/null http://127.0.0.1:$NGXU/2.0/users/me && curl -s -o /dev/null http://127.0.0.1:$NGX2/2.0/users/me && break
  sleep 0.1
done
NGX_WORKER=$(pgrep -P "$NGX_MASTER" | head -1)
NGXU_WORKER=$(pgrep -P "$NGXU_MASTER" | head -1)
NGX2_WORKERS=$(pgrep -P "$NGX2_MASTER" | tr '\n' ' ')
[ -n "$NGX_WORKER" ] && [ -n "$NGXU_WORKER" ] && [ -n "$NGX2_WORKERS" ] || { log "nginx workers not found"; exit 1; }
cat logs/scopegate.out logs/scopegate-tls.out >&2

# ---- tokens ----
log "minting $NTOK tokens (POST /oauth2/token with the parent), 100 to revoke"
taskset -c "$CORE_LOAD" "$LOADGEN" mint --addr 127.0.0.1:$SG --parent "$PARENT" --count "$NTOK" --first-id 1000 > tokens.txt
taskset -c "$CORE_LOAD" "$LOADGEN" mint --addr 127.0.0.1:$SG --parent "$PARENT" --count 100 --first-id 500000 > revoked.txt
taskset -c "$CORE_LOAD" "$LOADGEN" revoke --addr 127.0.0.1:$SG --tokens revoked.txt
case " $VARIANTS " in *" redact "*)
  log "minting 100 folder tokens (item_read item_preview: shared links are not theirs to see)"
  taskset -c "$CORE_LOAD" "$LOADGEN" mint --addr 127.0.0.1:$SG --parent "$PARENT" --count 100 --first-id 3000000 \
    --kind folders --scope "item_read item_preview" > folders.txt ;;
esac
# sanity: allowed through scopegate, refused when revoked or out of the token's file
read -r T1 ID1 < tokens.txt; read -r TR IDR < revoked.txt
c1=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $T1" http://127.0.0.1:$SG/2.0/files/$ID1/content)
c2=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TR" http://127.0.0.1:$SG/2.0/files/$IDR)
c3=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $T1" http://127.0.0.1:$SG/2.0/files/999999)
c4=$(curl -sk --http1.1 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $T1" https://127.0.0.1:$SGS/2.0/files/$ID1)
log "sanity: allowed=$c1 revoked=$c2 other-file=$c3 tls=$c4 (want 200 401 403 200)"
[ "$c1$c2$c3$c4" = 200401403200 ] || { log "sanity check failed"; exit 1; }
# wrk speaks HTTP/1.1 only; note what an HTTP/2 client gets (ALPN h2) for the record.
c5=$(curl -sk --http2 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $T1" https://127.0.0.1:$SGS/2.0/files/$ID1 || true)
log "note: the same request over HTTP/2 (TLS, ALPN h2) gets $c5 from scopegate"

# user and kernel ticks apart, summed over the proxy's processes: the kernel side (loopback TCP, waking the
# other core) moves with the load, the user side with the code
user_sys_ticks() { local f=(); for p in $1; do f+=("/proc/$p/stat"); done; awk '{u+=$14; s+=$15} END{print u, s}' "${f[@]}"; }
cpu_ticks() { user_sys_ticks "$1" | awk '{print $1+$2}'; }
TCK=$(getconf CLK_TCK)
to_us() { # wrk latency like 812.00us / 1.23ms / 1.00s -> microseconds
  awk -v v="$1" 'BEGIN{ n=v+0; if (v ~ /us$/) m=1; else if (v ~ /ms$/) m=1000; else if (v ~ /s$/) m=1000000; else m=1; printf "%.0f", n*m }'
}
echo -e "variant\ttarget\tround\trps\trequests\tcpu_us_per_req\tp50_us\tp99_us\tnon2xx\textra_used\tuser_us_per_req\tsys_us_per_req" > runs.tsv

# url_of target variant
url_of() {
  case "$1:$2" in
    direct:tls) echo https://127.0.0.1:$UPS ;; direct:*) echo http://127.0.0.1:$UP ;;
    nginx:tls) echo https://127.0.0.1:$NGXS ;; nginx:hits_unbuf) echo http://127.0.0.1:$NGXU ;;
    nginx:hits_2w) echo http://127.0.0.1:$NGX2 ;; nginx:*) echo http://127.0.0.1:$NGX ;;
    scopegate:tls) echo https://127.0.0.1:$SGS ;; scopegate:hits_unbuf) echo http://127.0.0.1:$SGU ;;
    scopegate:hits_2w) echo http://127.0.0.1:$SG2 ;; scopegate:*) echo http://127.0.0.1:$SG ;;
  esac
}
pid_of() {
  case "$1:$2" in
    nginx:hits_unbuf) echo "$NGXU_WORKER" ;; nginx:hits_2w) echo "$NGX2_WORKERS" ;; nginx:*) echo "$NGX_WORKER" ;;
    scopegate:tls) echo "$SGS_PID" ;; scopegate:hits_unbuf) echo "$SGU_PID" ;; scopegate:hits_2w) echo "$SG2_PID" ;;
    scopegate:*) echo "$SG_PID" ;; *) echo "" ;;
  esac
}

MISS_OFF=0
# one wrk run; appends to runs.tsv unless round is "warm"
wrk_run() { # variant target round secs
  local v=$1 t=$2 r=$3 d=$4 mode=hits extra=- off=0 toks=tokens.txt pid u0 s0 u1 s1 out
  case $v in
    miss) mode=miss; extra=miss.txt; off=$MISS_OFF ;; revoked) mode=revoked; extra=revoked.txt ;;
    redact) mode=redact; toks=folders.txt ;;
  esac
  pid=$(pid_of "$t" "$v")
  [ -n "$pid" ] && read -r u0 s0 < <(user_sys_ticks "$pid")
  out=$(taskset -c "$CORE_LOAD" wrk -t1 -c"$CONNS" -d"${d}s" --latency -s "$ROOT/benches/load/tokens.lua" \
        "$(url_of "$t" "$v")" -- "$mode" "$toks" "$extra" "$off")
  [ -n "$pid" ] && read -r u1 s1 < <(user_sys_ticks "$pid")
  echo "$out" > "logs/wrk-$v-$t-$r.txt"
  local rps reqs p50 p99 non2 used cpu usr sys
  rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  p50=$(to_us "$(echo "$out" | awk '$1=="50%" {print $2}')")
  p99=$(to_us "$(echo "$out" | awk '$1=="99%" {print $2}')")
  non2=$(echo "$out" | awk '/Non-2xx/ {print $5}'); non2=${non2:-0}
  used=$(echo "$out" | awk -F= '/extra_tokens_used/ {print $2}')
  if [ -n "$pid" ]; then
    per_req() { awk -v a="$1" -v b="$2" -v n="$reqs" -v k="$TCK" 'BEGIN{printf "%.2f", (b-a)/k*1e6/n}'; }
    usr=$(per_req "$u0" "$u1"); sys=$(per_req "$s0" "$s1"); cpu=$(per_req $((u0 + s0)) $((u1 + s1)))
  else cpu=NA; usr=NA; sys=NA; fi
  [ "$t" = scopegate ] && [ "$v" = miss ] && MISS_OFF=$((MISS_OFF + used))
  [ "$r" = warm ] || echo -e "$v\t$t\t$r\t$rps\t$reqs\t$cpu\t$p50\t$p99\t$non2\t${used:-0}\t$usr\t$sys" >> runs.tsv
  log "$v $t round $r: ${rps} req/s, cpu ${cpu} us/req (user ${usr}, kernel ${sys}), p50 ${p50} us, p99 ${p99} us, non-2xx ${non2}"
}

median_of() { # variant target column
  awk -F'\t' -v v="$1" -v t="$2" -v c="$3" '$1==v && $2==t {print $c}' runs.tsv | sort -g |
    awk '{a[NR]=$1} END{ if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'
}

for v in $VARIANTS; do
  if [ "$v" = miss ]; then
    # Enough never-used tokens for 1% of every scopegate request in this variant (+50%).
    rps=$(median_of hits scopegate 4); rps=${rps:-30000}
    n=$(awk -v r="$rps" -v d="$DUR" -v k="$ROUNDS" -v w="$WARM" 'BEGIN{printf "%d", r*(d*k+w)*0.01*1.5+200}')
    log "minting $n tokens for the cache-miss variant"
    taskset -c "$CORE_LOAD" "$LOADGEN" mint --addr 127.0.0.1:$SG --parent "$PARENT" --count "$n" --first-id 2000000 > miss.txt
  fi
  for t in direct nginx scopegate; do wrk_run "$v" "$t" warm "$WARM"; done
  for r in $(seq "$ROUNDS"); do
    for t in direct nginx scopegate; do wrk_run "$v" "$t" "$r" "$DUR"; done
  done
done
if [ -f miss.txt ]; then
  log "miss variant: $MISS_OFF of $(wc -l < miss.txt) fresh tokens used by scopegate runs (beyond that they would have been hits)"
fi

# ---- fixed rate (open loop) at 30% and 50% of nginx's closed-loop capacity ----
echo -e "load\ttarget\tround\trate\tachieved_rps\terrors\tlate\tp50_us\tp99_us\tp999_us\tmax_us\tcpu_us_per_req" > openloop.tsv
NGX_CAP=$(median_of hits nginx 4)
for pctl in $LOADS; do
  rate=$(awk -v c="$NGX_CAP" -v p="$pctl" 'BEGIN{printf "%d", c*p/100}')
  for r in $(seq "$OL_ROUNDS"); do
    for t in direct nginx scopegate; do
      pid=$(pid_of "$t" hits); [ -n "$pid" ] && c0=$(cpu_ticks "$pid")
      line=$(taskset -c "$CORE_LOAD" "$LOADGEN" openloop --addr "$(url_of "$t" hits | sed 's#http://##')" \
             --rate "$rate" --secs "$OL_DUR" --conns "$CONNS" --tokens tokens.txt)
      if [ -n "$pid" ]; then
        c1=$(cpu_ticks "$pid"); n=$(echo "$line" | sed 's/.*requests=\([0-9]*\).*/\1/')
        cpu=$(awk -v a="$c0" -v b="$c1" -v n="$n" -v k="$TCK" 'BEGIN{printf "%.2f", (b-a)/k*1e6/n}')
      else cpu=NA; fi
      g() { echo "$line" | tr ' ' '\n' | awk -F= -v k="$1" '$1==k {print $2}'; }
      echo -e "$pctl%\t$t\t$r\t$rate\t$(g achieved_rps)\t$(g errors)\t$(g sent_late_over_1ms)\t$(g p50_us)\t$(g p99_us)\t$(g p999_us)\t$(g max_us)\t$cpu" >> openloop.tsv
      log "open loop $pctl% ($rate req/s) $t round $r: $line cpu=$cpu"
    done
  done
done

# ---- token exchange: exchanges per second on one worker, upstream calls per exchange ----
echo -e "round\tparents\tresources\texchanges\tper_sec\terrors\tp50_us\tp99_us\tupstream_calls\tcalls_per_exchange\tcpu_us_per_exchange" > exchange.tsv
if [ "$EXCHANGE" = 1 ]; then
  # Warm-up: every parent and resource seen once, so the rounds measure the steady state.
  taskset -c "$CORE_LOAD" "$LOADGEN" exchange --addr 127.0.0.1:$SG --parents 100 --resources 1000 --secs "$EX_DUR" >/dev/null
  for r in $(seq "$EX_ROUNDS"); do
    n0=$(upstream_requests); c0=$(cpu_ticks "$SG_PID")
    line=$(taskset -c "$CORE_LOAD" "$LOADGEN" exchange --addr 127.0.0.1:$SG --parents 100 --resources 1000 --secs "$EX_DUR")
    n1=$(upstream_requests); c1=$(cpu_ticks "$SG_PID")
    g() { echo "$line" | tr ' ' '\n' | awk -F= -v k="$1" '$1==k {print $2}'; }
    calls=$((n1 - n0 - 1))  # minus the status request itself
    echo -e "$r\t100\t1000\t$(g exchanges)\t$(g per_sec)\t$(g errors)\t$(g p50_us)\t$(g p99_us)\t$calls\t$(awk -v c="$calls" -v n="$(g exchanges)" 'BEGIN{printf "%.3f", c/n}')\t$(awk -v a="$c0" -v b="$c1" -v n="$(g exchanges)" -v k="$TCK" 'BEGIN{printf "%.2f", (b-a)/k*1e6/n}')" >> exchange.tsv
    log "exchange round $r: $line upstream_calls=$calls"
  done
fi

python3 "$ROOT/benches/load/summarize.py" runs.tsv openloop.tsv exchange.tsv | tee summary.txt
{ echo; echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"; echo "layout: load generator + upstream on core $CORE_LOAD, proxy on core $CORE_PROXY; $CONNS connections; rounds=$ROUNDS x ${DUR}s, open loop $OL_ROUNDS x ${OL_DUR}s"; } | tee -a summary.txt
