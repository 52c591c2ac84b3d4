// Two pushgate processes on one broker behave as one Pusher cluster: presence members, user counts and
// member events are reported once for the whole cluster, and a killed process's members disappear.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';

import { DEFAULT_APPS, OPERATOR_USER, freePort, httpRequest, mqttConnect, startStack, waitFor, wsConnect } from './lib/harness.mjs';
import { DEMO, established, hmacAuth, signedPath } from './lib/pusher.mjs';

const KEEPALIVE_S = 5;
let stack;
let stack2;
let receiver;
const sockets = [];

after(async () => {
    for (const c of sockets) c.terminate();
    if (stack) await stack.stop();
    if (stack2) await stack2.stop();
    if (receiver) await new Promise((r) => receiver.close(r));
});

async function connect(gw) {
    const c = await wsConnect(`${gw.wsUrl}/app/${DEMO.key}?protocol=7&client=js&version=8.4.0`);
    sockets.push(c);
    return established(c);
}

async function joinPresence(c, channel, userId) {
    const channelData = JSON.stringify({ user_id: userId, user_info: { name: userId } });
    const auth = hmacAuth(c.socketId, channel, channelData);
    c.send({ event: 'pusher:subscribe', data: { channel, auth, channel_data: channelData } });
    const ok = await c.next((f) => f.event === 'pusher_internal:subscription_succeeded' && f.channel === channel);
    return JSON.parse(ok.data).presence;
}

function memberEvents(c, channel) {
    return c.frames
        .filter((f) => f.channel === channel && /^pusher_internal:member_/.test(f.event))
        .map((f) => `${f.event.split(':')[1]} ${JSON.parse(f.data).user_id}`);
}

function signedGet(gw, path, query = {}) {
    return httpRequest('GET', `${gw.url}${signedPath('GET', path, { params: query })}`);
}

test('presence across two processes: one member per user, counted once, removed when a process dies', { timeout: 60000 }, async () => {
    stack = await startStack({ gateway: { broker_keepalive_s: KEEPALIVE_S } });
    const gw1 = stack.gw;
    const port2 = await freePort();
    const gw2 = await stack.startGateway({ port: port2, args: ['--listen_port', String(port2)] });
    const channel = `presence-cluster-${process.pid}`;

    const alice1 = await connect(gw1);
    let p = await joinPresence(alice1, channel, 'alice');
    assert.deepEqual(p.ids, ['alice']);

    const bob = await connect(gw2);
    p = await joinPresence(bob, channel, 'bob');
    assert.deepEqual([...p.ids].sort(), ['alice', 'bob'], 'the second process sees the first one\'s member');
    assert.equal(p.count, 2);
    await alice1.next((f) => f.event === 'pusher_internal:member_added' && JSON.parse(f.data).user_id === 'bob');

    // alice's second tab, on the other process: still one member, nobody is told of a new member
    const alice2 = await connect(gw2);
    p = await joinPresence(alice2, channel, 'alice');
    assert.equal(p.count, 2);

    for (const gw of [gw1, gw2]) {
        const users = await signedGet(gw, `/apps/demo/channels/${channel}/users`);
        assert.equal(users.status, 200, users.body);
        assert.deepEqual(users.json.users.map((u) => u.id).sort(), ['alice', 'bob']);
        const info = await signedGet(gw, `/apps/demo/channels/${channel}`, { info: 'user_count,subscription_count' });
        assert.equal(info.json.occupied, true);
        assert.equal(info.json.user_count, 2);
    }
    // subscription counts travel in node snapshots (published at most every 200 ms)
    let subs;
    for (let i = 0; i < 40; i++) {
        subs = (await signedGet(gw1, `/apps/demo/channels/${channel}`, { info: 'subscription_count' })).json;
        if (subs.subscription_count === 3) break;
        await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(subs.subscription_count, 3, 'three connections across both processes');

    alice2.close();
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(memberEvents(bob, channel), [], 'closing one of alice\'s tabs removes no member');
    assert.deepEqual(memberEvents(alice1, channel), ['member_added bob']);

    // kill -9 the first process: its MQTT will marks it gone, and its member leaves
    const t0 = Date.now();
    gw1.kill('SIGKILL');
    await bob.next((f) => f.event === 'pusher_internal:member_removed' && JSON.parse(f.data).user_id === 'alice',
        KEEPALIVE_S * 1500 + 10000);
    const waited = Date.now() - t0;
    assert.ok(waited < KEEPALIVE_S * 1500 + 10000, `member removed after ${waited} ms`);
    const users = await signedGet(gw2, `/apps/demo/channels/${channel}/users`);
    assert.deepEqual(users.json.users.map((u) => u.id), ['bob']);
});

test('webhooks of a two-process cluster: each channel and member event is reported once', { timeout: 60000 }, async () => {
    const events = [];
    receiver = http.createServer((req, res) => {
        let body = '';
        req.on('data', (d) => (body += d));
        req.on('end', () => {
            for (const e of JSON.parse(body).events) events.push(e);
            res.end('ok');
        });
    });
    const hookPort = await freePort();
    await new Promise((r) => receiver.listen(hookPort, '127.0.0.1', r));
    const apps = DEFAULT_APPS.map((a) => (a.id === 'demo' ? { ...a, webhook_url: `http://127.0.0.1:${hookPort}/hook` } : a));
    stack2 = await startStack({ apps, gateway: { webhook_batch_ms: 50 }, startGateway: false });
    const [pa, pb] = [await freePort(), await freePort()];
    const gwA = await stack2.startGateway({ port: pa, args: ['--listen_port', String(pa), '--node_id', 'node-a'] });
    const gwB = await stack2.startGateway({ port: pb, args: ['--listen_port', String(pb), '--node_id', 'node-b'] });
    const channel = `presence-hooks-${process.pid}`;

    const alice = await connect(gwB); // on the process that is not the leader
    await joinPresence(alice, channel, 'alice');
    const bob = await connect(gwA);
    await joinPresence(bob, channel, 'bob');
    const alice2 = await connect(gwA); // alice's second tab: no new member
    await joinPresence(alice2, channel, 'alice');
    await waitFor(() => events.filter((e) => e.name === 'member_added').length >= 2, { timeoutMs: 5000 });
    for (const c of [alice, bob, alice2]) c.close();
    await waitFor(() => events.some((e) => e.name === 'channel_vacated'), { timeoutMs: 5000 });
    await new Promise((r) => setTimeout(r, 500)); // late duplicates would arrive by now

    const of = (name) => events.filter((e) => e.name === name && e.channel === channel);
    assert.equal(of('channel_occupied').length, 1, JSON.stringify(events));
    assert.equal(of('channel_vacated').length, 1, JSON.stringify(events));
    assert.deepEqual(of('member_added').map((e) => e.user_id).sort(), ['alice', 'bob'], JSON.stringify(events));
    assert.deepEqual(of('member_removed').map((e) => e.user_id).sort(), ['alice', 'bob'], JSON.stringify(events));
});

test('idle gateways do not echo node snapshots: a snapshot is published for a local change only', { timeout: 30000 }, async () => {
    const own = await startStack({ startGateway: false });
    try {
        const [pa, pb] = [await freePort(), await freePort()];
        await own.startGateway({ port: pa, args: ['--listen_port', String(pa)] });
        await own.startGateway({ port: pb, args: ['--listen_port', String(pb)] });
        const op = await mqttConnect({ port: own.brokerPort, ...OPERATOR_USER });
        const seen = [];
        op.on('message', (topic) => seen.push(topic));
        await op.subscribeAsync('pushgate/_node/+', { qos: 1 });
        await delay(1000); // the retained snapshots and whatever the start-up still publishes
        const before = seen.length;
        await delay(1500);
        // each snapshot used to make every other node publish its own unchanged one, several times a second
        assert.ok(seen.length - before <= 1, `${seen.length - before} snapshots in 1.5 s of idleness`);
        await op.endAsync();
    } finally {
        await own.stop();
    }
});
