// No silent loss, and overload sheds load at the door: real mosquitto, real gateway processes, every message counted.
//  - a gateway that falls behind its broker session (paused with SIGSTOP while a broker with a tiny queue drops
//    what it cannot hold) tells the subscribers of every protocol that they missed messages, and counts it;
//  - publishing at full speed to many subscribers closes none of them: publishers get 503 with Retry-After when
//    the gateway is behind, and every acknowledged message arrives;
//  - a reader that stops reading is still closed with 1013.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';

import { io } from 'socket.io-client';

import { DEFAULT_APPS, freePort, httpRequest, inbox, scaled, startStack, waitFor, wsConnect } from './lib/harness.mjs';
import { DEMO, established } from './lib/pusher.mjs';

const TOKEN = 'demo-push-token-0123456789';
const APPS = [{ ...DEFAULT_APPS[0], push_token: TOKEN }, DEFAULT_APPS[1]];
const JSON_CT = { 'Content-Type': 'application/json' };

const stacks = [];
const sockets = new Set();
const ios = new Set();

after(async () => {
    for (const s of ios) s.disconnect();
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
    await c.next((f) => f.type === 'open');
    c.send({ type: 'subscribe', room, cb: 1 });
    const r = await c.next((f) => f.cb === 1);
    assert.equal(r.error, undefined, JSON.stringify(r));
    return c;
}

async function pusherSession(gw, channel) {
    const c = await established(await ws(`${gw.wsUrl}/app/${DEMO.key}?protocol=7&client=js&version=8.4.0`));
    c.send({ event: 'pusher:subscribe', data: { channel } });
    await c.next((f) => f.event === 'pusher_internal:subscription_succeeded' && f.channel === channel);
    return c;
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
        brokerOptions: { extraConf: 'max_inflight_messages 5\nmax_queued_messages 5\nmax_queued_bytes 0' },
    });
    stacks.push(stack);
    const a = stack.gw;
    const portB = await freePort();
    const b = await stack.startGateway({ port: portB, args: ['--listen_port', String(portB)] });
    const room = uid('gap-room');
    const user = uid('gapuser');

    const native = await nativeSession(b, room);
    const pusher = await pusherSession(b, room);
    const sio = await sioSession(b, user);
    // the channel is live on both sides before anything is dropped
    let r = await httpRequest('POST', `${a.url}/demo/${room}/publish`, { body: '{"n":0}', headers: JSON_CT });
    assert.equal(r.status, 200, r.body);
    await native.next((f) => f.type === 'message' && f.room === room);
    await pusher.next((f) => f.event === 'message' && f.channel === room);
    r = await httpRequest('POST', `${a.url}/api/${user}/push`, { headers: { 'X-AUTH-TOKEN': TOKEN }, body: { message: 0 } });
    assert.equal(r.status, 200, r.body);
    await sio.messages.next();
    assert.equal(await metric(b, 'pushgate_gaps_total'), 0);

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
    // the next message of the same origin shows what is missing
    r = await httpRequest('POST', `${a.url}/demo/${room}/publish`, { body: '{"n":41}', headers: JSON_CT });
    assert.equal(r.status, 200, r.body);
    r = await httpRequest('POST', `${a.url}/api/${user}/push`, { headers: { 'X-AUTH-TOKEN': TOKEN }, body: { message: 41 } });
    assert.equal(r.status, 200, r.body);

    const gap = await native.next((f) => f.type === 'gap', scaled(10000));
    assert.deepEqual(gap, { type: 'gap', room, channel: room });
    const last = await native.next((f) => f.type === 'message' && f.message.n === 41, scaled(10000));
    assert.ok(native.frames.indexOf(gap) < native.frames.indexOf(last), 'the gap is told before the message after it');
    const received = native.frames.filter((f) => f.type === 'message').length;
    assert.ok(received < 42, `the broker dropped messages (${received} of 42 arrived)`);

    const err = await pusher.next((f) => f.event === 'pusher:error', scaled(10000));
    assert.equal(err.data.code, 4200, JSON.stringify(err));
    const closed = await pusher.closed;
    assert.equal(closed.code, 4200, 'pusher-js reconnects at once after 4200 and resubscribes');

    const sioGap = await sio.gaps.next(undefined, scaled(10000));
    assert.equal(sioGap.channel, `#server-to-user-${user}`);

    assert.ok((await metric(b, 'pushgate_gaps_total')) >= 2, 'the channel and the user channel');
    assert.ok((await metric(b, 'pushgate_gap_signals_total')) >= 3);
    assert.equal(await metric(a, 'pushgate_gaps_total'), 0, 'the publishing gateway missed nothing');
    // the broker's own count, as $SYS publishes it every sys_interval (10 s): not awaited here
});
