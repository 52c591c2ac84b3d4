// notification-socket.io compatibility: the real socket.io-client 4 running the seed's client snippet
// (`io.connect(url)`, `emit('register', userId, connectionId)` on connect, `on('message')`) against two pushgate
// processes on one broker, with the backend's REST calls (PUT /api/{user}/register, POST /api/{user}/push,
// header X-AUTH-TOKEN) made over plain HTTP. Raw Engine.IO over HTTP and WebSocket checks that malformed input
// ends only its own session.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { io } from 'socket.io-client';
import { pusherServer } from './lib/pusher.mjs';

import {
    DEFAULT_APPS,
    expectEveryWorker,
    freePort,
    httpRequest,
    inbox,
    mqttCollector,
    mqttConnect,
    scaled,
    startStack,
    TEST_WORKERS,
    waitFor,
    wsConnect,
} from './lib/harness.mjs';

const TOKEN = 'demo-push-token-0123456789';
const SECURE_TOKEN = 'secure-push-token-0123456789';
const APPS = [
    { ...DEFAULT_APPS[0], push_token: TOKEN },
    { ...DEFAULT_APPS[1], push_token: SECURE_TOKEN, allowed_origins: 'http://good.example' },
];
// Most of the file runs with generous heartbeats (and not the defaults 25000/20000, so the open packet shows the
// configured values), so a raw session that does not answer pings lives through its test. The heartbeat tests get
// their own stack with a 1 s ping interval and timeout.
const MAIN_PING_MS = 20000;
const MAIN_PING_TIMEOUT_MS = 15000;
const PING_MS = 1000;
const TTL_S = 3600;
const WAIT_MS = 10000;

let stack;
let gw1;
let gw2;
let hbStack;
let hbGw;
const sockets = [];
const raws = [];

const gatewayOptions = (pingIntervalMs, pingTimeoutMs) => ({
    sio_ping_interval_ms: pingIntervalMs,
    sio_ping_timeout_ms: pingTimeoutMs,
    max_body_bytes: '16k',
    sio_max_payload_bytes: '4k',
    push_registration_ttl_s: TTL_S,
});

before(async () => {
    stack = await startStack({ apps: APPS, gateway: gatewayOptions(MAIN_PING_MS, MAIN_PING_TIMEOUT_MS) });
    gw1 = stack.gw;
    const port2 = await freePort();
    gw2 = await stack.startGateway({ port: port2, args: ['--listen_port', String(port2)] });
    hbStack = await startStack({ apps: APPS, gateway: gatewayOptions(PING_MS, PING_MS) });
    hbGw = hbStack.gw;
});

after(async () => {
    for (const s of sockets) s.disconnect();
    for (const r of raws) r.terminate();
    const stops = [stack, hbStack].filter(Boolean).map((s) => s.stop());
    const failed = (await Promise.allSettled(stops)).filter((o) => o.status === 'rejected');
    if (failed.length) throw failed[0].reason;
});

let seq = 0;
const uid = (p) => `${p}-${process.pid}-${++seq}`;

function register(gw, user, conn, token = TOKEN) {
    return httpRequest('PUT', `${gw.url}/api/${encodeURIComponent(user)}/register?connectionId=${encodeURIComponent(conn)}`, {
        headers: token ? { 'X-AUTH-TOKEN': token } : {},
    });
}

function push(gw, user, message, token = TOKEN) {
    return httpRequest('POST', `${gw.url}/api/${encodeURIComponent(user)}/push`, {
        headers: { 'X-AUTH-TOKEN': token },
        body: { message },
    });
}

// A push the clients' inboxes leave out (collect() below, the raw sockets' predicates): asks, does not test delivery.
const PROBE = { probe: 'settle' };
const isProbe = (m) => JSON.stringify(m) === JSON.stringify(PROBE);

// With workers (PUSHGATE_TEST_WORKERS), "recipients" counts a sibling's sessions from its node snapshot, published at
// most every 200 ms (cluster/cluster.c): before a count is asserted, every worker must give it. One process: at once.
async function settled(gw, user, n, token = TOKEN) {
    if (TEST_WORKERS < 2) return;
    await expectEveryWorker(gw, () => push(gw, user, PROBE, token), (r) => r.json?.recipients === n, {
        timeoutMs: WAIT_MS,
        message: `every worker counts ${n} recipients for ${user}`,
    });
}

// Every value of one event, in order; next() consumes them.
function collect(socket, event) {
    const box = inbox(`"${event}" event`);
    socket.on(event, (v) => (event === 'message' && isProbe(v) ? null : box.push(v)));
    return { items: box.items, next: (timeoutMs = WAIT_MS) => box.next(undefined, timeoutMs) };
}

// The seed's snippet, as a page would run it (options only where a test picks the transports).
function seedClient(url, userId, connectionId, opts) {
    const notificationSocketIo = { url, connectionId };
    const socket = opts ? io.connect(notificationSocketIo.url, opts) : io.connect(notificationSocketIo.url);
    const firstTransport = socket.io.engine.transport.name;
    const messages = collect(socket, 'message');
    socket.on('connect', function () {
        socket.emit('register', userId, notificationSocketIo.connectionId);
    });
    sockets.push(socket);
    return {
        socket,
        firstTransport,
        messages,
        errors: collect(socket, 'error'),
        registered: collect(socket, 'registered'),
        connectErrors: collect(socket, 'connect_error'),
    };
}

async function registeredClient(gw, user, opts, via = gw) {
    const conn = uid('conn');
    const r = await register(via, user, conn);
    assert.equal(r.status, 200, r.body);
    const c = seedClient(gw.url, user, conn, opts);
    assert.deepEqual(await c.registered.next(), { userId: user });
    return c;
}

// Raw Engine.IO over a WebSocket (no socket.io-client): frames are text (wsConnect parses the ping "2" to the number 2).
// answerPings: answer each server ping "2" with the pong "3", as a live client does.
async function rawWs(gw, query = '', { answerPings = false } = {}) {
    const c = await wsConnect(`${gw.wsUrl}/socket.io/?EIO=4&transport=websocket${query}`);
    raws.push(c);
    if (answerPings) {
        c.ws.on('message', (d, isBinary) => {
            if (!isBinary && d.toString() === '2') c.ws.send('3');
        });
    }
    return c;
}

// The Engine.IO packets of one long-polling answer.
const packets = (body) => body.split('\x1e');
// ... without the server pings a slow run may have queued in between.
const nonPing = (body) => packets(body).filter((p) => p !== '2');
const isText = (f) => typeof f === 'string';

test('REST: status pages, X-AUTH-TOKEN, body checks, and the retained registration', async () => {
    let r = await httpRequest('GET', `${gw1.url}/api/status/ping`);
    assert.equal(r.status, 200);
    assert.equal(r.body, 'pong');
    r = await httpRequest('GET', `${gw1.url}/api/status/info`);
    assert.equal(r.status, 200);
    assert.equal(r.json.name, 'pushgate');
    assert.match(r.json.version, /^\d+\.\d+/);

    const user = uid('rest');
    for (const token of [null, 'not-the-token-at-all', TOKEN.slice(0, -1)]) {
        r = await register(gw1, user, 'c1', token);
        assert.equal(r.status, 401, `register with token ${token}: ${r.body}`);
        r = await httpRequest('POST', `${gw1.url}/api/${user}/push`, {
            headers: token ? { 'X-AUTH-TOKEN': token } : {},
            body: { message: { x: 1 } },
        });
        assert.equal(r.status, 401, `push with token ${token}: ${r.body}`);
        assert.equal(r.json.error.code, 401);
    }

    r = await httpRequest('PUT', `${gw1.url}/api/${user}/register`, { headers: { 'X-AUTH-TOKEN': TOKEN } });
    assert.equal(r.status, 400, 'no connectionId');
    r = await register(gw1, user, 'a/b');
    assert.equal(r.status, 400, 'a connectionId is one MQTT topic level');
    r = await register(gw1, 'a+b', 'c1');
    assert.equal(r.status, 400, 'a userId is one MQTT topic level');
    r = await httpRequest('GET', `${gw1.url}/api/${user}/push`, { headers: { 'X-AUTH-TOKEN': TOKEN } });
    assert.equal(r.status, 405);

    const post = (body) =>
        httpRequest('POST', `${gw1.url}/api/${user}/push`, {
            headers: { 'X-AUTH-TOKEN': TOKEN, 'Content-Type': 'application/json' },
            body,
        });
    for (const bad of ['{"message":', '[1,2]', '{"msg":{"a":1}}', '{"message":null}', '']) {
        r = await post(bad);
        assert.equal(r.status, 400, `body ${JSON.stringify(bad)}: ${r.body}`);
    }
    r = await post(JSON.stringify({ message: { big: 'x'.repeat(17 * 1024) } }));
    assert.equal(r.status, 413, r.body);

    r = await push(gw1, user, { title: 'nobody listens' });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json, { recipients: 0 });

    // the admin API's namespaces are not user ids
    r = await register(gw1, 'apps', 'c1');
    assert.notEqual(r.status, 200, r.body);

    // the registration is a retained message with an MQTT message expiry: every node (and the broker) has it
    const conn = uid('conn');
    r = await register(gw1, user, conn);
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json, { userId: user, connectionId: conn });
    // _ctl topics are readable by gateway accounts only: look with the gateway's credentials
    const op = await mqttConnect({ port: stack.brokerPort, ...stack.gatewayUser, clientId: uid('inspector') });
    try {
        const msgs = mqttCollector(op);
        await op.subscribeAsync(`pushgate/_ctl/demo/reg/${conn}`, { qos: 1 });
        const m = await msgs.next();
        assert.equal(m.packet.retain, true);
        const reg = JSON.parse(m.text);
        assert.equal(reg.user, user);
        assert.ok(reg.exp > Date.now() + (TTL_S - 60) * 1000 && reg.exp <= Date.now() + TTL_S * 1000, `exp ${reg.exp}`);
        const expiry = m.properties.messageExpiryInterval;
        assert.ok(expiry > TTL_S - 60 && expiry <= TTL_S, `message expiry ${expiry}`);
    } finally {
        op.end(true);
    }
});

test('default transports: polling first, then the upgrade to websocket; a push arrives', { timeout: 30000 }, async () => {
    const user = uid('default');
    const conn = uid('conn');
    assert.equal((await register(gw1, user, conn)).status, 200);
    const c = seedClient(gw1.url, user, conn);
    assert.equal(c.firstTransport, 'polling');
    const upgraded = new Promise((res) => c.socket.io.engine.once('upgrade', (t) => res(t.name)));
    assert.deepEqual(await c.registered.next(), { userId: user });
    assert.equal(await upgraded, 'websocket');
    assert.equal(c.socket.io.engine.transport.name, 'websocket');

    const message = { title: 'Title of message', body: 'Body of message', params: { n: 1 } };
    await settled(gw1, user, 1);
    const r = await push(gw1, user, message);
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json, { recipients: 1 });
    assert.deepEqual(await c.messages.next(), message);
    assert.equal(c.errors.items.length, 0);
});

test("transports: ['websocket'] and ['polling'] each register and receive; heartbeats keep polling alive", { timeout: 30000 }, async () => {
    // the 1 s heartbeat stack, so two pings come within the test
    const user = uid('transports');
    const ws = await registeredClient(hbGw, user, { transports: ['websocket'] });
    const poll = await registeredClient(hbGw, user, { transports: ['polling'] });
    assert.equal(ws.firstTransport, 'websocket');
    assert.equal(poll.firstTransport, 'polling');

    await settled(hbGw, user, 2);
    const r = await push(hbGw, user, { n: 1 });
    assert.deepEqual(r.json, { recipients: 2 });
    assert.deepEqual(await ws.messages.next(), { n: 1 });
    assert.deepEqual(await poll.messages.next(), { n: 1 });

    // two server pings answered over long-polling, and the session still delivers
    const pings = collect(poll.socket.io.engine, 'ping');
    await pings.next(scaled(PING_MS * 3));
    await pings.next(scaled(PING_MS * 3));
    assert.equal(poll.socket.connected, true);
    assert.equal(poll.socket.io.engine.transport.name, 'polling');
    await push(hbGw, user, 'second');
    assert.equal(await poll.messages.next(), 'second');
    assert.equal(await ws.messages.next(), 'second');
});

test('one user, two sockets on two pushgate processes: every push reaches both', { timeout: 40000 }, async () => {
    const user = uid('cluster');
    // both connectionIds are registered through process 1; socket B registers on process 2
    const a = await registeredClient(gw1, user);
    const b = await registeredClient(gw2, user, { transports: ['websocket'] }, gw1);
    const sent = [];
    // recipients is cluster-wide: each process learns the other's count from its next node snapshot
    for (const gw of [gw2, gw1]) {
        await waitFor(
            async () => {
                const message = { i: sent.length, via: gw.port };
                const r = await push(gw, user, message);
                assert.equal(r.status, 200, r.body);
                sent.push(message);
                return r.json.recipients === 2;
            },
            { timeoutMs: WAIT_MS, intervalMs: 100, message: `recipients 2 through ${gw.url}` },
        );
    }
    for (const c of [a, b]) {
        for (const m of sent) assert.deepEqual(await c.messages.next(), m);
    }
});

test('unregistered or wrong connectionId: an error event and no messages', { timeout: 30000 }, async () => {
    const user = uid('victim');
    const conn = uid('conn');
    assert.equal((await register(gw1, user, conn)).status, 200);
    const good = seedClient(gw1.url, user, conn);
    const unknown = seedClient(gw1.url, user, uid('never-registered'));
    const otherUser = seedClient(gw1.url, uid('intruder'), conn);
    const impostor = seedClient(gw2.url, 'someone-else', conn, { transports: ['websocket'] });
    await good.registered.next();
    for (const c of [unknown, otherUser, impostor]) {
        const e = await c.errors.next();
        assert.match(e.message, /registration refused/);
    }
    await settled(gw1, user, 1);
    const r = await push(gw1, user, { secret: true });
    assert.deepEqual(r.json, { recipients: 1 });
    assert.deepEqual(await good.messages.next(), { secret: true });
    // a second refused register travels behind anything queued for these sessions: then nothing came
    for (const c of [unknown, otherUser, impostor]) {
        c.socket.emit('register', user, 'still-not-registered');
        await c.errors.next();
        assert.equal(c.messages.items.length, 0);
        assert.equal(c.registered.items.length, 0);
        assert.equal(c.socket.connected, true, 'a refused register does not close the session');
    }
});

test('malformed Engine.IO / socket.io input closes only its own session', { timeout: 40000 }, async () => {
    const user = uid('bystander');
    const good = await registeredClient(gw1, user, { transports: ['websocket'] });

    // raw long-polling session, then a garbage POST: 400 and the session is gone
    let r = await httpRequest('GET', `${gw1.url}/socket.io/?EIO=4&transport=polling`);
    assert.equal(r.status, 200);
    assert.match(r.body, /^0\{/);
    const open = JSON.parse(r.body.slice(1));
    assert.deepEqual(open.upgrades, ['websocket']);
    assert.equal(open.pingInterval, MAIN_PING_MS);
    assert.equal(open.maxPayload, 4096);
    const sidUrl = `${gw1.url}/socket.io/?EIO=4&transport=polling&sid=${open.sid}`;
    r = await httpRequest('POST', sidUrl, { body: '40', headers: { 'Content-Type': 'text/plain;charset=UTF-8' } });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'ok');
    r = await httpRequest('GET', sidUrl);
    assert.match(nonPing(r.body)[0], /^40\{"sid":"/);
    r = await httpRequest('POST', sidUrl, { body: 'zz\x1e4%' });
    assert.equal(r.status, 400);
    r = await httpRequest('GET', sidUrl);
    assert.equal(r.status, 400);
    assert.equal(r.json.code, 1, 'Session ID unknown');

    // unknown sid, wrong protocol version, unknown transport, binary socket.io packet, oversized payload
    r = await httpRequest('POST', `${gw1.url}/socket.io/?EIO=4&transport=polling&sid=nope`, { body: '40' });
    assert.equal(r.status, 400);
    assert.equal(r.json.code, 1);
    r = await httpRequest('GET', `${gw1.url}/socket.io/?EIO=3&transport=polling`);
    assert.equal(r.status, 400);
    assert.equal(r.json.code, 5);
    r = await httpRequest('GET', `${gw1.url}/socket.io/?EIO=4&transport=flash`);
    assert.equal(r.status, 400);
    for (const body of ['451-["x",{"_placeholder":true,"num":0}]', `42["register","${'x'.repeat(5000)}"]`]) {
        r = await httpRequest('GET', `${gw1.url}/socket.io/?EIO=4&transport=polling`);
        const sid = JSON.parse(r.body.slice(1)).sid;
        const url = `${gw1.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`;
        r = await httpRequest('POST', url, { body: `40\x1e${body}` });
        assert.ok(r.status === 400 || r.status === 413, `${body.slice(0, 20)}: ${r.status}`);
        r = await httpRequest('GET', url);
        assert.equal(r.status, 400, 'the session was closed');
    }
    // a namespace or ping data that is not UTF-8 (found by tests/fuzz/fuzz_sio): never echoed back into a text answer
    for (const bytes of [[0x34, 0x30, 0x2f, 0x64, 0x65, 0x6d, 0x8a, 0x2c, 0x7b, 0x7d], [0x32, 0xd6]]) {
        r = await httpRequest('GET', `${gw1.url}/socket.io/?EIO=4&transport=polling`);
        const url = `${gw1.url}/socket.io/?EIO=4&transport=polling&sid=${JSON.parse(r.body.slice(1)).sid}`;
        r = await httpRequest('POST', url, { body: Buffer.from(bytes) });
        assert.equal(r.status, 400, `${Buffer.from(bytes).toString('latin1')}: malformed`);
        r = await httpRequest('GET', url);
        assert.equal(r.status, 400, 'the session was closed');
    }

    // raw WebSocket sessions: garbage text, a binary frame, an oversized frame each close that socket
    for (const [send, code] of [
        ['4zz', 1002],
        [Buffer.from([1, 2, 3]), 1003],
        [`42${'y'.repeat(5000)}`, 1009],
        ['7', 1002],
    ]) {
        const raw = await rawWs(gw1);
        const first = await raw.next();
        assert.match(first, /^0\{/);
        assert.deepEqual(JSON.parse(first.slice(1)).upgrades, []);
        raw.send('40');
        assert.match(await raw.next(), /^40\{"sid":"/);
        if (Buffer.isBuffer(send)) raw.ws.send(send, { binary: true });
        else raw.send(send);
        const info = await raw.closed;
        assert.equal(info.code, code, `after ${String(send).slice(0, 10)}`);
    }

    // an upgrade probe for a session that does not exist is refused before the upgrade
    await assert.rejects(rawWs(gw1, '&sid=doesnotexist'), (e) => e.statusCode === 400);

    // the bystander never noticed
    assert.equal(good.socket.connected, true);
    await settled(gw1, user, 1);
    r = await push(gw1, user, { still: 'here' });
    assert.deepEqual(r.json, { recipients: 1 });
    assert.deepEqual(await good.messages.next(), { still: 'here' });
});

test('heartbeat: a session that stops answering pings is closed, one that answers stays', { timeout: 30000 }, async () => {
    // the stack with a 1 s ping interval and timeout
    const silent = await rawWs(hbGw);
    const polite = await rawWs(hbGw, '', { answerPings: true });
    assert.match(await silent.next(), /^0\{/);
    assert.equal(JSON.parse((await polite.next()).slice(1)).pingInterval, PING_MS);
    assert.equal(await silent.next((f) => f === 2, scaled(PING_MS * 3)), 2, 'the ping "2"');
    const t0 = Date.now();
    await silent.closed;
    assert.ok(Date.now() - t0 < PING_MS * 4, 'closed about pingTimeout after the unanswered ping');
    // the polite one saw more pings than the silent one lived through and is still open
    await waitFor(() => polite.frames.filter((f) => f === 2).length >= 3, { timeoutMs: scaled(PING_MS * 6) });
    assert.equal(polite.closeInfo, null);
});

test('namespaces name the app; unknown namespace is refused; apps are isolated', { timeout: 30000 }, async () => {
    const user = uid('ns');
    const conn = uid('conn');
    let r = await register(gw1, user, conn, SECURE_TOKEN);
    assert.equal(r.status, 200, r.body);
    // its own Engine.IO connection: one namespace per connection (socket.io-client would multiplex on a cached one)
    const sec = seedClient(`${gw1.url}/secure`, user, conn, { forceNew: true });
    assert.deepEqual(await sec.registered.next(), { userId: user });
    // the demo app has no such registration: the same pair in namespace "/" is refused
    const demo = seedClient(gw1.url, user, conn);
    assert.match((await demo.errors.next()).message, /registration refused/);

    r = await push(gw1, user, { app: 'demo' });
    assert.deepEqual(r.json, { recipients: 0 }, 'demo push: nobody of app demo');
    await settled(gw1, user, 1, SECURE_TOKEN);
    r = await push(gw1, user, { app: 'secure' }, SECURE_TOKEN);
    assert.deepEqual(r.json, { recipients: 1 });
    assert.deepEqual(await sec.messages.next(), { app: 'secure' });
    assert.equal(sec.messages.items.length, 1, 'the demo push did not reach the secure app');

    const bad = io.connect(`${gw1.url}/no-such-app`, { reconnection: false });
    sockets.push(bad);
    const err = await collect(bad, 'connect_error').next();
    assert.equal(err.message, 'Invalid namespace');
});

test('leaving: disconnect() and the legacy "disconnect" event stop the pushes', { timeout: 30000 }, async () => {
    const user = uid('leaver');
    const c = await registeredClient(gw1, user);
    // notification-socket.io's raw protocol path: the old clients' emit('disconnect') arrives as an event
    const conn = uid('conn');
    assert.equal((await register(gw1, user, conn)).status, 200);
    // a live client answers pings, whatever the ping interval and however long this takes
    const raw = await rawWs(gw1, '', { answerPings: true });
    await raw.next();
    raw.send('40');
    await raw.next((f) => isText(f) && /^40/.test(f));
    raw.send('42' + JSON.stringify(['register', user, conn]));
    assert.equal(await raw.next((f) => isText(f) && f.startsWith('42')), `42["registered",{"userId":"${user}"}]`);

    await settled(gw1, user, 2);
    let r = await push(gw1, user, { n: 1 });
    assert.deepEqual(r.json, { recipients: 2 });
    const notProbe = (f) => isText(f) && f.startsWith('42') && f !== `42${JSON.stringify(['message', PROBE])}`;
    assert.equal(await raw.next(notProbe), '42["message",{"n":1}]');
    assert.deepEqual(await c.messages.next(), { n: 1 });

    raw.send('42["disconnect"]');
    c.socket.disconnect();
    await waitFor(async () => (await push(gw1, user, { probe: true })).json.recipients === 0, {
        timeoutMs: WAIT_MS,
        message: 'no recipients left',
    });
    assert.equal(raw.closeInfo, null, 'leaving the user channel keeps the Engine.IO session');

    const metrics = await httpRequest('GET', `${gw1.url}/metrics`);
    assert.match(metrics.body, /pushgate_sessions\{app="demo",protocol="socketio"\} [1-9]/);
});

test('CORS preflight: the header names asked for are allowed; other characters there get 400', async () => {
    const url = `${gw1.url}/socket.io/?EIO=4&transport=polling`;
    const ok = await httpRequest('OPTIONS', url, {
        headers: { Origin: 'http://page.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'x-client-version' },
    });
    assert.equal(ok.status, 204);
    assert.equal(ok.headers['access-control-allow-origin'], 'http://page.example');
    assert.equal(ok.headers['access-control-allow-headers'], 'x-client-version');
    assert.match(ok.headers['access-control-allow-methods'], /POST/);
    const bad = await httpRequest('OPTIONS', url, {
        headers: { Origin: 'http://page.example', 'Access-Control-Request-Headers': 'x-a; injected: 1' },
    });
    assert.equal(bad.status, 400, bad.body);
});

test("origins: any page may poll (CORS), an app's allowed_origins decide at CONNECT", { timeout: 30000 }, async () => {
    async function session(origin) {
        const headers = { Origin: origin };
        let r = await httpRequest('GET', `${gw1.url}/socket.io/?EIO=4&transport=polling`, { headers });
        assert.equal(r.status, 200);
        assert.equal(r.headers['access-control-allow-origin'], origin, 'the polling answer is readable by that page');
        const url = `${gw1.url}/socket.io/?EIO=4&transport=polling&sid=${JSON.parse(r.body.slice(1)).sid}`;
        r = await httpRequest('POST', url, { headers, body: '40/secure,' });
        assert.equal(r.status, 200);
        assert.equal(r.headers['access-control-allow-origin'], origin);
        return { url, headers };
    }
    const evil = await session('http://evil.example');
    let r = await httpRequest('GET', evil.url, { headers: evil.headers });
    assert.deepEqual(nonPing(r.body), ['44/secure,{"message":"Origin not allowed"}']);
    // the app without allowed_origins takes it
    r = await httpRequest('POST', evil.url, { headers: evil.headers, body: '40' });
    r = await httpRequest('GET', evil.url, { headers: evil.headers });
    assert.match(nonPing(r.body)[0], /^40\{"sid":"/);
    // a session answers only the origin that opened it
    r = await httpRequest('GET', evil.url, { headers: { Origin: 'http://other.example' } });
    assert.equal(r.status, 400);

    const good = await session('http://good.example');
    r = await httpRequest('GET', good.url, { headers: good.headers });
    assert.match(nonPing(r.body)[0], /^40\/secure,\{"sid":"/);
    // the upgrade of a secure session from another origin is refused before it happens
    const sid = new URL(good.url).searchParams.get('sid');
    await assert.rejects(
        wsConnect(`${gw1.wsUrl}/socket.io/?EIO=4&transport=websocket&sid=${sid}`, { headers: { Origin: 'http://evil.example' } }),
        (e) => e.statusCode === 403,
    );
});

test('a registration counts until its "exp", whichever node published it', { timeout: 30000 }, async () => {
    // what another gateway node publishes: a retained {root}/_ctl/{app}/reg/{connectionId}
    const inspector = await mqttConnect({ port: stack.brokerPort, ...stack.gatewayUser, clientId: uid('node') });
    try {
        const user = uid('short');
        const conn = uid('conn');
        // the PUBACK, then a socket.io connect and register on the other node must fit before exp; the retained
        // message itself outlives exp (by at least half a second), so the late refusal is exp's doing
        const expMs = scaled(1500);
        const exp = Date.now() + expMs;
        await inspector.publishAsync(`pushgate/_ctl/demo/reg/${conn}`, JSON.stringify({ user, exp }), {
            qos: 1,
            retain: true,
            properties: { messageExpiryInterval: Math.ceil((expMs + 500) / 1000) },
        });
        const early = seedClient(gw2.url, user, conn, { transports: ['websocket'] });
        assert.deepEqual(await early.registered.next(), { userId: user });
        await waitFor(() => Date.now() > exp + 50, { timeoutMs: expMs + 1000 });
        const late = seedClient(gw2.url, user, conn, { transports: ['websocket'] });
        assert.match((await late.errors.next()).message, /registration refused/);
        // a session that registered in time keeps receiving
        const r = await push(gw1, user, { after: 'expiry' });
        assert.equal(r.status, 200);
        assert.deepEqual(await early.messages.next(), { after: 'expiry' });
        // an emptied retained registration is forgotten at once
        const conn2 = uid('conn');
        assert.equal((await register(gw1, user, conn2)).status, 200);
        await inspector.publishAsync(`pushgate/_ctl/demo/reg/${conn2}`, '', { qos: 1, retain: true });
        await waitFor(
            async () => {
                const c = seedClient(gw1.url, user, conn2, { transports: ['websocket'] });
                const outcome = await Promise.race([c.registered.next().then(() => 'ok'), c.errors.next().then(() => 'refused')]);
                c.socket.disconnect();
                return outcome === 'refused';
            },
            { timeoutMs: scaled(5000), message: 'cleared registration refused' },
        );
    } finally {
        inspector.end(true);
    }
});

// last: it stops the broker
test('Pusher terminate_connections closes the socket.io sessions registered for that user too', async () => {
    const user = uid('term');
    const a = await registeredClient(gw1, user, { transports: ['websocket'], reconnection: false });
    const b = await registeredClient(gw2, user, { transports: ['polling'], reconnection: false });
    const other = await registeredClient(gw2, uid('other'), { transports: ['websocket'], reconnection: false });
    const gone = (c) => new Promise((resolve) => c.socket.on('disconnect', resolve));
    const [ga, gb] = [gone(a), gone(b)];
    const sdk = pusherServer(gw1.port);
    await sdk.terminateUserConnections(user);
    await Promise.all([ga, gb]);
    assert.equal(other.socket.connected, true, 'other users stay');
});

test('an emit with an acknowledgement callback is acknowledged', async () => {
    const user = uid('ack');
    const conn = uid('conn');
    assert.equal((await register(gw1, user, conn)).status, 200);
    const socket = io(gw2.url, { transports: ['websocket'], reconnection: false });
    sockets.push(socket);
    await new Promise((resolve) => socket.on('connect', resolve));
    const registered = new Promise((resolve) => socket.on('registered', resolve));
    // rejects on timeout; the server acknowledges without arguments
    assert.equal(await socket.timeout(scaled(5000)).emitWithAck('register', user, conn), undefined);
    assert.deepEqual(await registered, { userId: user });
});

test('broker down: register and push answer 503, no new session opens', { timeout: 30000 }, async () => {
    await stack.broker.stop();
    await waitFor(async () => (await httpRequest('GET', `${gw1.url}/readyz`)).status === 503, {
        timeoutMs: WAIT_MS,
        message: 'gateway notices the broker is gone',
    });
    let r = await register(gw1, uid('down'), uid('conn'));
    assert.equal(r.status, 503, r.body);
    r = await push(gw1, uid('down'), { lost: true });
    assert.equal(r.status, 503, r.body);
    r = await httpRequest('GET', `${gw1.url}/socket.io/?EIO=4&transport=polling`);
    assert.equal(r.status, 503, r.body);
    await assert.rejects(rawWs(gw1), (e) => e.statusCode === 503);
});
