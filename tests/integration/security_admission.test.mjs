// Admission and names (issue 9, findings 9 and 10), against a real broker with the plugin and real gateways:
//  - a socket.io polling handshake that is never followed up frees its slot after sio_handshake_timeout_ms, and so
//    does, until its CONNECT, a session left without a transport (its parked GET dropped), while socket.io-client
//    (polling, then upgraded, or polling only) and a session whose GET stays parked live on;
//  - max_sessions_per_address / max_new_sessions_per_address refuse native, Pusher and socket.io sessions with 429
//    and the JSON error body;
//  - a WebSocket message that is begun and then trickled (raw socket: a frame header announcing 100 bytes, then one
//    byte a second) is closed with 1008 after ws_partial_frame_timeout_ms on every WebSocket protocol;
//  - a WebSocket that stops inside a frame header, or right after one (no payload byte, so that clock never starts),
//    is dropped after ws_ping_interval_s + ws_pong_timeout_s, while an idle listener that answers pings stays;
//  - names the broker would refuse (control characters, Unicode noncharacters) are refused at once with each
//    protocol's invalid-name error, never a 5 s wait, a 500 or an ERROR log line;
//  - an overlong or malformed socket.io sid answers 400 "Session ID unknown" instead of opening a session.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';

import { io } from 'socket.io-client';
import WebSocket from 'ws';

import { DEFAULT_APPS, httpRequest, scaled, startStack, waitFor, wsConnect } from './lib/harness.mjs';
import { PUSHER_QUERY, dataOf, established, hmacAuth, isEvent, signedPath, sleep } from './lib/pusher.mjs';
import { within } from './lib/native.mjs';

const PUSH_TOKEN = 'demo-push-token-0123456789';
const APPS = [{ ...DEFAULT_APPS[0], push_token: PUSH_TOKEN }, DEFAULT_APPS[1]];
const HANDSHAKE_TIMEOUT_MS = scaled(1000);
const PARTIAL_TIMEOUT_MS = scaled(1500);
// A name error must come at once: well below publish_timeout_ms (5 s), the wait the old code made.
const AT_ONCE_MS = scaled(1500);
const TEST_TIMEOUT_MS = scaled(40000);

const stacks = [];
const cleanups = [];
const shared = new Map();
// Tests with the same options share one stack (a broker and a gateway each): fewer processes to start and stop.
async function stackWith(gateway) {
    const key = JSON.stringify(gateway);
    if (!shared.has(key)) {
        shared.set(
            key,
            startStack({ apps: APPS, gateway }).then((s) => {
                stacks.push(s);
                return s;
            }),
        );
    }
    return shared.get(key);
}

after(async () => {
    for (const c of cleanups.splice(0)) {
        try {
            await c();
        } catch {
            // already gone
        }
    }
    for (const s of stacks) await s.stop();
});

const eioUrl = (gw, extra = '') => `${gw.url}/socket.io/?EIO=4&transport=polling${extra}`;

async function sioHandshake(gw) {
    const r = await httpRequest('GET', eioUrl(gw));
    return { status: r.status, json: r.json, open: r.status === 200 ? JSON.parse(r.body.slice(1)) : null };
}

// ---- raw WebSocket over net: what no well-behaved client library would send ------------------------------------

function rawWsOpen(port, path) {
    return new Promise((resolve, reject) => {
        const sock = net.connect(port, '127.0.0.1');
        const key = crypto.randomBytes(16).toString('base64');
        let buf = Buffer.alloc(0);
        let upgraded = false;
        const st = { sock, data: Buffer.alloc(0), closedAt: null, closed: null };
        st.closed = new Promise((r) => sock.on('close', () => r((st.closedAt = Date.now()))));
        sock.on('error', () => {});
        sock.on('connect', () =>
            sock.write(
                `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
                    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
            ),
        );
        sock.on('data', (d) => {
            if (upgraded) {
                st.data = Buffer.concat([st.data, d]);
                return;
            }
            buf = Buffer.concat([buf, d]);
            const end = buf.indexOf('\r\n\r\n');
            if (end < 0) return;
            const head = buf.subarray(0, end).toString('latin1');
            if (!/^HTTP\/1\.1 101/.test(head)) {
                sock.destroy();
                reject(new Error(`upgrade refused: ${head.split('\r\n')[0]}`));
                return;
            }
            upgraded = true;
            st.data = buf.subarray(end + 4);
            resolve(st);
        });
        st.closed.then(() => {
            if (!upgraded) reject(new Error('closed before the upgrade'));
        });
        setTimeout(() => {
            if (!upgraded) {
                sock.destroy();
                reject(new Error(`no answer to the upgrade of ${path}`));
            }
        }, scaled(10000)).unref();
    });
}

// The close code of the first close frame the server sent (server frames are unmasked), or null.
function closeCode(data) {
    let i = 0;
    while (i + 2 <= data.length) {
        const op = data[i] & 0x0f;
        let len = data[i + 1] & 0x7f;
        let off = i + 2;
        if (len === 126) {
            len = data.readUInt16BE(off);
            off += 2;
        } else if (len === 127) {
            len = Number(data.readBigUInt64BE(off));
            off += 8;
        }
        if (op === 0x8) return len >= 2 ? data.readUInt16BE(off) : 1005;
        i = off + len;
    }
    return null;
}

function maskedFrame(payload, { fin = true, opcode = 0x1, announce } = {}) {
    const mask = crypto.randomBytes(4);
    const len = announce ?? payload.length;
    const head = len < 126 ? Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | len]) : null;
    const body = Buffer.from(payload.map((b, k) => b ^ mask[k % 4]));
    return { head: Buffer.concat([head, mask]), body, mask };
}

// ---- finding 9: socket.io handshakes that are never followed up -------------------------------------------------

test('socket.io: polling handshakes that never poll again free their slots after sio_handshake_timeout_ms', { timeout: TEST_TIMEOUT_MS }, async () => {
    const MAX = 50;
    const s = await stackWith({ sio_handshake_timeout_ms: HANDSHAKE_TIMEOUT_MS, max_sessions: MAX });
    const opened = [];
    for (let i = 0; i < MAX; i++) {
        const h = await sioHandshake(s.gw);
        assert.equal(h.status, 200, `handshake ${i}: ${JSON.stringify(h.json)}`);
        opened.push(h.open.sid);
    }
    // every slot is taken by a session that never came back
    const full = await sioHandshake(s.gw);
    assert.equal(full.status, 503);
    assert.deepEqual(full.json, { error: { code: 503, message: 'over capacity (max_sessions)' } });
    // within the timeout (not the 45 s of ping interval + timeout) the slots are free again
    const t0 = Date.now();
    await waitFor(async () => (await sioHandshake(s.gw)).status === 200, {
        timeoutMs: HANDSHAKE_TIMEOUT_MS + scaled(3000),
        message: 'a handshake admitted again once the idle sessions expired',
    });
    assert.ok(Date.now() - t0 < HANDSHAKE_TIMEOUT_MS + scaled(3000));
    // the sessions expire in the order they were opened, not all at once: a GET for one still open would be its poll
    await waitFor(() => opened.slice(0, 5).every((sid) => s.gw.logs().includes(`closing sid=${sid}`)), {
        message: 'the first sessions closed',
    });
    for (const sid of opened.slice(0, 5)) {
        const r = await httpRequest('GET', eioUrl(s.gw, `&sid=${sid}`));
        assert.equal(r.status, 400);
        assert.deepEqual(r.json, { code: 1, message: 'Session ID unknown' });
    }
    assert.match(s.gw.logs(), /no request after the handshake within sio_handshake_timeout_ms/);
});

test('socket.io: socket.io-client sessions (upgraded, or polling only) outlive sio_handshake_timeout_ms', { timeout: TEST_TIMEOUT_MS }, async () => {
    const s = await stackWith({ sio_handshake_timeout_ms: HANDSHAKE_TIMEOUT_MS, sio_ping_interval_ms: 20000 });
    const upgraded = io(s.gw.url, { reconnection: false, forceNew: true });
    const polling = io(s.gw.url, { reconnection: false, forceNew: true, transports: ['polling'] });
    cleanups.push(() => upgraded.close(), () => polling.close());
    const disconnects = [];
    await Promise.all(
        [upgraded, polling].map(
            (c) =>
                new Promise((res, rej) => {
                    c.once('connect', res);
                    c.once('connect_error', rej);
                }),
        ),
    );
    for (const c of [upgraded, polling]) c.on('disconnect', (why) => disconnects.push(why));
    await waitFor(() => upgraded.io.engine.transport.name === 'websocket', { message: 'upgraded to websocket' });
    await sleep(HANDSHAKE_TIMEOUT_MS * 2.5); // well past the handshake timeout: nothing may happen
    assert.deepEqual(disconnects, []);
    for (const c of [upgraded, polling]) {
        assert.equal(c.connected, true);
        await c.timeout(scaled(3000)).emitWithAck('still-there'); // the gateway acknowledges every event it reads
    }
});

// A polling GET on its own socket, to be left parked or dropped; data collects whatever the gateway answers.
function rawPollGet(gw, sid) {
    const sock = net.connect(gw.port, '127.0.0.1');
    const st = { sock, data: '' };
    sock.on('error', () => {});
    sock.on('data', (d) => (st.data += d.toString('latin1')));
    sock.on('connect', () =>
        sock.write(`GET /socket.io/?EIO=4&transport=polling&sid=${sid} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`),
    );
    return st;
}

test('socket.io: a session whose parked GET is dropped before any CONNECT is closed after sio_handshake_timeout_ms', { timeout: TEST_TIMEOUT_MS }, async () => {
    const s = await stackWith({ sio_handshake_timeout_ms: HANDSHAKE_TIMEOUT_MS, sio_ping_interval_ms: 20000 });
    const dropped = (await sioHandshake(s.gw)).open.sid;
    const kept = (await sioHandshake(s.gw)).open.sid;
    const get = rawPollGet(s.gw, dropped);
    const parked = rawPollGet(s.gw, kept);
    cleanups.push(() => get.sock.destroy(), () => parked.sock.destroy());
    // the session has come back with its sid (a noop), so the handshake's own "never came back" check is past
    const noop = await httpRequest('POST', eioUrl(s.gw, `&sid=${dropped}`), { body: '6' });
    assert.equal(noop.status, 200);
    get.sock.destroy();
    const t0 = Date.now();
    await waitFor(() => /no transport before CONNECT for sio_handshake_timeout_ms, closing sid=(\w+)/.test(s.gw.logs()), {
        timeoutMs: HANDSHAKE_TIMEOUT_MS + scaled(3000),
        message: 'the session without a transport closed',
    });
    assert.ok(Date.now() - t0 < HANDSHAKE_TIMEOUT_MS + scaled(3000));
    assert.match(s.gw.logs(), new RegExp(`no transport before CONNECT for sio_handshake_timeout_ms, closing sid=${dropped}`));
    const r = await httpRequest('GET', eioUrl(s.gw, `&sid=${dropped}`));
    assert.equal(r.status, 400);
    assert.deepEqual(r.json, { code: 1, message: 'Session ID unknown' });
    // a session whose GET stays parked meanwhile still has its transport: it CONNECTs late, and the GET carries it
    assert.doesNotMatch(s.gw.logs(), new RegExp(`closing sid=${kept}`));
    const connect = await httpRequest('POST', eioUrl(s.gw, `&sid=${kept}`), { body: '40' });
    assert.equal(connect.status, 200);
    await waitFor(() => /\r\n\r\n[\s\S]*40\{"sid"/.test(parked.data), { message: 'the CONNECT answered on the parked GET' });
});

// ---- finding 9: per-address limits ----------------------------------------------------------------------------

test('max_sessions_per_address: native, Pusher and socket.io sessions beyond it are refused with 429', { timeout: TEST_TIMEOUT_MS }, async () => {
    const s = await stackWith({ max_sessions_per_address: 3 });
    const held = [];
    held.push(await wsConnect(`${s.gw.wsUrl}/v1/demo`));
    held.push(await wsConnect(`${s.gw.wsUrl}/app/demo-key${PUSHER_QUERY}`));
    const h = await sioHandshake(s.gw);
    assert.equal(h.status, 200);
    cleanups.push(...held.map((c) => () => c.terminate()));
    // keep the polling session alive meanwhile: it has come back once
    const post = await httpRequest('POST', eioUrl(s.gw, `&sid=${h.open.sid}`), { body: '40' });
    assert.equal(post.status, 200);

    const body = { error: { code: 429, message: 'too many sessions from this address (max_sessions_per_address)' } };
    for (const url of [`${s.gw.wsUrl}/v1/demo`, `${s.gw.wsUrl}/app/demo-key${PUSHER_QUERY}`, `${s.gw.wsUrl}/socket.io/?EIO=4&transport=websocket`]) {
        await assert.rejects(wsConnect(url), (e) => {
            assert.equal(e.statusCode, 429, url);
            assert.deepEqual(JSON.parse(e.body), body);
            return true;
        });
    }
    const refused = await sioHandshake(s.gw);
    assert.equal(refused.status, 429);
    assert.deepEqual(refused.json, body);

    // a closed session frees its place
    await held[0].close();
    const again = await waitFor(
        async () => {
            try {
                return await wsConnect(`${s.gw.wsUrl}/v1/demo`);
            } catch {
                return null;
            }
        },
        { message: 'a session admitted again after one closed' },
    );
    cleanups.push(() => again.terminate());
});

test('max_new_sessions_per_address: a burst of handshakes beyond the per-second rate gets 429', { timeout: TEST_TIMEOUT_MS }, async () => {
    const RATE = 5;
    const s = await stackWith({ max_new_sessions_per_address: RATE });
    const results = await Promise.all(Array.from({ length: 20 }, () => sioHandshake(s.gw)));
    const admitted = results.filter((r) => r.status === 200).length;
    const refused = results.filter((r) => r.status === 429);
    assert.ok(admitted >= RATE, `at least ${RATE} admitted, got ${admitted}`);
    assert.ok(refused.length > 0, 'some of the burst refused');
    for (const r of refused) {
        assert.deepEqual(r.json, {
            error: { code: 429, message: 'too many new sessions from this address (max_new_sessions_per_address)' },
        });
    }
    // native upgrades count in the same window
    const burst = await Promise.allSettled(Array.from({ length: 10 }, () => wsConnect(`${s.gw.wsUrl}/v1/demo`)));
    for (const b of burst) if (b.status === 'fulfilled') cleanups.push(() => b.value.terminate());
    assert.ok(burst.some((b) => b.status === 'rejected' && b.reason.statusCode === 429), 'a native upgrade refused with 429');
    // the next second admits again
    await waitFor(async () => (await sioHandshake(s.gw)).status === 200, { message: 'admitted in a later second' });
});

// ---- finding 9: WebSocket messages trickled a byte at a time ---------------------------------------------------

test('a WebSocket message trickled one byte a second is closed with 1008 after ws_partial_frame_timeout_ms', { timeout: TEST_TIMEOUT_MS }, async () => {
    const s = await stackWith({ ws_partial_frame_timeout_ms: PARTIAL_TIMEOUT_MS });
    const paths = ['/v1/demo', `/app/demo-key${PUSHER_QUERY}`, '/socket.io/?EIO=4&transport=websocket'];
    await Promise.all(
        paths.map(async (path) => {
            const c = await rawWsOpen(s.gw.port, path);
            cleanups.push(() => c.sock.destroy());
            const f = maskedFrame([], { announce: 100 });
            c.sock.write(f.head); // the header announces 100 bytes of payload
            const t0 = Date.now();
            const deadline = t0 + PARTIAL_TIMEOUT_MS + scaled(3000);
            for (let k = 0; !c.closedAt && Date.now() < deadline && k < 100; k++) {
                c.sock.write(Buffer.from([0x61 ^ f.mask[k % 4]]));
                await within(c.closed, 1000);
            }
            assert.ok(c.closedAt, `${path}: still open ${Date.now() - t0} ms after the message began`);
            assert.ok(c.closedAt - t0 >= PARTIAL_TIMEOUT_MS - 200, `${path}: closed too early`);
            assert.equal(closeCode(c.data), 1008, `${path}: close code`);
        }),
    );
    assert.match(s.gw.logs(), /message not completed within ws_partial_frame_timeout_ms/);
});

test('a message whose fragments arrive in time is read, and the clock stops with it', { timeout: TEST_TIMEOUT_MS }, async () => {
    const s = await stackWith({ ws_partial_frame_timeout_ms: PARTIAL_TIMEOUT_MS });
    const c = await rawWsOpen(s.gw.port, '/v1/demo');
    cleanups.push(() => c.sock.destroy());
    const send = async (text, cb) => {
        const bytes = [...Buffer.from(text)];
        const f = maskedFrame(bytes);
        const half = Math.floor(f.body.length / 2);
        c.sock.write(Buffer.concat([f.head, f.body.subarray(0, half)]));
        await sleep(200);
        c.sock.write(f.body.subarray(half));
        await waitFor(() => c.data.includes(`"cb":${cb}`), { message: `reply to cb ${cb}` });
    };
    await send(JSON.stringify({ type: 'subscribe', room: 'trickle-ok', cb: 1 }), 1);
    await sleep(PARTIAL_TIMEOUT_MS + 300); // past the timeout: the finished message left no clock running
    await send(JSON.stringify({ type: 'subscribe', room: 'trickle-ok-2', cb: 2 }), 2);
    assert.equal(c.closedAt, null);
    assert.equal(closeCode(c.data), null);
});

// ---- finding 9: a frame header and then nothing --------------------------------------------------------------
// ws_partial_frame_timeout_ms starts with the first payload byte; a peer that stops inside the header, or right after
// it, is caught by WebSocket liveness instead: it cannot answer a PING from inside a frame.

const PING_S = Math.max(1, Math.round(scaled(1000) / 1000));
const PONG_S = PING_S;
const LIVENESS = { ws_ping_interval_s: PING_S, ws_pong_timeout_s: PONG_S };

test('a WebSocket stalled inside a frame header is dropped after ws_ping_interval_s + ws_pong_timeout_s', { timeout: TEST_TIMEOUT_MS }, async () => {
    const s = await stackWith(LIVENESS);
    const paths = ['/v1/demo', `/app/demo-key${PUSHER_QUERY}`, '/socket.io/?EIO=4&transport=websocket'];
    const stalls = {
        'first header byte only': () => Buffer.from([0x81]),
        'whole masked header announcing 100 bytes, no payload': () => maskedFrame([], { announce: 100 }).head,
    };
    await Promise.all(
        paths.flatMap((path) =>
            Object.entries(stalls).map(async ([what, bytes]) => {
                const c = await rawWsOpen(s.gw.port, path);
                cleanups.push(() => c.sock.destroy());
                c.sock.write(bytes());
                const t0 = Date.now();
                await within(c.closed, (PING_S + PONG_S) * 1000 + scaled(3000));
                assert.ok(c.closedAt, `${path}, ${what}: still open ${Date.now() - t0} ms later`);
                assert.ok(c.closedAt - t0 >= PING_S * 1000 - 200, `${path}, ${what}: closed before any ping`);
            }),
        ),
    );
});

test('an idle WebSocket listener that answers pings stays open past ws_ping_interval_s + ws_pong_timeout_s', { timeout: TEST_TIMEOUT_MS }, async () => {
    const s = await stackWith(LIVENESS);
    const listener = await wsConnect(`${s.gw.wsUrl}/v1/demo`);
    cleanups.push(() => listener.terminate());
    let pings = 0;
    listener.ws.on('ping', () => pings++); // the ws library answers each with a PONG by itself
    await sleep((PING_S + PONG_S) * 1000 * 2 + 500); // nothing sent, nothing received: the gateway pings meanwhile
    assert.ok(pings >= 2, `pinged while idle (${pings} pings)`);
    assert.equal(listener.closeInfo, null);
    listener.send({ type: 'subscribe', room: 'idle-but-alive', cb: 1 });
    await listener.next((f) => f.cb === 1);
});

test('Pusher and socket.io WebSockets that answer pings stay open past ws_ping_interval_s + ws_pong_timeout_s', { timeout: TEST_TIMEOUT_MS }, async () => {
    const s = await stackWith(LIVENESS);
    // Pusher: its own WebSocket; socket.io: upgraded from polling, so the PONGs reach the gateway on the upgraded socket
    const pusher = new WebSocket(`${s.gw.wsUrl}/app/demo-key${PUSHER_QUERY}`);
    cleanups.push(() => pusher.terminate());
    const sock = io(s.gw.url, { reconnection: false, forceNew: true });
    cleanups.push(() => sock.close());
    let pusherPings = 0;
    let sioPings = 0;
    let pusherClosed = null;
    pusher.on('ping', () => pusherPings++); // the ws library answers each PING with a PONG echoing its payload
    pusher.on('close', (code) => (pusherClosed = code));
    await new Promise((resolve, reject) => {
        pusher.once('open', resolve);
        pusher.once('error', reject);
    });
    await waitFor(() => sock.io.engine?.transport?.name === 'websocket', { message: 'socket.io upgraded to WebSocket' });
    sock.io.engine.transport.ws.on('ping', () => sioPings++);
    await sleep((PING_S + PONG_S) * 1000 * 2 + 500);
    assert.ok(pusherPings >= 2, `Pusher pinged while idle (${pusherPings} pings)`);
    assert.ok(sioPings >= 2, `socket.io pinged while idle (${sioPings} pings)`);
    assert.equal(pusherClosed, null);
    assert.equal(sock.connected, true);
});

// ---- finding 10: names the broker refuses ---------------------------------------------------------------------

const BAD_NAMES = ['\uFFFE', 'a\uFFFF', '\uFDD0', 'x\u{1FFFF}', 'a\u0001b', 'tab\there', 'c1\u0085'];

test('native: rooms with noncharacters or control characters get 400 at once', { timeout: TEST_TIMEOUT_MS }, async () => {
    const s = await stackWith({});
    const c = await wsConnect(`${s.gw.wsUrl}/v1/demo`);
    cleanups.push(() => c.terminate());
    let cb = 0;
    for (const room of BAD_NAMES) {
        for (const type of ['subscribe', 'publish']) {
            const id = ++cb;
            const t0 = Date.now();
            c.send({ type, room, message: 'x', cb: id });
            const f = await c.next((m) => m.cb === id, scaled(10000));
            assert.equal(f.error?.code, 400, `${type} ${JSON.stringify(room)}: ${JSON.stringify(f)}`);
            assert.ok(Date.now() - t0 < AT_ONCE_MS, `${type} ${JSON.stringify(room)} answered after ${Date.now() - t0} ms`);
        }
    }
    // a fine name still works on the same session
    c.send({ type: 'subscribe', room: 'caf\u00e9-\uFFFD', cb: 999 });
    const ok = await c.next((m) => m.cb === 999);
    assert.equal(ok.error, undefined);
    assert.doesNotMatch(s.gw.logs(), / ERROR /);
});

test('REST: publishing to such a channel is 400, never 500', { timeout: TEST_TIMEOUT_MS }, async () => {
    const s = await stackWith({});
    for (const name of BAD_NAMES) {
        const r = await httpRequest('POST', `${s.gw.url}/demo/${encodeURIComponent(name)}/publish`, { body: { a: 1 } });
        assert.equal(r.status, 400, `${JSON.stringify(name)}: ${r.body}`);
        assert.equal(r.json?.error?.code, 400);
    }
    // Pusher HTTP API: the event name and socket_id travel as MQTT properties
    for (const ev of [{ name: 'ev\u0001' }, { name: 'ev\uFFFF' }, { name: 'ok', socket_id: '1.\uFFFE' }]) {
        const body = JSON.stringify({ channel: 'names', data: '{}', ...ev });
        const r = await httpRequest('POST', `${s.gw.url}${signedPath('POST', '/apps/demo/events', { body })}`, {
            body,
            headers: { 'Content-Type': 'application/json' },
        });
        assert.equal(r.status, 400, `${JSON.stringify(ev)}: ${r.body}`);
    }
    // events API: the event name travels as an MQTT property
    const basic = `Basic ${Buffer.from(`${APPS[0].key}:${APPS[0].secret}`).toString('base64')}`;
    for (const event of ['ev\u0001', 'ev\uFDEF']) {
        const r = await httpRequest('POST', `${s.gw.url}/api/apps/demo/events`, {
            headers: { Authorization: basic },
            body: { topic: 'names', event, message: {} },
        });
        assert.equal(r.status, 400, `events API ${JSON.stringify(event)}: ${r.body}`);
    }
    // push API: a user id is a topic level
    for (const user of ['\uFFFE', 'u\u0085']) {
        const r = await httpRequest('PUT', `${s.gw.url}/api/${encodeURIComponent(user)}/register?connectionId=conn-1`, {
            headers: { 'X-AUTH-TOKEN': PUSH_TOKEN },
        });
        assert.equal(r.status, 400, `${JSON.stringify(user)}: ${r.body}`);
        const p = await httpRequest('POST', `${s.gw.url}/api/${encodeURIComponent(user)}/push`, {
            headers: { 'X-AUTH-TOKEN': PUSH_TOKEN },
            body: { message: 'hi' },
        });
        assert.equal(p.status, 400, `push ${JSON.stringify(user)}: ${p.body}`);
    }
    const r = await httpRequest('PUT', `${s.gw.url}/api/u1/register?connectionId=${encodeURIComponent('c\uFDEF')}`, {
        headers: { 'X-AUTH-TOKEN': PUSH_TOKEN },
    });
    assert.equal(r.status, 400, r.body);
    assert.doesNotMatch(s.gw.logs(), / ERROR /);
});

test('Pusher: user ids and client event names the broker refuses get the protocol error at once', { timeout: TEST_TIMEOUT_MS }, async () => {
    const s = await stackWith({});
    const c = await established(await wsConnect(`${s.gw.wsUrl}/app/demo-key${PUSHER_QUERY}`));
    cleanups.push(() => c.terminate());
    const demo = APPS[0];

    // user signin: the id becomes the topic level of #server-to-user-{id}
    const userData = JSON.stringify({ id: 'u\uFFFE' });
    const sig = crypto.createHmac('sha256', demo.secret).update(`${c.socketId}::user::${userData}`).digest('hex');
    c.send({ event: 'pusher:signin', data: { auth: `${demo.key}:${sig}`, user_data: userData } });
    const e1 = await c.next(isEvent('pusher:error'), AT_ONCE_MS);
    assert.equal(dataOf(e1).code, 4009);

    // presence: the user_id travels as an MQTT user property
    const channel = 'presence-names';
    const channelData = JSON.stringify({ user_id: 'p\uFFFF' });
    c.send({ event: 'pusher:subscribe', data: { channel, auth: hmacAuth(c.socketId, channel, channelData), channel_data: channelData } });
    const e2 = await c.next(isEvent('pusher:subscription_error', channel), AT_ONCE_MS);
    assert.equal(dataOf(e2).status, 400);

    // client events: the name travels as an MQTT user property
    const priv = 'private-names';
    c.send({ event: 'pusher:subscribe', data: { channel: priv, auth: hmacAuth(c.socketId, priv) } });
    await c.next(isEvent('pusher_internal:subscription_succeeded', priv));
    c.send({ event: 'client-\uFFFE', channel: priv, data: {} });
    const e3 = await c.next(isEvent('pusher:error'), AT_ONCE_MS);
    assert.equal(dataOf(e3).code, 4301);
    assert.match(dataOf(e3).message, /invalid event name/);
    assert.doesNotMatch(s.gw.logs(), / ERROR /);
});

test('socket.io: register with a user id or connectionId the broker refuses is an error at once', { timeout: TEST_TIMEOUT_MS }, async () => {
    const s = await stackWith({});
    const sock = io(s.gw.url, { reconnection: false, forceNew: true });
    cleanups.push(() => sock.close());
    await new Promise((res, rej) => {
        sock.once('connect', res);
        sock.once('connect_error', rej);
    });
    for (const [user, conn] of [['\uFFFE', 'conn-1'], ['u1', 'c\u0001'], ['u\u{10FFFF}', 'conn-2']]) {
        const error = new Promise((r) => sock.once('error', r));
        sock.emit('register', user, conn);
        const err = await within(error, AT_ONCE_MS);
        assert.ok(err, `an error for ${JSON.stringify([user, conn])}`);
        assert.match(err.message, /^register needs a userId and a connectionId/);
    }
    sock.close();
});

// ---- finding 10: socket.io sids that cannot be ours ------------------------------------------------------------

test('socket.io: an overlong or malformed sid is 400 "Session ID unknown", never a new session', { timeout: TEST_TIMEOUT_MS }, async () => {
    const s = await stackWith({});
    const sioSessions = async () => {
        const m = await httpRequest('GET', `${s.gw.url}/metrics`);
        return [...m.body.matchAll(/^pushgate_sessions\{[^}]*protocol="socketio"[^}]*\} (\d+)$/gm)].reduce((n, x) => n + Number(x[1]), 0);
    };
    await waitFor(async () => (await sioSessions()) === 0, { message: 'no socket.io session left from other tests' });
    // over max_query_bytes (1024), like any query parameter: 400 before any route, the connection closed
    for (const method of ['GET', 'POST']) {
        const r = await httpRequest(method, eioUrl(s.gw, `&sid=${'a'.repeat(3000)}`), method === 'POST' ? { body: '40' } : {});
        assert.equal(r.status, 400, `${method} sid of 3000: ${r.body.slice(0, 80)}`);
        assert.deepEqual(r.json, { error: { code: 400, message: 'query parameter longer than max_query_bytes' } });
    }
    await assert.rejects(wsConnect(`${s.gw.wsUrl}/socket.io/?EIO=4&transport=websocket&sid=${'a'.repeat(3000)}`), (e) => {
        assert.equal(e.statusCode, 400, 'upgrade with a sid of 3000');
        return true;
    });
    // within it, but no live session's: Engine.IO's own answer
    for (const sid of ['a'.repeat(1000), 'a'.repeat(600), 'not-a-sid!', 'x'.repeat(21), '']) {
        for (const method of ['GET', 'POST']) {
            const r = await httpRequest(method, eioUrl(s.gw, `&sid=${sid}`), method === 'POST' ? { body: '40' } : {});
            assert.equal(r.status, 400, `${method} sid of ${sid.length}: ${r.body.slice(0, 80)}`);
            assert.deepEqual(r.json, { code: 1, message: 'Session ID unknown' }, `${method} sid of ${sid.length}`);
        }
        await assert.rejects(wsConnect(`${s.gw.wsUrl}/socket.io/?EIO=4&transport=websocket&sid=${sid}`), (e) => {
            assert.equal(e.statusCode, 400, `upgrade with a sid of ${sid.length}`);
            assert.deepEqual(JSON.parse(e.body), { error: { code: 400, message: 'Session ID unknown' } });
            return true;
        });
    }
    assert.equal(await sioSessions(), 0, 'no session was opened');
});
