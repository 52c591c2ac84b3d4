#!/bin/bash
# CPU profile of one workload against pushgate (bench/README.md, "Profiles"): starts the gateway and its
# mosquitto as bench/run.sh does, runs the load generator, and once the publishers are running (all
# subscribers subscribed) records the gateway with perf (DWARF call graphs) and the broker (flat) for a few
# seconds of the steady state. Also writes the CPU split between gateway, broker and load generator
# (utime + stime from /proc over the same window). Condensed text reports go to --out; perf.data stays in /tmp.
#
#   bench/profile.sh W1|W4 [--target native|pusher|nchan] [--secs S] [--freq HZ] [--evlib poll|uv] [--build DIR]
#                    [--out DIR]
#
# With --target nchan it profiles the nginx worker (bench/nchan.sh) instead, for comparison. The syscall
# counts (perf stat) of the server in the window go into the .cpu.txt report.
#
# Needs perf and kernel.perf_event_paranoid <= 0 (or root). For readable call graphs build the gateway with
# -DCMAKE_BUILD_TYPE=RelWithDebInfo (the default) and, optionally, CMAKE_C_FLAGS=-fno-omit-frame-pointer.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
wl=${1:?workload W1 or W4}; shift
target=native secs=8 freq=499 evlib=poll build="$repo/build" out="$here/results/profiles"
while [ $# -gt 0 ]; do
    case $1 in
    --target) target=$2; shift ;;
    --secs) secs=$2; shift ;;
    --freq) freq=$2; shift ;;
    --evlib) evlib=$2; shift ;;
    --build) build=$(cd "$2" && pwd); shift ;;
    --out) out=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
case $wl in
W1) args="--subs 1000 --channels 1 --size 100 --pub-conns 4" ;;
W4) args="--subs 10000 --channels 1000 --size 100 --pub-conns 4 --src-addrs 4" ;;
*) echo "W1 or W4" >&2; exit 2 ;;
esac
ulimit -n "$(ulimit -Hn)"
mkdir -p "$out"
tmp=$(mktemp -d /tmp/pgprof-XXXXXX)
stack_pid="" lg_pid="" nginx_pid="" nginx_dir=""
cleanup() {
    [ -n "$lg_pid" ] && kill "$lg_pid" 2>/dev/null || true
    [ -n "$stack_pid" ] && { exec 9>&-; kill "$stack_pid" 2>/dev/null || true; wait "$stack_pid" 2>/dev/null || true; }
    [ -n "$nginx_pid" ] && { kill "$nginx_pid" 2>/dev/null || true; sleep 0.5; rm -rf "$nginx_dir"; }
    return 0
}
trap cleanup EXIT

if [ "$target" = nchan ]; then
    port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
    read -r nginx_pid nginx_dir < <("$here/nchan.sh" "$port")
    gw=$(pgrep -P "$nginx_pid" | head -1) br=$nginx_pid # the worker; the master idles
else
    mkfifo "$tmp/stack.in"
    PUSHGATE_BUILD_DIR="$build" node "$here/stack.mjs" <"$tmp/stack.in" >"$tmp/stack.json" &
    stack_pid=$!
    exec 9>"$tmp/stack.in"
    for _ in $(seq 200); do [ -s "$tmp/stack.json" ] && break; sleep 0.05; done
    port=$(node -p 'require(process.argv[1]).port' "$tmp/stack.json")
    gw=$(node -p 'require(process.argv[1]).gatewayPid' "$tmp/stack.json")
    br=$(node -p 'require(process.argv[1]).brokerPid' "$tmp/stack.json")
fi

# Publish long enough to cover subscribing, the recording and a margin.
# shellcheck disable=SC2086
"$build/bench/pushgate_loadgen" --evlib "$evlib" --target "$target" --port "$port" --rate 0 --duration $((secs + 6)) $args \
    >"$tmp/lg.json" 2>"$tmp/lg.err" &
lg_pid=$!
for _ in $(seq 600); do pgrep -P "$lg_pid" >/dev/null && break; sleep 0.1; done
sleep 1 # past the publishers' first connections

cpu() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
cpu_tree() { local s=0 p; for p in "$@"; do s=$((s + $(cpu "$p"))); done; echo "$s"; }
pubs=$(pgrep -P "$lg_pid" | tr '\n' ' ')
ksirq=$(pgrep -x 'ksoftirqd/[0-9]+' | tr '\n' ' ')
g0=$(cpu "$gw") b0=$(cpu "$br") l0=$(cpu "$lg_pid") p0=$(cpu_tree $pubs) k0=$(cpu_tree $ksirq) t0=$(date +%s.%N)
read -r _ u0 n0 s0 i0 w0 q0 sq0 _ </proc/stat
perf record -q -o "$tmp/broker.data" -F "$freq" -p "$br" -- sleep "$secs" 2>/dev/null &
perf_br=$!
perf stat -x, -o "$tmp/sys.txt" -e 'syscalls:sys_enter_sendto,syscalls:sys_enter_writev,syscalls:sys_enter_write,syscalls:sys_enter_poll,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_recvfrom,syscalls:sys_enter_read,raw_syscalls:sys_enter' -p "$gw" -- sleep "$secs" 2>/dev/null &
perf_sys=$!
perf record -q -o "$tmp/gw.data" -F "$freq" --call-graph dwarf,16384 -p "$gw" -- sleep "$secs" 2>/dev/null
wait "$perf_br" || true
wait "$perf_sys" || true
g1=$(cpu "$gw") b1=$(cpu "$br") l1=$(cpu "$lg_pid") p1=$(cpu_tree $pubs) k1=$(cpu_tree $ksirq) t1=$(date +%s.%N)
read -r _ u1 n1 s1 i1 w1 q1 sq1 _ </proc/stat
wait "$lg_pid" || true
lg_pid=""

set +e +o pipefail # reports: `head` closing a pipe early is fine
name="$out/$wl-$target-$("$here/build_commit.sh" "$build")"
hz=$(getconf CLK_TCK)
{
    echo "# CPU over the ${secs} s window (percent of one core; the box has $(nproc)); for nchan 'pushgate' is the"
    echo "# nginx worker and 'mosquitto' the nginx master"
    awk -v hz="$hz" -v t="$(echo "$t1 - $t0" | bc)" -v g=$((g1 - g0)) -v b=$((b1 - b0)) -v l=$((l1 - l0)) \
        -v p=$((p1 - p0)) -v k=$((k1 - k0)) -v busy=$(((u1 + n1 + s1 + q1 + sq1) - (u0 + n0 + s0 + q0 + sq0))) \
        -v idle=$(((i1 + w1) - (i0 + w0))) 'BEGIN {
        printf "pushgate %.0f %%\nmosquitto %.0f %%\nloadgen subscribers %.0f %%\nloadgen publishers %.0f %%\n",
            100*g/hz/t, 100*b/hz/t, 100*l/hz/t, 100*p/hz/t;
        printf "ksoftirqd (loopback receive work deferred out of the senders) %.0f %%\n", 100*k/hz/t;
        printf "whole box busy %.0f %% of %d %% (incl. other processes and softirq)\n", 100*busy/hz/t, 100*(busy+idle)/hz/t }'
    echo
    echo "# syscalls of the server process in the window (perf stat: count,,event)"
    grep -v '^#' "$tmp/sys.txt" | grep -v '^$' | cut -d, -f1,3
    echo
    echo "# load generator result (whole run; delivered_per_s is over the whole publishing phase)"
    cat "$tmp/lg.json"
} >"$name.cpu.txt"

groups_py=$(cat <<'PY'
import sys, re, collections
# Reads `perf script -F comm,ip,sym,dso` and puts each sample in one group: the whole stack first (loopback
# receive work run inside a send), then the frame nearest the leaf that a rule names, else by the leaf's library.
rules = [
 ('malloc/free', re.compile(r'^(malloc|free|calloc|realloc|cfree|_int_malloc|_int_free|__libc_malloc|__libc_free|__libc_calloc|__libc_realloc|_int_realloc|malloc_consolidate|tcache\w*|unlink_chunk\w*)\b')),
 ('JSON (jansson)', re.compile(r'^(json_|jansson|dump_|hashtable_|lex_|parse_)')),
 ('timers (lws_sul / lws_dll2)', re.compile(r'^(lws_dll2|__lws_sul|lws_sul|lws_set_timeout|__lws_set_timeout|lws_validity)')),
 ('out-queue (pg_outq_*)', re.compile(r'^pg_outq_')),
 ('load tick (pg_publish_load_tick)', re.compile(r'^pg_publish_load_tick')),
 ('fan-out + encode', re.compile(r'^(nchan_|pg_fanout|on_channel|pg_dispatch|native_|pusher_|pg_native|pg_pusher|pg_encode|encode_|pg_frame)')),
 ('write path + send()/writev() syscall', re.compile(r'^(__libc_send|__send|send|lws_write|lws_issue_raw|__lws_issue_raw|lws_ssl_capable_write|pg_ws_writeable|lws_handle_POLLOUT_event|writev|__writev|__GI___writev|ngx_writev|ngx_linux_sendfile_chain|ngx_http_write_filter|ngx_output_chain|ngx_http_output_filter)\b')),
 ('event loop wait: poll() / epoll_wait()', re.compile(r'^(__GI___poll|__poll|poll|ppoll|__x64_sys_poll|do_sys_poll|epoll_wait|__x64_sys_epoll_wait)\b')),
 ('bridge / libmosquitto receive', re.compile(r'^(mosquitto_|pg_bridge|pg__bridge|mqtt_callback|packet__|handle__|net__)')),
 ('HTTP publish path (REST)', re.compile(r'^(pg_http|http_|pg_rest|rest_|pg_publish)')),
]
cats = collections.Counter(); kern = collections.Counter(); total = 0
stack = []
def flush():
    global total, stack
    if not stack: return
    total += 1
    leaf_kernel = stack[0][1].startswith('[kernel')
    cat = None
    if any(x[0] in ('net_rx_action', '__netif_receive_skb_one_core', 'process_backlog') for x in stack):
        cat = 'loopback: the subscriber side TCP receive (softirq run inside our send)'
    for sym, dso in ([] if cat else stack):
        for name, rx in rules:
            if rx.match(sym): cat = name; break
        if cat: break
    if not cat:
        d = stack[0][1]
        if 'libwebsockets' in d or any('libwebsockets' in x[1] for x in stack[:3]): cat = 'lws service (other)'
        elif leaf_kernel: cat = 'kernel (other syscalls, irq)'
        elif 'pushgate' in d: cat = 'pushgate (other)'
        else: cat = 'other (%s)' % d.split('/')[-1]
    cats[cat] += 1
    if leaf_kernel: kern[cat] += 1
    stack = []
for line in sys.stdin:
    if not line.strip(): flush(); continue
    if line[0] not in ' \t': flush(); continue
    m = re.match(r'\s+[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$', line)
    if not m: continue
    sym = re.sub(r'\+0x[0-9a-f]+$', '', m.group(1)); sym = sym.replace(' (inlined)', '')
    stack.append((sym, m.group(2)))
flush()
print('| group | share of the server process samples | of which in the kernel |')
print('|---|---|---|')
for c, n in cats.most_common():
    print('| %s | %.1f %% | %.1f %% |' % (c, 100.0*n/total, 100.0*kern[c]/total))
print('\n%d samples' % total)
PY
)
rep() { perf report -i "$1" --stdio --no-header "${@:2}" 2>/dev/null | grep -v '^$' | grep -v '^#' ; }
rep "$tmp/gw.data" --no-children --sort dso,sym -g none --percent-limit 0.4 | head -45 >"$name.self.txt"
rep "$tmp/gw.data" --children --sort sym -g none --percent-limit 1.5 | head -45 >"$name.children.txt"
rep "$tmp/gw.data" --no-children --sort dso -g none | head -20 >"$name.dso.txt"
[ "$target" = nchan ] || rep "$tmp/broker.data" --no-children --sort dso,sym --percent-limit 1 | head -40 >"$name.broker.txt"
cp "$tmp/gw.data" "/tmp/pgprof-$wl-$target.gw.data"
perf script -i "$tmp/gw.data" -F comm,ip,sym,dso 2>/dev/null | python3 -c "$groups_py" >"$name.groups.md"
echo "$name.*  (perf.data: /tmp/pgprof-$wl-$target.gw.data)"
rm -rf "$tmp"
