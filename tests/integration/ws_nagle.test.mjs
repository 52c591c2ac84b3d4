// How a WebSocket's socket sends (core/ws.c), read off the gateway's own end of the connection by
// pushgate_sockopt_tool (which takes a copy of the gateway's socket: it needs root, as the suite runs).
// ws_nagle: whether the kernel gathers small frames (Nagle) or sends each one at once (TCP_NODELAY). "off" and
// "on" hold from the first frame; "busy" turns on while the event loop is busier than ws_nagle_busy_percent and
// off again once it is not, each socket at its next write, and /metrics shows the busy share and the state.
// The greeting: the handshake's answer and the protocol's first frame leave in one TCP segment.
// Frames queued for a session in one loop pass leave in one send() (core/gather.c).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

import { BUILD_DIR, GATEWAY_BIN, httpRequest, startStack, waitFor, wsConnect } from './lib/harness.mjs';
import { isMessage, nativeSubscriber, publishRest } from './lib/native.mjs';
import { DEMO, PUSHER_QUERY, established, isEvent, pusherServer } from './lib/pusher.mjs';

const TOOL = path.join(BUILD_DIR, 'tests', 'integration', 'pushgate_sockopt_tool');
const stacks = [];
const sockets = [];
after(async () => {
    for (const c of sockets) c.terminate();
    for (const s of stacks) await s.stop().catch(() => {});
});

async function gateway(options) {
    const stack = await startStack({ gateway: options });
    stacks.push(stack);
    return stack.gw;
}

const subscriber = (gw, room) => nativeSubscriber(gw, room, sockets);
const publish = publishRest;

// Publishes one message and waits for c to have it: the gateway has then written to c's socket.
let serial = 0;
async function delivered(gw, c, room) {
    const n = ++serial;
    const r = await publish(gw, room, { n });
    assert.equal(r.status, 200, r.body);
    await c.next(isMessage(room, (f) => f.message.n === n));
}

// What pushgate_sockopt_tool reads off the gateway's socket for client c: the value on its line `name N`.
function sockopt(gw, c, name) {
    const pids = [gw.proc.pid, ...gw.workerPids().values()].map(String);
    const r = spawnSync(TOOL, [String(c.ws._socket.localPort), ...pids], { encoding: 'utf8', timeout: 10000 });
    assert.equal(r.status, 0, `pushgate_sockopt_tool: exit ${r.status}\n${r.stdout}${r.stderr}`);
    const m = new RegExp(`^${name} (-?\\d+)$`, 'm').exec(r.stdout);
    assert.ok(m, r.stdout);
    return Number(m[1]);
}

// TCP_NODELAY (0 or 1) of the gateway's socket for client c.
const nodelay = (gw, c) => sockopt(gw, c, 'nodelay');

async function metric(gw, name) {
    const r = await httpRequest('GET', `${gw.url}/metrics`);
    assert.equal(r.status, 200);
    const m = new RegExp(`^${name} ([0-9.]+)$`, 'm').exec(r.body);
    return m ? Number(m[1]) : undefined;
}

// "off" and "on" hold from the first write: TCP_NODELAY 1 (each frame leaves at once) or 0 (the kernel gathers)
for (const [mode, expected] of [['off', 1], ['on', 0]]) {
    test(`ws_nagle = ${mode}: TCP_NODELAY ${expected} from the first write`, { timeout: 60000 }, async () => {
        const gw = await gateway({ ws_nagle: mode });
        const room = `nagle-${mode}-${process.pid}`;
        const c = await subscriber(gw, room);
        await delivered(gw, c, room);
        assert.equal(nodelay(gw, c), expected);
        assert.equal(await metric(gw, 'pushgate_ws_nagle'), 1 - expected);
    });
}

// Waits (scraping /metrics every 300 ms) until the gateway's ws_nagle state is `state`.
function nagleState(gw, state, message) {
    return waitFor(async () => (await metric(gw, 'pushgate_ws_nagle')) === state, { timeoutMs: 30000, intervalMs: 300, message });
}

async function busyThenIdle(loop) {
    const gw = await gateway({ ws_nagle: 'busy', ws_nagle_busy_percent: 5, event_loop: loop });
    const room = `nagle-busy-${loop}-${process.pid}`;
    const c = await subscriber(gw, room);
    // the share is known from the second tick on
    await waitFor(async () => (await metric(gw, 'pushgate_loop_busy_ratio')) !== undefined, { intervalMs: 300 });
    await nagleState(gw, 0, 'an idle loop counted as busy');
    await delivered(gw, c, room);
    assert.equal(nodelay(gw, c), 1, 'idle: frames leave at once');
    const busy = await metric(gw, 'pushgate_loop_busy_ratio');
    assert.ok(busy >= 0 && busy < 0.25, `an idle loop's busy share: ${busy}`);

    // REST publishes as fast as 8 callers can make them keep the loop well over 5 % busy
    let loading = true;
    const load = Array.from({ length: 8 }, async () => {
        while (loading) await publish(gw, room, { load: true });
    });
    try {
        await nagleState(gw, 1, 'the loop never counted as busy');
        await delivered(gw, c, room);
        assert.equal(nodelay(gw, c), 0, 'busy: the socket left TCP_NODELAY at its next write');
    } finally {
        loading = false;
        await Promise.all(load);
    }

    await nagleState(gw, 0, 'the loop stayed busy after the load stopped');
    await delivered(gw, c, room);
    assert.equal(nodelay(gw, c), 1, 'idle again: TCP_NODELAY back at the next write');
}

// libev counts the loop's waits itself (loop.c), libuv counts its own idle time: both are judged
for (const loop of ['ev', 'uv']) {
    test(`ws_nagle = busy (${loop}): on while the loop is busy, off again when it idles`, { timeout: 120000 }, () =>
        busyThenIdle(loop));
}

// The 101 answer waits (TCP_CORK) for the greeting that ESTABLISHED writes (Engine.IO's open packet for socket.io):
// one segment, one receive for the client.
for (const [proto, urlOf, isGreeting] of [
    ['native', (gw) => `${gw.wsUrl}/v1/demo`, (f) => f && f.type === 'open'],
    ['Pusher', (gw) => `${gw.wsUrl}/app/${DEMO.key}${PUSHER_QUERY}`, isEvent('pusher:connection_established')],
    ['socket.io', (gw) => `${gw.wsUrl}/socket.io/?EIO=4&transport=websocket`, (f) => typeof f === 'string' && f.startsWith('0{')],
]) {
    test(`${proto}: the handshake's answer and the greeting leave in one TCP segment`, { timeout: 60000 }, async () => {
        const gw = await gateway({});
        const c = await wsConnect(urlOf(gw));
        sockets.push(c);
        await c.next(isGreeting);
        assert.equal(sockopt(gw, c, 'data_segs_out'), 1, 'data segments the gateway sent: the 101 and the greeting');
    });
}

// Two events of one batch for one channel: with local_first the gateway fans both out while it handles the
// request, so the subscriber's session has both queued at the end of that loop pass. They leave in one send(), and
// with TCP_NODELAY (ws_nagle = off) each send() is a segment of its own: one segment, one socket write. Frame by
// frame it was two of each.
test('frames queued in one loop pass leave in one send(): two events of a batch, one segment', { timeout: 60000 }, async () => {
    const gw = await gateway({ ws_nagle: 'off', local_first: 1 });
    const channel = `gather-${process.pid}`;
    const c = await wsConnect(`${gw.wsUrl}/app/${DEMO.key}${PUSHER_QUERY}`);
    sockets.push(c);
    await established(c);
    c.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel } }));
    await c.next(isEvent('pusher_internal:subscription_succeeded', channel));
    const segs = sockopt(gw, c, 'data_segs_out');
    const writes = await metric(gw, 'pushgate_ws_writes_total');
    assert.ok(writes >= 2, `socket writes so far (the greeting, the subscription's answer): ${writes}`);

    const r = await pusherServer(gw.port).triggerBatch([
        { channel, name: 'one', data: '1' },
        { channel, name: 'two', data: '2' },
    ]);
    assert.equal(r.status, 200);
    await c.next(isEvent('one', channel));
    await c.next(isEvent('two', channel));
    assert.equal(sockopt(gw, c, 'data_segs_out') - segs, 1, 'data segments that carried the two frames');
    assert.equal((await metric(gw, 'pushgate_ws_writes_total')) - writes, 1, 'socket writes that carried them');
});

// client_unsent_bytes: the listening socket's TCP_NOTSENT_LOWAT, which accepted sockets inherit, on lws' own listener
// (one process) and on a worker's; 0 leaves it unset (0: net.ipv4.tcp_notsent_lowat applies, by default no limit).
for (const [label, opts, expected] of [
    ['the default', {}, 16384],
    ['one process', { client_unsent_bytes: '32k' }, 32768],
    ['workers = 2', { client_unsent_bytes: '32k', workers: 2 }, 32768],
    ['0: none', { client_unsent_bytes: 0 }, 0],
]) {
    test(`client_unsent_bytes (${label}): a WebSocket's socket holds at most that many unsent bytes`, { timeout: 60000 }, async () => {
        const gw = await gateway(opts);
        const room = `unsent-${label.replace(/\W+/g, '')}-${process.pid}`;
        const c = await subscriber(gw, room);
        await delivered(gw, c, room);
        assert.equal(sockopt(gw, c, 'notsent_lowat'), expected);
    });
}

// The gateway refuses --name value at start: exit 2, and stderr says why (its environment variable unset).
function refusedAtStart(name, value, why) {
    const env = { ...process.env };
    delete env[`PUSHGATE_${name.toUpperCase()}`];
    const r = spawnSync(GATEWAY_BIN, [`--${name}`, value], { env, encoding: 'utf8', timeout: 20000 });
    assert.equal(r.status, 2, `--${name} ${value}: exit status ${r.status} signal ${r.signal}\n${r.stderr}`);
    assert.match(r.stderr, why);
}

test('client_unsent_bytes takes 0..64m: another value is refused at start, exit 2', () => {
    for (const bad of ['100m', '-1', 'lots'])
        refusedAtStart('client_unsent_bytes', bad, /client_unsent_bytes: expected a size \(e\.g\. 64k\) in 0\.\.67108864 bytes/);
});

test('slow_consumer_grace_ms takes 0..600000: another value is refused at start, exit 2', () => {
    for (const bad of ['600001', '-1', 'soon'])
        refusedAtStart('slow_consumer_grace_ms', bad, /slow_consumer_grace_ms: expected an integer in 0\.\.600000/);
});

test('behind_queue_messages takes 1..10000000: another value is refused at start, exit 2', () => {
    for (const bad of ['0', '10000001', 'many'])
        refusedAtStart('behind_queue_messages', bad, /behind_queue_messages: expected an integer in 1\.\.10000000/);
});

test('ws_nagle takes off, busy or on: another value is refused at start, exit 2', () => {
    refusedAtStart('ws_nagle', 'sometimes', /ws_nagle: expected off, busy or on/);
});
