// The gateway's MQTT bridge against a real mosquitto broker with the pushgate auth plugin: one message
// model across WebSocket, REST and MQTT devices (all six directions), resubscription after a broker
// restart, a slow WebSocket reader closed with 1013 while the other subscribers keep receiving, the bridge
// calling itself ready (what /readyz reports) only once the broker acknowledged its subscriptions, and the
// batching of subscriptions (counted in the broker's log): one SUBSCRIBE per pass, a grant per filter, the order
// of a drop and a re-subscribe kept, 10,000 filters in a handful of packets.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

import { BUILD_DIR, DEFAULT_APPS, httpRequest, mqttCollector, mqttConnect, signJwt, startStack, userProp, waitFor, wsConnect } from './lib/harness.mjs';
import { within, isMessage } from './lib/native.mjs';

const SECURE = DEFAULT_APPS.find((a) => a.id === 'secure');
const MAX_QUEUE_MESSAGES = 50;
const ALL = { publish: true, subscribe: true };

let stack;
const sockets = new Set();
const devices = new Set();
let seq = 0;

before(async () => {
    stack = await startStack({ gateway: { max_queue_messages: MAX_QUEUE_MESSAGES, max_queue_bytes: '64k' } });
});

after(async () => {
    for (const c of sockets) c.terminate();
    for (const d of devices) d.end(true);
    if (stack) await stack.stop();
});

afterEach(() => {
    for (const c of sockets) c.terminate();
    sockets.clear();
    for (const d of devices) d.end(true);
    devices.clear();
});

function unique(prefix) {
    seq += 1;
    return `${prefix}-${process.pid}-${seq}`;
}

function secureToken(clientId, extra = {}) {
    return signJwt(
        { channel: 'secure', exp: Math.floor(Date.now() / 1000) + 600, permissions: { '.*': ALL }, ...(clientId ? { client: clientId } : {}), ...extra },
        SECURE.secret,
    );
}

async function request(c, frame) {
    seq += 1;
    const cb = seq;
    c.send({ ...frame, cb });
    const r = await c.next((f) => f.cb === cb);
    assert.equal(r.error, undefined, `${frame.type}: ${JSON.stringify(r.error)}`);
    return r;
}

async function wsClient(app, room) {
    const c = await wsConnect(`${stack.gw.wsUrl}/v1/${app}`);
    sockets.add(c);
    c.open = await c.next((f) => f.type === 'open');
    if (app === 'secure') await request(c, { type: 'authenticate', token: secureToken(c.open.client_id) });
    if (room) await request(c, { type: 'subscribe', room });
    return c;
}

async function device(opts) {
    const d = await mqttConnect({ port: stack.broker.port, ...opts });
    devices.add(d);
    d.collected = mqttCollector(d);
    return d;
}

async function secureDevice() {
    const clientId = unique('dev');
    return device({ clientId, username: 'secure', password: secureToken(clientId) });
}

function mqttSubscribe(client, topic) {
    return new Promise((resolve, reject) => {
        client.subscribe(topic, { qos: 1 }, (err, granted) => {
            if (err) return reject(err);
            if (!granted || granted[0].qos > 2) return reject(new Error(`SUBACK refused ${JSON.stringify(granted)}`));
            resolve();
        });
    });
}

function mqttPublish(client, topic, payload, opts = {}) {
    return new Promise((resolve, reject) => {
        client.publish(topic, payload, { qos: 1, ...opts }, (err, packet) => {
            if (err) return reject(err);
            if (packet && typeof packet.reasonCode === 'number' && packet.reasonCode >= 0x80) {
                return reject(new Error(`PUBACK reason ${packet.reasonCode}`));
            }
            resolve();
        });
    });
}

const readyz = () => httpRequest('GET', `${stack.gw.url}/readyz`);

// ---------------------------------------------------------------------------------------------

test('all six directions: WS→WS, WS→MQTT, REST→WS, REST→MQTT, MQTT→WS, MQTT→MQTT', { timeout: 30000 }, async () => {
    const room = unique('bridge');
    const topic = `pushgate/secure/c/${room}`;
    const wsA = await wsClient('secure', room);
    const wsB = await wsClient('secure', room);
    const dev1 = await secureDevice();
    const dev2 = await secureDevice();
    await mqttSubscribe(dev1, topic);
    await mqttSubscribe(dev2, topic);

    // WS → WS and WS → MQTT
    const fromWs = { from: 'ws', n: 1, text: 'grüße' };
    await request(wsA, { type: 'publish', room, message: fromWs });
    let m = await wsB.next(isMessage(room));
    assert.deepEqual(m.message, fromWs, 'WS→WS');
    assert.equal(m.client_id, wsA.open.client_id);
    for (const d of [dev1, dev2]) {
        const got = await d.collected.next((x) => x.topic === topic);
        assert.deepEqual(JSON.parse(got.text), fromWs, 'WS→MQTT');
        assert.deepEqual(got.payload, Buffer.from(JSON.stringify(fromWs)), 'WS→MQTT carries the compact JSON');
        assert.equal(userProp(got.properties, 'event'), 'message');
        assert.equal(userProp(got.properties, 'client_id'), wsA.open.client_id);
    }

    // REST → WS and REST → MQTT: the body's bytes are published unchanged
    const restBody = '{ "from" : "rest",\n  "n": 2 }';
    const res = await httpRequest('POST', `${stack.gw.url}/secure/${room}/publish`, {
        body: restBody,
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${secureToken(null)}` },
    });
    assert.equal(res.status, 200, res.body);
    for (const c of [wsA, wsB]) {
        m = await c.next(isMessage(room, (f) => f.message && f.message.from === 'rest'));
        assert.deepEqual(m.message, { from: 'rest', n: 2 }, 'REST→WS');
        assert.equal(m.client_id, null);
    }
    for (const d of [dev1, dev2]) {
        const got = await d.collected.next((x) => x.topic === topic);
        assert.deepEqual(got.payload, Buffer.from(restBody), 'REST→MQTT bytes unchanged');
        assert.equal(userProp(got.properties, 'event'), 'message');
        assert.equal(userProp(got.properties, 'client_id'), undefined, 'a REST publish has no client_id');
    }

    // MQTT → WS and MQTT → MQTT: JSON bytes and bytes that are not UTF-8
    const fromMqtt = Buffer.from('{"from":"mqtt","n":3}');
    await mqttPublish(dev1, topic, fromMqtt);
    const binary = Buffer.from([0x00, 0xff, 0x10, 0x80, 0xc0, 0xaf]);
    await mqttPublish(dev1, topic, binary);
    for (const c of [wsA, wsB]) {
        m = await c.next(isMessage(room, (f) => f.message && f.message.from === 'mqtt'));
        assert.deepEqual(m.message, { from: 'mqtt', n: 3 }, 'MQTT→WS');
        assert.equal(m.client_id, null);
        m = await c.next(isMessage(room, (f) => f.message && f.message.binary !== undefined));
        assert.deepEqual(m.message, { binary: binary.toString('base64') }, 'MQTT→WS binary');
    }
    let got = await dev2.collected.next((x) => x.topic === topic);
    assert.deepEqual(got.payload, fromMqtt, 'MQTT→MQTT bytes unchanged');
    got = await dev2.collected.next((x) => x.topic === topic);
    assert.deepEqual(got.payload, binary, 'MQTT→MQTT binary unchanged');

    // nobody got anything twice
    const wsCount = (c) => c.frames.filter((f) => f.type === 'message' && f.room === room).length;
    assert.equal(wsCount(wsA), 4);
    assert.equal(wsCount(wsB), 4);
    assert.equal(dev2.collected.messages.length, 4);
});

test('a device cannot publish into another app or use a token for another client id', { timeout: 30000 }, async () => {
    const room = unique('fenced');
    const ws = await wsClient('demo', room);
    const clientId = unique('dev');
    // token bound to another client id: refused at CONNECT
    await assert.rejects(mqttConnect({ port: stack.broker.port, clientId, username: 'secure', password: secureToken('someone-else') }));
    // a secure device publishing to the demo app's topic is refused by the broker and never delivered
    const d = await secureDevice();
    await assert.rejects(mqttPublish(d, `pushgate/demo/c/${room}`, Buffer.from('"intruder"')));
    const res = await httpRequest('POST', `${stack.gw.url}/demo/${room}/publish`, { body: '"legit"', headers: { 'Content-Type': 'application/json' } });
    assert.equal(res.status, 200);
    await ws.next(isMessage(room, (f) => f.message === 'legit'));
    assert.deepEqual(
        ws.frames.filter((f) => f.type === 'message').map((f) => f.message),
        ['legit'],
    );
});

test('broker restart: the bridge reconnects and resubscribes, messages flow again', { timeout: 30000 }, async () => {
    const room = unique('restart');
    const wildBase = unique('restart-w');
    const ws = await wsClient('demo', room);
    const wild = await wsClient('demo', `${wildBase}/#`);
    let res = await httpRequest('POST', `${stack.gw.url}/demo/${room}/publish`, { body: '"before"' });
    assert.equal(res.status, 200);
    await ws.next(isMessage(room, (f) => f.message === 'before'));

    await stack.broker.restart();
    await waitFor(async () => (await readyz()).status === 200, { timeoutMs: 15000, message: '/readyz 200 after restart' });

    res = await httpRequest('POST', `${stack.gw.url}/demo/${room}/publish`, { body: '"after"' });
    assert.equal(res.status, 200, res.body);
    const m = await ws.next(isMessage(room, (f) => f.message === 'after'), 10000);
    assert.equal(m.message, 'after');

    // wildcard filters come back too, and a device on the new broker reaches the WebSocket session
    const dev = await device({ ...stack.gatewayUser, clientId: unique('restart-dev') });
    await mqttPublish(dev, `pushgate/demo/c/${wildBase}/x/y`, Buffer.from('"device"'));
    await wild.next(isMessage(`${wildBase}/x/y`, (f) => f.message === 'device'), 10000);
    assert.equal(ws.closeInfo, null, 'WebSocket sessions survive a broker restart');
    assert.equal(wild.closeInfo, null);
});

test('slow consumer: closed with 1013 over its out-queue limit while the others receive everything', { timeout: 30000 }, async () => {
    const room = unique('flood');
    const topic = `pushgate/demo/c/${room}`;
    const slow = await wsClient('demo', room);
    const normal = await wsClient('demo', room);
    const pub = await device({ ...stack.gatewayUser, clientId: unique('flood-pub') });
    // a publish through the gateway travels behind its SUBSCRIBE, so once it arrives the room is live at the broker
    const warm = await httpRequest('POST', `${stack.gw.url}/demo/${room}/publish`, { body: '{"i":"warm"}' });
    assert.equal(warm.status, 200, warm.body);
    await slow.next(isMessage(room, (f) => f.message.i === 'warm'));
    await normal.next(isMessage(room, (f) => f.message.i === 'warm'));
    const logMark = stack.gw.logs().length;
    const slowClosedInLog = () => stack.gw.logs().slice(logMark).includes('slow consumer closed');

    // Stop reading on the slow client's socket: TCP backs up through both kernels' buffers, then the
    // gateway's out-queue for that session grows until it reaches its limit.
    slow.ws._socket.pause();
    const pad = 'x'.repeat(30 * 1024);
    const MAX = 1500; // 45 MB: far more than loopback socket buffers hold
    let sent = 0;
    let extra = -1;
    while (sent < MAX) {
        const i = sent;
        await mqttPublish(pub, topic, Buffer.from(JSON.stringify({ i, pad })));
        sent += 1;
        // pace on the normal subscriber: it keeps up, so only the slow one accumulates
        await normal.next(isMessage(room, (f) => f.message.i === i), 10000);
        if (extra < 0 && slowClosedInLog()) extra = 20;
        if (extra >= 0 && extra-- === 0) break;
    }
    assert.ok(slowClosedInLog(), `slow consumer not closed after ${sent} messages of 30 KB`);
    assert.ok(sent < MAX);

    const numbered = (c) => c.frames.filter((f) => f.type === 'message' && f.room === room && typeof f.message.i === 'number').map((f) => f.message.i);
    const normalGot = numbered(normal);
    assert.deepEqual(normalGot, Array.from({ length: sent }, (_, k) => k), 'the normal subscriber received every message in order');
    assert.equal(normal.closeInfo, null);

    slow.ws._socket.resume();
    const info = await within(slow.closed, 15000);
    assert.ok(info, 'slow client saw its connection close');
    assert.equal(info.code, 1013, JSON.stringify(info));
    const slowGot = numbered(slow);
    assert.ok(slowGot.length < sent, `slow got ${slowGot.length} of ${sent}`);
    // in order, and no message missing unless a gap signal stands before the next one: while its socket had been
    // full for less than slow_consumer_grace_ms the slow one counted as a reader that lost messages
    let next = 0;
    let gap = false;
    for (const f of slow.frames) {
        if (f.type === 'gap') gap = true;
        if (f.type !== 'message' || f.room !== room || typeof f.message.i !== 'number') continue;
        if (gap) assert.ok(f.message.i >= next, `after a gap signal: ${f.message.i}, at least ${next}`);
        else assert.equal(f.message.i, next, 'without a gap signal, the next message in order');
        next = f.message.i + 1;
        gap = false;
    }

    // the room still works for the one that kept up
    await mqttPublish(pub, topic, Buffer.from('{"i":"last"}'));
    await normal.next(isMessage(room, (f) => f.message.i === 'last'));
});

test('the bridge is ready only once every subscription it came up with is acknowledged', { timeout: 30000 }, async () => {
    const tool = path.join(BUILD_DIR, 'tests', 'integration', 'pushgate_bridge_tool');
    const { username, password } = stack.gatewayUser;
    // two filters subscribed before connecting, one added while the connection comes up (as the gateway does)
    const filters = ['pushgate/ready-a/#', 'pushgate/ready-b/+', '@pushgate/ready-c/x'];
    const { stdout } = await promisify(execFile)(tool, ['127.0.0.1', String(stack.brokerPort), username, password, ...filters], {
        timeout: 20000,
    });
    const lines = stdout.trim().split('\n');
    assert.equal(lines[0], 'connected ready=0', stdout);
    const ready = lines.indexOf('ready');
    assert.ok(ready > 0, `ready reported:\n${stdout}`);
    const granted = lines.filter((l) => l.startsWith('granted ')).map((l) => l.slice(8));
    assert.deepEqual(granted.sort(), filters.map((f) => f.replace(/^@/, '')).sort(), stdout);
    for (const f of granted) assert.ok(lines.indexOf(`granted ${f}`) < ready, `${f} granted before ready:\n${stdout}`);
});

// The broker's log (log_type all) names every SUBSCRIBE it receives from the tool, then one line per filter it carries.
function toolSubscribes(log, clientId = 'pushgate-bridge-tool') {
    const packets = [];
    for (const line of log.split('\n')) {
        if (line.endsWith(`Received SUBSCRIBE from ${clientId}`)) packets.push([]);
        else if (/Received /.test(line)) packets.push(null); // another packet: its filter lines are not the tool's
        else {
            const m = /^(?:\d+: )?\s*(\S+) \(QoS \d\)$/.exec(line);
            if (m && packets.length && packets[packets.length - 1]) packets[packets.length - 1].push(m[1]);
        }
    }
    return packets.filter(Boolean);
}

async function runTool(args, { username, password, clientId } = stack.gatewayUser) {
    const tool = path.join(BUILD_DIR, 'tests', 'integration', 'pushgate_bridge_tool');
    const from = stack.broker.logs().length;
    const { stdout } = await promisify(execFile)(tool, ['127.0.0.1', String(stack.brokerPort), username, password, ...args], {
        timeout: 60000,
        maxBuffer: 16 * 1024 * 1024,
        env: clientId ? { ...process.env, BRIDGE_TOOL_CLIENT_ID: clientId } : process.env,
    });
    const log = () => stack.broker.logs().slice(from);
    return { stdout, lines: stdout.trim().split('\n'), log };
}

test('subscriptions made in one pass go out as one SUBSCRIBE; a refused filter fails only itself', { timeout: 30000 }, async () => {
    const tag = unique('batch');
    // the tool logs in as a device of the secure app whose token lets it subscribe to ${tag}-ok-* only: the plugin
    // refuses the other filter, and all of them are exact, so one packet may carry them all
    const clientId = `${tag}-tool`;
    const token = secureToken(clientId, { permissions: { [`${tag}-ok-.*`]: ALL } });
    const ok = ['a', 'b', 'c', 'd'].map((x) => `pushgate/secure/c/${tag}-ok-${x}`);
    const refused = `pushgate/secure/c/${tag}-no`;
    const added = `pushgate/secure/c/${tag}-ok-e`;
    const { stdout, lines, log } = await runTool([...ok, `!${refused}`, `@${added}`], { username: 'secure', password: token, clientId });
    const granted = lines.filter((l) => l.startsWith('granted ')).map((l) => l.slice(8));
    assert.deepEqual(granted.sort(), [...ok, added].sort(), stdout);
    assert.deepEqual(lines.filter((l) => l.startsWith('refused ')), [`refused ${refused}`], stdout);
    assert.ok(lines.indexOf('ready') > 0, `a refused filter counts as answered for readiness:\n${stdout}`);
    await waitFor(() => toolSubscribes(log(), clientId).flat().length >= 6, { timeoutMs: 5000 }).catch(() => {});
    const packets = toolSubscribes(log(), clientId);
    assert.equal(packets.length, 1, `one SUBSCRIBE: ${JSON.stringify(packets)}`);
    assert.deepEqual(packets[0].sort(), [...ok, refused, added].sort());
});

test('wildcard filters that may match one topic never share a SUBSCRIBE (nor its subscription identifier)', { timeout: 30000 }, async () => {
    const tag = unique('wild');
    const filters = [`pushgate/${tag}/#`, `pushgate/${tag}/+/x`, `pushgate/${tag}/a/x`, `pushgate/other-${tag}/+`];
    const { stdout, lines, log } = await runTool(filters);
    const granted = lines.filter((l) => l.startsWith('granted ')).map((l) => l.slice(8));
    assert.deepEqual(granted.sort(), [...filters].sort(), stdout);
    await waitFor(() => toolSubscribes(log()).flat().length >= filters.length, { timeoutMs: 5000 }).catch(() => {});
    const packets = toolSubscribes(log());
    assert.deepEqual(packets.flat().sort(), [...filters].sort(), JSON.stringify(packets));
    const together = (f, g) => packets.some((p) => p.includes(f) && p.includes(g));
    assert.ok(!together(filters[0], filters[1]), JSON.stringify(packets));
    assert.ok(together(filters[0], filters[3]), `wildcards that match no common topic share one: ${JSON.stringify(packets)}`);
    // the exact filter goes with other exact filters only
    assert.ok(!packets.some((p) => p.includes(filters[2]) && p.length > 1), JSON.stringify(packets));
});

test("No Local: the broker keeps a client's own messages from a filter that asks so, and only from it", { timeout: 30000 }, async () => {
    const tag = unique('nolocal');
    const mine = [`pushgate/${tag}/a`, `pushgate/${tag}/b`]; // No Local
    const plain = [`pushgate/${tag}/c`, `pushgate/${tag}/d`];
    // subscribed before connecting, all four go out in the connection's first pass: the options split the packets
    const { stdout, lines, log } = await runTool([...mine.map((f) => `^${f}`), ...plain]);
    const granted = lines.filter((l) => l.startsWith('granted ')).map((l) => l.slice(8));
    assert.deepEqual(granted.sort(), [...mine, ...plain].sort(), stdout);
    const back = lines.filter((l) => l.startsWith('message ')).map((l) => l.slice(8));
    assert.deepEqual(back.sort(), plain, `only the filters without No Local got the tool's own messages:\n${stdout}`);
    await waitFor(() => toolSubscribes(log()).flat().length >= 4, { timeoutMs: 5000 }).catch(() => {});
    const packets = toolSubscribes(log()).map((p) => p.sort());
    assert.deepEqual(packets.sort(), [mine, plain].sort(), `one SUBSCRIBE per set of options: ${JSON.stringify(packets)}`);
});

test('10,000 subscriptions made in one pass cost a few SUBSCRIBE packets, not 10,000 round trips', { timeout: 90000 }, async () => {
    const tag = unique('many');
    const n = 10000;
    const { stdout, log } = await runTool([`pushgate/${tag}/ctl`, `*${n}:pushgate/${tag}/ch`]);
    assert.ok(stdout.includes(`granted ${n} pushgate/${tag}/ch/...`), stdout);
    await waitFor(() => toolSubscribes(log()).flat().length >= n + 1, { timeoutMs: 10000 }).catch(() => {});
    const packets = toolSubscribes(log());
    assert.equal(packets.flat().length, n + 1, `every filter subscribed once (${packets.length} packets)`);
    assert.ok(packets.length <= 2 + Math.ceil(n / 100), `${packets.length} SUBSCRIBE packets for ${n} filters`);
});

test('within one pass, a filter dropped and subscribed again is unsubscribed first; one subscribed and dropped is never sent', { timeout: 30000 }, async () => {
    const tag = unique('order');
    const again = `pushgate/${tag}/again`;
    const gone = `pushgate/${tag}/gone`;
    const { stdout, lines, log } = await runTool([`~${again}`, `%${gone}`]);
    assert.deepEqual(lines.filter((l) => l.startsWith('granted ')), [`granted ${again}`, `granted ${again}`], stdout);
    const subscribed = (l) => l.endsWith(`\t${again} (QoS 1)`) || l.trim().endsWith(` ${again} (QoS 1)`);
    await waitFor(() => log().split('\n').filter(subscribed).length >= 2, { timeoutMs: 5000 }).catch(() => {});
    const l = log().split('\n');
    const subs = l.map((x, i) => (subscribed(x) ? i : -1)).filter((i) => i >= 0);
    const unsub = l.findIndex((x) => x.endsWith('Received UNSUBSCRIBE from pushgate-bridge-tool'));
    assert.equal(subs.length, 2, log());
    assert.ok(subs[0] < unsub && unsub < subs[1], `SUBSCRIBE, UNSUBSCRIBE, SUBSCRIBE:\n${log()}`);
    assert.ok(!log().includes(gone), `${gone} never reached the broker`);
});
