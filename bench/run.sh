#!/bin/bash
# The benchmark in one command (bench/README.md): pushgate (native and Pusher protocol) beside nginx + nchan,
# every workload N times, one table of medians and per-repetition ratios, results written to bench/results/.
#
#   bench/run.sh [--reps N] [--duration S] [--workloads "W1 W2 W3 W4"] [--w3-subs N] [--no-nchan]
#                [--mqtt] [--two] [--evlib poll|uv] [--big N] [--big-idle | --big-channels K] [--big-hold S]
#                [--big-timeout S]
#                [--storm N] [--gateway-opts JSON] [--sub-procs K] [--build DIR] [--label TEXT] [--out DIR]
#   bench/run.sh --workloads BIG       # only BIG: 100,000 idle connections (--big N for another count)
#
# Sets up what it needs: installs nginx-light and libnginx-mod-nchan with apt-get when nchan is missing
# (never in the test command), builds the load generator if the build lacks it. Every server listens on
# 127.0.0.1; every run is bounded in connections and time.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
reps=3 duration=10 workloads="W1 W2 W3 W4" w3_subs=10000 nchan=1 mqtt=0 two=0 evlib=poll big=0 storm=0 gwopts='{}'
big_subscribe=1 big_channels=0 big_hold=35 big_timeout=300
build="$repo/build" label="" out="$here/results" pub_conns=4 sub_procs=
while [ $# -gt 0 ]; do
    case $1 in
    --reps) reps=$2; shift ;;
    --duration) duration=$2; shift ;;
    --workloads) workloads=$2; shift ;;
    --w3-subs) w3_subs=$2; shift ;;
    --no-nchan) nchan=0 ;;
    --mqtt) mqtt=1 ;;
    --two) two=1 ;;
    --evlib) evlib=$2 evlib_set=1; shift ;;
    --big) big=$2; shift ;;
    --big-idle) big_subscribe=0 ;;
    --big-channels) big_channels=$2; shift ;;
    --big-hold) big_hold=$2; shift ;;
    --big-timeout) big_timeout=$2; shift ;;
    --storm) storm=$2; shift ;;
    --gateway-opts) gwopts=$2; shift ;;
    --pub-conns) pub_conns=$2; shift ;;
    --sub-procs) sub_procs=$2; shift ;;
    --build) build=$(cd "$2" && pwd); shift ;;
    --label) label=$2; shift ;;
    --out) out=$2; shift ;;
    -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
for v in "reps=$reps" "duration=$duration" "w3-subs=$w3_subs" "big=$big" "storm=$storm" "pub-conns=$pub_conns" \
    "big-hold=$big_hold" "big-timeout=$big_timeout" "big-channels=$big_channels" "sub-procs=${sub_procs:-1}"; do
    case ${v#*=} in
    '' | *[!0-9]*) echo "--${v%%=*}: expected a whole number, got \"${v#*=}\"" >&2; exit 2 ;;
    esac
done
[ "$reps" -gt 0 ] && [ "$duration" -gt 0 ] && [ "${sub_procs:-1}" -gt 0 ] ||
    { echo "--reps, --duration and --sub-procs must be at least 1" >&2; exit 2; }
case $evlib in poll | uv) ;; *) echo "--evlib: expected poll or uv, got \"$evlib\"" >&2; exit 2 ;; esac
[ "$mqtt" = 1 ] && workloads="$workloads W1M"
[ "$two" = 1 ] && workloads="$workloads W1X"
case " $workloads " in *" BIG "*) [ "$big" -gt 0 ] || big=100000 ;; *) [ "$big" -gt 0 ] && workloads="$workloads BIG" ;; esac
[ "$storm" -gt 0 ] && workloads="$workloads STORM"
# nchan runs beside pushgate in W1-W4 and STORM; BIG, W1M and W1X are pushgate only.
for wl in $workloads; do case $wl in BIG | W1M | W1X) ;; *) needs_nchan=1 ;; esac; done
[ "${needs_nchan:-0}" = 1 ] || nchan=0

# --- setup -------------------------------------------------------------------------------------------------
if [ "$nchan" = 1 ] && [ ! -e /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
    echo "installing nginx-light and libnginx-mod-nchan" >&2
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y nginx-light libnginx-mod-nchan >&2
fi
if [ ! -x "$build/bench/pushgate_loadgen" ] || [ ! -x "$build/bench/pushgate_hop" ] || [ ! -x "$build/gateway/pushgate" ]; then
    cmake -S "$repo" -B "$build" >/dev/null
    cmake --build "$build" -j2 >&2
fi
LG_BIN="$build/bench/pushgate_loadgen"
# the commit the build was made from, read now: edits made while the run goes on are not in what it measures
build_id=$("$here/build_commit.sh" "$build")
ulimit -n "$(ulimit -Hn)"
mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
raw="$out/$stamp.jsonl"
: >"$raw"
tmp=$(mktemp -d /tmp/pgbench-XXXXXX)
stack_pid="" nginx_pid="" nginx_dir="" mqtt_port=0 pub_port=0 gw_pid="" broker_pid=""

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
    gw_pid=$(node -p 'require(process.argv[1]).gatewayPid' "$tmp/stack.json")
    broker_pid=$(node -p 'require(process.argv[1]).brokerPid' "$tmp/stack.json")
    stack_dir=$(node -p 'require(process.argv[1]).dir' "$tmp/stack.json")
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

# A run with --src-addrs N gets source addresses no run of the last minute used: 127.0.0.F..F+N-1, F moving on
# by N each run over 127.0.0.2..254. The connections a run closes sit in TIME_WAIT for 60 s on the client side,
# and the load generator binds each socket to its source address before connecting (port 0), so the kernel must
# find a port no socket on that address holds, whatever it connects to: with the same four addresses for every
# run, about every third W3 run (the seventh or so 10,000 connections in a minute) took 10-20 s instead of 1-2 s
# to open, nchan's and pushgate's alike. Sets a (the caller's array) with --src-first added.
src_next=2
src_rotate() {
    local i n=0
    for ((i = 1; i <= $#; i++)); do [ "${!i}" = --src-addrs ] && { i=$((i + 1)); n=${!i}; }; done
    [ "$n" -gt 0 ] || return 0
    [ $((src_next + n - 1)) -gt 254 ] && src_next=2
    a+=(--src-first "$src_next")
    src_next=$((src_next + n))
}

# run REP WORKLOAD SYSTEM loadgen-args...: one measurement, one JSON line in the raw file.
run() {
    local rep=$1 wl=$2 sys=$3; shift 3
    local res a=()
    start_for "$sys" "$([ "$wl" = W1X ] && echo 2 || echo 1)"
    for x in "$@"; do x=${x/MQTTPORT/$mqtt_port}; a+=("${x/PUBPORT/$pub_port}"); done
    # W4's 10,000 subscribers on lws' poll() made the load generator the limit (sock_poll ~60 % of its profile):
    # libuv (epoll) there unless --evlib says otherwise (bench/README.md, "W4")
    local ev=$evlib
    [ "$wl" = W4 ] && [ "${evlib_set:-0}" != 1 ] && ev=uv
    src_rotate "${a[@]}"
    res=$("$LG_BIN" --evlib "$ev" --target "$sys" --port "$port" --rss-pids "$pids" "${a[@]}" 2>"$tmp/lg.err") || true
    [ -n "$res" ] || res='{"failed":true}'
    # what the subscribers' gateway counted (one process: workers = 1 unless --gateway-opts says otherwise), so that
    # a loss in the raw file says where it happened: its out-queues (gap signals, slow-consumer closes), the broker
    # (dropped messages) or the door (publishes shed)
    local m=""
    [ "$sys" = nchan ] || m=$(curl -s --max-time 5 "http://127.0.0.1:$port/metrics" || true)
    node -e 'const r=JSON.parse(process.argv[1]); Object.assign(r,{rep:+process.argv[2],workload:process.argv[3],system:process.argv[4]});
        const g={}; for (const l of process.argv[5].split("\n")) {
            const x=/^pushgate_(gaps_total|gap_signals_total|slow_consumer_closes_total|publish_shed_total|broker_dropped_messages)(\{[^}]*\})? ([0-9.e+]+)$/.exec(l);
            if (x) g[x[1]]=(g[x[1]]||0)+Number(x[3]); }
        if (Object.keys(g).length) r.gateway=g; console.log(JSON.stringify(r))' \
        "$res" "$rep" "$wl" "$sys" "$m" >>"$raw"
    stop_for "$sys"
    printf '  %-5s %-7s %s\n' "$wl" "$sys" "$(tail -c 300 "$tmp/lg.err" | tr '\n' ' ')" >&2
}

# run_hop REP: W2's broker hop alone (bench/lg_hop.c), as the gateway's own broker account at W2's rate, on a fresh
# stack: one JSON line, workload W2H.
run_hop() {
    local rep=$1 res pw
    start_for native
    pw=$(sed -n 's/^broker_password = //p' "$stack_dir/pushgate.conf")
    res=$("$build/bench/pushgate_hop" --port "$mqtt_port" --user pushgate --password "$pw" --rate 1000 \
        --duration "$duration" 2>"$tmp/lg.err") || true
    [ -n "$res" ] || res='{"failed":true}'
    node -e 'const r=JSON.parse(process.argv[1]); Object.assign(r,{rep:+process.argv[2],workload:"W2H",system:"native"}); console.log(JSON.stringify(r))' \
        "$res" "$rep" >>"$raw"
    stop_for native
    printf '  %-5s %-7s %s\n' W2H hop "$(tail -c 300 "$tmp/lg.err" | tr '\n' ' ')" >&2
}

# W1M's and W1X's subscribers are read by two load-generator processes unless --sub-procs says otherwise: one thread
# reading 1000 sockets at a full core left some unread for over a second, and those runs are about what the
# gateways lose, not about how fast one reader is (bench/README.md, "Slow readers").
args_for() {
    case $1 in
    W1) echo "--subs 1000 --channels 1 --rate 0 --duration $duration --size 100 --pub-conns $pub_conns --sub-procs ${sub_procs:-1}" ;;
    W1M) echo "--subs 1000 --channels 1 --rate 0 --duration $duration --size 100 --pub-conns $pub_conns --pub mqtt --mqtt-port MQTTPORT --sub-procs ${sub_procs:-2}" ;;
    W1X) echo "--subs 1000 --channels 1 --rate 0 --duration $duration --size 100 --pub-conns $pub_conns --pub-port PUBPORT --sub-procs ${sub_procs:-2}" ;;
    W2) echo "--subs 100 --channels 1 --rate 1000 --duration $duration --size 100 --sub-procs ${sub_procs:-1}" ;;
    W3) echo "--subs $w3_subs --channels $w3_subs --pub none --hold 2 --connect-concurrency 500 --src-addrs 4" ;;
    W4) echo "--subs 10000 --channels 1000 --rate 0 --duration $duration --size 100 --pub-conns $pub_conns --src-addrs 4 --sub-procs ${sub_procs:-1}" ;;
    STORM) echo "--subs $storm --channels $storm --pub none --reconnect-storm --connect-concurrency 1000 --src-addrs 4" ;;
    esac
}

# BIG: $big idle connections held at once, pushgate only (one nginx worker cannot hold them under this box's
# open-files cap). Every process is capped at the hard open-files limit (20,000 here), so the gateway runs
# several workers (unless --gateway-opts sets `workers`: one per 80 % of the cap) and the connections come from
# several load-generator processes of at most 90 % of the cap each, bound round-robin to 127.0.0.2..K+1 (one
# source address has ~28,000 ephemeral ports: ip_local_port_range; 127.0.0.1's are left to the servers' free-port
# picks and to anything else on the box). Each load generator opens its share, creates
# its ready file and holds; once every one is ready (or its connect timeout passed) this measures, $big_hold s
# later so that every connection has had its first server PING (ws_ping_interval_s, 30 s by default): the RSS and
# PSS of every gateway process (the parent and its workers, read again now so that a restarted worker is
# counted) and of mosquitto, and the established connections the server side has (ss). Then SIGUSR1 ends the
# load generators' hold; each reports what it held to the end.
big_nofile=$(ulimit -Hn)
proc_tree() { local k; k=$(cat "/proc/$1/task/"*/children 2>/dev/null | tr ' ' '\n' | grep . | sort -n | paste -sd' '); echo "$1${k:+ $k}"; }
mem_kb() { # mem_kb Rss|Pss pid...: the field of /proc/<pid>/smaps_rollup, summed
    local f=$1 t=0 p v; shift
    for p in "$@"; do v=$(awk -v f="$f:" '$1 == f {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null); t=$((t + ${v:-0})); done
    echo "$t"
}
run_big() {
    local rep=$1 per=$((big_nofile * 9 / 10)) n procs=() saved=$gwopts opts workers src big_evlib=uv
    # libuv (epoll) unless --evlib says otherwise: lws' poll() over 18,000 sockets per wakeup made the opening
    # about twice as slow (40,000 connections back to back: 49 s on libuv; 105 s on poll(), and 488 refused)
    [ "${evlib_set:-0}" = 1 ] && big_evlib=$evlib
    # A run right after another BIG run opened in 65-76 s with retries instead of 20 s without: the 100,000
    # connections the last one closed sit in TIME_WAIT (60 s) on the same source addresses and slow down every
    # connect's port pick. Wait (at most 90 s) until they are gone.
    local tw i
    for i in $(seq 90); do
        tw=$(ss -Htan state time-wait 2>/dev/null | wc -l)
        [ "$tw" -lt 1000 ] && break
        [ "$i" = 1 ] && echo "  BIG waits for $tw TIME_WAIT sockets of an earlier run to go" >&2
        sleep 1
    done
    opts=$(node -e 'const o=JSON.parse(process.argv[1]); o.workers ??= Math.ceil(+process.argv[2] / (+process.argv[3] * 0.8)); console.log(JSON.stringify(o))' \
        "$gwopts" "$big" "$big_nofile")
    workers=$(node -p 'JSON.parse(process.argv[1]).workers' "$opts")
    if [ "$workers" -gt 0 ] && [ $((workers * (big_nofile - 500))) -lt "$big" ]; then
        echo "  BIG: $workers worker(s) at $big_nofile open files each cannot hold $big connections" >&2
    fi
    src=$(( (big + 19999) / 20000 )); [ "$src" -lt 8 ] && src=8; [ "$src" -gt 64 ] && src=64
    gwopts=$opts
    start_for native
    gwopts=$saved
    local gw_pids0 rss0 pss0
    gw_pids0=$(proc_tree "$gw_pid")
    # shellcheck disable=SC2086
    rss0=$(mem_kb Rss $gw_pids0 "$broker_pid") pss0=$(mem_kb Pss $gw_pids0 "$broker_pid")
    n=$(( (big + per - 1) / per ))
    local t0; t0=$(date +%s)
    for i in $(seq 0 $((n - 1))); do
        local count=$per chans prefix="b$i-"
        [ $((i * per + per)) -gt "$big" ] && count=$((big - i * per))
        # one channel per connection, or (--big-channels K) every load generator over the same K channels
        chans=$count
        [ "$big_channels" -gt 0 ] && chans=$big_channels prefix="b-"
        # "$LG_BIN", not LG: $! must be the load generator itself (SIGUSR1 goes to it), not a subshell running LG.
        # One attempt has 60 s (--open-timeout); one the gateway never answered (its SYN or last ACK dropped at a full
        # accept queue, or closed unanswered) is tried twice more and counted as retried, never left waiting.
        # shellcheck disable=SC2046
        "$LG_BIN" --evlib "$big_evlib" --target native --port "$port" --subs "$count" --channels "$chans" --prefix "$prefix" --pub none \
            $([ "$big_subscribe" = 1 ] || echo --no-subscribe) --ready-file "$tmp/big.$i.ready" \
            --hold $((big_timeout + big_hold + 120)) --src-addrs "$src" --src-first 2 --connect-concurrency 500 \
            --connect-timeout "$big_timeout" --open-timeout 60 --retries 2 -v >"$tmp/big.$i.json" 2>"$tmp/big.$i.err" &
        procs+=($!)
    done
    # Every load generator ready (or gone), bounded by the connect timeout and a margin.
    local ready=0 i
    while [ "$ready" -lt "$n" ] && [ $(($(date +%s) - t0)) -lt $((big_timeout + 60)) ]; do
        sleep 0.5
        ready=0
        for i in $(seq 0 $((n - 1))); do
            if [ -e "$tmp/big.$i.ready" ] || ! kill -0 "${procs[$i]}" 2>/dev/null; then ready=$((ready + 1)); fi
        done
    done
    sleep 2
    local gw_pids rss_settled pss est gw_rss br_rss per_proc=""
    gw_pids=$(proc_tree "$gw_pid")
    # shellcheck disable=SC2086
    rss_settled=$(mem_kb Rss $gw_pids "$broker_pid")
    sleep "$((big_hold > 2 ? big_hold - 2 : 0))"
    gw_pids=$(proc_tree "$gw_pid")
    # shellcheck disable=SC2086
    gw_rss=$(mem_kb Rss $gw_pids) br_rss=$(mem_kb Rss "$broker_pid") pss=$(mem_kb Pss $gw_pids "$broker_pid")
    for i in $gw_pids; do per_proc="$per_proc${per_proc:+,}$(mem_kb Rss "$i")"; done
    est=$(ss -Htn state established "( sport = :$port )" 2>/dev/null | wc -l)
    for p in "${procs[@]}"; do kill -USR1 "$p" 2>/dev/null || true; done
    for p in "${procs[@]}"; do wait "$p" || true; done
    BIG_EVLIB=$big_evlib node -e '
        const fs = require("fs");
        const [rep, subs, subscribe, channels, workers, src, hold, gwPids0, gwPids, rss0, pss0, rssSettled, gwRss, brRss, pss,
            perProc, est, dir, n] = process.argv.slice(1);
        const rs = [...Array(+n).keys()].map((i) => {
            try { return JSON.parse(fs.readFileSync(`${dir}/big.${i}.json`, "utf8")); } catch { return { failed: true }; }
        });
        const sum = (k) => rs.reduce((a, r) => a + (r[k] || 0), 0);
        const ok = rs.filter((r) => r.first_ns > 0 && r.last_sub_ns > 0);
        const held = sum("held"), rss = +gwRss + +brRss;
        const r = {
            rep: +rep, workload: "BIG", system: "native", subs: +subs, subscribe: subscribe === "1", workers: +workers,
            channels: subscribe === "1" ? (+channels || +subs) : 0,
            loadgens: +n, loadgen_evlib: process.env.BIG_EVLIB, src_addrs: +src, hold_s: +hold,
            subscribed: sum("subscribed"), held, errors: sum("errors"), closed_early: sum("closed_early"),
            retried: sum("retried"), open_timeouts: sum("open_timeouts"),
            // first connect attempt of any load generator to the last confirmation of any (one machine, one clock)
            subscribe_s: ok.length === rs.length && ok.length
                ? (Math.max(...ok.map((r) => r.last_sub_ns)) - Math.min(...ok.map((r) => r.first_ns))) / 1e9 : NaN,
            server_established: +est,
            gateway_pids: gwPids.split(" ").map(Number), worker_restarts: gwPids0 !== gwPids,
            rss_before_kb: +rss0, pss_before_kb: +pss0, rss_settled_kb: +rssSettled,
            gateway_rss_kb: +gwRss, broker_rss_kb: +brRss, gateway_rss_per_process_kb: perProc.split(",").map(Number),
            rss_kb: rss, rss_mb: rss / 1024, pss_kb: +pss, pss_mb: pss / 1024,
            rss_per_conn_kb: held ? (rss - rss0) / held : NaN, rss_total_per_conn_kb: held ? rss / held : NaN,
            loadgen: rs,
        };
        r.failed = rs.some((x) => x.failed) || held < r.subs || r.errors > 0 || r.worker_restarts;
        console.log(JSON.stringify(r));' \
        "$rep" "$big" "$big_subscribe" "$big_channels" "$workers" "$src" "$big_hold" "$gw_pids0" "$gw_pids" "$rss0" "$pss0" \
        "$rss_settled" "$gw_rss" "$br_rss" "$pss" "$per_proc" "$est" "$tmp" "$n" >>"$raw"
    node -e 'const r=JSON.parse(require("fs").readFileSync(0,"utf8").trim().split("\n").pop());
        console.error(`  BIG native held ${r.held}/${r.subs} (server side ${r.server_established}), errors ${r.errors}, `
            + `retried ${r.retried}, open timeouts ${r.open_timeouts}, `
            + `open ${(r.subscribe_s ?? NaN).toFixed(1)} s, RSS ${r.rss_mb.toFixed(0)} MB (gateway ${(r.gateway_rss_kb/1024).toFixed(0)}, `
            + `broker ${(r.broker_rss_kb/1024).toFixed(0)}), PSS ${r.pss_mb.toFixed(0)} MB, ${r.rss_per_conn_kb.toFixed(2)} KB/conn`)' <"$raw"
    # -v: one line per failed subscriber; the reasons, counted
    cat "$tmp"/big.*.err 2>/dev/null | sed -E 's/subscriber [0-9]+: //' | sort | uniq -c | sort -rn | head -20 >&2 || true
    rm -f "$tmp"/big.*
    stop_for native
}

# The systems of repetition R in turn, starting from the ((R-1) mod N)-th: none always runs first or last in a
# pass, when the box may be in another state (the previous workload's connections closing, say).
rotate() {
    local r=$1
    shift
    local n=$# i
    for ((i = 0; i < n; i++)); do
        local k=$(((r - 1 + i) % n + 1))
        echo "${!k}"
    done
}

for rep in $(seq 1 "$reps"); do
    for wl in $workloads; do
        echo "rep $rep $wl" >&2
        if [ "$wl" = BIG ]; then
            run_big "$rep"
        else
            systems="native pusher"
            if [ "$nchan" = 1 ] && [ "$wl" != W1M ] && [ "$wl" != W1X ]; then systems="$systems nchan"; fi
            # shellcheck disable=SC2046
            for sys in $(rotate "$rep" $systems); do run "$rep" "$wl" "$sys" $(args_for "$wl"); done
            if [ "$wl" = W2 ]; then run_hop "$rep"; fi
        fi
    done
done

evlib_note=""
[ "${evlib_set:-0}" = 1 ] || evlib_note=" (W4, BIG: uv)"
params="reps=$reps duration=${duration}s pub_conns=$pub_conns sub_procs=${sub_procs:-1 (W1M, W1X: 2)} w3_subs=$w3_subs evlib=$evlib$evlib_note storm=$storm big=$big gateway_opts=$gwopts"
[ "$big" -gt 0 ] && params="$params big_subscribe=$big_subscribe big_channels=$big_channels big_hold=${big_hold}s"
node "$here/report.mjs" "$raw" --label "$label" --build "$build" --commit "$build_id" --params "$params" --out "$out/$stamp"
