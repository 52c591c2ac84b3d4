#!/bin/bash
# The benchmark in one command (bench/README.md): pushgate (native and Pusher protocol) beside nginx + nchan,
# every workload N times, one table of medians and per-repetition ratios, results written to bench/results/.
#
#   bench/run.sh [--reps N] [--duration S] [--workloads "W1 W2 W3 W4"] [--w3-subs N] [--no-nchan]
#                [--mqtt] [--two] [--evlib poll|uv] [--big N] [--storm N] [--gateway-opts JSON] [--build DIR]
#                [--label TEXT] [--out DIR]
#
# Sets up what it needs: installs nginx-light and libnginx-mod-nchan with apt-get when nchan is missing
# (never in the test command), builds the load generator if the build lacks it. Every server listens on
# 127.0.0.1; every run is bounded in connections and time.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
reps=3 duration=10 workloads="W1 W2 W3 W4" w3_subs=10000 nchan=1 mqtt=0 two=0 evlib=poll big=0 storm=0 gwopts='{}'
build="$repo/build" label="" out="$here/results" pub_conns=4
while [ $# -gt 0 ]; do
    case $1 in
    --reps) reps=$2; shift ;;
    --duration) duration=$2; shift ;;
    --workloads) workloads=$2; shift ;;
    --w3-subs) w3_subs=$2; shift ;;
    --no-nchan) nchan=0 ;;
    --mqtt) mqtt=1 ;;
    --two) two=1 ;;
    --evlib) evlib=$2; shift ;;
    --big) big=$2; shift ;;
    --storm) storm=$2; shift ;;
    --gateway-opts) gwopts=$2; shift ;;
    --pub-conns) pub_conns=$2; shift ;;
    --build) build=$(cd "$2" && pwd); shift ;;
    --label) label=$2; shift ;;
    --out) out=$2; shift ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
for v in "reps=$reps" "duration=$duration" "w3-subs=$w3_subs" "big=$big" "storm=$storm" "pub-conns=$pub_conns"; do
    case ${v#*=} in
    '' | *[!0-9]*) echo "--${v%%=*}: expected a whole number, got \"${v#*=}\"" >&2; exit 2 ;;
    esac
done
[ "$reps" -gt 0 ] && [ "$duration" -gt 0 ] || { echo "--reps and --duration must be at least 1" >&2; exit 2; }
case $evlib in poll | uv) ;; *) echo "--evlib: expected poll or uv, got \"$evlib\"" >&2; exit 2 ;; esac
[ "$mqtt" = 1 ] && workloads="$workloads W1M"
[ "$two" = 1 ] && workloads="$workloads W1X"
[ "$big" -gt 0 ] && workloads="$workloads BIG"
[ "$storm" -gt 0 ] && workloads="$workloads STORM"

# --- setup -------------------------------------------------------------------------------------------------
if [ "$nchan" = 1 ] && [ ! -e /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
    echo "installing nginx-light and libnginx-mod-nchan" >&2
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y nginx-light libnginx-mod-nchan >&2
fi
if [ ! -x "$build/bench/pushgate_loadgen" ] || [ ! -x "$build/gateway/pushgate" ]; then
    cmake -S "$repo" -B "$build" >/dev/null
    cmake --build "$build" -j2 >&2
fi
LG_BIN="$build/bench/pushgate_loadgen"
LG() { "$LG_BIN" --evlib "$evlib" "$@"; }
ulimit -n "$(ulimit -Hn)"
mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
raw="$out/$stamp.jsonl"
: >"$raw"
tmp=$(mktemp -d /tmp/pgbench-XXXXXX)
stack_pid="" nginx_pid="" nginx_dir="" mqtt_port=0 pub_port=0

stop_servers() {
    if [ -n "$stack_pid" ]; then kill "$stack_pid" 2>/dev/null || true; wait "$stack_pid" 2>/dev/null || true; fi
    if [ -n "$nginx_pid" ]; then kill "$nginx_pid" 2>/dev/null || true; wait "$nginx_pid" 2>/dev/null || true; fi
    [ -n "$nginx_dir" ] && rm -rf "$nginx_dir"
    stack_pid="" nginx_pid="" nginx_dir=""
}
trap 'stop_servers; rm -rf "$tmp"' EXIT

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

# start_pushgate [2]: with 2, a second gateway node on the same broker: subscribers go to it ($port), publishers
# to the first ($pub_port).
start_pushgate() {
    mkfifo "$tmp/stack.in"
    PUSHGATE_BUILD_DIR="$build" BENCH_GATEWAY_OPTS="$gwopts" BENCH_GATEWAYS="${1:-1}" node "$here/stack.mjs" \
        <"$tmp/stack.in" >"$tmp/stack.json" &
    stack_pid=$!
    exec 9>"$tmp/stack.in"
    rm -f "$tmp/stack.in"
    for _ in $(seq 200); do [ -s "$tmp/stack.json" ] && break; sleep 0.05; done
    [ -s "$tmp/stack.json" ] || { echo "pushgate did not start" >&2; exit 1; }
    port=$(node -p 'require(process.argv[1]).port' "$tmp/stack.json")
    pub_port=$port
    mqtt_port=$(node -p 'require(process.argv[1]).brokerPort' "$tmp/stack.json")
    pids=$(node -p 'const j=require(process.argv[1]); j.gatewayPids.join(",")+","+j.brokerPid' "$tmp/stack.json")
    if [ "${1:-1}" = 2 ]; then
        port=$(node -p 'require(process.argv[1]).port2' "$tmp/stack.json")
        pids="$pids,$(node -p 'require(process.argv[1]).gatewayPids2.join(",")' "$tmp/stack.json")"
    fi
    rm -f "$tmp/stack.json"
}

start_nchan() {
    port=$(free_port)
    read -r nginx_pid nginx_dir < <("$here/nchan.sh" "$port")
    pids="$nginx_pid,$(pgrep -P "$nginx_pid" | paste -sd,)"
}

# Fresh servers for every measurement, so one run's memory and state never show in the next.
start_for() { if [ "$1" = nchan ]; then start_nchan; else start_pushgate "${2:-1}"; fi; }
stop_for() { [ "$1" = nchan ] || exec 9>&-; stop_servers; }

# run REP WORKLOAD SYSTEM loadgen-args...: one measurement, one JSON line in the raw file.
run() {
    local rep=$1 wl=$2 sys=$3; shift 3
    local res a=()
    start_for "$sys" "$([ "$wl" = W1X ] && echo 2 || echo 1)"
    for x in "$@"; do x=${x/MQTTPORT/$mqtt_port}; a+=("${x/PUBPORT/$pub_port}"); done
    res=$(LG --target "$sys" --port "$port" --rss-pids "$pids" "${a[@]}" 2>"$tmp/lg.err") || true
    [ -n "$res" ] || res='{"failed":true}'
    node -e 'const r=JSON.parse(process.argv[1]); Object.assign(r,{rep:+process.argv[2],workload:process.argv[3],system:process.argv[4]}); console.log(JSON.stringify(r))' \
        "$res" "$rep" "$wl" "$sys" >>"$raw"
    stop_for "$sys"
    printf '  %-5s %-7s %s\n' "$wl" "$sys" "$(tail -c 300 "$tmp/lg.err" | tr '\n' ' ')" >&2
}

args_for() {
    case $1 in
    W1) echo "--subs 1000 --channels 1 --rate 0 --duration $duration --size 100 --pub-conns $pub_conns" ;;
    W1M) echo "--subs 1000 --channels 1 --rate 0 --duration $duration --size 100 --pub-conns $pub_conns --pub mqtt --mqtt-port MQTTPORT" ;;
    W1X) echo "--subs 1000 --channels 1 --rate 0 --duration $duration --size 100 --pub-conns $pub_conns --pub-port PUBPORT" ;;
    W2) echo "--subs 100 --channels 1 --rate 1000 --duration $duration --size 100" ;;
    W3) echo "--subs $w3_subs --channels $w3_subs --pub none --hold 2 --connect-concurrency 500 --src-addrs 4" ;;
    W4) echo "--subs 10000 --channels 1000 --rate 0 --duration $duration --size 100 --pub-conns $pub_conns --src-addrs 4" ;;
    STORM) echo "--subs $storm --channels $storm --pub none --reconnect-storm --connect-concurrency 1000 --src-addrs 4" ;;
    esac
}

# BIG: $big idle connections from several load-generator processes (each under the 20,000 open-files cap),
# pushgate only (one nginx worker cannot hold them either under that cap).
run_big() {
    local rep=$1 per=18000 n procs=()
    start_for native
    n=$(( (big + per - 1) / per ))
    for i in $(seq 0 $((n - 1))); do
        local count=$per
        [ $((i * per + per)) -gt "$big" ] && count=$((big - i * per))
        LG --target native --port "$port" --subs "$count" --channels "$count" --prefix "b$i-" --pub none \
              --hold 5 --src-addrs 8 --connect-concurrency 500 --connect-timeout 300 >"$tmp/big.$i" 2>/dev/null &
        procs+=($!)
    done
    for p in "${procs[@]}"; do wait "$p" || true; done
    node -e '
        const fs=require("fs"); const files=process.argv.slice(3);
        const rs=files.map(f=>{try{return JSON.parse(fs.readFileSync(f,"utf8"))}catch{return {failed:true}}});
        const sum=k=>rs.reduce((a,r)=>a+(r[k]||0),0);
        console.log(JSON.stringify({rep:+process.argv[1],workload:"BIG",system:"native",subs:+process.argv[2],
            subscribed:sum("subscribed"),errors:sum("errors"),subscribe_s:Math.max(...rs.map(r=>r.subscribe_s||0)),
            failed:rs.some(r=>r.failed)}))' "$rep" "$big" "$tmp"/big.* >>"$raw"
    rm -f "$tmp"/big.*
    stop_for native
}

for rep in $(seq 1 "$reps"); do
    for wl in $workloads; do
        echo "rep $rep $wl" >&2
        if [ "$wl" = BIG ]; then
            run_big "$rep"
        else
            # shellcheck disable=SC2046
            for sys in native pusher; do run "$rep" "$wl" "$sys" $(args_for "$wl"); done
            if [ "$nchan" = 1 ] && [ "$wl" != W1M ] && [ "$wl" != W1X ]; then run "$rep" "$wl" nchan $(args_for "$wl"); fi
        fi
    done
done

params="reps=$reps duration=${duration}s pub_conns=$pub_conns w3_subs=$w3_subs evlib=$evlib storm=$storm big=$big gateway_opts=$gwopts"
node "$here/report.mjs" "$raw" --label "$label" --build "$build" --params "$params" --out "$out/$stamp"
