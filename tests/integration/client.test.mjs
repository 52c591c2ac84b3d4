// The browser client gateway/static/pushgate.js, run under node with `ws` injected, against a real
// mosquitto + pushgate stack: open/clientId, rooms, wildcards, JWT authentication, queued publishes,
// refusals, and automatic reconnection (same client id, token re-sent, rooms restored) across a
// gateway restart. Also runs the ScaleDrone sample from the seed documentation unmodified.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import WebSocket from 'ws';
import { REPO_DIR, startStack, signJwt, waitFor, httpRequest } from './lib/harness.mjs';

const CLIENT_FILE = path.join(REPO_DIR, 'gateway', 'static', 'pushgate.js');
const DEMO_FILE = path.join(REPO_DIR, 'gateway', 'static', 'demo.html');
const CLIENT_SRC = fs.readFileSync(CLIENT_FILE, 'utf8');
const SECURE_SECRET = 'secure-secret-0123456789';

// The repository's package.json says "type": "module", so require() would parse the browser script as
// ESM; evaluate it as the CommonJS-style script it is instead.
function loadClient() {
    const mod = { exports: {} };
    vm.compileFunction(CLIENT_SRC, ['module', 'exports'], { filename: CLIENT_FILE })(mod, mod.exports);
    return mod.exports;
}
const Pushgate = loadClient();

let stack;
const drones = new Set();
const waits = new Set();

before(async () => {
    stack = await startStack();
});

after(async () => {
    for (const d of drones) d.close();
    if (stack) await stack.stop();
});

afterEach(() => {
    for (const d of drones) d.close();
    drones.clear();
    // A failed test must not leave waits behind that fire (and hold the process) after it ended.
    for (const cancel of waits) cancel();
    waits.clear();
});

// ---------------------------------------------------------------------------------------------

// A `ws` subclass that records every URL it was opened with and every frame the client sent.
function recordingWebSocket() {
    const log = { urls: [], sent: [] };
    class RecordingWebSocket extends WebSocket {
        constructor(url, ...rest) {
            super(url, ...rest);
            log.urls.push(url);
        }
        send(data, ...rest) {
            log.sent.push(JSON.parse(data));
            return super.send(data, ...rest);
        }
    }
    return { WebSocketClass: RecordingWebSocket, log };
}

function appUrl(app) {
    return `${stack.gw.wsUrl}/v1/${app}`;
}

function newDrone(app, opts = {}) {
    const d = new Pushgate(app, { url: appUrl(app), WebSocket, ...opts });
    drones.add(d);
    // Collected so that tests can assert that nothing unexpected went wrong.
    d.errors = [];
    d.on('error', (err) => d.errors.push(err));
    return d;
}

// Resolves with the event's arguments. Waits created ahead of time are marked handled, so that a test failing
// before it awaits them reports its own error rather than an unhandled rejection.
function once(emitter, event, timeoutMs = 10000) {
    const p = new Promise((resolve, reject) => {
        const cancel = () => {
            clearTimeout(timer);
            emitter.off(event, handler);
            waits.delete(cancel);
        };
        const timer = setTimeout(() => {
            cancel();
            reject(new Error(`no '${event}' event within ${timeoutMs} ms`));
        }, timeoutMs);
        function handler(...args) {
            cancel();
            resolve(args);
        }
        emitter.on(event, handler);
        waits.add(cancel);
    });
    p.catch(() => {});
    return p;
}

async function openDrone(app, opts) {
    const d = newDrone(app, opts);
    const [err] = await once(d, 'open');
    assert.equal(err, null, `open(${app}) failed: ${err && err.message}`);
    return d;
}

// Subscribes and resolves with [room, received], received filling with {message, meta} as data arrives.
async function joinRoom(drone, name) {
    const room = drone.subscribe(name);
    const received = [];
    room.on('data', (message, meta) => received.push({ message, meta }));
    const [err] = await once(room, 'open');
    assert.equal(err, null, `subscribe ${name}: ${err && err.message}`);
    return [room, received];
}

function publish(drone, room, message) {
    return new Promise((resolve, reject) => {
        drone.publish({ room, message }, (err) => (err ? reject(err) : resolve()));
    });
}

function secureToken(clientId, permissions, { secret = SECURE_SECRET, expMs = Date.now() + 3600_000 } = {}) {
    return signJwt({ channel: 'secure', client: clientId, exp: expMs, permissions }, secret);
}

async function authenticate(drone, token) {
    drone.authenticate(token);
    const [err] = await once(drone, 'authenticate');
    return err;
}

// ---------------------------------------------------------------------------------------------

test('the gateway serves this pushgate.js and the demo page', async () => {
    const js = await httpRequest('GET', `${stack.gw.url}/pushgate.js`);
    assert.equal(js.status, 200);
    assert.match(js.headers['content-type'], /^application\/javascript/);
    assert.equal(js.body, CLIENT_SRC, 'served client differs from gateway/static/pushgate.js (stale embed?)');

    const demo = await httpRequest('GET', `${stack.gw.url}/demo`);
    assert.equal(demo.status, 200);
    assert.match(demo.headers['content-type'], /^text\/html/);
    assert.equal(demo.body, fs.readFileSync(DEMO_FILE, 'utf8'));

    const root = await httpRequest('GET', `${stack.gw.url}/`);
    assert.ok([301, 302, 303, 307, 308].includes(root.status), `GET / answered ${root.status}`);
    assert.match(root.headers.location, /\/demo$/);
});

test('the ScaleDrone sample from the documentation runs unmodified in a browser-like global', async () => {
    // Verbatim from the ScaleDrone documentation, except CHANNEL_ID -> our app id.
    const sample = `
var drone = new ScaleDrone('demo');
drone.on('open', function (error) {
    if (error) return console.error(error);
    var room = drone.subscribe('main');
    room.on('open', function (error) {
        if (error) console.error(error);
    });
    room.on('data', function (data) {
        console.log(data);
    });
    drone.publish({
        room: 'main',
        message: 'hey!'
    });
});

drone.on('close', function (event) {
    console.log('Connection was closed', event);
});

drone.on('error', function (error) {
    console.error(error);
});
`;
    const logs = [];
    const errors = [];
    const win = {
        location: { protocol: 'http:', host: `127.0.0.1:${stack.gw.port}` },
        WebSocket,
        setTimeout,
        clearTimeout,
        console: { log: (...a) => logs.push(a), error: (...a) => errors.push(a) },
    };
    win.window = win;
    const ctx = vm.createContext(win);
    vm.runInContext(CLIENT_SRC, ctx, { filename: 'pushgate.js' });
    assert.equal(typeof win.ScaleDrone, 'function', 'window.ScaleDrone is defined');
    assert.equal(win.ScaleDrone, win.Pushgate);
    vm.runInContext(sample, ctx, { filename: 'scaledrone-sample.js' });
    const drone = vm.runInContext('drone', ctx);
    drones.add(drone);
    await waitFor(() => logs.some((a) => a[0] === 'hey!'), { timeoutMs: 10000, message: "sample never logged 'hey!'" });
    assert.deepEqual(errors, []);
    assert.match(drone.url, new RegExp(`^ws://127\\.0\\.0\\.1:${stack.gw.port}/v1/demo$`));
});

test('open gives each connection its own clientId', async () => {
    const a = await openDrone('demo');
    const b = await openDrone('demo');
    assert.equal(typeof a.clientId, 'string');
    assert.ok(a.clientId.length > 0);
    assert.notEqual(a.clientId, b.clientId);
    assert.deepEqual(a.errors, []);
});

test('subscribe + publish round trip between two clients, with meta and echo to the sender', async () => {
    const a = await openDrone('demo');
    const b = await openDrone('demo');
    const [roomA, gotA] = await joinRoom(a, 'chat');
    const [, gotB] = await joinRoom(b, 'chat');
    assert.equal(roomA.name, 'chat');

    const before = Date.now();
    await publish(b, 'chat', { name: 'bob', text: 'hi <there>' });
    await waitFor(() => gotA.length === 1 && gotB.length === 1, { message: 'message reached both subscribers' });
    assert.deepEqual(gotA[0].message, { name: 'bob', text: 'hi <there>' });
    assert.equal(gotA[0].meta.room, 'chat');
    assert.equal(gotA[0].meta.client_id, b.clientId);
    assert.equal(typeof gotA[0].meta.timestamp, 'number');
    assert.ok(Math.abs(gotA[0].meta.timestamp - before) < 60000, `timestamp ${gotA[0].meta.timestamp} is near now`);
    assert.deepEqual(gotB[0].message, gotA[0].message, 'the sender receives its own message');

    await publish(a, 'chat', 'plain string');
    await waitFor(() => gotB.length === 2);
    assert.equal(gotB[1].message, 'plain string');
    assert.equal(gotB[1].meta.client_id, a.clientId);
    assert.deepEqual(a.errors, []);
    assert.deepEqual(b.errors, []);
});

test('publishes made before the socket is open are queued and sent after open', async () => {
    const listener = await openDrone('demo');
    const [, got] = await joinRoom(listener, 'queue-test');
    const early = newDrone('demo');
    const acks = [];
    early.publish({ room: 'queue-test', message: 'first' }, (err) => acks.push(err));
    early.publish({ room: 'queue-test', message: 'second' }, (err) => acks.push(err));
    assert.equal(early.clientId, null, 'not open yet when publishing');
    await waitFor(() => got.length === 2, { message: 'queued messages delivered' });
    assert.deepEqual(got.map((g) => g.message), ['first', 'second']);
    await waitFor(() => acks.length === 2);
    assert.deepEqual(acks, [null, null]);
});

test('wildcard rooms receive matching channels, each message once per room', async () => {
    const a = await openDrone('demo');
    const pub = await openDrone('demo');
    const [, plus] = await joinRoom(a, 'sensors/+/temp');
    const [, hash] = await joinRoom(a, 'sensors/#');
    const [, exact] = await joinRoom(a, 'sensors/kitchen/temp');
    const [, other] = await joinRoom(a, 'sensors/+/humidity');
    const [, done] = await joinRoom(a, 'sentinel');

    await publish(pub, 'sensors/kitchen/temp', { c: 21 });
    await publish(pub, 'sensors/hall/humidity', { rh: 40 });
    await publish(pub, 'sensors/kitchen/temp/raw', 'deep');
    await publish(pub, 'elsewhere/kitchen/temp', 'no');
    // Messages from one publisher arrive in order, so once the sentinel is in, every count is final.
    await publish(pub, 'sentinel', 'end');
    await waitFor(() => done.length === 1, { message: 'sentinel delivered' });

    assert.deepEqual(plus.map((g) => g.message), [{ c: 21 }]);
    assert.equal(plus[0].meta.room, 'sensors/kitchen/temp', 'meta.room is the concrete channel');
    assert.deepEqual(exact.map((g) => g.message), [{ c: 21 }]);
    assert.deepEqual(other.map((g) => g.message), [{ rh: 40 }]);
    assert.equal(other[0].meta.room, 'sensors/hall/humidity');
    assert.deepEqual(hash.map((g) => g.message), [{ c: 21 }, { rh: 40 }, 'deep']);
    assert.deepEqual(hash.map((g) => g.meta.room), ['sensors/kitchen/temp', 'sensors/hall/humidity',
        'sensors/kitchen/temp/raw']);
    assert.deepEqual(a.errors, []);
});

test('unsubscribe stops delivery for that room only', async () => {
    const a = await openDrone('demo');
    const pub = await openDrone('demo');
    const [, gone] = await joinRoom(a, 'leave-me');
    const [, kept] = await joinRoom(a, 'keep-me');
    await publish(pub, 'leave-me', 1);
    await waitFor(() => gone.length === 1);

    await new Promise((resolve, reject) => a.unsubscribe('leave-me', (err) => (err ? reject(err) : resolve())));
    await publish(pub, 'leave-me', 2);
    await publish(pub, 'keep-me', 'sentinel');
    await waitFor(() => kept.length === 1);
    assert.deepEqual(gone.map((g) => g.message), [1]);
});

test('authenticate with a JWT unlocks a require_auth app; permissions decide per room', async () => {
    const d = await openDrone('secure');
    const pub = await openDrone('secure');

    // Nothing is allowed before authentication.
    const early = d.subscribe('allowed/one');
    const [earlyErr] = await once(early, 'open');
    assert.ok(earlyErr, 'subscribe before authenticate is refused');
    assert.ok([401, 403].includes(earlyErr.code), `code ${earlyErr.code}`);

    const forged = await authenticate(d, secureToken(d.clientId, { '.*': { publish: true, subscribe: true } },
        { secret: 'not-the-secret' }));
    assert.ok(forged, 'a token signed with another secret is refused');
    assert.equal(forged.code, 401);

    const stolen = await authenticate(d, secureToken(pub.clientId, { '.*': { publish: true, subscribe: true } }));
    assert.ok(stolen, "a token bound to another connection's client id is refused");
    assert.equal(stolen.code, 401);

    const perms = {
        '^allowed/': { publish: true, subscribe: true },
        '^allowed/secret$': { publish: true, subscribe: false },
    };
    assert.equal(await authenticate(d, secureToken(d.clientId, perms)), null);
    assert.equal(await authenticate(pub, secureToken(pub.clientId, perms)), null);

    const [, got] = await joinRoom(d, 'allowed/one');
    const denied = d.subscribe('allowed/secret');
    const [deniedErr] = await once(denied, 'open');
    assert.ok(deniedErr, 'subscribe to a room the rules deny is refused');
    assert.equal(deniedErr.code, 403);
    const outside = d.subscribe('public');
    const [outsideErr] = await once(outside, 'open');
    assert.equal(outsideErr && outsideErr.code, 403);

    await publish(pub, 'allowed/one', { ok: true });
    await waitFor(() => got.length === 1);
    assert.deepEqual(got[0].message, { ok: true });
    assert.equal(got[0].meta.client_id, pub.clientId);

    await assert.rejects(publish(pub, 'public', 'nope'), (err) => err.code === 403);
});

test('a refusal that would repeat (oversize frame, close 1009) closes without reconnecting', async () => {
    const { WebSocketClass, log } = recordingWebSocket();
    const d = await openDrone('demo', { WebSocket: WebSocketClass });
    const closed = once(d, 'close');
    d.publish({ room: 'big', message: 'x'.repeat(256 * 1024) });
    const [ev] = await closed;
    assert.equal(ev.code, 1009);
    assert.ok(d.errors.some((e) => e.code === 1009), 'error event with code 1009');
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(log.urls.length, 1, 'no reconnection attempt after a fatal close');
});

test('close() emits close and never reconnects', async () => {
    const { WebSocketClass, log } = recordingWebSocket();
    const d = await openDrone('demo', { WebSocket: WebSocketClass });
    d.close();
    const [ev] = await once(d, 'close');
    assert.equal(ev.code, 1000);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(log.urls.length, 1);
    assert.deepEqual(d.errors, []);
});

test('an unknown app reports an error and never opens', async () => {
    const d = newDrone('no-such-app');
    let opened = false;
    d.on('open', (err) => {
        if (!err) opened = true;
    });
    await waitFor(() => d.errors.length > 0, { message: 'error event for an unknown app' });
    assert.equal(opened, false);
});

// Keep last: it replaces the stack's gateway process.
test('after a gateway restart the client resumes its id, re-authenticates, resubscribes and flows again',
    { timeout: 90000 }, async () => {
        const perms = { '.*': { publish: true, subscribe: true } };
        const { WebSocketClass, log } = recordingWebSocket();
        const d = await openDrone('secure', { WebSocket: WebSocketClass });
        const pub = await openDrone('secure');
        const oldId = d.clientId;
        assert.equal(await authenticate(d, secureToken(d.clientId, perms)), null);
        assert.equal(await authenticate(pub, secureToken(pub.clientId, perms)), null);
        const [, exact] = await joinRoom(d, 'lobby');
        const [, wild] = await joinRoom(d, 'floor/+');
        await publish(pub, 'lobby', 'before');
        await waitFor(() => exact.length === 1);

        // A plain app client whose resume token the server will not accept: it must take the new id.
        const plain = await openDrone('demo');
        const [, plainGot] = await joinRoom(plain, 'plain-room');
        const plainOldId = plain.clientId;
        plain._resume = '0'.repeat(32);

        let opens = 0;
        let authEvents = 0;
        d.on('open', () => opens++);
        d.on('authenticate', () => authEvents++);
        const disconnected = once(d, 'disconnect', 30000);
        const reconnected = once(d, 'reconnect', 60000);
        const pubReconnected = once(pub, 'reconnect', 60000);
        const plainReconnected = once(plain, 'reconnect', 60000);

        await stack.gw.stop();
        await disconnected;
        d.publish({ room: 'lobby', message: 'while offline' });
        await stack.startGateway();
        await waitFor(async () => (await httpRequest('GET', `${stack.gw.url}/readyz`)).status === 200, {
            timeoutMs: 20000,
            message: 'restarted gateway ready',
        });
        await Promise.all([reconnected, pubReconnected, plainReconnected]);

        assert.equal(d.clientId, oldId, 'the resumed session keeps its client id');
        const lastUrl = log.urls[log.urls.length - 1];
        assert.ok(lastUrl.includes(`client_id=${oldId}`) && /[?&]resume=[^&]+/.test(lastUrl), lastUrl);
        assert.equal(opens, 0, "'open' is not emitted again on reconnect");
        assert.equal(authEvents, 0, "restoring the token does not emit 'authenticate'");
        assert.deepEqual(d.errors, [], 'token accepted again and rooms restored without errors');

        // What the client sent on the new socket: the token first, then every room, then the queued publish.
        const firstNew = log.sent.findLastIndex((f) => f.type === 'authenticate');
        const restored = log.sent.slice(firstNew);
        assert.equal(restored[0].token, log.sent.find((f) => f.type === 'authenticate').token);
        const resubscribed = restored.filter((f) => f.type === 'subscribe').map((f) => f.room);
        assert.deepEqual(resubscribed.sort(), ['floor/+', 'lobby']);
        assert.equal(restored[restored.length - 1].type, 'publish');
        assert.ok(restored.findIndex((f) => f.type === 'publish') > restored.findIndex((f) => f.type === 'subscribe'));

        await waitFor(() => exact.some((g) => g.message === 'while offline'), {
            message: 'message published while disconnected was delivered after reconnect',
        });
        await publish(pub, 'lobby', 'after');
        await publish(pub, 'floor/2', 'wild after');
        await waitFor(() => exact.some((g) => g.message === 'after') && wild.some((g) => g.message === 'wild after'), {
            message: 'messages flow again to restored rooms',
        });

        assert.notEqual(plain.clientId, plainOldId, 'a refused resume gives (and the client adopts) a new id');
        await publish(plain, 'plain-room', 'still here');
        await waitFor(() => plainGot.length === 1);
        assert.equal(plainGot[0].meta.client_id, plain.clientId);
    });
