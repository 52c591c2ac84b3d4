// workers = 2 (gateway/workers.c): two gateway processes on one port, each its own node, supervised by the parent.
// Connections land on both workers; what one worker's clients publish reaches the other's; presence counts a user
// once across workers; a user push and an admin API change made through one worker reach the other; socket.io
// long-polling works whichever worker the kernel gives each request's connection (it is handed to the session's
// worker, leaving no descriptor behind), and a kept-alive connection asked for another worker's session is closed
// with a 400 that sends the client to a new connection; a killed worker
// is started again while its sibling keeps its sessions; SIGTERM to the parent closes every session with 1001 and
// leaves no process behind, and neither does a SIGKILL of the parent.
import fs from 'node:fs';
import net from 'node:net';
import { test, after } from 'node:test';
import assert from 'node:assert/strict';

import { expectEveryWorker, httpRequest, rawExchange, scaled, startStack, waitFor, wsConnect } from './lib/harness.mjs';
import { DEMO, established, hmacAuth, signedPath } from './lib/pusher.mjs';
import { isMessage } from './lib/native.mjs';
import { io } from 'socket.io-client';

const stacks = [];
const sockets = new Set();
let seq = 0;

after(async () => {
    for (const c of sockets) c.terminate();
    for (const s of stacks) await s.stop().catch(() => {});
});

async function workersStack(gateway = {}) {
    const s = await startStack({ gateway: { workers: 2, ...gateway } });
    stacks.push(s);
    return s;
}

function unique(prefix) {
    seq += 1;
    return `${prefix}-${process.pid}-${seq}`;
}

const alive = (pid) => {
    try {
        process.kill(pid, 0);
        return true;
    } catch {
        return false;
    }
};

async function native(gw) {
    const c = await wsConnect(`${gw.wsUrl}/v1/demo`);
    sockets.add(c);
    await c.next((f) => f.type === 'open');
    return c;
}

async function pusher(gw) {
    const c = await wsConnect(`${gw.wsUrl}/app/${DEMO.key}?protocol=7&client=js&version=8.4.0`);
    sockets.add(c);
    return established(c);
}

// Opens connections with open() until one lands on worker `want` (or on any worker other than `not`); closes the rest.
async function onWorker(open, { want, not }) {
    for (let i = 0; i < 64; i++) {
        const c = await open();
        if ((want !== undefined && c.worker === want) || (not !== undefined && c.worker !== not)) return c;
        c.terminate();
        sockets.delete(c);
    }
    throw new Error(`no connection landed on worker ${want ?? `other than ${not}`} in 64 tries`);
}

async function subscribeNative(c, room) {
    seq += 1;
    const cb = seq;
    c.send({ type: 'subscribe', room, cb });
    const r = await c.next((f) => f.cb === cb);
    assert.equal(r.error, undefined, JSON.stringify(r));
}

// A REST publish answered by a worker other than `not` (each request is a new connection the kernel places).
async function restPublishVia(gw, room, message, { not }) {
    for (let i = 0; i < 64; i++) {
        const r = await httpRequest('POST', `${gw.url}/demo/${room}/publish`, { body: message });
        assert.equal(r.status, 200, r.body);
        if (r.headers['x-pushgate-worker'] !== not) return r.headers['x-pushgate-worker'];
    }
    throw new Error(`every publish was answered by worker ${not}`);
}

async function joinPresence(c, channel, userId) {
    const channelData = JSON.stringify({ user_id: userId, user_info: { name: userId } });
    c.send({ event: 'pusher:subscribe', data: { channel, auth: hmacAuth(c.socketId, channel, channelData), channel_data: channelData } });
    const ok = await c.next((f) => f.event === 'pusher_internal:subscription_succeeded' && f.channel === channel);
    return JSON.parse(ok.data).presence;
}

test('connections land on both workers, and every answer names its worker', { timeout: 60000 }, async () => {
    const { gw } = await workersStack();
    assert.equal(gw.workers, 2);
    const seen = new Set();
    for (let i = 0; i < 64 && seen.size < 2; i++) {
        const c = await native(gw);
        assert.match(c.worker, /^[01]$/, 'the WebSocket handshake names its worker');
        seen.add(c.worker);
    }
    assert.deepEqual([...seen].sort(), ['0', '1'], 'both workers accepted connections');

    const metrics = new Set();
    for (let i = 0; i < 64 && metrics.size < 2; i++) {
        const r = await httpRequest('GET', `${gw.url}/metrics`);
        assert.equal(r.status, 200);
        const w = r.headers['x-pushgate-worker'];
        const info = /^pushgate_worker_info\{node="([^"]+)",worker="(\d+)"\} 1$/m.exec(r.body);
        assert.ok(info, 'pushgate_worker_info in /metrics');
        assert.equal(info[2], w, 'the scrape is the answering worker\'s');
        // two nodes, one per worker: each sees the other
        assert.match(r.body, /^pushgate_cluster_nodes 2$/m);
        metrics.add(`${w} ${info[1]}`);
    }
    assert.equal(metrics.size, 2, `two workers with their own node ids: ${[...metrics]}`);
    const ids = [...metrics].map((m) => m.split(' ')[1]);
    assert.notEqual(ids[0], ids[1]);
});

test('a native and a Pusher subscriber on one worker receive a REST publish answered by the other', { timeout: 60000 }, async () => {
    const { gw } = await workersStack();
    const room = unique('room');
    const sub = await onWorker(() => native(gw), { want: '0' });
    await subscribeNative(sub, room);
    const p = await onWorker(() => pusher(gw), { want: '0' });
    p.send({ event: 'pusher:subscribe', data: { channel: room } });
    await p.next((f) => f.event === 'pusher_internal:subscription_succeeded' && f.channel === room);

    const via = await restPublishVia(gw, room, { n: 1 }, { not: '0' });
    assert.equal(via, '1');
    assert.deepEqual((await sub.next(isMessage(room, (f) => f.message.n === 1))).message, { n: 1 });
    const ev = await p.next((f) => f.channel === room && !f.event.startsWith('pusher'));
    assert.deepEqual(JSON.parse(ev.data), { n: 1 });
});

test('presence across workers: a user with a connection on each worker is one member, on every worker', { timeout: 60000 }, async () => {
    const { gw } = await workersStack();
    const channel = unique('presence-w');
    const a0 = await onWorker(() => pusher(gw), { want: '0' });
    const a1 = await onWorker(() => pusher(gw), { want: '1' });
    const b1 = await onWorker(() => pusher(gw), { want: '1' });
    await joinPresence(a0, channel, 'alice');
    await joinPresence(a1, channel, 'alice');
    await waitFor(async () => {
        const r = await httpRequest('GET', `${gw.url}${signedPath('GET', `/apps/demo/channels/${channel}/users`)}`);
        return r.json?.users?.length === 1;
    }, { message: 'alice listed once' });
    const presence = await joinPresence(b1, channel, 'bob');
    assert.equal(presence.count, 2, JSON.stringify(presence));
    assert.deepEqual([...presence.ids].sort(), ['alice', 'bob']);
    // alice's worker-0 connection sees bob arrive once, though alice and bob share worker 1
    await a0.next((f) => f.event === 'pusher_internal:member_added' && JSON.parse(f.data).user_id === 'bob');
    const users = () => httpRequest('GET', `${gw.url}${signedPath('GET', `/apps/demo/channels/${channel}/users`)}`);
    await expectEveryWorker(gw, users, (r) => JSON.stringify(r.json.users.map((u) => u.id).sort()) === '["alice","bob"]', {
        message: 'every worker lists alice and bob once',
    });
    // alice leaves worker 1 only: still a member through worker 0, so nobody is told she left
    a1.terminate();
    await delayAnd(() => assert.ok(!a0.frames.some((f) => f.event === 'pusher_internal:member_removed'), 'alice stays'));
    const info = () => httpRequest('GET', `${gw.url}${signedPath('GET', `/apps/demo/channels/${channel}`, { params: { info: 'user_count' } })}`);
    await expectEveryWorker(gw, info, (r) => r.json?.user_count === 2, { message: 'user_count 2 on every worker' });
});

async function delayAnd(fn) {
    await new Promise((r) => setTimeout(r, scaled(500)));
    fn();
}

test('user push across workers: a socket.io session (WebSocket transport) on one worker gets a push answered by the other', { timeout: 60000 }, async () => {
    const TOKEN = 'workers-push-token-0123456789';
    const s = await startStack({ gateway: { workers: 2 }, apps: [{ id: 'demo', key: 'demo-key', secret: 'demo-secret', require_auth: false, push_token: TOKEN }] });
    stacks.push(s);
    const user = unique('user');
    const conn = unique('conn');
    const reg = await httpRequest('PUT', `${s.gw.url}/api/${user}/register?connectionId=${conn}`, { headers: { 'X-AUTH-TOKEN': TOKEN } });
    assert.equal(reg.status, 200, reg.body);
    const socket = io(s.gw.url, { transports: ['websocket'], reconnection: false, forceNew: true });
    const messages = [];
    socket.on('message', (m) => messages.push(m));
    const registered = new Promise((r) => socket.on('registered', r));
    socket.on('connect', () => socket.emit('register', user, conn));
    try {
        await registered;
        // the session's worker: the one whose /metrics counts it
        let home;
        await waitFor(async () => {
            const r = await httpRequest('GET', `${s.gw.url}/metrics`);
            if (/^pushgate_sessions\{app="demo",protocol="socketio"\} 1$/m.test(r.body)) home = r.headers['x-pushgate-worker'];
            return home !== undefined;
        }, { message: 'the worker holding the socket.io session' });
        await waitFor(async () => {
            const r = await httpRequest('POST', `${s.gw.url}/api/${user}/push`, { headers: { 'X-AUTH-TOKEN': TOKEN }, body: { message: { n: 1 } } });
            assert.equal(r.status, 200, r.body);
            // a push answered by the session's own worker does not count: ask until the other one answers
            return r.headers['x-pushgate-worker'] !== home && r.json.recipients === 1;
        }, { message: 'a push answered by the other worker counts the session' });
        await waitFor(() => messages.some((m) => m.n === 1), { message: 'the push arrives' });
    } finally {
        socket.close();
    }
});

// The descriptors each worker holds (Linux /proc): a hand-off closes the sender's copy, a served connection its own.
function workerFds(gw) {
    return new Map([...gw.workerPids()].map(([i, pid]) => [i, fs.readdirSync(`/proc/${pid}/fd`).length]));
}

test('socket.io long-polling with workers: every request of a session reaches the worker that made it, over many polls both ways', { timeout: 60000 }, async () => {
    const TOKEN = 'workers-poll-token-0123456789';
    const s = await startStack({ gateway: { workers: 2 }, apps: [{ id: 'demo', key: 'demo-key', secret: 'demo-secret', require_auth: false, push_token: TOKEN }] });
    stacks.push(s);
    const { gw } = s;
    const before = workerFds(gw);

    // raw Engine.IO, one new connection per request (the kernel places each): all answered by the handshake's worker
    let r = await httpRequest('GET', `${gw.url}/socket.io/?EIO=4&transport=polling`);
    assert.equal(r.status, 200, r.body);
    const home = r.headers['x-pushgate-worker'];
    const url = `${gw.url}/socket.io/?EIO=4&transport=polling&sid=${JSON.parse(r.body.slice(1)).sid}`;
    r = await httpRequest('POST', url, { body: '40' });
    assert.equal(r.status, 200, r.body);
    r = await httpRequest('GET', url);
    assert.match(r.body, /^40\{"sid":"/);
    const workers = new Set([r.headers['x-pushgate-worker']]);
    for (let i = 0; i < 12; i++) {
        r = await httpRequest('POST', url, { body: `42${JSON.stringify(['register', `user-${i}`, 'never-registered'])}` });
        assert.equal(r.status, 200, `POST ${i}: ${r.status} ${r.body}`);
        workers.add(r.headers['x-pushgate-worker']);
        r = await httpRequest('GET', url);
        assert.equal(r.status, 200, `GET ${i}: ${r.status} ${r.body}`);
        assert.match(r.body, /42\["error",\{.*registration refused/);
        workers.add(r.headers['x-pushgate-worker']);
    }
    assert.deepEqual([...workers], [home], 'every request of the session was answered by its worker');
    assert.equal((await httpRequest('POST', url, { body: '1' })).status, 200, 'the client closes the session');

    // socket.io-client on polling alone (each request a new connection in Node): pushes in, acknowledged emits out
    const user = unique('user');
    const conn = unique('conn');
    r = await httpRequest('PUT', `${gw.url}/api/${user}/register?connectionId=${conn}`, { headers: { 'X-AUTH-TOKEN': TOKEN } });
    assert.equal(r.status, 200, r.body);
    const socket = io(gw.url, { transports: ['polling'], reconnection: false, forceNew: true });
    const messages = [];
    socket.on('message', (m) => messages.push(m));
    try {
        await new Promise((resolve, reject) => {
            socket.on('connect', resolve);
            socket.on('connect_error', reject);
        });
        for (let i = 0; i < 10; i++) {
            // client to server: a POST, its acknowledgement in a GET
            assert.equal(await socket.timeout(scaled(5000)).emitWithAck('register', user, conn), undefined, `emit ${i}`);
            // server to client: a push answered by any worker, delivered in a GET
            r = await httpRequest('POST', `${gw.url}/api/${user}/push`, { headers: { 'X-AUTH-TOKEN': TOKEN }, body: { message: { i } } });
            assert.equal(r.status, 200, r.body);
            await waitFor(() => messages.some((m) => m.i === i), { message: `push ${i} arrives over polling` });
        }
        assert.equal(socket.io.engine.transport.name, 'polling');
        assert.ok(socket.connected, 'the session lasted');
    } finally {
        socket.close();
    }
    assert.deepEqual(messages.map((m) => m.i), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

    // nothing kept: every worker is back to the descriptors it had (connections closed, handed-off copies too)
    let last;
    await waitFor(() => {
        last = workerFds(gw);
        return [...before].every(([i, n]) => last.get(i) <= n);
    }, { message: `no descriptor left behind: before ${JSON.stringify([...before])}, now ${JSON.stringify([...(last ?? [])])}` });
});

test('a kept-alive connection asked for another worker\'s session: 400 with Connection: close, and a new connection reaches it', { timeout: 60000 }, async () => {
    const { gw } = await workersStack();
    let r = await httpRequest('GET', `${gw.url}/socket.io/?EIO=4&transport=polling`);
    assert.equal(r.status, 200, r.body);
    const home = r.headers['x-pushgate-worker'];
    const sid = JSON.parse(r.body.slice(1)).sid;
    const target = `/socket.io/?EIO=4&transport=polling&sid=${sid}`;
    const host = `Host: 127.0.0.1:${gw.port}\r\n`;

    // a connection whose first request landed on the other worker, kept alive
    let sock;
    for (let i = 0; i < 64 && !sock; i++) {
        const c = net.connect(gw.port, '127.0.0.1');
        await new Promise((resolve, reject) => c.once('connect', resolve).once('error', reject));
        const a = await rawExchange(c, `GET /healthz HTTP/1.1\r\n${host}\r\n`);
        assert.equal(a.status, 200);
        if (a.headers['x-pushgate-worker'] !== home) sock = c;
        else c.destroy();
    }
    assert.ok(sock, 'a connection landed on the other worker');
    try {
        const closed = new Promise((resolve) => sock.once('close', resolve));
        const a = await rawExchange(sock, `GET ${target} HTTP/1.1\r\n${host}\r\n`);
        assert.equal(a.status, 400, a.body);
        assert.equal(a.headers.connection, 'close');
        assert.notEqual(a.headers['x-pushgate-worker'], home);
        assert.equal(JSON.parse(a.body).code, 1, 'Engine.IO\'s "Session ID unknown"');
        await closed;
    } finally {
        sock.destroy();
    }
    // the session is intact: the client's next request, on a new connection, reaches it
    r = await httpRequest('POST', `${gw.url}${target}`, { body: '40' });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.headers['x-pushgate-worker'], home);
});

test('a connection silent past the accept deferral (TCP_DEFER_ACCEPT) is still served when its request comes', { timeout: 60000 }, async () => {
    const { gw } = await workersStack();
    const c = net.connect(gw.port, '127.0.0.1');
    sockets.add({ terminate: () => c.destroy() });
    await new Promise((resolve, reject) => c.once('connect', resolve).once('error', reject));
    // the kernel hands it to a worker after about PG_LISTEN_DEFER_ACCEPT_S (1 s) without bytes; it then waits there
    // for its request line (listen.c, `pending`)
    await new Promise((r) => setTimeout(r, 2500));
    const a = await rawExchange(c, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\n\r\n`);
    assert.equal(a.status, 200, a.body);
    assert.match(String(a.headers['x-pushgate-worker']), /^[01]$/);
    c.destroy();
});

test('the apps store is shared: an app created through one worker serves on the other; deactivated through it, closed on both', { timeout: 60000 }, async () => {
    const ADMIN = { Authorization: 'Basic ' + Buffer.from('root-admin:admin-password-123').toString('base64') };
    const { gw } = await workersStack({ apps_db: 'apps.db', admin_user: 'root-admin', admin_password: 'admin-password-123' });
    const created = await httpRequest('POST', `${gw.url}/api/admin/apps`, { headers: ADMIN, body: { app: { name: 'Shared App' } } });
    assert.equal(created.status, 201, created.body);
    const slug = created.json.data.slug;
    const writer = created.headers['x-pushgate-worker'];
    const other = writer === '0' ? '1' : '0';
    // the other worker reads the same SQLite file: it has the app within its store check (cluster/apps.c)
    const open = (want) => waitFor(async () => {
        const c = await wsConnect(`${gw.wsUrl}/v1/${slug}`).catch(() => null);
        if (c) sockets.add(c);
        if (c && c.worker !== want) c.terminate();
        return c && c.worker === want ? c : null;
    }, { timeoutMs: scaled(10000), message: `worker ${want} accepts ${slug}` });
    const onOther = await open(other);
    const onWriter = await open(writer);

    let patched;
    await waitFor(async () => {
        const r = await httpRequest('PATCH', `${gw.url}/api/admin/apps/${slug}`, { headers: ADMIN, body: { app: { active: false } } });
        assert.equal(r.status, 200, r.body);
        patched = r;
        return r.headers['x-pushgate-worker'] === other; // until the other worker is the one that wrote
    }, { message: 'a PATCH answered by the other worker' });
    assert.equal(patched.json.data.active, false);
    // the dashboard's data names the worker (and node) that answered, as the header does
    const dash = await httpRequest('GET', `${gw.url}/dashboard/demo/data`, { headers: ADMIN });
    assert.equal(dash.status, 200, dash.body);
    assert.equal(String(dash.json.worker), dash.headers['x-pushgate-worker']);
    assert.match(dash.json.node, /\S/);
    assert.equal((await onOther.closed).code, 4003);
    assert.equal((await onWriter.closed).code, 4003, 'the first writer\'s session is closed too');
});

test('SIGKILL of one worker: it is started again and serves, its sibling keeps its sessions', { timeout: 60000 }, async () => {
    const { gw } = await workersStack({ node_id: 'wk' });
    const room = unique('room');
    const keep = await onWorker(() => native(gw), { want: '1' });
    await subscribeNative(keep, room);
    const doomed = await onWorker(() => native(gw), { want: '0' });
    const before = gw.workerPids();
    assert.equal(before.size, 2);

    process.kill(before.get(0), 'SIGKILL');
    const closed = await doomed.closed;
    assert.equal(closed.code, 1006, 'the killed worker\'s session is cut');
    await waitFor(() => gw.workerPids().get(0) !== before.get(0), { message: 'worker 0 started again' });
    assert.ok(!alive(before.get(0)), 'the killed worker is gone');
    assert.equal(gw.workerPids().get(1), before.get(1), 'worker 1 was not restarted');
    assert.match(gw.logs(), /worker 0 \(pid \d+\) killed by signal 9 after \d+ ms: restarting in \d+ ms/);

    // the new worker 0 serves again (under its node id, wk-w0) and reaches worker 1's subscriber
    await waitFor(async () => {
        const r = await httpRequest('GET', `${gw.url}/readyz`);
        return r.status === 200 && r.headers['x-pushgate-worker'] === '0';
    }, { timeoutMs: scaled(10000), message: 'worker 0 ready again' });
    const back = await onWorker(() => native(gw), { want: '0' });
    seq += 1;
    back.send({ type: 'publish', room, message: { after: 'restart' }, cb: seq });
    const reply = await back.next((f) => f.cb === seq);
    assert.equal(reply.error, undefined, JSON.stringify(reply));
    assert.deepEqual((await keep.next(isMessage(room, (f) => f.message.after === 'restart'))).message, { after: 'restart' });
    assert.equal(keep.closeInfo, null, 'worker 1\'s session stayed open throughout');
    const m = await onWorker(() => native(gw), { want: '0' }); // a connection is enough: the scrape below asks any worker
    m.terminate();
    await expectEveryWorker(gw, () => httpRequest('GET', `${gw.url}/metrics`), (r) => /^pushgate_cluster_nodes 2$/m.test(r.body), {
        message: 'each worker sees two nodes',
    });
});

test('a worker that fails at its first start stops the whole gateway with status 1, as one process would', { timeout: 60000 }, async () => {
    const s = await startStack({ gateway: { workers: 2 }, startGateway: false });
    stacks.push(s);
    // an apps store that cannot be opened (the broker's plugin reads the config file, not this argument)
    await assert.rejects(s.startGateway({ args: ['--apps_db', '/nonexistent-pushgate-dir/apps.db'] }), (err) => {
        assert.match(err.message, /exited during startup \(\{"code":1,"signal":null\}\)/);
        assert.match(err.message, /worker \d \(pid \d+\) exited with status 1 at start: stopping/);
        return true;
    });
});

test('SIGTERM to the parent: every session on every worker closes with 1001, the parent exits 0, nothing is left', { timeout: 60000 }, async () => {
    const s = await workersStack();
    const { gw } = s;
    const c0 = await onWorker(() => pusher(gw), { want: '0' });
    const c1 = await onWorker(() => native(gw), { want: '1' });
    const pids = [...gw.workerPids().values()];
    assert.equal(pids.length, 2);
    const exit = await gw.stop({ signal: 'SIGTERM' });
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.equal((await c0.closed).code, 1001);
    assert.equal((await c1.closed).code, 1001);
    for (const pid of pids) assert.ok(!alive(pid), `worker ${pid} exited`);
    assert.match(gw.logs(), /workers stopped/);
});

test('SIGKILL of the parent takes its workers with it (no orphan keeps the port)', { timeout: 60000 }, async () => {
    const s = await workersStack();
    const { gw } = s;
    const pids = [...gw.workerPids().values()];
    const c = await native(gw);
    await gw.kill('SIGKILL');
    await waitFor(() => pids.every((pid) => !alive(pid)), { message: 'workers gone with their parent' });
    await c.closed;
    await assert.rejects(httpRequest('GET', `${gw.url}/healthz`, { timeoutMs: 2000 }), 'nothing listens any more');
});
