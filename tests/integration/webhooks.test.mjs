// Pusher-style webhooks (README "Pusher Channels compatibility") against a real mosquitto + pushgate stack and real HTTP receivers:
// channel_occupied / channel_vacated from native WebSocket subscriptions, signed so that node:crypto and the
// `pusher` SDK's webhook verification accept them; retries of the identical body after failures; batching of
// events emitted at different times into one POST; a refused or hanging receiver never slows WebSocket traffic
// and its batches are dropped after webhook_max_attempts; queued events are sent before a SIGTERM exit.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

import PusherServer from 'pusher';

import { OPERATOR_USER, freePort, mqttCollector, mqttConnect, scaled, startStack, waitFor, wsConnect } from './lib/harness.mjs';
import { subscribeNative } from './lib/native.mjs';

const DEMO = { id: 'demo', key: 'demo-key', secret: 'demo-secret' };
// long enough that events emitted a few hundred ms apart surely share a batch on a slow (sanitizer) run
const BATCH_MS = 1500;
const MAX_ATTEMPTS = 4;

let receiver;
let stack;
const sockets = new Set();
let seq = 0;

function unique(prefix) {
    seq += 1;
    return `${prefix}-${process.pid}-${seq}`;
}

// An HTTP receiver that records every request and answers from a plan of status codes (then 200).
async function startReceiver() {
    const r = { requests: [], plan: [] };
    r.server = http.createServer((req, res) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
            const rawBody = Buffer.concat(chunks).toString('utf8');
            let json = null;
            try {
                json = JSON.parse(rawBody);
            } catch {
                // recorded as null: the assertions say what was expected
            }
            const status = r.plan.length ? r.plan.shift() : 200;
            r.requests.push({ at: Date.now(), method: req.method, url: req.url, headers: req.headers, rawBody, json, status });
            res.writeHead(status, { 'content-type': 'text/plain' });
            res.end(status === 200 ? 'ok' : 'failing on purpose');
        });
    });
    r.port = await freePort();
    await new Promise((resolve) => r.server.listen(r.port, '127.0.0.1', resolve));
    r.url = `http://127.0.0.1:${r.port}/hook`;
    r.close = () => new Promise((resolve) => r.server.close(resolve));
    // requests whose events include one matching pred
    r.with = (pred) => r.requests.filter((q) => q.json && Array.isArray(q.json.events) && q.json.events.some(pred));
    return r;
}

const named = (name, channel) => (e) => e.name === name && e.channel === channel;

async function connect(app = 'demo') {
    const c = await wsConnect(`${stack.gw.wsUrl}/v1/${app}`);
    sockets.add(c);
    c.open = await c.next((f) => f.type === 'open');
    return c;
}

async function request(c, frame, timeoutMs = scaled(5000)) {
    seq += 1;
    const cb = seq;
    c.send({ ...frame, cb });
    return c.next((f) => f.cb === cb, timeoutMs);
}

async function subscribe(c, room) {
    const r = await request(c, { type: 'subscribe', room });
    assert.equal(r.error, undefined, `subscribe ${room}: ${JSON.stringify(r.error)}`);
}

before(async () => {
    receiver = await startReceiver();
    stack = await startStack({
        apps: [{ ...DEMO, require_auth: false, webhook_url: receiver.url }],
        gateway: { webhook_batch_ms: BATCH_MS, webhook_max_attempts: MAX_ATTEMPTS, webhook_timeout_ms: 3000 },
    });
});

after(async () => {
    for (const c of sockets) c.terminate();
    if (stack) await stack.stop();
    if (receiver) await receiver.close();
});

test('subscribe then unsubscribe: channel_occupied then channel_vacated, signed as Pusher signs', { timeout: 30000 }, async () => {
    const room = unique('wh-occ');
    const c = await connect();
    await subscribe(c, room);
    const [occ] = await waitFor(() => receiver.with(named('channel_occupied', room)).length && receiver.with(named('channel_occupied', room)), {
        timeoutMs: scaled(8000),
        message: `channel_occupied for ${room}`,
    });
    await request(c, { type: 'unsubscribe', room });
    const [vac] = await waitFor(() => receiver.with(named('channel_vacated', room)).length && receiver.with(named('channel_vacated', room)), {
        timeoutMs: scaled(8000),
        message: `channel_vacated for ${room}`,
    });
    assert.ok(receiver.requests.indexOf(occ) < receiver.requests.indexOf(vac), 'occupied is reported before vacated');

    for (const q of [occ, vac]) {
        assert.equal(q.method, 'POST');
        assert.equal(q.url, '/hook');
        assert.equal(q.headers['content-type'], 'application/json');
        assert.equal(q.headers['x-pusher-key'], DEMO.key);
        const expected = crypto.createHmac('sha256', DEMO.secret).update(q.rawBody).digest('hex');
        assert.equal(q.headers['x-pusher-signature'], expected, 'X-Pusher-Signature = hex HMAC-SHA256(secret, body)');
        assert.equal(typeof q.json.time_ms, 'number');
        assert.ok(Math.abs(q.json.time_ms - q.at) < 10000, `time_ms ${q.json.time_ms} is close to now ${q.at}`);

        const sdk = new PusherServer({ appId: DEMO.id, key: DEMO.key, secret: DEMO.secret });
        const hook = sdk.webhook({ headers: q.headers, rawBody: q.rawBody });
        assert.equal(hook.isValid(), true, 'the pusher SDK accepts the webhook');
        assert.ok(hook.getEvents().length >= 1);
        assert.equal(hook.getTime().getTime(), q.json.time_ms);
        const wrong = new PusherServer({ appId: DEMO.id, key: DEMO.key, secret: 'not-the-secret' });
        assert.equal(wrong.webhook({ headers: q.headers, rawBody: q.rawBody }).isValid(), false, 'a wrong secret fails');
    }
    assert.deepEqual(occ.json.events.find(named('channel_occupied', room)), { name: 'channel_occupied', channel: room });
    assert.deepEqual(vac.json.events.find(named('channel_vacated', room)), { name: 'channel_vacated', channel: room });
});

test('Pusher connections: subscription_count follows subscriptions; a client event is reported as client_event', { timeout: 30000 }, async () => {
    const channel = `private-${unique('wh-client')}`;
    const url = `${stack.gw.wsUrl}/app/${DEMO.key}?protocol=7&client=js&version=8.4.0`;
    const join = async () => {
        const c = await wsConnect(url);
        sockets.add(c);
        const est = await c.next((f) => f.event === 'pusher:connection_established');
        c.socketId = JSON.parse(est.data).socket_id;
        const sig = crypto.createHmac('sha256', DEMO.secret).update(`${c.socketId}:${channel}`).digest('hex');
        c.send({ event: 'pusher:subscribe', data: { channel, auth: `${DEMO.key}:${sig}` } });
        await c.next((f) => f.event === 'pusher_internal:subscription_succeeded' && f.channel === channel);
        return c;
    };
    const a = await join();
    await join();
    const counts = () =>
        receiver.requests.flatMap((q) => (q.json ? q.json.events : [])).filter(named('subscription_count', channel));
    await waitFor(() => counts().some((e) => e.subscription_count === 2), {
        timeoutMs: scaled(8000),
        message: `subscription_count 2 for ${channel}`,
    });
    a.send({ event: 'client-typing', channel, data: { who: 'a' } });
    const [hit] = await waitFor(() => receiver.with(named('client_event', channel)).length && receiver.with(named('client_event', channel)), {
        timeoutMs: scaled(8000),
        message: `client_event for ${channel}`,
    });
    const ev = hit.json.events.find(named('client_event', channel));
    assert.equal(ev.event, 'client-typing');
    assert.deepEqual(JSON.parse(ev.data), { who: 'a' });
    assert.equal(ev.socket_id, a.socketId);
});

test('a failing receiver (500, 500, then 200) gets the identical batch three times with backoff, then no more', { timeout: 30000 }, async () => {
    const room = unique('wh-retry');
    receiver.plan.push(500, 500);
    const c = await connect();
    await subscribe(c, room);
    const hits = await waitFor(() => receiver.with(named('channel_occupied', room)).length >= 3 && receiver.with(named('channel_occupied', room)), {
        timeoutMs: scaled(15000),
        message: `three deliveries of the batch with channel_occupied ${room}`,
    });
    assert.deepEqual(hits.map((q) => q.status), [500, 500, 200]);
    for (const q of hits.slice(1)) {
        assert.equal(q.rawBody, hits[0].rawBody, 'a retry sends the same body');
        assert.equal(q.headers['x-pusher-signature'], hits[0].headers['x-pusher-signature']);
    }
    const gap1 = hits[1].at - hits[0].at;
    const gap2 = hits[2].at - hits[1].at;
    assert.ok(gap1 >= 800 && gap1 < 3000, `first retry after about 1 s (was ${gap1} ms)`);
    assert.ok(gap2 >= 1800 && gap2 < 5000, `second retry after about 2 s (was ${gap2} ms)`);
    // attempt 4 of 4 would come about 4 s after the third; the 200 ended the batch instead
    await waitFor(() => /webhooks delivered app=demo .*attempt=3/.test(stack.gw.logs()), {
        timeoutMs: scaled(3000),
        message: 'the gateway logs the delivery on attempt 3',
    });
    await new Promise((r) => setTimeout(r, 4500));
    assert.equal(receiver.requests.filter((q) => q.rawBody === hits[0].rawBody).length, 3, 'no delivery after the 200');
});

test('events emitted at different times within webhook_batch_ms arrive in one POST', { timeout: 30000 }, async () => {
    const rooms = [unique('wh-batch'), unique('wh-batch'), unique('wh-batch')];
    const c = await connect();
    // 250 ms apart: the cluster reports occupancy at most every 200 ms, so these are separate emits. The frames go
    // out on a timer without waiting for the replies, so broker round trips do not stretch the spread of the events
    // (about 500 ms) towards webhook_batch_ms.
    const replies = [];
    for (const [i, room] of rooms.entries()) {
        if (i) await new Promise((r) => setTimeout(r, 250));
        replies.push(request(c, { type: 'subscribe', room }));
    }
    for (const [i, reply] of (await Promise.all(replies)).entries()) {
        assert.equal(reply.error, undefined, `subscribe ${rooms[i]}: ${JSON.stringify(reply.error)}`);
    }
    await waitFor(() => rooms.every((room) => receiver.with(named('channel_occupied', room)).length), {
        timeoutMs: scaled(8000),
        message: 'channel_occupied for every room',
    });
    const posts = new Set(rooms.map((room) => receiver.with(named('channel_occupied', room))[0]));
    assert.equal(posts.size, 1, `one POST carries all three events (got ${posts.size})`);
    const [post] = posts;
    assert.ok(post.json.events.length >= 3);
});

test('refused and hanging receivers never block WebSocket traffic; their batches are dropped after the attempts', { timeout: 60000 }, async (t) => {
    // a receiver that accepts connections and never answers
    const hung = [];
    const hang = net.createServer((s) => hung.push(s));
    const hangPort = await freePort();
    await new Promise((r) => hang.listen(hangPort, '127.0.0.1', r));
    const refusedPort = 1; // tcpmux: nothing listens there, connections are refused at once
    const s2 = await startStack({
        apps: [
            { id: 'demo', key: 'demo-key', secret: 'demo-secret', require_auth: false },
            { id: 'down', key: 'down-key', secret: 'down-secret', require_auth: false, webhook_url: `http://127.0.0.1:${refusedPort}/hook` },
            { id: 'hang', key: 'hang-key', secret: 'hang-secret', require_auth: false, webhook_url: `http://127.0.0.1:${hangPort}/hook` },
        ],
        gateway: { webhook_batch_ms: 100, webhook_max_attempts: 2, webhook_timeout_ms: 1500 },
    });
    const local = [];
    try {
        const open = async (app) => {
            const c = await wsConnect(`${s2.gw.wsUrl}/v1/${app}`);
            local.push(c);
            await c.next((f) => f.type === 'open');
            return c;
        };
        const sub = await open('demo');
        const pub = await open('demo');
        const room = unique('wh-live');
        await subscribe(sub, room);
        // events for the two broken receivers
        const d = await open('down');
        const h = await open('hang');
        await subscribe(d, unique('wh-down'));
        await subscribe(h, unique('wh-hang'));

        const latencies = [];
        const done = () =>
            hung.length >= 2 &&
            /batch dropped after 2 attempts app=down /.test(s2.gw.logs()) &&
            /batch dropped after 2 attempts app=hang /.test(s2.gw.logs());
        const deadline = Date.now() + 20000;
        let n = 0;
        while (!done() && Date.now() < deadline) {
            n += 1;
            const t0 = Date.now();
            pub.send({ type: 'publish', room, message: { n } });
            await sub.next((f) => f.type === 'message' && f.room === room && f.message.n === n, scaled(5000));
            latencies.push(Date.now() - t0);
            await new Promise((r) => setTimeout(r, 20));
        }
        assert.ok(done(), `both receivers were tried twice and dropped (hang connections: ${hung.length})`);
        const max = Math.max(...latencies);
        t.diagnostic(`${latencies.length} round trips, max ${max} ms`);
        assert.ok(latencies.length >= 20, `traffic kept flowing (${latencies.length} round trips)`);
        // a loop blocked for one webhook_timeout_ms (1500 ms) would hold one round trip about that long
        const limit = Math.min(scaled(700), 1200);
        assert.ok(max < limit, `WebSocket round trips stayed under ${limit} ms while webhooks failed (max ${max} ms)`);
        const lines = s2.gw.logs().split('\n').filter((l) => l.includes('batch dropped'));
        for (const l of lines) assert.ok(!l.includes('secret') && !l.includes('/hook'), `no secret or URL in: ${l}`);
    } finally {
        for (const c of local) c.terminate();
        await s2.stop();
        for (const s of hung) s.destroy();
        await new Promise((r) => hang.close(r));
    }
});

test('SIGTERM sends queued events at once and waits for their delivery', { timeout: 30000 }, async () => {
    const room = unique('wh-stop');
    const c = await connect();
    await subscribe(c, room);
    await waitFor(() => receiver.with(named('channel_occupied', room)).length, { timeoutMs: scaled(8000), message: 'occupied' });
    // the close at shutdown vacates the channel; webhook_batch_ms is not waited for while draining
    const t0 = Date.now();
    await stack.stop();
    stack = null;
    const vac = receiver.with(named('channel_vacated', room));
    assert.equal(vac.length, 1, 'channel_vacated was delivered before the gateway exited');
    assert.ok(vac[0].at - t0 < BATCH_MS, `sent without waiting webhook_batch_ms (${vac[0].at - t0} ms after SIGTERM)`);
});

test('SIGTERM right after a node snapshot: the channels the closing sessions vacate are still reported', { timeout: 30000 }, async () => {
    // Occupancy is evaluated with the node snapshot ({root}/_node/{id}), at most every 200 ms. A snapshot without
    // webhook events (a Pusher signin joins a per-user channel) followed at once by SIGTERM must not make the
    // gateway exit before it evaluated what the closing sessions vacate.
    const own = await startReceiver();
    const s = await startStack({ apps: [{ ...DEMO, require_auth: false, webhook_url: own.url }], gateway: { webhook_batch_ms: 0 } });
    const op = await mqttConnect({ port: s.brokerPort, ...OPERATOR_USER });
    try {
        const snapshots = mqttCollector(op);
        await op.subscribeAsync('pushgate/_node/+', { qos: 1 });
        const room = unique('wh-last');
        const c = await wsConnect(`${s.gw.wsUrl}/v1/demo`);
        await subscribeNative(c, room);
        await waitFor(() => own.with(named('channel_occupied', room)).length, { message: 'occupied' });
        await delay(500); // past the snapshot interval: the next snapshot is the signin's
        snapshots.pending.length = 0;

        const p = await wsConnect(`${s.gw.wsUrl}/app/${DEMO.key}?protocol=7&client=js&version=8.6.0`);
        const established = await p.next((f) => f.event === 'pusher:connection_established');
        const socketId = JSON.parse(established.data).socket_id;
        const userData = JSON.stringify({ id: unique('user') });
        const sig = crypto.createHmac('sha256', DEMO.secret).update(`${socketId}::user::${userData}`).digest('hex');
        p.send({ event: 'pusher:signin', data: { auth: `${DEMO.key}:${sig}`, user_data: userData } });
        await p.next((f) => f.event === 'pusher:signin_success');
        await snapshots.next();
        await s.gw.stop();
        assert.equal(own.with(named('channel_vacated', room)).length, 1, 'channel_vacated was delivered before the gateway exited');
    } finally {
        await op.endAsync();
        await s.stop();
        await own.close();
    }
});
