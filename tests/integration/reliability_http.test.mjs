// Connection reuse against a real mosquitto + pushgate stack. Every HTTP answer after which the gateway closes the
// connection says so with Connection: close (asked-for closes, HTTP/1.0, answers decided before the body, refused
// upgrades) and no answer without it is followed by a close, checked on raw sockets; Node's http client, pooling
// (keep-alive agents, Node 19+'s default global agent) or not, runs a sequence of such requests without a single
// "socket hang up". A native session that pipelines a thousand requests gets every reply and stays open.
import http from 'node:http';
import net from 'node:net';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { httpRequest, scaled, startStack, waitFor, wsConnect } from './lib/harness.mjs';

let stack;
const sockets = new Set();
const KEEPALIVE_S = 2;

before(async () => {
    // small out-queue limits: a thousand pipelined replies are far more than a session may have queued
    stack = await startStack({ gateway: { max_queue_messages: 64, max_queue_bytes: '16k', http_keepalive_s: KEEPALIVE_S } });
});

after(async () => {
    for (const c of sockets) c.terminate();
    if (stack) await stack.stop();
});

// Sends `first` on a fresh connection; after its answer, sends `second` (when given). Resolves with the raw bytes
// received and whether the server closed the connection. A keep-alive connection proves itself by answering
// `second`; with no `second` the server must close it within the deadline.
function exchange(first, second) {
    return new Promise((resolve, reject) => {
        const sock = net.connect(stack.gw.port, '127.0.0.1');
        let out = '';
        let sentSecond = false;
        const timer = setTimeout(() => {
            sock.destroy();
            reject(new Error(`no close / second answer within the deadline; got:\n${out}`));
        }, scaled(5000));
        sock.on('connect', () => sock.write(first));
        sock.on('data', (d) => {
            out += d.toString('latin1');
            const answers = splitAnswers(out);
            if (second && !sentSecond && answers.length >= 1 && answers[0].complete) {
                sentSecond = true;
                sock.write(second);
            }
            if (second && answers.length >= 2 && answers[1].complete) {
                clearTimeout(timer);
                sock.destroy();
                resolve({ answers, closed: false });
            }
        });
        sock.on('error', () => {});
        sock.on('close', () => {
            clearTimeout(timer);
            resolve({ answers: splitAnswers(out), closed: true });
        });
    });
}

// The HTTP answers in a byte stream: status, lower-cased headers (name -> [values]), body, complete.
function splitAnswers(text) {
    const answers = [];
    let rest = text;
    while (rest.length) {
        const end = rest.indexOf('\r\n\r\n');
        if (end < 0) break;
        const [status, ...lines] = rest.slice(0, end).split('\r\n');
        const headers = {};
        for (const l of lines) {
            const i = l.indexOf(':');
            const k = l.slice(0, i).trim().toLowerCase();
            (headers[k] ||= []).push(l.slice(i + 1).trim());
        }
        const len = Number(headers['content-length']?.[0] ?? 0);
        const body = rest.slice(end + 4, end + 4 + len);
        answers.push({ status: Number(status.split(' ')[1]), headers, body, complete: body.length === len });
        rest = rest.slice(end + 4 + len);
    }
    return answers;
}

const connectionHeader = (a) => (a.headers.connection || []).join(',').toLowerCase();

const get = (path, version = '1.1', extra = '') => `GET ${path} HTTP/${version}\r\nHost: 127.0.0.1\r\n${extra}\r\n`;
const publish = (extra = '', body = '{"n":1}') =>
    `POST /demo/conn-room/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;

test('the connection closes after an answer exactly when that answer says Connection: close', async () => {
    const closing = [
        ['HTTP/1.1 asking Connection: close', get('/healthz', '1.1', 'Connection: close\r\n'), 200],
        ['HTTP/1.1 Connection: close among other tokens', get('/healthz', '1.1', 'Connection: TE, Close\r\n'), 200],
        ['HTTP/1.0 without keep-alive', get('/healthz', '1.0'), 200],
        ['a REST publish asking Connection: close', publish('Connection: close\r\n'), 200],
        ['an unknown route asking Connection: close', get('/no-such-page', '1.1', 'Connection: close\r\n'), 404],
        [
            'socket.io polling asking Connection: close',
            get('/socket.io/?EIO=4&transport=polling', '1.1', 'Connection: close\r\n'),
            200,
        ],
        [
            'a refused WebSocket upgrade',
            get(
                '/v1/no-such-app',
                '1.1',
                'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
                    'Sec-WebSocket-Version: 13\r\n',
            ),
            404,
        ],
        [
            'an answer decided before the body (unknown app)',
            'POST /no-such-app/room/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello',
            404,
        ],
        [
            'ambiguous framing',
            'POST /demo/room/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi',
            400,
        ],
    ];
    for (const [what, bytes, status] of closing) {
        const r = await exchange(bytes);
        assert.ok(r.closed, `${what}: closed`);
        assert.ok(r.answers.length >= 1, `${what}: answered`);
        assert.equal(r.answers[0].status, status, `${what}: status`);
        assert.equal(connectionHeader(r.answers[0]), 'close', `${what}: the answer says Connection: close`);
    }

    const keeping = [
        ['HTTP/1.1', get('/healthz'), 'HTTP/1.1 default'],
        ['HTTP/1.1 keep-alive', get('/healthz', '1.1', 'Connection: keep-alive\r\n'), 'keep-alive'],
        ['HTTP/1.0 keep-alive', get('/healthz', '1.0', 'Connection: keep-alive\r\n'), 'HTTP/1.0 keep-alive'],
        ['a REST publish', publish(), 'publish'],
    ];
    for (const [what, bytes] of keeping) {
        const r = await exchange(bytes, get('/healthz', '1.1'));
        assert.equal(r.closed, false, `${what}: kept open`);
        assert.equal(r.answers.length, 2, `${what}: the next request on the connection is answered`);
        assert.notEqual(connectionHeader(r.answers[0]), 'close', `${what}: no Connection: close on a kept connection`);
        assert.deepEqual(r.answers[0].headers['keep-alive'], [`timeout=${KEEPALIVE_S}`], `${what}: the idle timeout is announced`);
    }
    // a request pipelined behind a body answered at once: either both are answered on a kept connection, or the
    // gateway closes after the first answer, which then says so
    const piped = await exchange(publish('', '{not json') + get('/healthz'), get('/healthz'));
    assert.equal(piped.answers[0].status, 400);
    if (piped.closed) assert.equal(connectionHeader(piped.answers.at(-1)), 'close', 'the last answer before the close says so');
    // an HTTP/1.0 client learns that the connection stays
    const r10 = await exchange(get('/healthz', '1.0', 'Connection: keep-alive\r\n'), get('/healthz', '1.0', 'Connection: keep-alive\r\n'));
    assert.equal(connectionHeader(r10.answers[0]), 'keep-alive');
});

test('a kept connection closes once idle for the announced Keep-Alive timeout, not before', async () => {
    const sock = net.connect(stack.gw.port, '127.0.0.1');
    let answeredAt = 0;
    let text = '';
    const closedAt = await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the idle connection was never closed')), scaled(KEEPALIVE_S * 1000 + 5000));
        sock.on('connect', () => sock.write(get('/healthz')));
        sock.on('data', (d) => {
            text += d.toString('latin1');
            if (!answeredAt && splitAnswers(text)[0]?.complete) answeredAt = Date.now();
        });
        sock.on('error', () => {});
        sock.on('close', () => (clearTimeout(timer), resolve(Date.now())));
    });
    assert.ok(answeredAt, 'answered');
    assert.match(text, new RegExp(`keep-alive: timeout=${KEEPALIVE_S}`, 'i'));
    // lws counts whole seconds: allow it to be up to one early
    assert.ok(closedAt - answeredAt >= (KEEPALIVE_S - 1) * 1000, `closed after ${closedAt - answeredAt} ms`);
});

// The requests of one round, in order: each resolves to its status; none may fail on a reused socket.
function round(agent, n) {
    const plan = [
        ['GET', '/healthz', {}, undefined, 200],
        ['GET', '/healthz', { Connection: 'close' }, undefined, 200],
        ['POST', '/demo/conn-room/publish', { 'Content-Type': 'application/json' }, `{"n":${n}}`, 200],
        ['POST', '/demo/conn-room/publish', { 'Content-Type': 'application/json', Connection: 'close' }, '{"c":1}', 200],
        ['POST', '/no-such-app/room/publish', {}, 'early answer, body never read', 404],
        ['GET', '/socket.io/?EIO=4&transport=polling', { Connection: 'close' }, undefined, 200],
        ['GET', '/metrics', {}, undefined, 200],
        ['DELETE', '/healthz', {}, undefined, 405],
    ];
    return plan.map(([method, path, headers, body, status]) => ({ method, path, headers, body, status }));
}

function nodeRequest(agent, { method, path, headers, body }) {
    return new Promise((resolve, reject) => {
        const h = { ...headers };
        if (body !== undefined) h['Content-Length'] = Buffer.byteLength(body);
        const req = http.request(`${stack.gw.url}${path}`, { method, headers: h, agent }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode));
            res.on('error', reject);
        });
        req.setTimeout(scaled(5000), () => req.destroy(new Error(`${method} ${path}: no answer`)));
        req.on('error', (err) => reject(Object.assign(err, { message: `${method} ${path}: ${err.message}` })));
        if (body !== undefined) req.write(body);
        req.end();
    });
}

for (const [name, makeAgent] of [
    ['a keep-alive agent with one socket', () => new http.Agent({ keepAlive: true, maxSockets: 1 })],
    ['a keep-alive agent with several sockets', () => new http.Agent({ keepAlive: true, maxSockets: 4 })],
    ["Node's default global agent", () => undefined],
    ['no agent (a connection per request)', () => false],
]) {
    test(`Node's http client with ${name}: a sequence of requests, some closing, never hits a dead socket`, async () => {
        const agent = makeAgent();
        try {
            for (let n = 0; n < 10; n++) {
                // one after the other, and the same round concurrently: reused sockets in every order
                for (const r of round(agent, n)) assert.equal(await nodeRequest(agent, r), r.status, `${r.method} ${r.path}`);
                const all = await Promise.all(round(agent, n).map((r) => nodeRequest(agent, r)));
                assert.deepEqual(all, round(agent, n).map((r) => r.status));
            }
        } finally {
            agent?.destroy?.();
        }
    });
}

// Replies to a session's own requests are not out-queue messages: a client that pipelines requests is slowed down
// (the gateway stops reading its socket while its replies wait), never closed as a slow consumer. The broker is
// paused while the requests go out, so that their replies wait for it however much the gateway reads per wakeup
// (ws_rx_buffer_bytes): the gateway must stop reading at max_queue_messages (64) replies due.
test('a native session that pipelines a thousand requests gets every reply and stays open', { timeout: 60000 }, async () => {
    const N = 1000;
    const c = await wsConnect(`${stack.gw.wsUrl}/v1/demo`);
    sockets.add(c);
    const { client_id: clientId } = await c.next((f) => f.type === 'open');
    const room = `pipelined-${process.pid}`;
    const stopped = new RegExp(`not reading requests of client=${clientId}: 64 replies due`);
    const broker = stack.broker.proc;
    broker.kill('SIGSTOP');
    try {
        for (let i = 1; i <= N; i++) c.send({ type: 'publish', room, message: { i }, cb: i });
        for (let i = 1; i <= 50; i++) c.send({ type: 'subscribe', room: `${room}-${i}`, cb: N + i });
        await waitFor(() => stopped.test(stack.gw.logs()), { message: 'the gateway stops reading the client' });
    } finally {
        broker.kill('SIGCONT');
    }
    const seen = new Set();
    for (let i = 1; i <= N + 50; i++) {
        const f = await c.next((x) => x.type === 'publish' || x.type === 'subscribe', scaled(20000));
        assert.equal(f.error, undefined, JSON.stringify(f));
        seen.add(f.cb);
    }
    assert.equal(seen.size, N + 50, 'one reply per request');
    assert.equal(c.closeInfo, null, 'the session stays open');
    // and it still works: a message published to a room it subscribed to arrives
    const r = await httpRequest('POST', `${stack.gw.url}/demo/${room}-1/publish`, { body: { after: true } });
    assert.equal(r.status, 200);
    const m = await c.next((f) => f.type === 'message' && f.room === `${room}-1`);
    assert.deepEqual(m.message, { after: true });
    assert.doesNotMatch(stack.gw.logs(), /slow consumer closed/);
});
