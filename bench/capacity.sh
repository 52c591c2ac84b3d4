#!/bin/bash
# The CPU budget of a max-rate workload (bench/README.md, "W4: the box's capacity"): where one publish's CPU goes,
# per process, for nchan and pushgate, and what would be left for the gateway at a target rate.
#
#   bench/capacity.sh [W4|W1] [--pub-conns N] [--reps R] [--secs S] [--target-ratio X] [--gateway-opts JSON]
#                     [--build DIR] [--out DIR]
#
# For each repetition and each system (nchan, pushgate native) it starts fresh servers as bench/run.sh does, runs
# the load generator at max rate, and once the publishers run reads utime + stime from /proc of the server (the
# nginx worker; the gateway and its workers), the broker (mosquitto; none for nchan), the load generator's
# subscriber process and its publisher processes, and /proc/stat for the whole box, over an S-second window
# (8). Divided by the acknowledged publishes per second of the run, that is each process's CPU per publish.
#
# The ceiling: at X times nchan's publish rate (1.5), the load generator (subscribers + publishers) and the
# broker would need their measured CPU per publish times that rate; what is left of the box's cores, divided by
# the rate, is what the gateway could spend on one publish, to be compared with what nginx spends. Medians over
# the repetitions. A table goes to stdout and to <out>/capacity-<UTC time>.md, the raw runs to .jsonl beside it.
#
# Loopback only; the load generator's source addresses move on each run as in run.sh (TIME_WAIT).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
wl=W4
[ $# -gt 0 ] && case $1 in W1 | W4) wl=$1; shift ;; esac
pub_conns=4 reps=3 secs=8 ratio=1.5 gwopts='{"workers":1}' build="$repo/build" out="$here/results"
while [ $# -gt 0 ]; do
    case $1 in
    --pub-conns) pub_conns=$2; shift ;;
    --reps) reps=$2; shift ;;
    --secs) secs=$2; shift ;;
    --target-ratio) ratio=$2; shift ;;
    --gateway-opts) gwopts=$2; shift ;;
    --build) build=$(cd "$2" && pwd); shift ;;
    --out) out=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
case $wl in
W1) args="--subs 1000 --channels 1 --size 100" ;;
W4) args="--subs 10000 --channels 1000 --size 100 --src-addrs 4" ;;
esac
[ -x "$build/bench/pushgate_loadgen" ] || { echo "build the project first (cmake --build build)" >&2; exit 1; }
[ -e /usr/lib/nginx/modules/ngx_nchan_module.so ] || { echo "nchan is missing: bench/run.sh installs it" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"
mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
raw="$out/capacity-$stamp.jsonl" md="$out/capacity-$stamp.md"
tmp=$(mktemp -d /tmp/pgcap-XXXXXX)
stack_pid="" nginx_pid="" nginx_dir="" lg_pid=""
cleanup() {
    [ -n "$lg_pid" ] && kill "$lg_pid" 2>/dev/null || true
    [ -n "$stack_pid" ] && { exec 9>&-; wait "$stack_pid" 2>/dev/null || true; }
    [ -n "$nginx_pid" ] && { kill "$nginx_pid" 2>/dev/null || true; sleep 0.3; rm -rf "$nginx_dir"; }
    stack_pid="" nginx_pid="" lg_pid=""
    return 0
}
trap 'cleanup; rm -rf "$tmp"' EXIT

cpu() { local s=0 p; for p in "$@"; do s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo "$s"; }
box() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
src_next=2

measure() { # measure REP SYSTEM: one JSON line in $raw
    local rep=$1 sys=$2 port server broker=""
    if [ "$sys" = nchan ]; then
        port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
        read -r nginx_pid nginx_dir < <("$here/nchan.sh" "$port")
        server=$(pgrep -P "$nginx_pid" | paste -sd' ')
    else
        rm -f "$tmp/in" "$tmp/stack.json"
        mkfifo "$tmp/in"
        BENCH_GATEWAY_OPTS=$gwopts PUSHGATE_BUILD_DIR="$build" node "$here/stack.mjs" <"$tmp/in" >"$tmp/stack.json" &
        stack_pid=$!
        exec 9>"$tmp/in"
        for _ in $(seq 200); do [ -s "$tmp/stack.json" ] && break; sleep 0.05; done
        port=$(node -p 'require(process.argv[1]).port' "$tmp/stack.json")
        server=$(node -p 'require(process.argv[1]).gatewayPids.join(" ")' "$tmp/stack.json")
        broker=$(node -p 'require(process.argv[1]).brokerPid' "$tmp/stack.json")
    fi
    local src=()
    case $args in *--src-addrs*) src=(--src-first "$src_next"); src_next=$((src_next + 4)); [ "$src_next" -gt 250 ] && src_next=2 ;; esac
    # shellcheck disable=SC2086
    "$build/bench/pushgate_loadgen" --evlib uv --target "$sys" --port "$port" --rate 0 --duration $((secs + 6)) \
        --pub-conns "$pub_conns" $args "${src[@]}" >"$tmp/lg.json" 2>"$tmp/lg.err" &
    lg_pid=$!
    for _ in $(seq 600); do pgrep -P "$lg_pid" >/dev/null && break; sleep 0.1; done
    sleep 1.5 # past the publishers' first connections
    local pubs s0 b0 l0 p0 x0 s1 b1 l1 p1 x1
    pubs=$(pgrep -P "$lg_pid" | paste -sd' ')
    # shellcheck disable=SC2086
    s0=$(cpu $server) b0=$(cpu $broker) l0=$(cpu "$lg_pid") p0=$(cpu $pubs) x0=$(box)
    sleep "$secs"
    # shellcheck disable=SC2086
    s1=$(cpu $server) b1=$(cpu $broker) l1=$(cpu "$lg_pid") p1=$(cpu $pubs) x1=$(box)
    wait "$lg_pid" || true
    lg_pid=""
    node -e '
        const [file, rep, sys, secs, hz, ...t] = process.argv.slice(1);
        let r = {};
        try { r = JSON.parse(require("fs").readFileSync(file, "utf8")); } catch { r = { failed: true }; }
        const [server, broker, subs, pubs, box] = t.map(Number);
        const pct = (x) => (100 * x) / hz / secs;
        const out = { rep: +rep, system: sys, pub_per_s: r.acked_per_s, delivered_per_s: r.delivered_per_s, lost: r.lost,
            failed: !!r.failed || r.subscribed !== r.subs || r.lost > 0 || r.pub_errors > 0,
            cpu_pct: { server: pct(server), broker: pct(broker), subs: pct(subs), pubs: pct(pubs), box: pct(box) } };
        out.us_per_publish = Object.fromEntries(Object.entries(out.cpu_pct).map(([k, v]) => [k, (v / 100) * 1e6 / r.acked_per_s]));
        console.log(JSON.stringify(out));' \
        "$tmp/lg.json" "$rep" "$sys" "$secs" "$(getconf CLK_TCK)" $((s1 - s0)) $((b1 - b0)) $((l1 - l0)) $((p1 - p0)) $((x1 - x0)) >>"$raw"
    cleanup
    printf '  rep %s %-7s %s\n' "$rep" "$sys" "$(tail -n 1 "$raw" | cut -c1-160)" >&2
}

for rep in $(seq "$reps"); do
    measure "$rep" nchan
    measure "$rep" native
done

node -e '
const fs = require("fs");
const [raw, wl, pubConns, ratio, cores, gwopts, commit] = process.argv.slice(1);
const runs = fs.readFileSync(raw, "utf8").trim().split("\n").map((l) => JSON.parse(l));
const med = (a) => { a = a.filter((x) => Number.isFinite(x)).sort((x, y) => x - y); return a.length ? a[(a.length - 1) >> 1] / 2 + a[a.length >> 1] / 2 : NaN; };
const of = (sys) => runs.filter((r) => r.system === sys && !r.failed);
const f = (x, d = 0) => (Number.isFinite(x) ? x.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d }) : "–");
const row = (sys) => {
    const rs = of(sys);
    const m = (k) => med(rs.map((r) => r.us_per_publish[k]));
    const c = (k) => med(rs.map((r) => r.cpu_pct[k]));
    return { sys, n: rs.length, rate: med(rs.map((r) => r.pub_per_s)), delivered: med(rs.map((r) => r.delivered_per_s)),
        server: m("server"), broker: m("broker"), subs: m("subs"), pubs: m("pubs"),
        cs: c("server"), cb: c("broker"), cl: c("subs") + c("pubs"), box: c("box") };
};
const n = row("nchan"), p = row("native");
const lines = [];
lines.push(`# ${wl} CPU budget, ${pubConns} publisher connections: nchan beside pushgate (native)`, "");
lines.push(`${new Date().toISOString()}, ${Math.min(n.n, p.n)} repetition(s), ${cores} cores; pushgate ${commit}, gateway options ${gwopts}.`, "");
lines.push("| system | publishes/s | delivered/s | CPU % server / broker / load generator / box | µs per publish: server | broker | load-gen subscribers | load-gen publishers |");
lines.push("|---|---|---|---|---|---|---|---|");
for (const r of [n, p])
    lines.push(`| ${r.sys === "nchan" ? "nchan (nginx worker)" : "pushgate (gateway)"} | ${f(r.rate)} | ${f(r.delivered)} | ${f(r.cs)} / ${f(r.cb)} / ${f(r.cl)} / ${f(r.box)} | ${f(r.server)} | ${f(r.broker)} | ${f(r.subs)} | ${f(r.pubs)} |`);
const target = ratio * n.rate;
const others = (p.subs + p.pubs + p.broker) * target / 1e6;
const left = (cores - others) * 1e6 / target;
lines.push("", `Medians over repetitions. At ${ratio} × the rate of nchan (${f(target)} publishes/s) the load generator and the broker`,
    `would need ${f(others, 2)} of the ${cores} cores of the box at the cost per publish measured for pushgate; that leaves ${f(Math.max(left, 0))} µs of CPU per`,
    `publish for the gateway, against ${f(p.server)} µs it spends now and ${f(n.server)} µs nginx spends on the same request and frames.`);
process.stdout.write(lines.join("\n") + "\n");
' "$raw" "$wl" "$pub_conns" "$ratio" "$(nproc)" "$gwopts" "$("$here/build_commit.sh" "$build")" | tee "$md"
echo "written: $md (raw runs: $raw)" >&2
