// The native WebSocket protocol at /v1/{app} (README "Native protocol") against a real mosquitto + pushgate stack:
// the open frame and resume tokens, subscribe/publish with cb replies, how payloads are rendered, wildcard
// subscriptions without duplicates, JWT authentication on an app that requires it (and every way a token
// must be refused), permission rules including a catastrophic regex, token expiry while connected, and the
// refusals and close codes for bad input.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';

import { DEFAULT_APPS, mqttConnect, rsaKeyPair, scaled, signJwt, startStack, waitFor, wsConnect } from './lib/harness.mjs';
import { within, isMessage } from './lib/native.mjs';

const SECURE = DEFAULT_APPS.find((a) => a.id === 'secure');
const LEEWAY_MS = 500;
const MAX_FRAME = 8 * 1024;
const MAX_SUBS = 8;
const ALL = { publish: true, subscribe: true };

let stack;
let mqttPub;
const sockets = new Set();
let seq = 0;

before(async () => {
    stack = await startStack({
        gateway: {
            max_frame_bytes: '8k',
            max_channel_bytes: 6000,
            max_subscriptions: MAX_SUBS,
            jwt_leeway_ms: LEEWAY_MS,
        },
    });
});

after(async () => {
    for (const c of sockets) c.terminate();
    if (mqttPub) mqttPub.end(true);
    if (stack) await stack.stop();
});

afterEach(() => {
    for (const c of sockets) c.terminate();
    sockets.clear();
});

function unique(prefix) {
    seq += 1;
    return `${prefix}-${process.pid}-${seq}`;
}

async function connect(app = 'demo', query = '') {
    const c = await wsConnect(`${stack.gw.wsUrl}/v1/${app}${query}`);
    sockets.add(c);
    c.open = await c.next((f) => f.type === 'open');
    return c;
}

// Sends a request with a fresh cb and resolves to the reply carrying that cb.
async function request(c, frame, timeoutMs = scaled(5000)) {
    seq += 1;
    const cb = seq;
    c.send({ ...frame, cb });
    return c.next((f) => f.cb === cb, timeoutMs);
}

async function subscribe(c, room) {
    const r = await request(c, { type: 'subscribe', room });
    assert.equal(r.type, 'subscribe');
    assert.equal(r.room, room);
    assert.equal(r.error, undefined, `subscribe ${room}: ${JSON.stringify(r.error)}`);
    return r;
}

async function publish(c, room, message) {
    const r = await request(c, { type: 'publish', room, message });
    assert.equal(r.type, 'publish');
    assert.equal(r.error, undefined, `publish ${room}: ${JSON.stringify(r.error)}`);
    return r;
}

function messagesIn(c, room) {
    return c.frames.filter((f) => f.type === 'message' && f.room === room);
}

// A client on the gateway's own broker account, to publish raw bytes (connected on first use, again if dropped).
async function rawPublisher() {
    if (!mqttPub || !mqttPub.connected) {
        if (mqttPub) mqttPub.end(true);
        mqttPub = await mqttConnect({ port: stack.broker.port, ...stack.gatewayUser, clientId: unique('native-raw') });
    }
    return mqttPub;
}

function mqttPublish(client, topic, payload) {
    return new Promise((resolve, reject) => {
        client.publish(topic, payload, { qos: 1 }, (err) => (err ? reject(err) : resolve()));
    });
}

function secureToken(clientId, extra = {}, { secret = SECURE.secret, alg = 'HS256', key } = {}) {
    return signJwt(
        { channel: 'secure', client: clientId, exp: Math.floor(Date.now() / 1000) + 600, permissions: { '.*': ALL }, ...extra },
        key || secret,
        { alg },
    );
}

async function authenticate(c, token) {
    return request(c, { type: 'authenticate', token });
}

function errorCode(reply) {
    return reply.error ? reply.error.code : 0;
}

// ---------------------------------------------------------------------------------------------

test('open frame: a 20-character client id and a resume token', { timeout: 30000 }, async () => {
    const a = await connect();
    const b = await connect();
    assert.equal(a.frames[0].type, 'open', 'the first frame is open');
    assert.match(a.open.client_id, /^[A-Za-z0-9]{20}$/);
    assert.match(b.open.client_id, /^[A-Za-z0-9]{20}$/);
    assert.notEqual(a.open.client_id, b.open.client_id);
    assert.equal(typeof a.open.resume, 'string');
    assert.ok(a.open.resume.length >= 16, 'resume token has substance');
});

test('subscribe and publish round trip with cb replies and the message format', { timeout: 30000 }, async () => {
    const room = unique('chat');
    const sub = await connect();
    const pub = await connect();
    const sr = await subscribe(sub, room);
    assert.equal(typeof sr.cb, 'number');
    const before = Date.now();
    const pr = await publish(pub, room, { text: 'hello', n: 1 });
    assert.equal(pr.room, room);
    const m = await sub.next(isMessage(room));
    assert.deepEqual(Object.keys(m).sort(), ['client_id', 'message', 'room', 'timestamp', 'type']);
    assert.deepEqual(m.message, { text: 'hello', n: 1 });
    assert.equal(m.client_id, pub.open.client_id, 'client_id is the sender');
    assert.equal(typeof m.timestamp, 'number');
    assert.ok(m.timestamp >= before - 1000 && m.timestamp <= Date.now() + 1000, `timestamp ${m.timestamp} is now in ms`);
    // the publisher is not subscribed and receives nothing
    assert.equal(messagesIn(pub, room).length, 0);

    // unsubscribe stops delivery: a second subscriber still gets the next message, the first does not
    const other = await connect();
    await subscribe(other, room);
    const ur = await request(sub, { type: 'unsubscribe', room });
    assert.equal(ur.type, 'unsubscribe');
    assert.equal(ur.error, undefined);
    await publish(pub, room, 'after-unsubscribe');
    await other.next(isMessage(room, (f) => f.message === 'after-unsubscribe'));
    assert.equal(messagesIn(sub, room).length, 1, 'nothing after unsubscribe');
});

test('a publish without cb gets no reply but is delivered', { timeout: 30000 }, async () => {
    const room = unique('nocb');
    const sub = await connect();
    const pub = await connect();
    await subscribe(sub, room);
    pub.send({ type: 'publish', room, message: 'quiet' });
    const m = await sub.next(isMessage(room));
    assert.equal(m.message, 'quiet');
    // a later request's reply must be the next frame the publisher sees: no stray publish reply before it
    await subscribe(pub, unique('other'));
    assert.deepEqual(
        pub.frames.map((f) => f.type),
        ['open', 'subscribe'],
    );
});

test('payload rendering: JSON stays JSON, other UTF-8 is a string, anything else is {binary: base64}', { timeout: 30000 }, async () => {
    const room = unique('render');
    const sub = await connect();
    const pub = await connect();
    await subscribe(sub, room);

    // from WebSocket publishes: any JSON value round-trips
    const values = [{ a: [1, 2, { b: null }] }, 'plain string', 42, true, null, [1, 'two']];
    for (const v of values) await publish(pub, room, v);
    for (const v of values) {
        const m = await sub.next(isMessage(room));
        assert.deepEqual(m.message, v);
    }

    // from raw MQTT bytes
    const topic = `pushgate/demo/c/${room}`;
    await mqttPublish(await rawPublisher(), topic, Buffer.from('{"k":"v","n":[1,2]}'));
    let m = await sub.next(isMessage(room));
    assert.deepEqual(m.message, { k: 'v', n: [1, 2] }, 'JSON bytes are delivered as JSON');
    assert.equal(m.client_id, null, 'no web sender');

    await mqttPublish(await rawPublisher(), topic, Buffer.from('grüße, not json {', 'utf8'));
    m = await sub.next(isMessage(room));
    assert.equal(m.message, 'grüße, not json {', 'valid UTF-8 that is not JSON is a string');

    const bin = Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x80, 0x7f, 0xc3]);
    await mqttPublish(await rawPublisher(), topic, bin);
    m = await sub.next(isMessage(room));
    assert.deepEqual(m.message, { binary: bin.toString('base64') }, 'invalid UTF-8 is base64');
    assert.deepEqual(Buffer.from(m.message.binary, 'base64'), bin);
});

test('wildcard subscriptions receive matching channels once, even alongside an exact subscription', { timeout: 30000 }, async () => {
    const base = unique('sensors');
    const exactRoom = `${base}/kitchen/temp`;
    const all = await connect(); // exact + `+` filter + `#`
    const exact = await connect();
    const wild = await connect();
    await subscribe(all, exactRoom);
    await subscribe(all, `${base}/+/temp`);
    await subscribe(all, '#');
    // subscribing the same name again is accepted and adds nothing
    await subscribe(all, `${base}/+/temp`);
    await subscribe(exact, exactRoom);
    await subscribe(wild, `${base}/+/temp`);

    const pub = await connect();
    await publish(pub, exactRoom, 'k1');
    await publish(pub, `${base}/hall/temp`, 'h1');
    await publish(pub, `${base}/hall/humidity`, 'hum1');
    await publish(pub, `${base}/kitchen/temp/extra`, 'deep1');
    // the sentinel matches every subscription above; frames on one session arrive in order
    await publish(pub, exactRoom, 'sentinel');
    await all.next(isMessage(exactRoom, (f) => f.message === 'sentinel'));
    await exact.next(isMessage(exactRoom, (f) => f.message === 'sentinel'));
    await wild.next(isMessage(exactRoom, (f) => f.message === 'sentinel'));

    const got = (c) =>
        c.frames
            .filter((f) => f.type === 'message' && f.room.startsWith(base))
            .map((f) => `${f.room.slice(base.length)}=${f.message}`);
    assert.deepEqual(got(all), ['/kitchen/temp=k1', '/hall/temp=h1', '/hall/humidity=hum1', '/kitchen/temp/extra=deep1', '/kitchen/temp=sentinel']);
    assert.deepEqual(got(exact), ['/kitchen/temp=k1', '/kitchen/temp=sentinel']);
    assert.deepEqual(got(wild), ['/kitchen/temp=k1', '/hall/temp=h1', '/kitchen/temp=sentinel']);

    // leaving the exact subscription keeps the wildcard ones delivering, still once
    await request(all, { type: 'unsubscribe', room: exactRoom });
    await publish(pub, exactRoom, 'k2');
    await publish(pub, exactRoom, 'sentinel2');
    await all.next(isMessage(exactRoom, (f) => f.message === 'sentinel2'));
    await wild.next(isMessage(exactRoom, (f) => f.message === 'sentinel2'));
    assert.equal(all.frames.filter((f) => f.type === 'message' && f.message === 'k2').length, 1);
    assert.equal(wild.frames.filter((f) => f.type === 'message' && f.message === 'k2').length, 1);
});

test('a wildcard subscriber loses nothing while another session adds an exact subscription', { timeout: 30000 }, async () => {
    // A message the broker routed before it saw an exact subscription carries only the wildcard
    // filter's subscription identifier; it must still reach the wildcard's subscribers. The broker is
    // frozen while a device publishes and then the gateway sends the new SUBSCRIBE, so on resuming the
    // broker reads the device's PUBLISH (ready first) before the SUBSCRIBE.
    const base = unique('race');
    const room = `${base}/t`;
    const topic = `pushgate/demo/c/${room}`;
    const wild = await connect();
    await subscribe(wild, `${base}/#`);
    const late = await connect();
    const dev = await mqttConnect({ port: stack.broker.port, ...stack.gatewayUser, clientId: unique('race-dev') });
    try {
        // the subscribe reply may precede the broker's SUBACK: wait until the wildcard is live there
        let warm = false;
        for (let i = 0; i < 30 && !warm; i++) {
            await mqttPublish(dev, topic, Buffer.from(JSON.stringify(`warm-${i}`)));
            warm = await wild.next(isMessage(room, (f) => f.message === `warm-${i}`), 300).then(
                () => true,
                () => false,
            );
        }
        assert.ok(warm, 'the wildcard subscription became live');
        await mqttPublish(dev, topic, Buffer.from('"warm-up"'));
        await wild.next(isMessage(room, (f) => f.message === 'warm-up'));

        const broker = stack.broker.proc;
        let inFlight;
        broker.kill('SIGSTOP');
        try {
            inFlight = mqttPublish(dev, topic, Buffer.from('"in-flight"'));
            await new Promise((r) => setTimeout(r, 100));
            seq += 1;
            late.send({ type: 'subscribe', room, cb: seq });
            await new Promise((r) => setTimeout(r, 300));
        } finally {
            broker.kill('SIGCONT');
        }
        await inFlight;
        const reply = await late.next((f) => f.type === 'subscribe' && f.room === room);
        assert.equal(reply.error, undefined);
        // probe until the exact subscription is live at the broker, so that "after" matches both filters
        let live = false;
        for (let i = 0; i < 30 && !live; i++) {
            await mqttPublish(dev, topic, Buffer.from(JSON.stringify(`probe-${i}`)));
            live = await late.next(isMessage(room, (f) => f.message === `probe-${i}`), 300).then(
                () => true,
                () => false,
            );
        }
        assert.ok(live, 'the exact subscription became live');
        await mqttPublish(dev, topic, Buffer.from('"after"'));
        await wild.next(isMessage(room, (f) => f.message === 'after'));
        await late.next(isMessage(room, (f) => f.message === 'after'));
        assert.deepEqual(
            messagesIn(wild, room)
                .map((f) => f.message)
                .filter((m) => !m.startsWith('probe-') && !/^warm-\d+$/.test(m)),
            ['warm-up', 'in-flight', 'after'],
            'the wildcard subscriber received the message routed before the exact subscription',
        );
        // whether the late session also gets the in-flight message is immaterial; it gets each one at most once
        const lateGot = messagesIn(late, room)
            .map((f) => f.message)
            .filter((m) => !m.startsWith('warm-'));
        assert.ok(lateGot.includes('after'));
        assert.equal(new Set(lateGot).size, lateGot.length, `no duplicates: ${lateGot}`);
    } finally {
        dev.end(true);
    }
});

test('a subscribe is confirmed only once the broker granted it, so nothing published after the reply is lost', { timeout: 30000 }, async () => {
    // The reply tells a client (pushgate.js: the room's open event) that messages now reach it. While
    // the broker cannot have granted the subscription (it is frozen), no success may be reported.
    // Without this, a device publishing right after the reply can be routed before the broker sees the
    // SUBSCRIBE, and the message is lost (seen in practice when another session's UNSUBSCRIBE went out
    // just before, holding the small SUBSCRIBE segment back).
    const c = await connect();
    const room = unique('granted');
    const broker = stack.broker.proc;
    let early;
    seq += 1;
    const cb = seq;
    broker.kill('SIGSTOP');
    try {
        c.send({ type: 'subscribe', room, cb });
        early = await c.next((f) => f.cb === cb, 700).then(
            (f) => f,
            () => null,
        );
    } finally {
        broker.kill('SIGCONT');
    }
    const reply = early || (await c.next((f) => f.cb === cb, 10000));
    assert.equal(reply.error, undefined, JSON.stringify(reply));
    // once confirmed, a message published through the broker arrives
    await mqttPublish(await rawPublisher(), `pushgate/demo/c/${room}`, Buffer.from('"right after"'));
    const m = await within(c.next(isMessage(room), scaled(3000)).catch(() => null), scaled(3000));
    assert.equal(early, null, `subscribe confirmed while the broker was frozen: ${JSON.stringify(early)}`);
    assert.ok(m, 'the message published right after the reply was delivered');
});

test('subscribes the broker never answers time out with 504, each on its own, and the gateway goes on', { timeout: 60000 }, async () => {
    // Every waiting subscribe is timed out by the tick (publish_timeout_ms, 5 s here) while the broker is frozen:
    // several sessions, one of them waiting on two rooms and one on a room another session waits on too.
    const a = await connect();
    const b = await connect();
    const c = await connect();
    const rooms = [unique('frozen'), unique('frozen'), unique('frozen')];
    const waits = [
        [a, rooms[0]],
        [a, rooms[1]],
        [b, rooms[1]],
        [c, rooms[2]],
    ];
    const broker = stack.broker.proc;
    const started = Date.now();
    let replies;
    broker.kill('SIGSTOP');
    try {
        replies = await Promise.all(waits.map(([cl, room]) => request(cl, { type: 'subscribe', room }, scaled(15000))));
    } finally {
        broker.kill('SIGCONT');
    }
    const waited = Date.now() - started;
    for (const [i, r] of replies.entries()) {
        assert.equal(r.room, waits[i][1]);
        assert.equal(errorCode(r), 504, JSON.stringify(r));
    }
    assert.ok(waited >= 4500, `timed out after ${waited} ms, before publish_timeout_ms`);
    // the same rooms subscribe again once the broker answers, and messages flow
    await waitFor(async () => (await request(a, { type: 'subscribe', room: rooms[1] })).error === undefined, {
        timeoutMs: scaled(10000),
    });
    await subscribe(c, rooms[2]);
    await publish(b, rooms[2], 'after the freeze');
    const m = await within(c.next(isMessage(rooms[2]), scaled(3000)).catch(() => null), scaled(3000));
    assert.ok(m, 'a message after the freeze arrives');
});

test('resume: ?client_id=&resume= keeps the id; a forged resume token gets a new id', { timeout: 30000 }, async () => {
    const first = await connect();
    const { client_id: id, resume } = first.open;
    await first.close();

    const again = await connect('demo', `?client_id=${id}&resume=${resume}`);
    assert.equal(again.open.client_id, id);

    const forged = resume.slice(0, -1) + (resume.endsWith('0') ? '1' : '0');
    const other = await connect('demo', `?client_id=${id}&resume=${forged}`);
    assert.notEqual(other.open.client_id, id);
    assert.match(other.open.client_id, /^[A-Za-z0-9]{20}$/);

    const bare = await connect('demo', `?client_id=${id}`);
    assert.notEqual(bare.open.client_id, id, 'a client id without its resume token is not honoured');

    // a resume token is bound to its app
    const elsewhere = await connect('secure', `?client_id=${id}&resume=${resume}`);
    assert.notEqual(elsewhere.open.client_id, id);
});

test('secure app: nothing before authenticate; a good token unlocks; deny rules win', { timeout: 30000 }, async () => {
    const c = await connect('secure');
    const room = unique('open');
    let r = await request(c, { type: 'subscribe', room });
    assert.equal(errorCode(r), 401, 'subscribe before authenticate');
    r = await request(c, { type: 'publish', room, message: 'x' });
    assert.equal(errorCode(r), 401, 'publish before authenticate');

    const perms = { '.*': ALL, '^secret$': { publish: false, subscribe: false } };
    r = await authenticate(c, secureToken(c.open.client_id, { permissions: perms }));
    assert.equal(r.type, 'authenticate');
    assert.equal(r.error, undefined, JSON.stringify(r.error));

    await subscribe(c, room);
    await publish(c, room, { hi: 1 });
    const m = await c.next(isMessage(room));
    assert.deepEqual(m.message, { hi: 1 });

    r = await request(c, { type: 'subscribe', room: 'secret' });
    assert.equal(errorCode(r), 403, 'deny wins on subscribe');
    r = await request(c, { type: 'publish', room: 'secret', message: 'x' });
    assert.equal(errorCode(r), 403, 'deny wins on publish');
    // `secret` is denied but `secretive` is not: the deny rule is anchored
    await subscribe(c, 'secretive');
});

test('secure app: wrong client, expired, forged, alg none and RS256 tokens are refused with 401', { timeout: 30000 }, async () => {
    const c = await connect('secure');
    const id = c.open.client_id;
    const rsa = rsaKeyPair();
    const bad = {
        'other client id': secureToken('x'.repeat(20)),
        'no client claim': secureToken(id, { client: undefined }),
        'other app': secureToken(id, { channel: 'demo' }),
        expired: secureToken(id, { exp: Math.floor(Date.now() / 1000) - 3600 }),
        'expired (ms)': secureToken(id, { exp: Date.now() - 60000 }),
        'no exp': secureToken(id, { exp: undefined }),
        'forged signature': secureToken(id, {}, { secret: 'not-the-secret' }),
        'alg none': secureToken(id, {}, { alg: 'none' }),
        'RS256 when HS256 is pinned': secureToken(id, {}, { alg: 'RS256', key: rsa.privateKeyPem }),
        'not a JWT': 'garbage.token',
    };
    for (const [why, token] of Object.entries(bad)) {
        const r = await authenticate(c, token);
        assert.equal(r.type, 'authenticate', why);
        assert.equal(errorCode(r), 401, `${why}: ${JSON.stringify(r)}`);
    }
    // the session survived every refusal and is still unauthenticated
    let r = await request(c, { type: 'subscribe', room: 'room' });
    assert.equal(errorCode(r), 401);
    r = await authenticate(c, secureToken(id));
    assert.equal(r.error, undefined, JSON.stringify(r.error));
    await subscribe(c, 'room');
});

test('catastrophic regex against a long room: denied, and the loop keeps serving others', { timeout: 30000 }, async () => {
    const c = await connect('secure');
    let r = await authenticate(c, secureToken(c.open.client_id, { permissions: { '(a+)+$': ALL } }));
    assert.equal(r.error, undefined, JSON.stringify(r.error));
    const other = await connect('demo');
    const room = `${'a'.repeat(5000)}b`;

    const t0 = Date.now();
    seq += 1;
    const cb = seq;
    c.send({ type: 'subscribe', room, cb });
    // the other session's request is queued right behind the expensive one
    const otherReply = request(other, { type: 'subscribe', room: unique('prompt') }, 10000);
    r = await c.next((f) => f.cb === cb, 10000);
    const evilMs = Date.now() - t0;
    assert.equal(errorCode(r), 403, JSON.stringify(r).slice(0, 200));
    const o = await otherReply;
    const bothMs = Date.now() - t0;
    assert.equal(o.error, undefined);
    // The match limit (not a clock) stops the regex: both replies come promptly, the other session not held up.
    assert.ok(evilMs < scaled(3000) && bothMs < scaled(3000), `answered in ${evilMs} ms / ${bothMs} ms`);

    r = await request(c, { type: 'publish', room, message: 'x' }, 10000);
    assert.equal(errorCode(r), 403);
    // a short room the same rule really matches is allowed: the rule itself works
    await subscribe(c, 'aaa');
    assert.ok(Date.now() - t0 < scaled(6000));
});

test('a token that expires while connected closes the session with 4401', { timeout: 30000 }, async () => {
    const c = await connect('secure');
    // authenticate and subscribe must both be answered before the token expires, also under sanitizers
    const exp = Date.now() + scaled(2500);
    const r = await authenticate(c, secureToken(c.open.client_id, { exp }));
    assert.equal(r.error, undefined, JSON.stringify(r.error));
    await subscribe(c, unique('short'));
    const graceMs = scaled(5000);
    const info = await within(c.closed, exp + LEEWAY_MS + graceMs - Date.now());
    assert.ok(info, `session closed within ${graceMs} ms of exp + leeway`);
    const at = Date.now();
    assert.equal(info.code, 4401, JSON.stringify(info));
    assert.ok(at >= exp + LEEWAY_MS - 250, `closed ${exp + LEEWAY_MS - at} ms before exp + leeway`);
});

test('authenticating again moves the expiry: a later token keeps the session, an earlier one closes it sooner', { timeout: 40000 }, async () => {
    // kept: a short token, replaced by a long one (the default 600 s) before it expires
    const kept = await connect('secure');
    const shortExp = Date.now() + scaled(2500);
    let r = await authenticate(kept, secureToken(kept.open.client_id, { exp: shortExp }));
    assert.equal(r.error, undefined, JSON.stringify(r.error));
    // cut: a long token, replaced by a short one
    const cut = await connect('secure');
    r = await authenticate(cut, secureToken(cut.open.client_id));
    assert.equal(r.error, undefined, JSON.stringify(r.error));
    r = await authenticate(kept, secureToken(kept.open.client_id));
    assert.equal(r.error, undefined, JSON.stringify(r.error));
    const exp = Date.now() + scaled(2500);
    r = await authenticate(cut, secureToken(cut.open.client_id, { exp }));
    assert.equal(r.error, undefined, JSON.stringify(r.error));

    const info = await within(cut.closed, exp + LEEWAY_MS + scaled(5000) - Date.now());
    assert.ok(info, 'the session whose token was replaced by a shorter one closed');
    assert.equal(info.code, 4401, JSON.stringify(info));
    assert.ok(Date.now() >= exp + LEEWAY_MS - 250, 'not before the shorter token expired');
    // well past the first token's expiry (and the tick that would have closed it): the other one is served
    await new Promise((res) => setTimeout(res, Math.max(0, shortExp + LEEWAY_MS + scaled(1000) - Date.now())));
    await subscribe(kept, unique('kept'));
    assert.equal(kept.closeInfo, null, 'the session with the later token is still open');
});

test('malformed frames get error 400 and the session stays usable', { timeout: 30000 }, async () => {
    const c = await connect();
    const bad = ['this is not json', '[1,2,3]', '{"room":"x"}', '{"type":"subscribe","room":"x","cb":"1"}', '{"type":"dance"}', '{"type":"subscribe"}'];
    for (const frame of bad) {
        c.send(frame);
        const e = await c.next((f) => f.error !== undefined);
        assert.equal(e.error.code, 400, `${frame}: ${JSON.stringify(e)}`);
        assert.equal(typeof e.error.message, 'string');
    }
    assert.deepEqual(
        c.frames.slice(1, 3).map((f) => f.type),
        ['error', 'error'],
        'frames that are not requests get an error frame',
    );
    const room = unique('after-bad');
    await subscribe(c, room);
    await publish(c, room, 'still here');
    assert.equal((await c.next(isMessage(room))).message, 'still here');
    assert.equal(c.closeInfo, null);
});

test('oversize frame closes with 1009', { timeout: 30000 }, async () => {
    const c = await connect();
    // just under the limit is fine
    const room = unique('big');
    await subscribe(c, room);
    const fits = JSON.stringify({ type: 'publish', room, message: 'y'.repeat(MAX_FRAME - 200) });
    assert.ok(fits.length < MAX_FRAME);
    c.send(fits);
    assert.equal((await c.next(isMessage(room))).message, JSON.parse(fits).message, 'read whole, in order');
    c.send(JSON.stringify({ type: 'publish', room, message: 'x'.repeat(MAX_FRAME + 100) }));
    const info = await c.closed;
    assert.equal(info.code, 1009);
});

test('messages larger than the gateway\'s receive buffer arrive whole, in one frame or in fragments', { timeout: 30000 }, async () => {
    // lws hands the gateway a frame in pieces of its receive buffer (4096 bytes, server.c): they are put back together
    const c = await connect();
    const room = unique('pieces');
    await subscribe(c, room);
    const text = Array.from({ length: 1300 }, (_, i) => `${i}`.padStart(5, '-')).join(''); // 6500 bytes, no two alike
    c.send(JSON.stringify({ type: 'publish', room, message: text }));
    assert.equal((await c.next(isMessage(room))).message, text, 'one frame of 6.5 KB');
    const whole = JSON.stringify({ type: 'publish', room, message: `${text}!` });
    const cuts = [0, 1200, 1201, 5000, whole.length];
    for (let i = 0; i + 1 < cuts.length; i++)
        c.ws.send(whole.slice(cuts[i], cuts[i + 1]), { fin: i + 2 === cuts.length });
    assert.equal((await c.next(isMessage(room))).message, `${text}!`, 'four fragments, one of them a single byte');
    assert.equal(c.closeInfo, null);
});

test('invalid UTF-8 in a text frame closes with 1007', { timeout: 30000 }, async () => {
    const c = await connect();
    c.ws.send(Buffer.from([0x7b, 0x22, 0x74, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]), { binary: false });
    const info = await c.closed;
    assert.equal(info.code, 1007);
});

test('a binary frame closes with 1003', { timeout: 30000 }, async () => {
    const c = await connect();
    c.ws.send(Buffer.from(JSON.stringify({ type: 'subscribe', room: 'x' })), { binary: true });
    const info = await c.closed;
    assert.equal(info.code, 1003);
    // the gateway carries on
    const d = await connect();
    await subscribe(d, unique('fine'));
});

test('unknown app is refused with HTTP 404 before the upgrade', { timeout: 30000 }, async () => {
    for (const p of ['/v1/nope', '/v1/', '/v1/demo/extra', '/v2/demo']) {
        await assert.rejects(wsConnect(`${stack.gw.wsUrl}${p}`), (err) => {
            assert.equal(err.statusCode, 404, `${p}: ${err.message}`);
            assert.deepEqual(JSON.parse(err.body), { error: { code: 404, message: 'unknown app or path' } });
            return true;
        });
    }
});

test('publish to a room with + or # is 400; malformed filters are 400', { timeout: 30000 }, async () => {
    const c = await connect();
    for (const room of ['a/+', 'a/#', '#', '+', 'a+b']) {
        const r = await request(c, { type: 'publish', room, message: 'x' });
        assert.equal(r.type, 'publish');
        assert.equal(errorCode(r), 400, `publish ${room}`);
    }
    for (const room of ['a/#/b', 'a+b', 'a/b#', '', 'x'.repeat(6001)]) {
        const r = await request(c, { type: 'subscribe', room });
        assert.equal(errorCode(r), 400, `subscribe ${room.slice(0, 20)}`);
    }
    // nothing above upset the broker connection
    const room = unique('ok');
    await subscribe(c, room);
    await publish(c, room, 1);
    assert.equal((await c.next(isMessage(room))).message, 1);
});

test('too many subscriptions: 429', { timeout: 30000 }, async () => {
    const c = await connect();
    const rooms = Array.from({ length: MAX_SUBS }, (_, i) => unique(`many${i}`));
    for (const r of rooms) await subscribe(c, r);
    const extra = unique('one-too-many');
    let r = await request(c, { type: 'subscribe', room: extra });
    assert.equal(errorCode(r), 429);
    // resubscribing a held room is not a new subscription
    await subscribe(c, rooms[0]);
    // leaving one makes room again
    await request(c, { type: 'unsubscribe', room: rooms[1] });
    await subscribe(c, extra);
    r = await request(c, { type: 'subscribe', room: unique('again-too-many') });
    assert.equal(errorCode(r), 429);
});

test('fan-out encodes a message once for all of its recipients', async () => {
    // The gateway logs each fan-out at debug level (the harness runs it with log_level = debug).
    const base = unique('fanout');
    const room = `${base}/a`;
    const clients = [];
    for (let i = 0; i < 3; i++) {
        const c = await connect();
        await subscribe(c, room);
        clients.push(c);
    }
    const wild = await connect();
    await subscribe(wild, `${base}/+`);
    clients.push(wild);
    await publish(clients[0], room, { n: 1 });
    for (const c of clients) await c.next(isMessage(room, (f) => f.message.n === 1));
    const marker = `fanout app=demo channel=${room} `;
    await waitFor(() => stack.gw.logs().includes(marker));
    const line = stack.gw.logs().split('\n').find((l) => l.includes(marker));
    assert.match(line, /recipients=4 encodings=1\b/, `fan-out log line: ${line}`);
});

test('a message equal to the previous one is delivered after the channel was re-subscribed', async () => {
    const room = unique('repeat');
    const pub = await rawPublisher();
    const first = await connect();
    await subscribe(first, room);
    await pub.publishAsync(`pushgate/demo/c/${room}`, Buffer.from('"on"'), { qos: 1 });
    await first.next(isMessage(room, (f) => f.message === 'on'));
    first.terminate();
    sockets.delete(first);
    await new Promise((r) => setTimeout(r, 200)); // the channel empties and is unsubscribed
    const second = await connect();
    await subscribe(second, room);
    await pub.publishAsync(`pushgate/demo/c/${room}`, Buffer.from('"on"'), { qos: 1 });
    await second.next(isMessage(room, (f) => f.message === 'on'));
});

test('re-authenticating with a narrower token drops exact subscriptions it no longer allows', async () => {
    const c = await connect('secure');
    const tok = (perms) =>
        signJwt({ channel: 'secure', client: c.open.client_id, exp: Math.floor(Date.now() / 1000) + 60, permissions: perms },
            SECURE.secret);
    let r = await request(c, { type: 'authenticate', token: tok({ '.*': { subscribe: true } }) });
    assert.equal(r.error, undefined);
    await subscribe(c, 'keep-1');
    await subscribe(c, 'drop-1');
    r = await request(c, { type: 'authenticate', token: tok({ '^keep-': { subscribe: true } }) });
    assert.equal(r.error, undefined);
    const dropped = await c.next((f) => f.type === 'unsubscribe' && f.room === 'drop-1');
    assert.equal(dropped.error.code, 403);
    const again = await request(c, { type: 'subscribe', room: 'drop-1' });
    assert.equal(again.error.code, 403);
});
