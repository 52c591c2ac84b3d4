// socket.io by the maintainers' rules: what the Engine.IO 4 and socket.io 5 protocols and socket.io's own server
// do, checked with raw HTTP long-polling, raw `ws` WebSockets and socket.io-client against one pushgate process:
//   - a "1" (close) POSTed by a polling client ends the session and answers its pending GET with the noop "6";
//   - a WebSocket for a session that is already upgraded or upgrading is accepted and closed, the session goes on;
//   - CONNECT first: a packet before CONNECT, or a second CONNECT of the connected namespace, closes the session,
//     and a session that answers pings but never CONNECTs is closed after sio_connect_timeout_ms;
//   - one namespace per connection: a second namespace's CONNECT gets CONNECT_ERROR and the first goes on;
//   - deadlines of a polling session: a closed one whose client never fetches the close packet goes after the
//     close grace (1 s), and an upgrade probe never completed with "5" is dropped after 10 s while polling goes on.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import { io } from 'socket.io-client';

import { DEFAULT_APPS, httpRequest, scaled, startStack, waitFor, wsConnect } from './lib/harness.mjs';

const CONNECT_TIMEOUT_MS = 1500;
const PING_MS = 300;
const ONE_NAMESPACE = 'one namespace per connection: open another connection (socket.io-client: forceNew) for another app';

let stack;
let gw;
const sockets = [];
const raws = [];

before(async () => {
    stack = await startStack({
        apps: DEFAULT_APPS,
        gateway: {
            sio_connect_timeout_ms: CONNECT_TIMEOUT_MS,
            // frequent pings, answered by every client here: the connect timeout is not a missed heartbeat
            sio_ping_interval_ms: PING_MS,
            sio_ping_timeout_ms: scaled(5000),
        },
    });
    gw = stack.gw;
});

after(async () => {
    for (const s of sockets) s.disconnect();
    for (const r of raws) r.terminate();
    if (stack) await stack.stop();
});

const base = () => `${gw.url}/socket.io/?EIO=4&transport=polling`;
const packets = (body) => body.split('\x1e');
const nonPing = (body) => packets(body).filter((p) => p !== '2');
const TEXT = { 'Content-Type': 'text/plain;charset=UTF-8' };

// A polling session: handshake, then its sid URL.
async function pollingSession() {
    const r = await httpRequest('GET', base());
    assert.equal(r.status, 200, r.body);
    assert.match(r.body, /^0\{/);
    const sid = JSON.parse(r.body.slice(1)).sid;
    return { sid, url: `${base()}&sid=${sid}` };
}

// POST Engine.IO packets; answers the pings the server queued meanwhile with pongs in the same body.
const post = (url, body) => httpRequest('POST', url, { body, headers: TEXT });

// A GET the gateway holds: resolves { answer } (a promise of the response) once the gateway has read the request.
// The request is on the wire before a second connection asks /healthz; the gateway reads both on its loop, so by
// the time /healthz is answered the GET has been read and parked.
async function parkedGet(url) {
    let sent;
    const written = new Promise((r) => {
        sent = r;
    });
    const answer = new Promise((resolve, reject) => {
        const req = http.request(url, { method: 'GET', agent: false }, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
            res.on('error', reject);
        });
        req.setTimeout(scaled(15000), () => req.destroy(new Error('parked GET: no answer')));
        req.on('error', reject);
        req.on('finish', sent);
        req.end();
    });
    await written;
    const h = await httpRequest('GET', `${gw.url}/healthz`);
    assert.equal(h.status, 200);
    return { answer };
}

// Raw Engine.IO over a WebSocket that answers the server's pings, as a live client does.
async function rawWs(query = '') {
    const c = await wsConnect(`${gw.wsUrl}/socket.io/?EIO=4&transport=websocket${query}`);
    raws.push(c);
    c.ws.on('message', (d, isBinary) => {
        if (!isBinary && d.toString() === '2') c.ws.send('3');
    });
    return c;
}

// Resolves the close info, or rejects when the socket is still open after timeoutMs.
function closedWithin(c, timeoutMs, what) {
    let timer;
    return Promise.race([
        c.closed.finally(() => clearTimeout(timer)),
        new Promise((_, rej) => {
            timer = setTimeout(() => rej(new Error(`${what}: still open after ${timeoutMs} ms`)), timeoutMs);
        }),
    ]);
}

const isText = (f) => typeof f === 'string';
const notPing = (f) => f !== 2;

test('a "1" POSTed by a polling client answers its pending GET with the noop "6" and ends the session', { timeout: 30000 }, async () => {
    const s = await pollingSession();
    let r = await post(s.url, '40');
    assert.equal(r.body, 'ok');
    r = await httpRequest('GET', s.url);
    assert.match(nonPing(r.body)[0], /^40\{"sid":"/);

    const get = await parkedGet(s.url);
    r = await post(s.url, '1');
    assert.equal(r.status, 200);
    assert.equal(r.body, 'ok');
    const answered = await get.answer;
    assert.equal(answered.status, 200);
    assert.deepEqual(nonPing(answered.body), ['6'], 'the noop, not a close packet');
    r = await httpRequest('GET', s.url);
    assert.equal(r.status, 400, 'the session is gone');
    assert.equal(r.json.code, 1, 'Session ID unknown');
});

test('a WebSocket for a session already upgraded or upgrading is accepted and closed; the session goes on', { timeout: 30000 }, async () => {
    // a session that opened on a WebSocket is upgraded from the start
    const direct = await rawWs();
    const sid = JSON.parse((await direct.next()).slice(1)).sid;
    let extra = await rawWs(`&sid=${sid}`); // old gateways refused this upgrade with HTTP 400
    extra.send('2probe');
    let info = await closedWithin(extra, scaled(5000), 'surplus WebSocket of an upgraded session');
    assert.equal(info.code, 1000, 'a normal close frame (socket.io\'s server sends one without a code; lws always sends a code)');
    assert.deepEqual(extra.frames.filter(notPing), [], 'nothing of the session reached it');
    direct.send('40');
    assert.match(await direct.next((f) => isText(f) && f.startsWith('40')), /^40\{"sid":"/);

    // a polling session probing its upgrade: a second probe is closed, the first completes
    const s = await pollingSession();
    assert.equal((await post(s.url, '40')).body, 'ok');
    const probe = await rawWs(`&sid=${s.sid}`);
    probe.send('2probe');
    assert.equal(await probe.next(isText), '3probe');
    extra = await rawWs(`&sid=${s.sid}`);
    extra.send('2probe');
    info = await closedWithin(extra, scaled(5000), 'surplus WebSocket of an upgrading session');
    assert.equal(info.code, 1000, 'a normal close frame (socket.io\'s server sends one without a code; lws always sends a code)');
    assert.deepEqual(extra.frames.filter(notPing), []);
    probe.send('5');
    // the CONNECT answer queued while polling now arrives on the upgraded WebSocket
    assert.match(await probe.next((f) => isText(f) && f.startsWith('40')), /^40\{"sid":"/);

    // and once upgraded, a further one is closed as well
    extra = await rawWs(`&sid=${s.sid}`);
    info = await closedWithin(extra, scaled(5000), 'surplus WebSocket of an upgraded polling session');
    assert.equal(info.code, 1000, 'a normal close frame (socket.io\'s server sends one without a code; lws always sends a code)');
    probe.send('2'); // an Engine.IO 3 style ping from the client: answered with the pong on the transport
    assert.equal(await probe.next((f) => f === 3), 3);
    assert.equal(probe.closeInfo, null);
    assert.equal(direct.closeInfo, null);

    // an unknown sid is still refused before the upgrade
    await assert.rejects(rawWs('&sid=doesnotexist'), (e) => e.statusCode === 400);
});

test('CONNECT first: an event before CONNECT closes the session (polling and WebSocket)', { timeout: 30000 }, async () => {
    const s = await pollingSession();
    let r = await post(s.url, '42["register","u1","c1"]');
    assert.equal(r.status, 200, 'the packet itself is well-formed');
    r = await httpRequest('GET', s.url);
    assert.equal(r.status, 200);
    assert.equal(nonPing(r.body).at(-1), '1', 'Engine.IO close');
    r = await httpRequest('GET', s.url);
    assert.equal(r.status, 400);
    assert.equal(r.json.code, 1);

    for (const early of ['42["register","u1","c1"]', '41', '43[]', '42/secure,["x"]']) {
        const c = await rawWs();
        assert.match(await c.next(), /^0\{/);
        c.send(early);
        const info = await closedWithin(c, scaled(5000), `after ${early}`);
        assert.equal(info.code, 1000, early);
        assert.match(info.reason, /before CONNECT/);
    }
    // a packet for another namespace than the connected one is out of order as well
    const c = await rawWs();
    await c.next();
    c.send('40');
    assert.match(await c.next((f) => isText(f) && f.startsWith('40')), /^40\{"sid":"/);
    c.send('42/secure,["x"]');
    const info = await closedWithin(c, scaled(5000), 'event for a namespace it did not join');
    assert.match(info.reason, /before CONNECT/);
});

test('a second CONNECT for the connected namespace closes the session', { timeout: 30000 }, async () => {
    const c = await rawWs();
    await c.next();
    c.send('40');
    assert.match(await c.next((f) => isText(f) && f.startsWith('40')), /^40\{"sid":"/);
    c.send('40');
    const info = await closedWithin(c, scaled(5000), 'after a repeated CONNECT');
    assert.equal(info.code, 1000);
    assert.match(info.reason, /already connected/);
    assert.equal(c.frames.filter((f) => isText(f) && f.startsWith('40')).length, 1, 'answered once');

    // polling: the same, the pending GET gets the close packet
    const s = await pollingSession();
    assert.equal((await post(s.url, '40')).body, 'ok');
    let r = await httpRequest('GET', s.url);
    assert.match(nonPing(r.body)[0], /^40\{"sid":"/);
    assert.equal((await post(s.url, '40')).body, 'ok');
    r = await httpRequest('GET', s.url);
    assert.deepEqual(nonPing(r.body), ['1']);
});

test('sio_connect_timeout_ms: a session that answers pings but never CONNECTs is closed; a connected one stays', { timeout: 30000 }, async () => {
    const idle = await rawWs();
    await idle.next();
    const t0 = Date.now(); // after the gateway opened the session: what we measure is at most its life
    const connected = await rawWs();
    await connected.next();
    connected.send('40');
    assert.match(await connected.next((f) => isText(f) && f.startsWith('40')), /^40\{"sid":"/);
    const info = await closedWithin(idle, scaled(CONNECT_TIMEOUT_MS * 4), 'the session without CONNECT');
    const lived = Date.now() - t0;
    assert.equal(info.code, 1000);
    assert.match(info.reason, /no CONNECT within sio_connect_timeout_ms/);
    assert.ok(lived >= CONNECT_TIMEOUT_MS - 200, `closed after the timeout, not before (${lived} ms)`);
    assert.ok(idle.frames.filter((f) => f === 2).length >= 2, 'it was pinged and answered meanwhile');
    // the connected one lives on through twice the timeout, pinged all along
    const pings = connected.frames.filter((f) => f === 2).length;
    await waitFor(() => connected.frames.filter((f) => f === 2).length >= pings + Math.ceil((2 * CONNECT_TIMEOUT_MS) / PING_MS), {
        timeoutMs: scaled(CONNECT_TIMEOUT_MS * 6),
    });
    assert.equal(connected.closeInfo, null);

    // polling: the GET of a session that keeps polling without CONNECT is answered with the close packet
    const s = await pollingSession();
    let closed = false;
    const deadline = Date.now() + scaled(CONNECT_TIMEOUT_MS * 4);
    while (!closed && Date.now() < deadline) {
        const r = await httpRequest('GET', s.url);
        assert.equal(r.status, 200, r.body);
        const ps = packets(r.body);
        closed = ps.includes('1');
        if (!closed && ps.includes('2')) assert.equal((await post(s.url, '3')).body, 'ok');
    }
    assert.ok(closed, 'closed by the connect timeout');
});

test('one namespace per connection: a second namespace gets CONNECT_ERROR, the first goes on', { timeout: 30000 }, async () => {
    // raw: the refusal is the socket.io CONNECT_ERROR packet of that namespace
    const c = await rawWs();
    await c.next();
    c.send('40');
    assert.match(await c.next((f) => isText(f) && f.startsWith('40')), /^40\{"sid":"/);
    c.send('40/secure,');
    assert.equal(await c.next((f) => isText(f) && f.startsWith('44')), `44/secure,${JSON.stringify({ message: ONE_NAMESPACE })}`);
    c.send('421["anything"]');
    assert.equal(await c.next((f) => isText(f) && f.startsWith('43')), '431[]', 'the first namespace still answers');

    // socket.io-client multiplexing two namespaces on one Manager: the second gets connect_error
    const first = io(gw.url, { forceNew: true, reconnection: false });
    sockets.push(first);
    await new Promise((resolve, reject) => {
        first.once('connect', resolve);
        first.once('connect_error', reject);
    });
    const second = first.io.socket('/secure');
    sockets.push(second);
    const err = await new Promise((resolve, reject) => {
        second.once('connect_error', resolve);
        second.once('connect', () => reject(new Error('a second namespace connected on the same connection')));
        second.connect();
    });
    assert.equal(err.message, ONE_NAMESPACE);
    assert.equal(first.connected, true);
    assert.deepEqual(await first.timeout(scaled(5000)).emitWithAck('anything'), undefined);
    // with its own connection (forceNew) the other app's namespace connects
    const own = io(`${gw.url}/secure`, { forceNew: true, reconnection: false });
    sockets.push(own);
    await new Promise((resolve, reject) => {
        own.once('connect', resolve);
        own.once('connect_error', reject);
    });
});

const UPGRADE_TIMEOUT_MS = 10000; // PG_EIO_UPGRADE_TIMEOUT_MS (gateway/proto/eio.h)
const CLOSE_GRACE_MS = 1000; // CLOSE_GRACE_MS (gateway/proto/eio.c)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('a polling session closed while no GET waits keeps its close packet for the close grace, then goes', { timeout: 30000 }, async () => {
    // closed by the gateway (a packet before CONNECT) with no GET parked: the close waits for the client's next GET
    const s = await pollingSession();
    assert.equal((await post(s.url, '42["register","u1","c1"]')).status, 200);
    // the client does not come back within the grace: the session is gone, not waiting forever
    await sleep(CLOSE_GRACE_MS + scaled(1500));
    const r = await httpRequest('GET', s.url);
    assert.equal(r.status, 400, `the session is gone after the grace: ${r.body}`);
    assert.equal(r.json.code, 1, 'Session ID unknown');
});

test('an upgrade probe without "5" is dropped after the upgrade timeout; the session goes on polling', { timeout: 60000 }, async () => {
    const s = await pollingSession();
    assert.equal((await post(s.url, '40')).body, 'ok');
    assert.match(nonPing((await httpRequest('GET', s.url)).body)[0], /^40\{"sid":"/);
    const probe = await rawWs(`&sid=${s.sid}`);
    probe.send('2probe');
    const t0 = Date.now();
    assert.equal(await probe.next(isText), '3probe');
    // keep the session alive over polling (GETs are answered at once while probing), never completing the upgrade
    const deadline = t0 + scaled(UPGRADE_TIMEOUT_MS * 2);
    while (!probe.closeInfo && Date.now() < deadline) {
        const r = await httpRequest('GET', s.url);
        assert.equal(r.status, 200, r.body);
        if (packets(r.body).includes('2')) assert.equal((await post(s.url, '3')).body, 'ok');
        await sleep(100);
    }
    const lived = Date.now() - t0;
    assert.ok(probe.closeInfo, `the probe WebSocket is still open after ${lived} ms`);
    assert.equal(probe.closeInfo.code, 1000, 'a normal close of the probe only');
    assert.ok(lived >= UPGRADE_TIMEOUT_MS - 200, `dropped after the upgrade timeout, not before (${lived} ms)`);
    assert.match(gw.logs(), new RegExp(`upgrade not completed in time sid=${s.sid}`));
    // the session itself goes on over polling: an event is still acknowledged
    assert.equal((await post(s.url, '421["anything"]')).body, 'ok');
    let acked = false;
    for (let i = 0; i < 20 && !acked; i++) {
        const r = await httpRequest('GET', s.url);
        assert.equal(r.status, 200, r.body);
        acked = packets(r.body).includes('431[]');
        if (packets(r.body).includes('2')) await post(s.url, '3');
    }
    assert.ok(acked, 'the polling session answers after its probe was dropped');
});
