// Starts pushgate and its mosquitto (with the pushgate_auth plugin) on free loopback ports, the way the
// integration tests do (tests/integration/lib/harness.mjs), prints one JSON line
// {"port","brokerPort","gatewayPid","gatewayPids" (with its workers),"brokerPid","dir"} and keeps them running until stdin closes or
// SIGTERM/SIGINT arrives, then stops both (gateway first, as the tests do).
// Options (environment): PUSHGATE_BUILD_DIR (the build to run), BENCH_GATEWAY_OPTS (JSON object of extra
// pushgate.conf options, e.g. '{"workers":2}'), BENCH_GATEWAYS=2 (a second gateway node on the same broker: its
// port and pid are added as "port2", "gatewayPid2").
import fs from 'node:fs';

import { freePort, startStack } from '../tests/integration/lib/harness.mjs';

// A gateway's processes: itself and, with workers, its worker children (whose memory W3 counts too).
function processTree(pid) {
    let kids = [];
    try {
        kids = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
        // no /proc children list on this kernel: the parent alone
    }
    return [pid, ...kids];
}

const extra = process.env.BENCH_GATEWAY_OPTS ? JSON.parse(process.env.BENCH_GATEWAY_OPTS) : {};
const stack = await startStack({
    apps: [{ id: 'demo', key: 'demo-key', secret: 'demo-secret', require_auth: false }],
    gateway: { log_level: 'warn', max_sessions: 1000000, ...extra },
    // the broker logs as conf/mosquitto.conf ships it: the tests' log line per packet, read by this process, cost
    // the broker a write and this process a wakeup for every message
    brokerOptions: { logTypes: ['error', 'warning', 'notice'] },
});
const first = stack.gw;
const second = {};
if (process.env.BENCH_GATEWAYS === '2') {
    const port2 = await freePort();
    const gw2 = await stack.startGateway({ port: port2, args: ['--listen_port', String(port2)] });
    Object.assign(second, { port2, gatewayPid2: gw2.proc.pid, gatewayPids2: processTree(gw2.proc.pid) });
}
process.stdout.write(JSON.stringify({
    port: stack.listenPort,
    brokerPort: stack.brokerPort,
    gatewayPid: first.proc.pid,
    gatewayPids: processTree(first.proc.pid),
    brokerPid: stack.broker._rec.child.pid,
    dir: stack.dir,
    ...second,
}) + '\n');

let stopping = false;
async function stop() {
    if (stopping) return;
    stopping = true;
    try {
        await stack.stop();
        process.exit(0);
    } catch (err) {
        process.stderr.write(`${err.message}\n`);
        process.exit(1);
    }
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('close', stop);
process.stdin.resume();
