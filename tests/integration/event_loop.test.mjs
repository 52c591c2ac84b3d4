// The event loop (event_loop): the default libev loop, the libuv loop and the lws poll() fallback each carry a whole session
// life: a native subscribe, a REST publish delivered to it, a refused frame closed with its own code (1009, sent
// by lws after the callback returned -1), and SIGTERM closing the rest with 1001 before a clean exit 0. libev and
// libuv also measure the loop's busy share (/metrics), which poll() cannot.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';

import { GATEWAY_BIN, SANITIZE, httpRequest, startStack, wsConnect } from './lib/harness.mjs';
import { subscribeNative } from './lib/native.mjs';

const stacks = [];
after(async () => {
    for (const s of stacks) await s.stop().catch(() => {});
});

const MAX_FRAME = 4096;

async function sessionLife(gateway, loop) {
    const stack = await startStack({ gateway: { ...gateway, max_frame_bytes: MAX_FRAME, shutdown_grace_ms: 30000 } });
    stacks.push(stack);
    assert.match(stack.gw.logs(), new RegExp(`listening on .* loop=${loop}\\b`), 'the gateway runs the asked-for loop');

    const room = `loop-${loop}`;
    const sub = await wsConnect(`${stack.gw.wsUrl}/v1/demo`);
    await subscribeNative(sub, room);

    const res = await httpRequest('POST', `${stack.gw.url}/demo/${room}/publish`, {
        body: JSON.stringify({ n: 1 }),
        headers: { 'Content-Type': 'application/json' },
    });
    assert.equal(res.status, 200, res.body);
    const m = await sub.next((f) => f.type === 'message' && f.room === room);
    assert.deepEqual(m.message, { n: 1 });

    // the loop's busy share (ws_nagle = busy reads it): measured on libev and libuv, unknown on poll()
    const busyShare = async () =>
        /^pushgate_loop_busy_ratio ([0-9.]+)$/m.exec((await httpRequest('GET', `${stack.gw.url}/metrics`)).body)?.[1];
    await new Promise((r) => setTimeout(r, 300)); // from the second tick on
    const share = await busyShare();
    if (loop === 'poll') assert.equal(share, undefined, 'poll(): no busy share');
    else assert.ok(Number(share) >= 0 && Number(share) <= 1, `busy share ${share}`);

    const big = await wsConnect(`${stack.gw.wsUrl}/v1/demo`);
    await big.next((f) => f.type === 'open');
    big.send(JSON.stringify({ type: 'publish', room, message: 'x'.repeat(MAX_FRAME + 100) }));
    assert.equal((await big.closed).code, 1009, 'the close frame left before the socket closed');

    // a second gateway on the same port cannot listen: it says so and exits 1 (lws on libuv still hands back a
    // context without its listening vhost: the gateway must not run on without one)
    const env = { ...process.env };
    if (SANITIZE) env.ASAN_OPTIONS = 'detect_leaks=1';
    const twin = spawnSync(GATEWAY_BIN, ['--config', stack.gw.conf], { env, encoding: 'utf8', timeout: 20000 });
    assert.equal(twin.status, 1, `exit status ${twin.status} signal ${twin.signal}\n${twin.stderr}`);
    assert.match(twin.stderr, /cannot listen on 127\.0\.0\.1:/);

    assert.deepEqual(await stack.gw.stop(), { code: 0, signal: null });
    const info = await sub.closed;
    assert.equal(info.code, 1001, JSON.stringify(info));
    await stack.stop();
}

test('event_loop ev (libev, the default): subscribe, REST publish, close 1009, port taken exits 1, SIGTERM 1001', { timeout: 60000 }, async () => {
    await sessionLife({}, 'ev');
});

test('event_loop uv (libuv): subscribe, REST publish, close 1009, port taken exits 1, SIGTERM 1001', { timeout: 60000 }, async () => {
    await sessionLife({ event_loop: 'uv' }, 'uv');
});

test('an unknown event_loop is refused at start: exit 2, and the message names the choices', () => {
    const env = { ...process.env };
    delete env.PUSHGATE_EVENT_LOOP;
    const r = spawnSync(GATEWAY_BIN, ['--event_loop', 'epoll'], { env, encoding: 'utf8', timeout: 20000 });
    assert.equal(r.status, 2, `exit status ${r.status} signal ${r.signal}\n${r.stderr}`);
    assert.match(r.stderr, /event_loop: expected uv, ev or poll, got "epoll"/);
});

test('event_loop poll: subscribe, REST publish, close 1009, port taken exits 1, SIGTERM 1001', { timeout: 60000 }, async () => {
    await sessionLife({ event_loop: 'poll' }, 'poll');
});

// /proc/PID/limits: [soft, hard] of "Max open files" (hard may be "unlimited": Infinity)
function openFilesLimit(pid) {
    const line = fs.readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    return line.trim().split(/\s+/).slice(3, 5).map((v) => (v === 'unlimited' ? Infinity : Number(v)));
}

test('every gateway process sets its open-files limit to max_sessions + 4096, or max_open_files, under the hard limit', { timeout: 60000 }, async () => {
    // lws walks a table of the soft limit's size on every connection's open and close (gateway/server.c): a soft
    // limit far above what the process uses would cost every connection
    const cases = [
        [{ workers: 2, max_sessions: 100 }, 4196],
        [{ max_open_files: 3000 }, 3000],
    ];
    for (const [gateway, want] of cases) {
        const stack = await startStack({ gateway: { ...gateway, log_level: 'info' } });
        stacks.push(stack);
        const pids = gateway.workers ? [...stack.gw.workerPids().values()] : [stack.gw.proc.pid];
        assert.equal(pids.length, gateway.workers || 1, 'the gateway runs its workers');
        for (const pid of pids) {
            const [soft, hard] = openFilesLimit(pid);
            assert.equal(soft, Math.min(want, hard), `process ${pid}: soft limit ${soft} (hard ${hard})`);
        }
        // a limit that cannot hold max_sessions (10,000 by default) is said at start, once per process
        const warned = stack.gw.logs().split('\n').filter((l) => /WARN.*cannot hold max_sessions/.test(l)).length;
        assert.equal(warned, gateway.max_open_files ? 1 : 0, stack.gw.logs());
        // sessions still open and receive what is published
        const sub = await wsConnect(`${stack.gw.wsUrl}/v1/demo`);
        await subscribeNative(sub, 'limits');
        const res = await httpRequest('POST', `${stack.gw.url}/demo/limits/publish`, { body: '"x"' });
        assert.equal(res.status, 200, res.body);
        await sub.next((f) => f.type === 'message' && f.room === 'limits');
        sub.terminate();
        await stack.stop();
    }
});

// utime + stime of a process, in clock ticks
function cpuTicks(pid) {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(f[11]) + Number(f[12]);
}

for (const [workers, loop] of [[1, 'ev'], [2, 'ev'], [1, 'uv'], [2, 'uv']]) {
    test(`at its open-files limit the gateway neither spins nor floods its log, and serves again once connections close (workers = ${workers}, ${loop})`, { timeout: 60000 }, async () => {
        // accept() failing with EMFILE leaves the listening socket readable: retried at once, it spun the loop at
        // 100 % CPU and logged every try (lws' own listener and a worker's alike)
        const stack = await startStack({ gateway: { workers, max_open_files: 300, event_loop: loop } });
        stacks.push(stack);
        const pids = workers > 1 ? [...stack.gw.workerPids().values()] : [stack.gw.proc.pid];
        const conns = workers * 350; // past the limit of every process
        const socks = [];
        for (let i = 0; i < conns; i++) socks.push(net.connect(stack.listenPort, '127.0.0.1').on('error', () => {}));
        await new Promise((r) => setTimeout(r, 1500));
        const before = pids.map(cpuTicks);
        await new Promise((r) => setTimeout(r, 2000));
        const used = pids.map((p, i) => cpuTicks(p) - before[i]);
        for (const u of used) assert.ok(u < 40, `CPU ticks in 2 s at the limit, per process: ${used}`);
        // lws' own DEBUG lines are left out: on libev one names its accept function for every connection
        const lines = stack.gw.logs().split('\n').filter((l) => !/ DEBUG /.test(l) && /accept|too high/i.test(l)).length;
        assert.ok(lines > 0, 'the limit was met');
        assert.ok(lines <= conns, `${lines} log lines about accepting, for ${conns} connections`);
        for (const s of socks) s.destroy();
        await new Promise((r) => setTimeout(r, 500));
        const sub = await wsConnect(`${stack.gw.wsUrl}/v1/demo`);
        await subscribeNative(sub, 'after-the-limit');
        sub.terminate();
        await stack.stop();
    });
}
