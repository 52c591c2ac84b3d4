// Smoke run of the benchmark's load generator (bench/README.md) against a pushgate + mosquitto stack started
// like the integration tests start theirs: that the tools work (subscribers subscribe, every published message
// is delivered and counted by sequence, nothing acknowledged is lost), never how fast. No nchan here, and no
// timing assertion: performance targets live in the bench (bench/run.sh), not in tests.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import path from 'node:path';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';

import { BUILD_DIR, startStack } from '../tests/integration/lib/harness.mjs';

const LOADGEN = path.join(BUILD_DIR, 'bench', 'pushgate_loadgen');
let stack;

before(async () => {
    stack = await startStack();
});
after(async () => {
    await stack?.stop();
});

function loadgen(args, port = stack.listenPort) {
    return new Promise((resolve) => {
        execFile(LOADGEN, ['--port', String(port), ...args], { timeout: 60000 }, (err, stdout, stderr) => {
            resolve({ code: err ? err.code : 0, out: stdout, err: stderr });
        });
    });
}

async function run(args) {
    const r = await loadgen(args);
    assert.equal(r.code, 0, `loadgen ${args.join(' ')} exited ${r.code}\n${r.out}\n${r.err}`);
    return JSON.parse(r.out.trim());
}

function assertAllDelivered(res, subs, messages, perSub) {
    assert.equal(res.subscribed, subs);
    assert.equal(res.errors, 0);
    assert.equal(res.acked, messages);
    assert.equal(res.pub_errors, 0);
    assert.equal(res.expected, perSub);
    assert.equal(res.delivered, perSub);
    assert.equal(res.lost, 0);
    assert.equal(res.dups, 0);
    assert.ok(res.p50_us > 0 && res.p99_us >= res.p50_us, JSON.stringify(res));
}

test('the load generator is built', () => {
    assert.ok(fs.existsSync(LOADGEN), `${LOADGEN} missing`);
});

test('native subscribers get every REST publish, counted by sequence (tiny W1)', async () => {
    const res = await run(['--target', 'native', '--subs', '10', '--messages', '100', '--drain', '3']);
    assertAllDelivered(res, 10, 100, 1000);
});

test('Pusher subscribers, a paced publisher, several channels (tiny W2/W4)', async () => {
    const res = await run(['--target', 'pusher', '--subs', '10', '--channels', '5', '--messages', '50',
        '--rate', '500', '--pub-conns', '2', '--drain', '3']);
    assertAllDelivered(res, 10, 50, 100);
});

test('an MQTT device publisher reaches native subscribers', async () => {
    const res = await run(['--target', 'native', '--subs', '4', '--channels', '2', '--pub', 'mqtt',
        '--mqtt-port', String(stack.brokerPort), '--messages', '40', '--drain', '3']);
    assertAllDelivered(res, 4, 40, 80);
});

test('subscribers dealt over three processes add up to one result (--sub-procs)', async () => {
    // 7 subscribers over 3 processes and 3 channels: shares of 3, 2 and 2, each with subscribers of several
    // channels; a process whose counts were not added would leave delivered short of expected
    const res = await run(['--target', 'native', '--subs', '7', '--channels', '3', '--sub-procs', '3',
        '--messages', '30', '--drain', '3']);
    assertAllDelivered(res, 7, 30, 70);
    assert.equal(res.subs, 7);
    assert.equal(res.held, 7);
    const refused = await loadgen(['--target', 'native', '--subs', '2', '--sub-procs', '2', '--hold', '1']);
    assert.equal(refused.code, 2, 'a hold is not offered over several processes');
    for (const k of ['0', '9']) {
        const r = await loadgen(['--target', 'native', '--subs', '2', '--sub-procs', k, '--pub', 'none']);
        assert.equal(r.code, 2, `--sub-procs ${k} is refused (1..8)`);
        assert.match(r.err, /usage: loadgen/);
    }
});

test('idle subscribers with RSS sampling and a reconnect storm (tiny W3)', async () => {
    const pids = `${stack.gw.proc.pid},${stack.broker._rec.child.pid}`;
    const res = await run(['--target', 'native', '--subs', '20', '--channels', '20', '--pub', 'none',
        '--rss-pids', pids, '--reconnect-storm']);
    assert.equal(res.subscribed, 20);
    assert.equal(res.errors, 0);
    assert.ok(res.rss_after_kb > 0, JSON.stringify(res));
    assert.ok(res.reconnect_s >= 0, JSON.stringify(res));
});

// What bench/run.sh's BIG relies on: the ready file appears once all are open, SIGUSR1 ends a long hold, and the
// result says how many were still held; idle connections without a subscription, from 127.0.0.2 and .3.
test('a held load generator: ready file, SIGUSR1 ends the hold, held counted (tiny BIG)', async () => {
    const ready = path.join(stack.dir, 'lg.ready');
    const child = execFile(LOADGEN, ['--port', String(stack.listenPort), '--target', 'native', '--subs', '12',
        '--pub', 'none', '--no-subscribe', '--src-addrs', '2', '--src-first', '2', '--ready-file', ready,
        '--hold', '600'], { timeout: 60000 }, () => {});
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    const deadline = Date.now() + 30000;
    while (!fs.existsSync(ready) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(fs.existsSync(ready), 'no ready file');
    child.kill('SIGUSR1');
    assert.equal(await exited, 0, out);
    const res = JSON.parse(out.trim());
    assert.equal(res.subscribed, 12);
    assert.equal(res.held, 12);
    assert.equal(res.errors, 0);
    assert.ok(res.last_sub_ns >= res.first_ns && res.first_ns > 0, out);
});

// bench/lg_hop.c, run beside W2: as the gateway's broker account, every QoS 1 publish is read back through the
// broker on its own subscription, and a latency is reported for each.
test('the broker hop tool reads back every publish (tiny W2H)', async () => {
    const hop = path.join(BUILD_DIR, 'bench', 'pushgate_hop');
    const r = await new Promise((resolve) => {
        execFile(hop, ['--port', String(stack.brokerPort), '--user', 'pushgate', '--password', stack.gatewayUser.password,
            '--rate', '200', '--duration', '1'], { timeout: 30000 }, (err, stdout, stderr) => {
            resolve({ code: err ? err.code : 0, out: stdout, err: stderr });
        });
    });
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
    const res = JSON.parse(r.out.trim());
    assert.ok(res.sent >= 150, r.out);
    assert.equal(res.received, res.sent, r.out);
    assert.equal(res.lost, 0, r.out);
    assert.ok(res.p50_us > 0 && res.p99_us >= res.p50_us, r.out);
});

test('the broker hop tool refuses to run without the gateway\'s broker account', async () => {
    const hop = path.join(BUILD_DIR, 'bench', 'pushgate_hop');
    const r = await new Promise((resolve) => {
        execFile(hop, ['--port', String(stack.brokerPort), '--user', 'pushgate'], { timeout: 30000 },
            (err, stdout, stderr) => resolve({ code: err ? err.code : 0, out: stdout, err: stderr }));
    });
    assert.equal(r.code, 2, r.err);
    assert.equal(r.out, '');
    assert.match(r.err, /usage: pushgate_hop --port P --user U --password PW/);
});

// A loopback server for the two tests below; onSocket(sock, n) gets every connection (n counts from 1).
async function withServer(onSocket, fn) {
    let n = 0;
    const sockets = new Set();
    const srv = net.createServer((sock) => {
        sockets.add(sock);
        sock.on('error', () => {});
        sock.on('close', () => sockets.delete(sock));
        onSocket(sock, ++n);
    });
    await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
    try {
        return await fn(srv.address().port);
    } finally {
        for (const sock of sockets) sock.destroy();
        await new Promise((resolve) => srv.close(resolve));
    }
}

// A connection the server never answers (as one whose handshake ACK a full accept queue dropped: the client thinks
// it is connected, the server never saw it) ends as an error after --open-timeout, long before the opening phase's
// --connect-timeout, and is counted; it is never left waiting with no error.
test('an attempt the server never answers ends as a counted error at --open-timeout', async () => {
    const r = await withServer(() => {}, (port) => loadgen(['--target', 'native', '--subs', '3', '--pub', 'none',
        '--open-timeout', '1', '--connect-timeout', '50'], port));
    assert.equal(r.code, 1, r.err);
    const res = JSON.parse(r.out.trim());
    assert.equal(res.subscribed, 0);
    assert.equal(res.errors, 3);
    assert.equal(res.open_timeouts, 3);
    assert.equal(res.retried, 0);
});

// --retries: attempts closed before the server answered are tried again (here every other connection is dropped
// after its upgrade request arrived; the others reach the gateway), and counted as retried, not as errors.
test('attempts dropped before an answer are tried again with --retries', async () => {
    const r = await withServer((sock, n) => {
        if (n % 2 === 1) {
            sock.once('data', () => sock.destroy());
            return;
        }
        const up = net.connect(stack.listenPort, '127.0.0.1');
        up.on('error', () => sock.destroy());
        sock.on('close', () => up.destroy());
        up.on('close', () => sock.destroy());
        sock.pipe(up).pipe(sock);
    }, (port) => loadgen(['--target', 'native', '--subs', '3', '--channels', '3', '--pub', 'none',
        '--retries', '2', '--connect-concurrency', '1'], port));
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
    const res = JSON.parse(r.out.trim());
    assert.equal(res.subscribed, 3);
    assert.equal(res.errors, 0);
    assert.equal(res.retried, 3);
});

// bench/build_commit.sh names a build by its source tree's commit: "-dirty" for an edit that can change what is
// measured, not for documentation or a results file written while a run goes on.
test('build_commit.sh: -dirty for a source edit, not for documentation or results', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pg-buildcommit-'));
    try {
        const git = (...args) => execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8' }).trim();
        git('init', '-q');
        fs.mkdirSync(path.join(dir, 'bench', 'results'), { recursive: true });
        fs.writeFileSync(path.join(dir, 'main.c'), 'int main(void) { return 0; }\n');
        fs.writeFileSync(path.join(dir, 'README.md'), 'docs\n');
        fs.writeFileSync(path.join(dir, 'bench', 'results', 'r.md'), 'result\n');
        git('add', '.');
        git('-c', 'user.name=t', '-c', 'user.email=t@localhost', 'commit', '-q', '-m', 'one');
        const head = git('rev-parse', '--short', 'HEAD');
        const build = path.join(dir, 'build');
        fs.mkdirSync(build);
        fs.writeFileSync(path.join(build, 'CMakeCache.txt'), `CMAKE_HOME_DIRECTORY:INTERNAL=${dir}\n`);
        const tool = path.join(path.dirname(new URL(import.meta.url).pathname), 'build_commit.sh');
        const name = () => execFileSync(tool, [build], { encoding: 'utf8' }).trim();
        assert.equal(name(), head);
        fs.appendFileSync(path.join(dir, 'README.md'), 'more\n');
        fs.appendFileSync(path.join(dir, 'bench', 'results', 'r.md'), 'more\n');
        assert.equal(name(), head, 'documentation and results edited');
        fs.appendFileSync(path.join(dir, 'main.c'), '/* edited */\n');
        assert.equal(name(), `${head}-dirty`, 'a source file edited');
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
});
