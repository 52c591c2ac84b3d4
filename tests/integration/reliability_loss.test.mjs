// No silent loss, and overload sheds load at the door: real mosquitto, real gateway processes, every message counted.
//  - a gateway that falls behind its broker session (paused with SIGSTOP while a broker with a tiny queue drops
//    what it cannot hold) tells the subscribers of every protocol that they missed messages, and counts it;
//  - publishing at full speed to many subscribers closes none of them: publishers get 503 with Retry-After when
//    the gateway is behind, and every acknowledged message arrives, also when the kernel holds little of a socket's
//    output (client_unsent_bytes);
//  - a reader that stops reading is still closed with 1013, and so is one that reads, but slower than its channel's
//    rate, once it has lost messages for slow_consumer_ms.
import { spawn } from 'node:child_process';
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';

import PusherJS from 'pusher-js';
import { io } from 'socket.io-client';
import WebSocket from 'ws';

import { DEFAULT_APPS, REPO_DIR, freePort, httpRequest, inbox, scaled, startStack, waitFor, wsConnect } from './lib/harness.mjs';
import { subscribeNative, within } from './lib/native.mjs';
import { DEMO, established, pusherJsOptions } from './lib/pusher.mjs';

const TOKEN = 'demo-push-token-0123456789';
const APPS = [{ ...DEFAULT_APPS[0], push_token: TOKEN }, DEFAULT_APPS[1]];
const JSON_CT = { 'Content-Type': 'application/json' };

// gateway/static/pushgate.js as client.test.mjs runs it: the browser script evaluated with `ws` injected
const CLIENT_FILE = path.join(REPO_DIR, 'gateway', 'static', 'pushgate.js');
const mod = { exports: {} };
vm.compileFunction(fs.readFileSync(CLIENT_FILE, 'utf8'), ['module', 'exports'], { filename: CLIENT_FILE })(mod, mod.exports);
const Pushgate = mod.exports;

const stacks = [];
const drones = new Set();
const sockets = new Set();
const ios = new Set();
const pushers = new Set();

after(async () => {
    for (const s of ios) s.disconnect();
    for (const p of pushers) p.disconnect();
    for (const d of drones) d.close();
    for (const c of sockets) c.terminate();
    const failed = (await Promise.allSettled(stacks.map((s) => s.stop()))).filter((o) => o.status === 'rejected');
    if (failed.length) throw failed[0].reason;
});

let seq = 0;
const uid = (p) => `${p}-${process.pid}-${++seq}`;

async function ws(url) {
    const c = await wsConnect(url);
    sockets.add(c);
    return c;
}

async function nativeSession(gw, room) {
    const c = await ws(`${gw.wsUrl}/v1/demo`);
    await subscribeNative(c, room);
    return c;
}

async function pusherSession(gw, channel) {
    const c = await established(await ws(`${gw.wsUrl}/app/${DEMO.key}?protocol=7&client=js&version=8.4.0`));
    c.send({ event: 'pusher:subscribe', data: { channel } });
    await c.next((f) => f.event === 'pusher_internal:subscription_succeeded' && f.channel === channel);
    return c;
}

// pusher-js as an application uses it: errors, connection states and (re)subscriptions recorded.
async function pusherJs(gw, channel) {
    const client = new PusherJS(DEMO.key, pusherJsOptions(gw.port));
    pushers.add(client);
    const errors = inbox('pusher-js error');
    const subscribed = inbox('subscription_succeeded');
    const messages = inbox('message');
    client.connection.bind('error', (e) => errors.push(e));
    const ch = client.subscribe(channel);
    ch.bind('pusher:subscription_succeeded', () => subscribed.push(client.connection.socket_id));
    ch.bind('message', (d) => messages.push(d));
    await subscribed.next();
    return { client, errors, subscribed, messages };
}

// pushgate.js: gap events of the room and of the drone
async function drone(gw, roomName) {
    const d = new Pushgate('demo', { url: `${gw.wsUrl}/v1/demo`, WebSocket });
    drones.add(d);
    const gaps = inbox('drone gap');
    const roomGaps = inbox('room gap');
    d.on('gap', (info) => gaps.push(info));
    await new Promise((resolve, reject) => d.on('open', (err) => (err ? reject(err) : resolve())));
    const room = d.subscribe(roomName);
    room.on('gap', (info) => roomGaps.push(info));
    await new Promise((resolve, reject) => room.on('open', (err) => (err ? reject(err) : resolve())));
    return { d, gaps, roomGaps };
}

async function sioSession(gw, user) {
    const conn = uid('conn');
    const r = await httpRequest('PUT', `${gw.url}/api/${user}/register?connectionId=${conn}`, {
        headers: { 'X-AUTH-TOKEN': TOKEN },
    });
    assert.equal(r.status, 200, r.body);
    const socket = io.connect(gw.url, { transports: ['websocket'] });
    ios.add(socket);
    const registered = inbox('registered');
    const gaps = inbox('pushgate:gap');
    const messages = inbox('message');
    socket.on('registered', (v) => registered.push(v));
    socket.on('pushgate:gap', (v) => gaps.push(v));
    socket.on('message', (v) => messages.push(v));
    socket.on('connect', () => socket.emit('register', user, conn));
    await registered.next();
    return { socket, gaps, messages };
}

async function metric(gw, name) {
    const r = await httpRequest('GET', `${gw.url}/metrics`);
    const m = r.body.match(new RegExp(`^${name}\\{app="demo"\\} (\\d+)$`, 'm'));
    return m ? Number(m[1]) : undefined;
}

test('a gateway that missed messages its broker dropped tells every protocol\'s subscribers', { timeout: scaled(60000) }, async () => {
    // a broker that holds 5 messages in flight and 5 queued per client and drops the rest, as Mosquitto's default
    // does past 1000
    const stack = await startStack({
        apps: APPS,
        brokerOptions: { extraConf: 'max_inflight_messages 5\nmax_queued_messages 5\nmax_queued_bytes 0\nsys_interval 1' },
    });
    stacks.push(stack);
    const a = stack.gw;
    const portB = await freePort();
    const b = await stack.startGateway({ port: portB, args: ['--listen_port', String(portB)] });
    const room = uid('gap-room');
    const user = uid('gapuser');

    const native = await nativeSession(b, room);
    const pusher = await pusherSession(b, room);
    const pjs = await pusherJs(b, room);
    const js = await drone(b, room);
    const sio = await sioSession(b, user);
    // the channel is live on both sides before anything is dropped
    let r = await httpRequest('POST', `${a.url}/demo/${room}/publish`, { body: '{"n":0}', headers: JSON_CT });
    assert.equal(r.status, 200, r.body);
    await native.next((f) => f.type === 'message' && f.room === room);
    await pusher.next((f) => f.event === 'message' && f.channel === room);
    r = await httpRequest('POST', `${a.url}/api/${user}/push`, { headers: { 'X-AUTH-TOKEN': TOKEN }, body: { message: 0 } });
    assert.equal(r.status, 200, r.body);
    await sio.messages.next();
    assert.ok(!(await metric(b, 'pushgate_gaps_total')), 'no gap yet');
    // a room of its own on B, to learn when B has caught up with its broker queue after SIGCONT
    const probeRoom = uid('probe-room');
    const probe = await nativeSession(b, probeRoom);

    b.signal('SIGSTOP');
    try {
        // acknowledged by the broker (200), but more than it holds for the paused gateway
        for (let i = 1; i <= 40; i++) {
            r = await httpRequest('POST', `${a.url}/demo/${room}/publish`, { body: `{"n":${i}}`, headers: JSON_CT });
            assert.equal(r.status, 200, r.body);
            r = await httpRequest('POST', `${a.url}/api/${user}/push`, {
                headers: { 'X-AUTH-TOKEN': TOKEN },
                body: { message: i },
            });
            assert.equal(r.status, 200, r.body);
        }
    } finally {
        b.signal('SIGCONT');
    }
    // Until B has worked through what the broker held for it, the broker's queue for B is still full and drops what
    // comes next too. Messages reach B in order: once a probe published after SIGCONT arrives, the queue is drained.
    const caughtUp = Date.now() + scaled(15000);
    for (let p = 1; ; p++) {
        r = await httpRequest('POST', `${a.url}/demo/${probeRoom}/publish`, { body: `{"p":${p}}`, headers: JSON_CT });
        assert.equal(r.status, 200, r.body);
        try {
            await probe.next((f) => f.type === 'message' && f.room === probeRoom, 300);
            break;
        } catch (e) {
            if (Date.now() > caughtUp) throw new Error(`B did not catch up with its broker queue: ${e.message}`);
        }
    }
    // the next message of the same origin shows what is missing
    r = await httpRequest('POST', `${a.url}/demo/${room}/publish`, { body: '{"n":41}', headers: JSON_CT });
    assert.equal(r.status, 200, r.body);
    r = await httpRequest('POST', `${a.url}/api/${user}/push`, { headers: { 'X-AUTH-TOKEN': TOKEN }, body: { message: 41 } });
    assert.equal(r.status, 200, r.body);

    const last = await native.next((f) => f.type === 'message' && f.message.n === 41, scaled(10000));
    const received = native.frames.filter((f) => f.type === 'message').map((f) => f.message.n);
    assert.ok(received.length < 42, `the broker dropped messages (arrived: ${received.join(' ')})`);
    const gap = native.frames.find((f) => f.type === 'gap');
    assert.deepEqual(gap, { type: 'gap', room, channel: room }, `a gap frame (arrived: ${received.join(' ')})`);
    assert.ok(native.frames.indexOf(gap) < native.frames.indexOf(last), 'the gap is told before the message after it');

    const err = await pusher.next((f) => f.event === 'pusher:error', scaled(10000));
    assert.equal(err.data.code, 4200, JSON.stringify(err));
    const closed = await pusher.closed;
    assert.equal(closed.code, 4200, 'pusher-js reconnects at once after 4200 and resubscribes');

    assert.deepEqual(await js.roomGaps.next(undefined, scaled(10000)), { room, channel: room }, 'pushgate.js: room gap');
    assert.deepEqual(await js.gaps.next(undefined, scaled(10000)), { room, channel: room }, 'pushgate.js: drone gap');

    // pusher-js sees the error, reconnects at once with a new socket id and subscribes the channel again
    const firstSocket = pjs.subscribed.items[0];
    const pjsErr = await pjs.errors.next(undefined, scaled(10000));
    assert.equal(pjsErr.data.code, 4200, JSON.stringify(pjsErr));
    const again = await pjs.subscribed.next(undefined, scaled(10000));
    assert.notEqual(again, firstSocket);
    r = await httpRequest('POST', `${a.url}/demo/${room}/publish`, { body: '{"n":42}', headers: JSON_CT });
    assert.equal(r.status, 200, r.body);
    await pjs.messages.next((d) => d.n === 42, scaled(10000));

    const sioGap = await sio.gaps.next(undefined, scaled(10000));
    assert.equal(sioGap.channel, `#server-to-user-${user}`);

    assert.ok((await metric(b, 'pushgate_gaps_total')) >= 2, 'the channel and the user channel');
    assert.ok((await metric(b, 'pushgate_gap_signals_total')) >= 3);
    assert.equal(await metric(a, 'pushgate_gaps_total'), 0, 'the publishing gateway missed nothing');
    // the broker's own count, as $SYS publishes it every sys_interval
    await waitFor(async () => {
        const m = (await httpRequest('GET', `${b.url}/metrics`)).body.match(/^pushgate_broker_dropped_messages (\d+)$/m);
        return m && Number(m[1]) > 0;
    }, { timeoutMs: scaled(5000), message: 'pushgate_broker_dropped_messages counts the drops' });
});

// A subscriber that keeps only what the test counts (a bitmap of message numbers), so a few hundred of them
// stay cheap in this process.
async function counter(gw, room, max) {
    const c = await wsConnect(`${gw.wsUrl}/v1/demo`);
    sockets.add(c);
    await subscribeNative(c, room);
    const got = new Uint8Array(max);
    const stats = { got, count: 0, gaps: 0, c };
    // from here on only count: wsConnect's own bookkeeping would keep every frame
    c.ws.removeAllListeners('message');
    c.ws.on('message', (data) => {
        const f = JSON.parse(data);
        if (f.type === 'message' && f.room === room) {
            if (!got[f.message.n]) stats.count++;
            got[f.message.n] = 1;
        } else if (f.type === 'gap') {
            stats.gaps++;
        }
    });
    return stats;
}

// With client_unsent_bytes the kernel holds only that much for a socket: the socket of a reader that is merely behind
// is full between two of its reads, and must not count as a slow consumer (slow_consumer_grace_ms).
for (const [label, unsent] of [["the kernel's own send buffers", 0], ['client_unsent_bytes = 4k', '4k']]) {
    test(`a burst larger than every out-queue closes no subscriber (${label}): publishers get 503 with Retry-After, every acknowledged message arrives`, { timeout: scaled(120000) }, async () => {
        const SUBSCRIBERS = 120;
        const BURST = 1000;
        const MAX = 100000;
        const stack = await startStack({
            // the cluster's window (max_unconfirmed_publishes) off: the burst must reach the paused B's broker queue whole
            gateway: { log_level: 'info', max_queue_messages: 200, slow_consumer_ms: 5000, max_inbound_lag_ms: 300, max_unconfirmed_publishes: 0,
                client_unsent_bytes: unsent },
        });
        stacks.push(stack);
        const a = stack.gw;
        const portB = await freePort();
        const b = await stack.startGateway({ port: portB, args: ['--listen_port', String(portB)] });
        const room = uid('flood');
        const subs = [];
        for (let i = 0; i < SUBSCRIBERS; i++) subs.push(await counter(b, room, MAX));

        const acked = [];
        let shed = 0;
        let retryAfter;
        let other = '';
        let n = 0;
        const pad = 'x'.repeat(200);
        async function publisher(gw, until, count) {
            while (Date.now() < until && n < count) {
                const i = ++n;
                const r = await httpRequest('POST', `${gw.url}/demo/${room}/publish`, {
                    body: `{"n":${i},"pad":"${pad}"}`,
                    headers: JSON_CT,
                    timeoutMs: scaled(20000),
                });
                if (r.status === 200) acked.push(i);
                else if (r.status === 503 && r.headers['retry-after']) {
                    shed++;
                    retryAfter = r.headers['retry-after'];
                    await new Promise((res) => setTimeout(res, 10));
                } else other = `${r.status} ${r.body}`;
            }
        }
        // B is paused while A publishes five times what a session's out-queue holds: the broker keeps it for B
        let direct;
        b.signal('SIGSTOP');
        try {
            await Promise.all(Array.from({ length: 8 }, () => publisher(a, Infinity, BURST)));
            assert.equal(acked.length, BURST, other);
            // publishers also hammer B directly, from the moment it wakes up and while it catches up
            const until = Date.now() + scaled(2000);
            direct = Promise.all(Array.from({ length: 8 }, () => publisher(b, until, MAX - 1)));
            // B wakes up to messages older than max_inbound_lag_ms: it knows it is behind
            await new Promise((res) => setTimeout(res, 600));
        } finally {
            b.signal('SIGCONT');
        }
        await direct;
        assert.equal(other, '', 'no answer but 200 or 503 with Retry-After');

        // every acknowledged message reaches every subscriber, and nobody was closed
        await waitFor(() => subs.every((s) => s.c.closeInfo !== null || s.count >= acked.length), {
            timeoutMs: scaled(60000),
        }).catch(() => {});
        const closed = subs.filter((s) => s.c.closeInfo !== null);
        assert.deepEqual(closed.slice(0, 3).map((s) => s.c.closeInfo), [], `${closed.length} of ${SUBSCRIBERS} subscribers were closed`);
        for (const s of subs) {
            const missing = acked.filter((i) => !s.got[i]);
            if (unsent && s.gaps > 0) {
                // the kernel holds 4 KB: a reader the loaded machine starves past its out-queue loses messages, and is
                // told (a gap signal), never closed for it (slow_consumer_grace_ms)
                continue;
            }
            assert.deepEqual(missing.slice(0, 10), [], `acknowledged messages missing (${missing.length} of ${acked.length}) without a gap signal`);
            assert.equal(s.gaps, 0);
        }
        assert.ok(shed > 0, `publishers saw backpressure (${acked.length} acknowledged, ${shed} refused)`);
        assert.equal(retryAfter, '1');
        const metrics = (await httpRequest('GET', `${b.url}/metrics`)).body;
        assert.match(metrics, /^pushgate_publish_shed_total\{app="demo"\} [1-9]\d*$/m);
        assert.match(metrics, /^pushgate_slow_consumer_closes_total\{app="demo"\} 0$/m);
    });
}

test('a reader that stops reading is still closed with 1013, and the others get everything', { timeout: scaled(60000) }, async () => {
    const stack = await startStack({ gateway: { log_level: 'info', slow_consumer_ms: 1000, max_message_bytes: '64k' } });
    stacks.push(stack);
    const gw = stack.gw;
    const room = uid('stall');
    const readers = [];
    for (let i = 0; i < 5; i++) readers.push(await counter(gw, room, 1000));
    const stalled = await counter(gw, room, 1000);
    stalled.c.ws._socket.pause(); // reads nothing more: the kernel's buffers fill, then the gateway's queue
    const big = 'y'.repeat(32 * 1024);
    let i = 0;
    const acked = [];
    while (stalled.c.closeInfo === null && i < 999) {
        const r = await httpRequest('POST', `${gw.url}/demo/${room}/publish`, { body: `{"n":${++i},"pad":"${big}"}`, headers: JSON_CT });
        if (r.status === 200) acked.push(i);
        if (i % 50 === 0) await new Promise((res) => setTimeout(res, 50));
    }
    stalled.c.ws._socket.resume();
    const info = await stalled.c.closed;
    assert.equal(info.code, 1013, JSON.stringify(info));
    await waitFor(() => readers.every((s) => s.count >= acked.length), { timeoutMs: scaled(20000) });
    for (const s of readers) assert.equal(s.c.closeInfo, null);
});

// behind_queue_messages (40 here) is what the load rules count as a full out-queue; max_queue_messages is where a
// session loses. A reader that stalls while ~170 messages are published (4 KB each: more than its socket and the
// kernel take) has that many queued: with room for 400 it gets every one once it reads again; with room for 40
// (the same load rules) it cannot, which shows the messages did wait in its out-queue.
for (const [maxQueue, keeps] of [[400, true], [40, false]]) {
    test(`a reader that stalls for a moment ${keeps ? 'gets every message once it reads again' : 'loses messages'}: behind_queue_messages 40, max_queue_messages ${maxQueue}`, { timeout: scaled(60000) }, async () => {
        const stack = await startStack({
            gateway: { log_level: 'info', client_unsent_bytes: '4k', slow_consumer_ms: 30000, max_queue_messages: maxQueue,
                behind_queue_messages: 40 },
        });
        stacks.push(stack);
        const gw = stack.gw;
        const room = uid('moment');
        const COUNT = 170;
        const MAX = 2000;
        const readers = [];
        for (let i = 0; i < 5; i++) readers.push(await counter(gw, room, MAX));
        const stalled = await counter(gw, room, MAX);
        stalled.c.ws._socket.pause();
        const pad = 'm'.repeat(4096);
        const acked = [];
        let i = 0;
        const until = Date.now() + scaled(20000);
        while (acked.length < COUNT && i < MAX - 1 && Date.now() < until) {
            const r = await httpRequest('POST', `${gw.url}/demo/${room}/publish`, { body: `{"n":${++i},"pad":"${pad}"}`, headers: JSON_CT });
            if (r.status === 200) acked.push(i);
            else if (r.status === 503) await new Promise((res) => setTimeout(res, 10)); // behind for a moment: shed
            else assert.fail(`publish: ${r.status} ${r.body}`);
        }
        await waitFor(() => readers.every((s) => s.count >= acked.length), { timeoutMs: scaled(20000) });
        assert.equal(acked.length, COUNT, `publishes acknowledged in ${i} attempts`);
        stalled.c.ws._socket.resume();
        if (keeps) {
            await waitFor(() => stalled.count >= acked.length, { timeoutMs: scaled(20000), message: `the stalled reader got ${stalled.count} of ${acked.length}` });
            assert.equal(stalled.c.closeInfo, null);
            assert.equal(stalled.gaps, 0);
        } else {
            await waitFor(() => stalled.c.closeInfo !== null || stalled.gaps > 0, { timeoutMs: scaled(20000), message: 'told of its loss, or closed' });
            assert.ok(stalled.count < acked.length, `it lost messages (${stalled.count} of ${acked.length})`);
        }
        for (const s of readers) {
            assert.equal(s.c.closeInfo, null);
            assert.equal(s.gaps, 0);
        }
    });
}

// A native subscriber in a process of its own that spends MS of CPU on every message (argv: url, room, MS), so it
// reads, but at most 1000 / MS messages a second. Prints "subscribed", then the close as JSON.
const SLOW_READER = `
import WebSocket from 'ws';
const [url, room, ms] = process.argv.slice(1);
const ws = new WebSocket(url);
let got = 0;
ws.on('message', (data) => {
    const f = JSON.parse(data);
    if (f.type === 'open') ws.send(JSON.stringify({ type: 'subscribe', room, cb: 1 }));
    else if (f.cb === 1) console.log(f.error ? 'refused ' + JSON.stringify(f.error) : 'subscribed');
    else if (f.type === 'message') {
        got++;
        for (const until = performance.now() + Number(ms); performance.now() < until; );
    }
});
ws.on('close', (code, reason) => { console.log(JSON.stringify({ code, reason: String(reason), got })); process.exit(0); });
`;

test('a reader that reads, but slower than its channel\'s rate, is closed with 1013 once it has lost messages for slow_consumer_ms; the others get everything', { timeout: scaled(60000) }, async () => {
    // the kernel holds 4 KB unsent for it: its socket is full between two of its reads, but never for
    // slow_consumer_grace_ms (1 s), so it counts as reading while its out-queue (50 messages) overflows
    const stack = await startStack({
        gateway: { log_level: 'info', client_unsent_bytes: '4k', slow_consumer_ms: 1000, max_queue_messages: 50 },
    });
    stacks.push(stack);
    const gw = stack.gw;
    const room = uid('slowread');
    const MAX = 50000;
    const readers = [];
    for (let i = 0; i < 5; i++) readers.push(await counter(gw, room, MAX));
    const child = spawn(process.execPath, ['--input-type=module', '-e', SLOW_READER, `${gw.wsUrl}/v1/demo`, room, '5'], {
        cwd: REPO_DIR,
        stdio: ['ignore', 'pipe', 'inherit'],
    });
    const lines = [];
    const closed = new Promise((resolve) => {
        child.stdout.setEncoding('utf8');
        child.stdout.on('data', (d) => {
            lines.push(...d.split('\n').filter(Boolean));
            const last = lines.find((l) => l.startsWith('{'));
            if (last) resolve(JSON.parse(last));
        });
        child.on('exit', () => resolve(null));
    });
    try {
        await waitFor(() => lines.length > 0, { timeoutMs: scaled(10000), message: 'the slow reader subscribed' });
        assert.equal(lines[0], 'subscribed');
        const pad = 'z'.repeat(1024);
        const acked = [];
        let n = 0;
        let info = null;
        closed.then((i) => (info = i));
        const until = Date.now() + scaled(20000);
        while (info === null && Date.now() < until && n < MAX - 1) {
            const i = ++n;
            const r = await httpRequest('POST', `${gw.url}/demo/${room}/publish`, { body: `{"n":${i},"pad":"${pad}"}`, headers: JSON_CT });
            if (r.status === 200) acked.push(i);
            else if (r.status === 503) await new Promise((res) => setTimeout(res, 10));
            else assert.fail(`publish: ${r.status} ${r.body}`);
        }
        info = await within(closed, scaled(20000));
        assert.ok(info, `the slow reader was closed (${acked.length} acknowledged)`);
        assert.equal(info.code, 1013, JSON.stringify(info));
        assert.ok(info.got > 50, `it read more than one out-queue before it was closed: ${JSON.stringify(info)}`);
        await waitFor(() => readers.every((s) => s.count >= acked.length), { timeoutMs: scaled(20000) });
        for (const s of readers) {
            assert.equal(s.c.closeInfo, null);
            assert.equal(s.gaps, 0);
        }
        const metrics = (await httpRequest('GET', `${gw.url}/metrics`)).body;
        assert.match(metrics, /^pushgate_slow_consumer_closes_total\{app="demo"\} 1$/m);
        // one slow reader among six is its own matter: the node never counted itself behind for it
        assert.match(metrics, /^pushgate_publish_shed_total\{app="demo"\} 0$/m);
    } finally {
        child.kill();
    }
});

test('a publish the broker refuses is no gap: the next message is delivered without a gap signal', async () => {
    // the broker refuses (PUBACK 0x97) what is over its message_size_limit; a refused message was never promised
    const stack = await startStack({ apps: APPS, brokerOptions: { extraConf: 'message_size_limit 2000' } });
    stacks.push(stack);
    const gw = stack.gw;
    const room = uid('refused-room');
    const native = await nativeSession(gw, room);
    const pusher = await pusherSession(gw, room);

    let r = await httpRequest('POST', `${gw.url}/demo/${room}/publish`, { body: '{"n":1}', headers: JSON_CT });
    assert.equal(r.status, 200, r.body);
    r = await httpRequest('POST', `${gw.url}/demo/${room}/publish`, { body: JSON.stringify({ n: 2, pad: 'x'.repeat(5000) }), headers: JSON_CT });
    assert.equal(r.status, 403, `the broker refused the oversize message: ${r.body}`);
    r = await httpRequest('POST', `${gw.url}/demo/${room}/publish`, { body: '{"n":3}', headers: JSON_CT });
    assert.equal(r.status, 200, r.body);

    await native.next((f) => f.type === 'message' && f.message.n === 3);
    await pusher.next((f) => f.event === 'message' && f.channel === room && JSON.parse(f.data).n === 3);
    assert.deepEqual(native.frames.filter((f) => f.type === 'message').map((f) => f.message.n), [1, 3]);
    assert.equal(native.frames.find((f) => f.type === 'gap'), undefined, 'no gap frame');
    assert.equal(pusher.frames.find((f) => f.event === 'pusher:error'), undefined, 'no pusher:error (4200 would close it)');
    assert.ok(!(await metric(gw, 'pushgate_gaps_total')), 'no gap counted');
});
