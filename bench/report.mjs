// Turns the raw results of bench/run.sh (one JSON object per line: one load-generator run, tagged with
// rep, workload and system) into the table it prints and writes as <out>.md and <out>.json, with the
// machine described. A value per system is the median over repetitions; a ratio is pushgate ÷ nchan computed
// per repetition from the same pass, then the median of those ratios (for latencies, times and memory a
// ratio under 1 is better for pushgate; for throughput over 1 is).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execSync } from 'node:child_process';

const args = process.argv.slice(2);
const raw = args[0];
const opt = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : ''; };
const label = opt('--label');
const build = opt('--build');
const commit = opt('--commit'); // bench/build_commit.sh's answer when the run began
const params = opt('--params');
const out = opt('--out') || raw.replace(/\.jsonl$/, '');

const runs = fs.readFileSync(raw, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
for (const r of runs) {
    if (r.workload !== 'BIG') continue;
    r.gateway_rss_mb = r.gateway_rss_kb / 1024;
    r.broker_rss_mb = r.broker_rss_kb / 1024;
}

// W2's p50 less the broker hop's p50 measured in the same repetition (W2H, bench/lg_hop.c): an estimate of the
// gateway's own share of a W2 delivery, set beside nchan's whole p50 (nchan has no hop).
for (const r of runs) {
    if (r.workload !== 'W2') continue;
    const hop = runs.find((h) => h.workload === 'W2H' && h.rep === r.rep);
    r.p50_less_hop_us = r.system === 'nchan' ? r.p50_us : hop && Number.isFinite(hop.p50_us) ? r.p50_us - hop.p50_us : NaN;
}

const METRICS = [
    ['W1', 'delivered_per_s', 'W1 fan-out 1 ch × 1000 subs, max rate: delivered msgs/s', 'higher'],
    ['W1', 'p50_us', 'W1 p50 latency under that load (µs)', 'lower'],
    ['W1', 'p99_us', 'W1 p99 latency under that load (µs)', 'lower'],
    ['W1M', 'delivered_per_s', 'W1 with an MQTT device publisher (QoS 1): delivered msgs/s (no nchan equivalent)', 'higher'],
    ['W1M', 'p50_us', 'W1 MQTT publisher: p50 latency (µs)', 'lower'],
    ['W1X', 'delivered_per_s', 'W1 across two gateways (publishers → A, 1000 subs → B): delivered msgs/s (no nchan equivalent)', 'higher'],
    ['W1X', 'p50_us', 'W1 across two gateways: p50 latency (µs)', 'lower'],
    ['W2', 'p50_us', 'W2 100 subs, 1000 msgs/s: p50 latency (µs)', 'lower'],
    ['W2', 'p99_us', 'W2 p99 latency (µs)', 'lower'],
    ['W2H', 'p50_us', 'W2 the broker hop alone: a QoS 1 publish read back through mosquitto at 1000 msgs/s, p50 (µs) (nchan has no hop)', 'lower'],
    ['W2H', 'p99_us', 'W2 the broker hop alone: p99 (µs)', 'lower'],
    ['W2', 'p50_less_hop_us', 'W2 p50 less the hop\'s p50 (pushgate\'s own share; nchan: its whole p50) (µs)', 'lower'],
    ['W3', 'rss_per_conn_kb', 'W3 idle subscribers, one channel each: RSS per connection, server + broker (KB)', 'lower'],
    ['W3', 'subscribe_s', 'W3 time to open + subscribe all (s)', 'lower'],
    ['W4', 'delivered_per_s', 'W4 1000 ch × 10 subs, round-robin max rate: delivered msgs/s', 'higher'],
    ['STORM', 'reconnect_s', 'reconnect storm: all dropped at once, time until all resubscribed (s)', 'lower'],
    ['BIG', 'subs', 'BIG idle connections requested', 'higher'],
    ['BIG', 'held', 'BIG connections held to the end (subscribed, or open with --big-idle)', 'higher'],
    ['BIG', 'errors', 'BIG subscriber errors', 'lower'],
    ['BIG', 'subscribe_s', 'BIG time to open + subscribe all, every load generator together (s)', 'lower'],
    ['BIG', 'rss_mb', 'BIG RSS while all held: every gateway process + mosquitto (MB)', 'lower'],
    ['BIG', 'gateway_rss_mb', 'BIG of which the gateway, parent + workers (MB)', 'lower'],
    ['BIG', 'broker_rss_mb', 'BIG of which mosquitto (MB)', 'lower'],
    ['BIG', 'pss_mb', 'BIG PSS of the same processes (shared pages counted once) (MB)', 'lower'],
    ['BIG', 'rss_per_conn_kb', 'BIG RSS per connection, growth while opening ÷ held (KB)', 'lower'],
    ['BIG', 'rss_total_per_conn_kb', 'BIG RSS per connection, total ÷ held (KB)', 'lower'],
];

const median = (xs) => {
    const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
    if (!v.length) return NaN;
    const m = v.length >> 1;
    return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
const fmt = (x) => {
    if (!Number.isFinite(x)) return '–';
    if (Number.isInteger(x) && Math.abs(x) < 1000) return String(x);
    if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString('en-US');
    if (Math.abs(x) >= 10) return x.toFixed(1);
    return x.toPrecision(3);
};
const get = (wl, sys, rep) => runs.find((r) => r.workload === wl && r.system === sys && r.rep === rep);
const reps = [...new Set(runs.map((r) => r.rep))].sort((a, b) => a - b);
const systems = ['nchan', 'native', 'pusher'];

const rows = [];
for (const [wl, field, title, better] of METRICS) {
    if (!runs.some((r) => r.workload === wl)) continue;
    const row = { workload: wl, metric: field, title, better, median: {}, per_rep: {}, ratio: {} };
    for (const sys of systems) {
        const vals = reps.map((rep) => get(wl, sys, rep)?.[field]);
        row.per_rep[sys] = vals;
        row.median[sys] = median(vals);
    }
    for (const sys of ['native', 'pusher']) {
        const rs = reps.map((rep) => {
            const a = get(wl, sys, rep)?.[field], b = get(wl, 'nchan', rep)?.[field];
            return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : NaN;
        });
        row.ratio[sys] = { per_rep: rs, median: median(rs) };
    }
    rows.push(row);
}

// Correctness per system: lost acknowledged messages, subscriber errors, publish errors (summed over runs). A run
// failed when the load generator gave no result, or when not every connection it asked for subscribed (W1-W4,
// STORM) or was still held at the end (BIG; "held" is also in a load generator's result): its other numbers
// are then about fewer connections than the workload says.
const missing = (r) => Math.max(0, (r.subs || 0) - (r.held ?? r.subscribed ?? 0));
const health = {};
for (const r of runs) {
    const h = (health[`${r.workload} ${r.system}`] ??= { lost: 0, dups: 0, errors: 0, pub_errors: 0, failed: 0, closed_early: 0, missing: 0 });
    for (const k of ['lost', 'dups', 'errors', 'pub_errors', 'closed_early']) h[k] += r[k] || 0;
    h.missing += missing(r);
    if (r.failed || missing(r) > 0) h.failed++;
}

const sh = (cmd) => { try { return execSync(cmd, { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim(); } catch { return ''; } };
const machine = {
    nproc: os.cpus().length,
    cpu: os.cpus()[0]?.model,
    memory_mb: Math.round(os.totalmem() / 1048576),
    kernel: `${os.type()} ${os.release()}`,
    os: sh('. /etc/os-release && echo "$PRETTY_NAME"'),
    nofile_hard: sh('sh -c "ulimit -Hn"'),
    nginx: sh('nginx -v 2>&1'),
    nchan: sh("dpkg-query -W -f '${Version}' libnginx-mod-nchan"),
    mosquitto: sh("dpkg-query -W -f '${Version}' mosquitto"),
    libwebsockets: sh("dpkg-query -W -f '${Version}' libwebsockets17") || sh('pkg-config --modversion libwebsockets'),
    pushgate: commit || sh(`${JSON.stringify(path.join(path.dirname(new URL(import.meta.url).pathname), 'build_commit.sh'))} ${JSON.stringify(build || '')}`),
    build: (build ? sh(`sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' ${build}/CMakeCache.txt`) : '') || 'RelWithDebInfo (the default)',
};

let md = `# pushgate beside nchan${label ? `: ${label}` : ''}\n\n`;
md += `${new Date().toISOString()}, ${reps.length} repetition(s). Machine: ${machine.nproc} × ${machine.cpu}, `
    + `${machine.memory_mb} MB, ${machine.kernel}, ${machine.os}; ${machine.nginx} + nchan ${machine.nchan} (one worker); `
    + `mosquitto ${machine.mosquitto}; libwebsockets ${machine.libwebsockets}; pushgate ${machine.pushgate} (${machine.build}).\n\n`
    + (params ? `Parameters: ${params}; drain after publishing: until 1 s without a message, at most 30 s.\n\n` : '');
md += '| metric | nchan | pushgate native | pushgate Pusher | native ÷ nchan (per rep) | Pusher ÷ nchan (per rep) |\n';
md += '|---|---|---|---|---|---|\n';
for (const r of rows) {
    const ratio = (s) => `**${fmt(r.ratio[s].median)}** (${r.ratio[s].per_rep.map(fmt).join(', ')})`;
    md += `| ${r.title} | ${fmt(r.median.nchan)} | ${fmt(r.median.native)} | ${fmt(r.median.pusher)} | ${ratio('native')} | ${ratio('pusher')} |\n`;
}
md += '\nValues are medians over repetitions; ratios are pushgate ÷ nchan per repetition (same pass), median in bold.\n\n';
md += '| run | lost acknowledged | duplicates | subscriber errors | closed by server | connections not subscribed or not held | publish errors | failed runs |\n|---|---|---|---|---|---|---|---|\n';
for (const [k, h] of Object.entries(health)) md += `| ${k} | ${h.lost} | ${h.dups} | ${h.errors} | ${h.closed_early} | ${h.missing} | ${h.pub_errors} | ${h.failed} |\n`;
const bigs = runs.filter((r) => r.workload === 'BIG');
if (bigs.length) {
    md += '\nBIG per repetition: requested / held (server side established), errors, open s, RSS MB gateway + broker '
        + '(per gateway process, KB), PSS MB, workers × load generators × source addresses:\n\n';
    for (const r of bigs) {
        md += `- rep ${r.rep}: ${r.subs} / ${r.held} (${r.server_established}), ${r.errors} errors, ${fmt(r.subscribe_s)} s, `
            + `${fmt(r.rss_mb)} MB = ${fmt(r.gateway_rss_mb)} + ${fmt(r.broker_rss_mb)} (${(r.gateway_rss_per_process_kb || []).join(', ')}), `
            + `PSS ${fmt(r.pss_mb)} MB, ${r.workers} × ${r.loadgens} × ${r.src_addrs}, `
            + `${!r.subscribe ? 'no subscription' : r.channels && r.channels < r.subs ? `${r.channels} channels shared` : 'one channel each'}, measured ${r.hold_s} s after all were open`
            + `${r.worker_restarts ? ', A WORKER RESTARTED' : ''}${r.failed ? ', FAILED' : ''}\n`;
    }
}

process.stdout.write(md);
fs.writeFileSync(`${out}.md`, md);
fs.writeFileSync(`${out}.json`, JSON.stringify({ label, params, machine, rows, health, runs }, null, 2) + '\n');
process.stderr.write(`\nwritten: ${out}.md, ${out}.json (raw runs: ${raw})\n`);
