// Bounded lag across gateway nodes: real mosquitto, two real gateways on it, every message counted by number.
//  - gateway B stops processing (SIGSTOP) while publishes go through A, which has no subscribers of its own: A
//    admits no more than max_unconfirmed_publishes that B has not confirmed (its marks), then refuses (503,
//    Retry-After, JSON body);
//  - B wakes up to messages older than max_inbound_lag_ms: B tells the cluster it is behind, and A refuses for
//    that reason until B has caught up, then accepts publishes again;
//  - every publish A answered 200 reaches B's subscriber;
//  - devices: while a gateway says it is behind, the broker plugin refuses device publishes (MQTT v5: PUBACK 0x87;
//    v3.1.1: the connection closes without a PUBACK), and accepts them again once it caught up.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';

import { freePort, httpRequest, mqttConnect, scaled, signJwt, startStack, waitFor, wsConnect } from './lib/harness.mjs';
import { subscribeNative } from './lib/native.mjs';
import { DEMO } from './lib/pusher.mjs';

const JSON_CT = { 'Content-Type': 'application/json' };
const stacks = [];
const sockets = new Set();

after(async () => {
    for (const c of sockets) c.terminate();
    const failed = (await Promise.allSettled(stacks.map((s) => s.stop()))).filter((o) => o.status === 'rejected');
    if (failed.length) throw failed[0].reason;
});

// A native subscriber that keeps only which message numbers arrived.
async function counter(gw, room) {
    const c = await wsConnect(`${gw.wsUrl}/v1/demo`);
    sockets.add(c);
    await subscribeNative(c, room);
    const got = new Set();
    const stats = { got, gaps: 0 };
    c.ws.removeAllListeners('message');
    c.ws.on('message', (data) => {
        const f = JSON.parse(data);
        if (f.type === 'message' && f.room === room) got.add(f.message.n);
        else if (f.type === 'gap') stats.gaps++;
    });
    return stats;
}

test('a lagging peer makes every gateway refuse publishes until it caught up; nothing acknowledged is lost', { timeout: scaled(90000) }, async () => {
    const WINDOW = 100;
    const stack = await startStack({ gateway: { log_level: 'info', max_inbound_lag_ms: 1000, max_unconfirmed_publishes: WINDOW } });
    stacks.push(stack);
    const a = stack.gw;
    const portB = await freePort();
    const b = await stack.startGateway({ port: portB, args: ['--listen_port', String(portB), '--node_id', 'lag-b'] });
    const room = `lag-${process.pid}`;
    const sub = await counter(b, room);

    const acked = [];
    const refused = []; // [n, acked.length when refused]
    let n = 0;
    let body503;
    let retryAfter;
    const reasons = new Set();
    async function publish() {
        const i = ++n;
        const r = await httpRequest('POST', `${a.url}/demo/${room}/publish`, { body: `{"n":${i}}`, headers: JSON_CT });
        if (r.status === 200) acked.push(i);
        else if (r.status === 503) {
            refused.push(i);
            body503 = r.body;
            retryAfter = r.headers['retry-after'];
            reasons.add(JSON.parse(r.body).error.message);
        } else assert.fail(`publish ${i}: ${r.status} ${r.body}`);
        return r.status;
    }

    // the channel is live on B before B is paused
    assert.equal(await publish(), 200);
    await waitFor(() => sub.got.has(1), { message: 'B delivers what A publishes' });

    // B processes nothing for 2.5 s: A admits at most WINDOW publishes that B has not confirmed, then refuses
    b.signal('SIGSTOP');
    try {
        const until = Date.now() + 2500;
        while (Date.now() < until) {
            await publish();
            await new Promise((res) => setTimeout(res, 10));
        }
    } finally {
        b.signal('SIGCONT');
    }
    const ackedWhileStopped = acked.length - 1;
    const refusedWhileStopped = refused.length;
    const stoppedReason = body503;
    reasons.clear();
    // B wakes up to messages older than max_inbound_lag_ms: A must refuse while B says it is behind, then accept
    let sawRefusal = false;
    let acceptedAfter = false;
    const deadline = Date.now() + scaled(20000);
    while (Date.now() < deadline && !acceptedAfter) {
        const status = await publish();
        if (status === 503) sawRefusal = true;
        else if (sawRefusal) acceptedAfter = true;
        await new Promise((res) => setTimeout(res, 20));
    }
    assert.ok(refusedWhileStopped > 0, `A refused publishes while B processed nothing (${ackedWhileStopped} accepted)`);
    assert.ok(ackedWhileStopped <= WINDOW, `A admitted ${ackedWhileStopped} publishes B had not confirmed (window ${WINDOW})`);
    assert.match(JSON.parse(stoppedReason).error.message, /not yet delivered by every gateway node/, stoppedReason);
    assert.ok(sawRefusal, `A refused publishes while B was behind (${acked.length} accepted, none refused)`);
    assert.equal(retryAfter, '1');
    const err = JSON.parse(body503);
    assert.equal(err.error.code, 503, body503);
    assert.ok([...reasons].some((m) => /another gateway node is behind/.test(m)), `B said it was behind: ${[...reasons].join('; ')}`);
    assert.ok(acceptedAfter, 'A accepts publishes again once B caught up');

    // every acknowledged publish reaches B's subscriber, counted by number
    await waitFor(() => acked.every((i) => sub.got.has(i)), {
        timeoutMs: scaled(20000),
        message: 'every acknowledged message reaches B',
    }).catch(() => {
        const missing = acked.filter((i) => !sub.got.has(i));
        assert.fail(`${missing.length} of ${acked.length} acknowledged messages never reached B: ${missing.slice(0, 20).join(' ')}`);
    });
    assert.equal(sub.gaps, 0, 'no gap signal: nothing was dropped');
    const metrics = (await httpRequest('GET', `${a.url}/metrics`)).body;
    assert.match(metrics, /^pushgate_publish_shed_total\{app="demo"\} [1-9]\d*$/m, 'A counts what it refused');
    assert.match(a.logs(), /node lag-b is behind/, 'A logs why it refuses');
});

function publishQos1(client, topic, payload) {
    return new Promise((resolve) => {
        client.publish(topic, payload, { qos: 1 }, (err, packet) => {
            if (err) resolve(typeof err.code === 'number' ? err.code : err.message);
            else resolve(packet && typeof packet.reasonCode === 'number' ? packet.reasonCode : 0);
        });
    });
}

test('while a gateway says it is behind, device publishes are refused (v5: 0x87, v3.1.1: closed) and REST publishes too', { timeout: scaled(60000) }, async () => {
    const stack = await startStack({ gateway: { log_level: 'info' } });
    stacks.push(stack);
    const gw = stack.gw;
    const room = `dev-${process.pid}`;
    const topic = `pushgate/demo/c/${room}`;
    const sub = await counter(gw, room);
    const token = (clientId) =>
        signJwt({ channel: 'demo', client: clientId, exp: Math.floor(Date.now() / 1000) + 600, permissions: { '.*': { publish: true, subscribe: true } } }, DEMO.secret);
    const devices = [];
    const device = async (clientId, protocolVersion) => {
        const c = await mqttConnect({ port: stack.broker.port, username: 'demo', clientId, password: token(clientId), protocolVersion });
        devices.push(c);
        return c;
    };
    // a gateway node speaking on its load topic, with the gateways' broker account, as gateway/cluster/cluster.c does
    const node = await mqttConnect({ port: stack.broker.port, ...stack.gatewayUser, clientId: `lagging-node-${process.pid}` });
    devices.push(node);
    const loadTopic = 'pushgate/_node/lagging-node/load';
    try {
        const v5 = await device(`dev5-${process.pid}`, 5);
        assert.equal(await publishQos1(v5, topic, '{"n":1}'), 0, 'accepted while every gateway keeps up');
        await waitFor(() => sub.got.has(1), { message: 'the device message arrives' });

        await node.publishAsync(loadTopic, JSON.stringify({ behind: 'test: out-queues full', for_ms: 60000 }), { qos: 1, retain: true });
        await waitFor(async () => (await publishQos1(v5, topic, '{"n":2}')) === 0x87, { message: 'v5 device gets PUBACK 0x87' });
        // the gateway heard it too: its REST publishes are refused meanwhile
        await waitFor(async () => (await httpRequest('POST', `${gw.url}/demo/${room}/publish`, { body: '{"n":3}', headers: JSON_CT })).status === 503, {
            message: 'REST publishes refused while a peer is behind',
        });
        const v3 = await device(`dev3-${process.pid}`, 4);
        const closed = new Promise((resolve) => v3.once('close', resolve));
        const result = publishQos1(v3, topic, '{"n":4}');
        await closed;
        const settled = await Promise.race([result, new Promise((res) => setTimeout(() => res('no PUBACK'), 500))]);
        assert.notEqual(settled, 0, 'a v3.1.1 device never gets a PUBACK for a refused publish');

        await node.publishAsync(loadTopic, '', { qos: 1, retain: true });
        await waitFor(async () => (await publishQos1(v5, topic, '{"n":5}')) === 0, { message: 'accepted again once caught up' });
        await waitFor(async () => (await httpRequest('POST', `${gw.url}/demo/${room}/publish`, { body: '{"n":6}', headers: JSON_CT })).status === 200, {
            message: 'REST publishes accepted again',
        });
        await waitFor(() => sub.got.has(5) && sub.got.has(6), { message: 'the accepted messages arrive' });
        assert.ok(!sub.got.has(2) && !sub.got.has(4), 'refused messages were not delivered');
    } finally {
        for (const d of devices) d.end(true);
    }
});

test('the broker admits no more device publishes than a gateway has not processed (its window), and each admitted one arrives', { timeout: scaled(60000) }, async () => {
    const WINDOW = 20;
    const stack = await startStack({ gateway: { log_level: 'info', max_unconfirmed_publishes: WINDOW } });
    stacks.push(stack);
    const gw = stack.gw;
    const room = `win-${process.pid}`;
    const topic = `pushgate/demo/c/${room}`;
    const sub = await counter(gw, room);
    const clientId = `devw-${process.pid}`;
    const password = signJwt({ channel: 'demo', client: clientId, exp: Math.floor(Date.now() / 1000) + 600, permissions: { '.*': { publish: true, subscribe: true } } }, DEMO.secret);
    const dev = await mqttConnect({ port: stack.broker.port, username: 'demo', clientId, password });
    try {
        let n = 0;
        const admitted = [];
        const refusedCodes = [];
        const send = async () => {
            const i = ++n;
            const rc = await publishQos1(dev, topic, `{"n":${i}}`);
            if (rc === 0) admitted.push(i);
            else refusedCodes.push(rc);
            return rc;
        };
        // the gateway's first marks have passed the broker: it is known to the plugin, and admitted messages arrive
        // (the subscriber's frame may come after the device's PUBACK: asking for the message just acknowledged
        // raced them, and lost every time the frame came second)
        await waitFor(async () => (await send()) === 0 && admitted.some((i) => sub.got.has(i)), { message: 'device messages arrive' });
        const before = admitted.length;
        gw.signal('SIGSTOP');
        try {
            // the gateway processes nothing: the broker admits at most WINDOW more, then answers 0x87
            for (let k = 0; k < WINDOW * 3; k++) await send();
        } finally {
            gw.signal('SIGCONT');
        }
        const whileStopped = admitted.length - before;
        assert.ok(whileStopped <= WINDOW, `the broker admitted ${whileStopped} device publishes the stopped gateway had not processed (window ${WINDOW})`);
        assert.ok(refusedCodes.length > 0 && refusedCodes.every((c) => c === 0x87), `refusals are PUBACK 0x87: ${refusedCodes.slice(0, 5).join(' ')}`);
        // once it has processed them, devices publish again
        await waitFor(async () => (await send()) === 0, { timeoutMs: scaled(10000), message: 'admitted again after the gateway caught up' });
        await waitFor(() => admitted.every((i) => sub.got.has(i)), { timeoutMs: scaled(10000) }).catch(() => {
            const missing = admitted.filter((i) => !sub.got.has(i));
            assert.fail(`${missing.length} of ${admitted.length} admitted device messages never arrived: ${missing.slice(0, 20).join(' ')}`);
        });
    } finally {
        dev.end(true);
    }
});
