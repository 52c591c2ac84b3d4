// Faults under load, with real processes and every message counted by sequence number: the broker killed and
// restarted in the middle of a REST publish stream, one of two gateways killed with SIGKILL while REST and MQTT
// publishers keep going, and two gateways fanning out MQTT device publishes at a rate they sustain. A publish the
// gateway answered 200 (or a PUBACK the broker gave a device) is a promise: every subscriber that was subscribed
// (confirmed) before the publish was sent receives it, exactly once.
import { test, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { setTimeout as delay } from 'node:timers/promises';

import PusherJS from 'pusher-js';
import WebSocket from 'ws';

import { REPO_DIR, freePort, httpRequest, mqttConnect, scaled, startStack, waitFor, wsConnect } from './lib/harness.mjs';
import { DEMO, nextEvent, pusherJsOptions } from './lib/pusher.mjs';

// The browser client, evaluated as the CommonJS-style script it is (the package is "type": "module").
const CLIENT_FILE = path.join(REPO_DIR, 'gateway', 'static', 'pushgate.js');
function loadClient() {
    const mod = { exports: {} };
    vm.compileFunction(fs.readFileSync(CLIENT_FILE, 'utf8'), ['module', 'exports'], { filename: CLIENT_FILE })(mod, mod.exports);
    return mod.exports;
}
const Pushgate = loadClient();

// Short broker reconnect backoff: the outages here last well under a second and the test waits for the recovery.
const GATEWAY = { broker_reconnect_min_ms: 50, broker_reconnect_max_ms: 300, publish_timeout_ms: scaled(3000) };

const stacks = [];
const closers = new Set();
let seq = 0;

afterEach(() => {
    for (const close of closers) close();
    closers.clear();
});

after(async () => {
    for (const s of stacks) await s.stop();
});

function unique(prefix) {
    seq += 1;
    return `${prefix}-${process.pid}-${seq}`;
}

async function newStack(opts) {
    const s = await startStack(opts);
    stacks.push(s);
    return s;
}

async function twoGateways(s) {
    const [pa, pb] = [await freePort(), await freePort()];
    const gwA = await s.startGateway({ port: pa, args: ['--listen_port', String(pa)] });
    const gwB = await s.startGateway({ port: pb, args: ['--listen_port', String(pb)] });
    return { gwA, gwB };
}

// ---------------------------------------------------------------------------------------------
// Subscribers. Each keeps `got`: the {src, seq} of every message it received, in arrival order.

const payloadOf = (v) => (v && typeof v === 'object' && typeof v.seq === 'number' ? v : null);

// A raw WebSocket speaking the native protocol (/v1/demo), subscribed to every room of `rooms`.
async function nativeSub(gw, rooms, name, got = []) {
    const c = await wsConnect(`${gw.wsUrl}/v1/demo`);
    closers.add(() => c.terminate());
    await c.next((f) => f.type === 'open');
    c.ws.on('message', (data) => {
        const f = JSON.parse(data.toString('utf8'));
        const p = f.type === 'message' && rooms.includes(f.room) && payloadOf(f.message);
        if (p) got.push(p);
    });
    for (const [i, room] of rooms.entries()) {
        c.send({ type: 'subscribe', room, cb: i + 1 });
        const r = await c.next((f) => f.type === 'subscribe' && f.cb === i + 1, scaled(8000));
        assert.equal(r.error, undefined, `${name}: subscribe ${room}: ${JSON.stringify(r.error)}`);
    }
    return { name, c, got };
}

// pusher-js (reconnects and resubscribes by itself), subscribed to every channel of `channels`; confirmations
// records the time of every pusher:subscription_succeeded, per channel.
async function pusherSub(gw, channels, name) {
    const client = new PusherJS(DEMO.key, pusherJsOptions(gw.port));
    closers.add(() => client.disconnect());
    const got = [];
    const states = [];
    const confirmations = Object.fromEntries(channels.map((ch) => [ch, []]));
    client.connection.bind('state_change', (s) => states.push(s.current));
    const subscribed = [];
    for (const ch of channels) {
        const channel = client.subscribe(ch);
        channel.bind('pusher:subscription_succeeded', () => confirmations[ch].push(Date.now()));
        channel.bind('message', (data) => {
            const p = payloadOf(data);
            if (p) got.push(p);
        });
        subscribed.push(nextEvent(channel, 'pusher:subscription_succeeded', scaled(10000)));
    }
    await Promise.all(subscribed);
    return { name, client, got, states, confirmations };
}

// An MQTT client of the demo app (an open app: a device needs no token) subscribed QoS 1 to every topic.
async function mqttSub(brokerPort, topics, name) {
    const d = await mqttConnect({ port: brokerPort, username: 'demo', clientId: unique('fault-sub') });
    closers.add(() => d.end(true));
    const got = [];
    d.on('message', (topic, payload) => {
        try {
            const p = payloadOf(JSON.parse(payload.toString('utf8')));
            if (p) got.push(p);
        } catch {
            // not one of ours
        }
    });
    const granted = await d.subscribeAsync(topics, { qos: 1 });
    assert.ok(granted.every((g) => g.qos === 1), `${name}: SUBACK ${JSON.stringify(granted)}`);
    return { name, d, got };
}

// ---------------------------------------------------------------------------------------------
// Publishers. Each publish is recorded as {src, seq, tStart, tEnd, ok, status}: tStart when it was sent, tEnd when
// the gateway answered (REST) or the broker PUBACKed (MQTT); ok means 200 / PUBACK.

// Sends publish(i) every intervalMs without waiting for the answers (so an outage does not pause the clock), until
// until() is true once answers are in or max publishes were sent. Resolves with every record once all answered.
async function paced({ intervalMs, max, until, publish }) {
    const records = [];
    const inFlight = new Set();
    const t0 = Date.now();
    for (let i = 0; i < max && !until(records); i++) {
        const wait = t0 + i * intervalMs - Date.now();
        if (wait > 0) await delay(wait);
        const rec = { seq: i, tStart: Date.now() };
        records.push(rec);
        const p = publish(i, rec).then(
            (r) => Object.assign(rec, r, { tEnd: Date.now() }),
            (err) => Object.assign(rec, { ok: false, error: err.message, tEnd: Date.now() }),
        );
        inFlight.add(p);
        p.finally(() => inFlight.delete(p));
    }
    await Promise.all(inFlight);
    return records;
}

function restPublisher(gw, room, src) {
    return async (i) => {
        const res = await httpRequest('POST', `${gw.url}/demo/${encodeURIComponent(room)}/publish`, {
            body: { src, seq: i },
            timeoutMs: scaled(10000),
        });
        return { src, ok: res.status === 200, status: res.status, body: res.body };
    };
}

// An MQTT device of the demo app; publish(i) sends {src, seq: i} QoS 1 to topic and resolves on the PUBACK.
async function mqttDevice(brokerPort, src) {
    const d = await mqttConnect({ port: brokerPort, username: 'demo', clientId: unique(src) });
    closers.add(() => d.end(true));
    const publisher = (topic) => (i) =>
        new Promise((resolve) => {
            d.publish(topic, JSON.stringify({ src, seq: i }), { qos: 1 }, (err, packet) => {
                const refused = packet && typeof packet.reasonCode === 'number' && packet.reasonCode >= 0x80;
                resolve({ src, ok: !err && !refused, error: err ? err.message : refused ? `PUBACK ${packet.reasonCode}` : undefined });
            });
        });
    return { d, publisher };
}

// ---------------------------------------------------------------------------------------------
// Counting

const key = (p) => `${p.src}#${p.seq}`;

function counts(got) {
    const m = new Map();
    for (const p of got) m.set(key(p), (m.get(key(p)) || 0) + 1);
    return m;
}

// What `sub` lacks of `expected` (publish records) and what it received more than once.
function audit(sub, expected) {
    const m = counts(sub.got);
    const missing = expected.filter((r) => !m.has(key(r))).map(key);
    const duplicated = [...m].filter(([, n]) => n > 1).map(([k, n]) => `${k}×${n}`);
    return { missing, duplicated };
}

function short(list) {
    return list.length > 20 ? `${list.slice(0, 20).join(', ')} … (${list.length})` : list.join(', ');
}

function assertExactlyOnce(sub, expected, what) {
    const { missing, duplicated } = audit(sub, expected);
    assert.deepEqual(missing, [], `${sub.name}: ${missing.length} of ${expected.length} ${what} never delivered: ${short(missing)}`);
    assert.deepEqual(duplicated, [], `${sub.name}: delivered more than once: ${short(duplicated)}`);
}

// Waits until every subscriber holds every message it is owed ([subscriber, expected] pairs) or the deadline (the
// assertions then say what is missing), then a little longer so that late duplicates would be seen too.
async function settle(owed) {
    const complete = () => owed.every(([sub, expected]) => audit(sub, expected).missing.length === 0);
    await waitFor(complete, { timeoutMs: scaled(10000) }).catch(() => {});
    await delay(scaled(300));
}

const readyz = (gw) => httpRequest('GET', `${gw.url}/readyz`, { timeoutMs: 2000 }).then((r) => r.status, () => 0);

// ---------------------------------------------------------------------------------------------

test('broker killed and restarted under a steady REST stream: every 200 delivered once, 503 meanwhile, nothing for clients to do',
    { timeout: scaled(60000) }, async (t) => {
        const s = await newStack({ gateway: GATEWAY });
        const gw = s.gw;
        const room = unique('faults-restart');
        const native = await nativeSub(gw, [room], 'native');
        const pusher = await pusherSub(gw, [room], 'pusher-js');
        const statesBefore = pusher.states.length;

        // kill -9 about a second into the stream; start it again once the gateway saw it go
        let recoveredAt = 0;
        let outage = null;
        const fault = (async () => {
            await delay(1000);
            const killedAt = Date.now();
            await s.broker.kill();
            await waitFor(async () => (await readyz(gw)) === 503, { message: '/readyz 503 with the broker gone' });
            await delay(300);
            await s.broker.start();
            await waitFor(async () => (await readyz(gw)) === 200, { timeoutMs: scaled(15000), message: '/readyz 200 after the restart' });
            recoveredAt = Date.now();
            outage = { killedAt, recoveredAt };
        })();
        fault.catch(() => {});

        // 100/s until 100 publishes sent after the recovery were answered 200 (at most 15 s)
        const records = await paced({
            intervalMs: 10,
            max: 1500,
            until: (recs) => recoveredAt > 0 && recs.filter((r) => r.ok && r.tStart > recoveredAt).length >= 100,
            publish: restPublisher(gw, room, 'rest'),
        });
        await fault;

        const acked = records.filter((r) => r.ok);
        const byStatus = {};
        for (const r of records) byStatus[r.status ?? r.error] = (byStatus[r.status ?? r.error] || 0) + 1;
        t.diagnostic(`${records.length} publishes: ${JSON.stringify(byStatus)}; outage ${outage.recoveredAt - outage.killedAt} ms`);

        // every answer is 200 or 503: a publish the broker may not have taken is never answered 200
        const odd = records.filter((r) => r.status !== 200 && r.status !== 503);
        assert.deepEqual(odd.map((r) => `${r.seq}: ${r.status ?? r.error} ${r.body ?? ''}`), [], 'answers other than 200 and 503');
        const refused = records.filter((r) => r.status === 503);
        assert.ok(refused.length > 0, 'publishes during the outage answer 503');
        for (const r of refused) assert.equal(JSON.parse(r.body)?.error?.code, 503, r.body);
        assert.ok(acked.some((r) => r.tStart < outage.killedAt) && acked.some((r) => r.tStart > outage.recoveredAt));

        // Exactly once: the broker keeps no state across the restart (persistence false, a clean session), so it has
        // nothing to redeliver, and the gateway re-initialises its MQTT client after a lost session, so nothing it
        // answered is re-sent: a duplicate could only be the gateway's own fault.
        await settle([[native, acked], [pusher, acked]]);
        for (const sub of [native, pusher]) assertExactlyOnce(sub, acked, 'publishes answered 200');

        // A 503 promises nothing either way (the broker may have taken the message just before it died); count them.
        const refusedKeys = new Set(refused.map(key));
        t.diagnostic(`503-answered publishes delivered anyway: native ${native.got.filter((p) => refusedKeys.has(key(p))).length}, ` +
            `pusher-js ${pusher.got.filter((p) => refusedKeys.has(key(p))).length}`);

        // the clients did nothing: same sockets, same subscriptions
        assert.equal(native.c.closeInfo, null, 'the native WebSocket stayed open');
        assert.deepEqual(pusher.states.slice(statesBefore), [], 'pusher-js never left the connected state');
        assert.equal(pusher.confirmations[room].length, 1, 'pusher-js was never asked to resubscribe');
        assert.equal(await readyz(gw), 200);
    });

test('kill -9 of one of two gateways: the survivor\'s subscribers miss nothing, the victim\'s clients come back and miss nothing after resubscribing',
    { timeout: scaled(60000) }, async (t) => {
        // This test is about failover, not load shedding (cluster_lag and the reliability tests cover that): a
        // publish window and lag bound wide enough that B keeps admitting while a killed or freshly restarted A
        // catches up on a slow (sanitizer) build, where the defaults (100 publishes, 2 s) made B answer 503.
        const s = await newStack({
            gateway: { ...GATEWAY, max_unconfirmed_publishes: 2000, max_inbound_lag_ms: scaled(10000) },
            startGateway: false,
        });
        let { gwA, gwB } = await twoGateways(s);
        const room = unique('faults-kill');
        const topic = `pushgate/demo/c/${room}`;

        // survivors: on B, and an MQTT subscriber on the broker
        const survivors = [
            await nativeSub(gwB, [room], 'native on B'),
            await pusherSub(gwB, [room], 'pusher-js on B'),
            await mqttSub(s.brokerPort, [topic], 'MQTT subscriber'),
        ];
        // victims: on A. The raw WebSocket is moved to B by the test; pushgate.js and pusher-js find the restarted A.
        const rawA = await nativeSub(gwA, [room], 'raw native from A');
        const pusherA = await pusherSub(gwA, [room], 'pusher-js from A');
        const drone = new Pushgate('demo', { url: `${gwA.wsUrl}/v1/demo`, WebSocket, reconnectBaseMs: 50, reconnectMaxMs: 300 });
        closers.add(() => drone.close());
        const droneSub = { name: 'pushgate.js from A', got: [] };
        const droneRoom = drone.subscribe(room);
        droneRoom.on('data', (message) => {
            const p = payloadOf(message);
            if (p) droneSub.got.push(p);
        });
        await new Promise((resolve, reject) => droneRoom.once('open', (err) => (err ? reject(err) : resolve())));

        // when each victim's subscription was confirmed again (0: not yet)
        const confirmedAt = { raw: 0, pusher: 0, drone: 0 };
        drone.on('reconnect', () => (confirmedAt.drone = Date.now()));
        const pusherConfirmedBefore = pusherA.confirmations[room].length;

        let killedAt = 0;
        const fault = (async () => {
            await delay(800);
            killedAt = Date.now();
            await gwA.kill('SIGKILL');
            // the raw client notices and moves to B by itself (what a page would do with a list of gateways)
            await rawA.c.closed;
            rawA.moved = await nativeSub(gwB, [room], 'raw native from A', rawA.got);
            confirmedAt.raw = Date.now();
            // A comes back on its port
            gwA = await s.startGateway({ port: gwA.port, args: ['--listen_port', String(gwA.port)] });
            await waitFor(() => pusherA.confirmations[room].length > pusherConfirmedBefore, {
                timeoutMs: scaled(20000),
                message: 'pusher-js resubscribed on the restarted gateway',
            });
            confirmedAt.pusher = pusherA.confirmations[room].at(-1);
            await waitFor(() => confirmedAt.drone > 0, { timeoutMs: scaled(20000), message: 'pushgate.js reconnected' });
        })();
        fault.catch(() => {});

        // REST into B at 100/s and a device at 50/s, until 100 REST publishes went out after the last victim was back
        const allBack = () => Object.values(confirmedAt).every((v) => v > 0);
        const lastBack = () => Math.max(...Object.values(confirmedAt));
        const enoughAfter = (recs) => allBack() && recs.filter((r) => r.tStart > lastBack()).length >= 100;
        const { publisher } = await mqttDevice(s.brokerPort, 'dev');
        let restDone = false;
        const [rest, dev] = await Promise.all([
            paced({ intervalMs: 10, max: 2500, until: enoughAfter, publish: restPublisher(gwB, room, 'rest') }).finally(() => (restDone = true)),
            paced({ intervalMs: 20, max: 1250, until: () => restDone, publish: publisher(topic) }),
        ]);
        await fault;
        t.diagnostic(`${rest.length} REST and ${dev.length} device publishes; back after the kill: ` +
            Object.entries(confirmedAt).map(([k, v]) => `${k} ${v - killedAt} ms`).join(', '));

        // B and the broker never faltered: everything was acknowledged
        assert.deepEqual(rest.filter((r) => !r.ok).map((r) => `${r.seq}: ${r.status ?? r.error}`), [], 'REST into B');
        assert.deepEqual(dev.filter((r) => !r.ok).map((r) => `${r.seq}: ${r.error}`), [], 'device PUBACKs');
        const acked = [...rest, ...dev];

        // A victim is owed what was sent after its subscription was confirmed again (a message sent before may have
        // passed its new gateway before the subscription existed there), and never anything twice.
        const victims = [
            [rawA, confirmedAt.raw],
            [pusherA, confirmedAt.pusher],
            [droneSub, confirmedAt.drone],
        ];
        const owedTo = (since) => acked.filter((r) => r.tStart > since);
        await settle([...survivors.map((sub) => [sub, acked]), ...victims.map(([sub, since]) => [sub, owedTo(since)])]);
        for (const sub of survivors) assertExactlyOnce(sub, acked, 'acknowledged publishes');
        for (const [sub, since] of victims) {
            const owed = owedTo(since);
            assert.ok(owed.length >= 100, `${sub.name}: ${owed.length} publishes after it was back`);
            assertExactlyOnce(sub, owed, 'publishes sent after its resubscription');
            const m = counts(sub.got);
            assert.deepEqual([...m].filter(([, n]) => n > 1).map(([k]) => k), [], `${sub.name}: nothing twice, before or after`);
        }
        assert.equal(await readyz(gwA), 200);
        assert.equal(await readyz(gwB), 200);
        // the survivor missed nothing, so it told nobody of a gap (a false gap would close every Pusher subscriber)
        const metrics = await httpRequest('GET', `${gwB.url}/metrics`);
        assert.doesNotMatch(metrics.body, /^pushgate_gaps_total\{[^}]*\} [1-9]/m, 'no gap on the survivor');
    });

test('two gateways, five MQTT devices at ~200 msg/s: every PUBACKed message reaches every subscriber once, in per-device order',
    { timeout: scaled(60000) }, async (t) => {
        const s = await newStack({ gateway: GATEWAY, startGateway: false });
        const { gwA, gwB } = await twoGateways(s);
        const rooms = [unique('faults-devices'), unique('faults-devices')];
        const topics = rooms.map((r) => `pushgate/demo/c/${r}`);

        const subs = [];
        for (const [gw, tag] of [[gwA, 'A'], [gwB, 'B']]) {
            subs.push(await nativeSub(gw, rooms, `native on ${tag}`));
            subs.push(await pusherSub(gw, rooms, `pusher-js on ${tag}`));
        }
        subs.push(await mqttSub(s.brokerPort, topics, 'MQTT subscriber'));

        // device k publishes to rooms[k % 2] every 25 ms: 5 × 40/s, for 3 s
        const devices = [];
        for (let k = 0; k < 5; k++) devices.push(await mqttDevice(s.brokerPort, `dev${k}`));
        const perDevice = await Promise.all(
            devices.map((dev, k) => paced({ intervalMs: 25, max: 120, until: () => false, publish: dev.publisher(topics[k % 2]) })),
        );
        const sent = perDevice.flat();
        t.diagnostic(`${sent.length} device publishes`);
        assert.deepEqual(sent.filter((r) => !r.ok).map((r) => `${r.src}#${r.seq}: ${r.error}`), [], 'every publish PUBACKed');

        await settle(subs.map((sub) => [sub, sent]));
        for (const sub of subs) {
            assertExactlyOnce(sub, sent, 'PUBACKed device publishes');
            for (let k = 0; k < 5; k++) {
                const order = sub.got.filter((p) => p.src === `dev${k}`).map((p) => p.seq);
                const firstOut = order.findIndex((v, i) => i > 0 && v <= order[i - 1]);
                assert.equal(firstOut, -1, `${sub.name}: dev${k} out of order at ${firstOut}: ${order.slice(Math.max(0, firstOut - 3), firstOut + 3)}`);
            }
        }
        for (const sub of subs.filter((x) => x.states)) assert.equal(sub.client.connection.state, 'connected', sub.name);
    });
