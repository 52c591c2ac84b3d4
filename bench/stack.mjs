// Starts pushgate and its mosquitto (with the pushgate_auth plugin) on free loopback ports, the way the
// integration tests do (tests/integration/lib/harness.mjs), prints one JSON line
// {"port","brokerPort","gatewayPid","brokerPid","dir"} and keeps them running until stdin closes or
// SIGTERM/SIGINT arrives, then stops both (gateway first, as the tests do).
// Options (environment): PUSHGATE_BUILD_DIR (the build to run), BENCH_GATEWAY_OPTS (JSON object of extra
// pushgate.conf options, e.g. '{"workers":2}').
import { startStack } from '../tests/integration/lib/harness.mjs';

const extra = process.env.BENCH_GATEWAY_OPTS ? JSON.parse(process.env.BENCH_GATEWAY_OPTS) : {};
const stack = await startStack({
    apps: [{ id: 'demo', key: 'demo-key', secret: 'demo-secret', require_auth: false }],
    gateway: { log_level: 'warn', max_sessions: 1000000, ...extra },
});
process.stdout.write(JSON.stringify({
    port: stack.listenPort,
    brokerPort: stack.brokerPort,
    gatewayPid: stack.gw.proc.pid,
    brokerPid: stack.broker._rec.child.pid,
    dir: stack.dir,
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
