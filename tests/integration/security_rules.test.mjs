// One rule, every route (README "Authentication and permissions", the rule table): no client reads or writes a
// channel of an app without a credential that grants it. One test per cell of the table, route × app mode
// (open = require_auth false, locked = require_auth true) × channel kind (public, protected = private-/presence-),
// each with the real client of that route: ws for the native protocol, pusher-js (channel auth and user signin) and
// raw Pusher frames, plain HTTP for REST and the events API, the `pusher` SDK for the Pusher HTTP API,
// socket.io-client, mqtt.js and mosquitto_pub against the broker with the pushgate plugin. The last test reads the
// table from README.md and checks that every one of its cells has a test here.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

import PusherJS from 'pusher-js';
import { io } from 'socket.io-client';

import { DEFAULT_APPS, REPO_DIR, httpRequest, inbox, mqttCollector, mqttConnect, signJwt, startStack, waitFor, wsConnect } from './lib/harness.mjs';
import {
    PUSHER_QUERY,
    answer,
    dataOf,
    established,
    hmacAuth,
    isEvent,
    nextEvent,
    openedSets,
    pusherJsOptions,
    pusherServer,
    recordConnection,
    sleep,
    unique,
} from './lib/pusher.mjs';

const PUSH_TOKEN = 'demo-push-token-0123456789';
const OPEN = { ...DEFAULT_APPS.find((a) => a.id === 'demo'), push_token: PUSH_TOKEN };
const LOCKED = { ...DEFAULT_APPS.find((a) => a.id === 'secure'), push_token: 'secure-push-token-0123456789' };
assert.equal(OPEN.require_auth, false);
assert.equal(LOCKED.require_auth, true);

// Permissions of the tokens and signins below.
const ALL = { '.*': { publish: true, subscribe: true } };
const PUBLIC_ONLY = { '.*': { publish: true, subscribe: true }, '^(private|presence)-': { publish: false, subscribe: false } };
const NEWS_ONLY = { '^news-': { subscribe: true } };
// How long a refused delivery is given to show up anyway after its barrier (a later message that did arrive).
const SETTLE_MS = 300;
const run = promisify(execFile);

let stack;
let url;
let wsUrl;
const servers = {};
const { clients, sockets, devices, close: closeOpened } = openedSets();
const sioSockets = new Set();

before(async () => {
    stack = await startStack({ apps: [OPEN, LOCKED] });
    ({ url, wsUrl } = stack.gw);
    for (const app of [OPEN, LOCKED]) servers[app.id] = pusherServer(stack.gw.port, { appId: app.id, key: app.key, secret: app.secret });
});

after(async () => {
    cleanup();
    if (stack) await stack.stop();
});

function cleanup() {
    closeOpened();
    for (const s of sioSockets) s.disconnect();
    sioSockets.clear();
}

afterEach(cleanup);

const exp = () => Math.floor(Date.now() / 1000) + 600;

// ---------------------------------------------------------------------------------------------
// native protocol (/v1/{app})

let cbSeq = 0;

// A native session; with perms it authenticates with a token carrying them.
async function native(app, perms) {
    const c = await wsConnect(`${wsUrl}/v1/${app.id}`);
    sockets.add(c);
    c.clientId = (await c.next((f) => f.type === 'open')).client_id;
    if (perms) {
        const token = signJwt({ channel: app.id, client: c.clientId, exp: exp(), permissions: perms }, app.secret);
        const r = await request(c, { type: 'authenticate', token });
        assert.equal(r.error, undefined, JSON.stringify(r));
    }
    return c;
}

// Sends a request frame and resolves with its reply.
function request(c, frame) {
    const cb = ++cbSeq;
    c.send({ ...frame, cb });
    return c.next((f) => f.cb === cb && f.type === frame.type);
}

const errorCode = (reply) => reply.error?.code ?? 0;
const isMessage = (room, marker) => (f) => f.type === 'message' && f.room === room && (marker === undefined || f.message?.marker === marker);

// ---------------------------------------------------------------------------------------------
// REST and the server-side APIs

function restToken(app, perms) {
    return signJwt({ channel: app.id, exp: exp(), permissions: perms }, app.secret);
}

function restPublish(app, channel, body, token) {
    return httpRequest('POST', `${url}/${app.id}/${channel}/publish`, {
        headers: token ? { Authorization: `Bearer ${token}` } : {},
        body,
    });
}

function eventsApi(app, topic, message, secret = app.secret) {
    return httpRequest('POST', `${url}/api/apps/${app.id}/events`, {
        headers: { Authorization: `Basic ${Buffer.from(`${app.key}:${secret}`).toString('base64')}` },
        body: { topic, event: 'headline', message },
    });
}

// ---------------------------------------------------------------------------------------------
// Pusher: raw frames and pusher-js

async function rawPusher(app) {
    const c = await established(await wsConnect(`${wsUrl}/app/${app.key}${PUSHER_QUERY}`));
    sockets.add(c);
    return c;
}

// Signs the raw connection in as userData (signed by the server SDK); resolves with signin_success or pusher:error.
function rawSignin(c, app, userData) {
    c.send({ event: 'pusher:signin', data: servers[app.id].authenticateUser(c.socketId, userData) });
    return c.next((f) => f.event === 'pusher:signin_success' || f.event === 'pusher:error');
}

// Resolves with the subscription's outcome: {ok: true} or {ok: false, status}.
async function rawSubscribe(c, channel, data = {}) {
    c.send({ event: 'pusher:subscribe', data: { channel, ...data } });
    const f = await c.next((x) => (x.event === 'pusher_internal:subscription_succeeded' || x.event === 'pusher:subscription_error') && x.channel === channel);
    return f.event === 'pusher_internal:subscription_succeeded' ? { ok: true } : { ok: false, status: dataOf(f).status };
}

// A pusher-js client of app; channel auth from the server SDK; with user it signs in as user (user_data).
function pusherJs(app, { user } = {}) {
    const srv = servers[app.id];
    const client = new PusherJS(app.key, {
        ...pusherJsOptions(stack.gw.port),
        channelAuthorization: { customHandler: ({ socketId, channelName }, cb) => answer(cb, () => srv.authorizeChannel(socketId, channelName)) },
        userAuthentication: { customHandler: ({ socketId }, cb) => answer(cb, () => srv.authenticateUser(socketId, user)) },
    });
    clients.add(client);
    recordConnection(client);
    if (user) client.signin();
    return client;
}

async function connected(client) {
    if (client.connection.state !== 'connected') await nextEvent(client.connection, 'connected');
    return client;
}

// pusher-js signed in: pusher:signin_success arrived and the client took it.
async function signedIn(client) {
    await connected(client);
    await waitFor(() => client.messages.some((m) => m.event === 'pusher:signin_success'), {
        message: `signin_success (frames: ${JSON.stringify(client.messages).slice(0, 500)})`,
    });
    return client;
}

// Subscribes with pusher-js; resolves with {channel, ok, status} on subscription_succeeded / subscription_error.
function jsSubscribe(client, name) {
    const channel = client.subscribe(name);
    return new Promise((resolve) => {
        const ok = () => done({ ok: true });
        const bad = (err) => done({ ok: false, status: err?.status, error: err });
        function done(r) {
            channel.unbind('pusher:subscription_succeeded', ok);
            channel.unbind('pusher:subscription_error', bad);
            resolve({ channel, ...r });
        }
        channel.bind('pusher:subscription_succeeded', ok);
        channel.bind('pusher:subscription_error', bad);
    });
}

function recordEvent(channel, event) {
    const box = inbox(`'${event}' on ${channel.name}`);
    channel.bind(event, (data) => box.push(data));
    return box;
}

// ---------------------------------------------------------------------------------------------
// The cells. Each is one test; `cell` is the README table's row / column.

const cells = [];
// kind 'any': one test for both channel kinds of the mode (a row whose answer does not depend on the kind).
const cell = (route, mode, kind, what, fn) => cells.push({ route, mode, kind, name: `${route} | ${mode} app | ${kind} channel: ${what}`, fn });

// ---- native WebSocket subscribe -------------------------------------------------------------

cell('native WS subscribe', 'open', 'public', 'nothing needed; delivered', async () => {
    const c = await native(OPEN);
    const room = unique('pub');
    assert.equal(errorCode(await request(c, { type: 'subscribe', room })), 0);
    await servers.demo.trigger(room, 'ev', { marker: 1 });
    await c.next(isMessage(room));
});

cell('native WS subscribe', 'open', 'protected', 'no token 401, a token that does not allow it 403, one that does: delivered', async () => {
    const anon = await native(OPEN);
    for (const room of [unique('private-x'), unique('private-encrypted-x'), unique('presence-x')]) {
        const r = await request(anon, { type: 'subscribe', room });
        assert.equal(errorCode(r), 401, `${room}: ${JSON.stringify(r)}`);
    }
    const limited = await native(OPEN, PUBLIC_ONLY);
    assert.equal(errorCode(await request(limited, { type: 'subscribe', room: unique('private-x') })), 403);
    const granted = await native(OPEN, ALL);
    const room = unique('private-x');
    assert.equal(errorCode(await request(granted, { type: 'subscribe', room })), 0);
    await servers.demo.trigger(room, 'ev', { marker: 1 });
    await granted.next(isMessage(room));
});

cell('native WS subscribe', 'open', 'protected', 'a wildcard subscription without a token never delivers a protected channel', async () => {
    const anon = await native(OPEN);
    const prefix = unique('wild');
    for (const room of ['#', `${prefix}/+`, '+']) assert.equal(errorCode(await request(anon, { type: 'subscribe', room })), 0, room);
    // a filter that can only match protected channels is refused at once
    assert.equal(errorCode(await request(anon, { type: 'subscribe', room: `private-${prefix}/#` })), 401);
    const granted = await native(OPEN, ALL);
    assert.equal(errorCode(await request(granted, { type: 'subscribe', room: '#' })), 0);

    const secret = [`private-${prefix}`, `presence-${prefix}`, `private-${prefix}/a`];
    for (const room of secret) assert.equal((await restPublish(OPEN, room, { marker: 'secret' }, restToken(OPEN, ALL))).status, 200, room);
    // the public ones are the barrier: published after, they arrive after
    for (const room of [prefix, `${prefix}/a`]) assert.equal((await restPublish(OPEN, room, { marker: 'public' })).status, 200);
    await anon.next(isMessage(prefix, 'public'));
    await anon.next(isMessage(`${prefix}/a`, 'public'));
    for (const room of secret) await granted.next(isMessage(room, 'secret')); // a token that grants them: delivered
    await sleep(SETTLE_MS);
    const leaked = anon.frames.filter((f) => f.type === 'message' && f.message?.marker === 'secret');
    assert.deepEqual(leaked, [], 'no protected channel reaches a session without a token');
});

cell('native WS subscribe', 'require_auth', 'public', 'no token 401, a token that does not allow it 403, one that does: delivered', async () => {
    const anon = await native(LOCKED);
    assert.equal(errorCode(await request(anon, { type: 'subscribe', room: unique('pub') })), 401);
    assert.equal(errorCode(await request(anon, { type: 'subscribe', room: '#' })), 401);
    const limited = await native(LOCKED, NEWS_ONLY);
    assert.equal(errorCode(await request(limited, { type: 'subscribe', room: unique('pub') })), 403);
    const granted = await native(LOCKED, ALL);
    const room = unique('pub');
    assert.equal(errorCode(await request(granted, { type: 'subscribe', room })), 0);
    await servers.secure.trigger(room, 'ev', { marker: 1 });
    await granted.next(isMessage(room));
});

cell('native WS subscribe', 'require_auth', 'protected', 'no token 401, a token that does not allow it 403, one that does: delivered', async () => {
    const anon = await native(LOCKED);
    assert.equal(errorCode(await request(anon, { type: 'subscribe', room: unique('private-x') })), 401);
    const limited = await native(LOCKED, PUBLIC_ONLY);
    assert.equal(errorCode(await request(limited, { type: 'subscribe', room: unique('presence-x') })), 403);
    const granted = await native(LOCKED, ALL);
    const room = unique('presence-x');
    assert.equal(errorCode(await request(granted, { type: 'subscribe', room })), 0);
    await servers.secure.trigger(room, 'ev', { marker: 1 });
    await granted.next(isMessage(room));
});

// ---- native WebSocket publish -----------------------------------------------------------------

// A raw Pusher connection of app subscribed to channel (with channel auth where the channel needs it).
async function pusherWatcher(app, channel) {
    const w = await rawPusher(app);
    const r = await rawSubscribe(w, channel, { auth: hmacAuth(w.socketId, channel, undefined, app.secret, app.key) });
    assert.ok(r.ok, JSON.stringify(r));
    return w;
}

cell('native WS publish', 'open', 'public', 'nothing needed; delivered', async () => {
    const room = unique('pub');
    const w = await pusherWatcher(OPEN, room);
    const c = await native(OPEN);
    assert.equal(errorCode(await request(c, { type: 'publish', room, message: { marker: 'n' } })), 0);
    await w.next(isEvent('message', room));
});

cell('native WS publish', 'open', 'protected', 'no token 401, a token that does not allow it 403, one that does: delivered', async () => {
    const room = unique('private-x');
    const w = await pusherWatcher(OPEN, room);
    const anon = await native(OPEN);
    for (const r of [room, unique('presence-x')]) assert.equal(errorCode(await request(anon, { type: 'publish', room: r, message: { marker: 'anon' } })), 401, r);
    const limited = await native(OPEN, PUBLIC_ONLY);
    assert.equal(errorCode(await request(limited, { type: 'publish', room, message: { marker: 'limited' } })), 403);
    const granted = await native(OPEN, ALL);
    assert.equal(errorCode(await request(granted, { type: 'publish', room, message: { marker: 'granted' } })), 0);
    const got = await w.next(isEvent('message', room));
    assert.deepEqual(JSON.parse(got.data), { marker: 'granted' }, 'the refused ones never arrived first');
});

for (const kind of ['public', 'protected']) {
    cell('native WS publish', 'require_auth', kind, 'no token 401, a token that does not allow it 403, one that does: accepted', async () => {
        const room = unique(kind === 'public' ? 'pub' : 'private-x');
        const anon = await native(LOCKED);
        assert.equal(errorCode(await request(anon, { type: 'publish', room, message: 1 })), 401);
        const limited = await native(LOCKED, NEWS_ONLY);
        assert.equal(errorCode(await request(limited, { type: 'publish', room, message: 1 })), 403);
        const granted = await native(LOCKED, ALL);
        assert.equal(errorCode(await request(granted, { type: 'publish', room, message: 1 })), 0);
    });
}

// ---- Pusher WebSocket subscribe ---------------------------------------------------------------

cell('Pusher WS subscribe', 'open', 'public', 'nothing needed (pusher-js); delivered', async () => {
    const client = await connected(pusherJs(OPEN));
    const name = unique('pub');
    const r = await jsSubscribe(client, name);
    assert.ok(r.ok, JSON.stringify(r.error));
    const got = recordEvent(r.channel, 'ev');
    await servers.demo.trigger(name, 'ev', { marker: 1 });
    assert.deepEqual(await got.next(), { marker: 1 });
});

cell('Pusher WS subscribe', 'require_auth', 'public', 'pusher-js without a credential: subscription_error 401, nothing delivered', async () => {
    const client = await connected(pusherJs(LOCKED));
    const name = unique('pub');
    const r = await jsSubscribe(client, name);
    assert.equal(r.ok, false, 'a public channel of a require_auth app is not open to whoever knows the key');
    assert.equal(r.status, 401);
    const got = recordEvent(r.channel, 'message');
    // what a JWT holder publishes there does not reach it; a native subscriber with a token is the barrier
    const granted = await native(LOCKED, ALL);
    assert.equal(errorCode(await request(granted, { type: 'subscribe', room: name })), 0);
    assert.equal((await restPublish(LOCKED, name, { marker: 'jwt' }, restToken(LOCKED, ALL))).status, 200);
    await granted.next(isMessage(name, 'jwt'));
    await sleep(SETTLE_MS);
    assert.deepEqual(got.items, []);
    assert.equal(client.messages.filter((m) => m.channel === name && m.event === 'message').length, 0);
});

cell('Pusher WS subscribe', 'require_auth', 'public', 'a channel auth signature (key:HMAC(secret, socket_id:channel)) grants it; a bad one 401', async () => {
    const c = await rawPusher(LOCKED);
    const name = unique('pub');
    assert.deepEqual(await rawSubscribe(c, name, { auth: hmacAuth(c.socketId, name, undefined, 'wrong-secret', LOCKED.key) }), { ok: false, status: 401 });
    assert.deepEqual(await rawSubscribe(c, name, { auth: hmacAuth(c.socketId, unique('other'), undefined, LOCKED.secret, LOCKED.key) }), { ok: false, status: 401 });
    assert.deepEqual(await rawSubscribe(c, name, { auth: '' }), { ok: false, status: 401 });
    assert.deepEqual(await rawSubscribe(c, name, { auth: hmacAuth(c.socketId, name, undefined, LOCKED.secret, LOCKED.key) }), { ok: true });
    assert.equal((await restPublish(LOCKED, name, { marker: 'jwt' }, restToken(LOCKED, ALL))).status, 200);
    const got = await c.next(isEvent('message', name));
    assert.deepEqual(JSON.parse(got.data), { marker: 'jwt' });
});

cell('Pusher WS subscribe', 'require_auth', 'public', 'pusher-js signed in with user_data permissions: allowed channels delivered (also after a reconnect), others 403', async () => {
    // the README's pattern: subscribe once pusher:signin_success arrived
    const client = pusherJs(LOCKED, { user: { id: unique('reader'), permissions: NEWS_ONLY } });
    const news = unique('news');
    const frames = inbox('pusher-js frame');
    client.connection.bind('message', (m) => {
        frames.push(m);
        if (m.event === 'pusher:signin_success') client.subscribe(news);
    });
    const succeeded = (f) => f.event === 'pusher_internal:subscription_succeeded' && f.channel === news;
    await frames.next(succeeded);
    const got = recordEvent(client.channel(news), 'ev');
    await servers.secure.trigger(news, 'ev', { marker: 'news' });
    assert.deepEqual(await got.next(), { marker: 'news' });

    client.disconnect();
    client.connect();
    await frames.next(succeeded);
    await servers.secure.trigger(news, 'ev', { marker: 'again' });
    assert.deepEqual(await got.next(), { marker: 'again' });

    const other = await jsSubscribe(client, unique('sport'));
    assert.deepEqual([other.ok, other.status], [false, 403]);
    // private channels still need their channel auth (pusher-js sends it): user permissions do not replace it
    const priv = await jsSubscribe(client, unique('private-news'));
    assert.ok(priv.ok, JSON.stringify(priv.error));
});

cell('Pusher WS subscribe', 'require_auth', 'public', 'signed in without permissions: 403; invalid permissions: signin refused (4009)', async () => {
    const plain = await signedIn(pusherJs(LOCKED, { user: { id: unique('plain') } }));
    const r = await jsSubscribe(plain, unique('news'));
    assert.deepEqual([r.ok, r.status], [false, 403]);

    const c = await rawPusher(LOCKED);
    const err = await rawSignin(c, LOCKED, { id: unique('bad'), permissions: { '(': { subscribe: true } } });
    assert.equal(err.event, 'pusher:error');
    assert.equal(err.data.code, 4009, JSON.stringify(err));
    assert.deepEqual(await rawSubscribe(c, unique('news')), { ok: false, status: 401 }, 'a refused signin grants nothing');
});

for (const [mode, app] of [['open', OPEN], ['require_auth', LOCKED]]) {
    cell('Pusher WS subscribe', mode, 'protected', 'channel auth required (401 without or bad); with it: delivered', async () => {
        const c = await rawPusher(app);
        for (const name of [unique('private-x'), unique('private-encrypted-x')]) {
            assert.deepEqual(await rawSubscribe(c, name), { ok: false, status: 401 }, name);
            assert.deepEqual(await rawSubscribe(c, name, { auth: hmacAuth(c.socketId, name, undefined, 'nope', app.key) }), { ok: false, status: 401 });
        }
        const presence = unique('presence-x');
        assert.deepEqual(await rawSubscribe(c, presence, { channel_data: '{"user_id":"u"}' }), { ok: false, status: 401 });
        // a signed-in user's permissions never stand in for the channel auth
        assert.equal((await rawSignin(c, app, { id: unique('u'), permissions: ALL })).event, 'pusher:signin_success');
        assert.deepEqual(await rawSubscribe(c, unique('private-x')), { ok: false, status: 401 });

        const client = await connected(pusherJs(app));
        const name = unique('private-x');
        const ok = await jsSubscribe(client, name);
        assert.ok(ok.ok, JSON.stringify(ok.error));
        const got = recordEvent(ok.channel, 'ev');
        await servers[app.id].trigger(name, 'ev', { marker: 1 });
        assert.deepEqual(await got.next(), { marker: 1 });
    });
}

cell('Pusher client events', 'open', 'public', 'refused (4301): client events only on private/presence channels', async () => {
    const c = await rawPusher(OPEN);
    const name = unique('pub');
    assert.deepEqual(await rawSubscribe(c, name), { ok: true });
    c.send({ event: 'client-x', channel: name, data: {} });
    assert.equal((await c.next(isEvent('pusher:error'))).data.code, 4301);
});

// Two members of name (subscribed with channel auth) and a connection that was refused it: a's events reach b, the
// outsider's are refused with 4301 and never reach b (a's second event is the barrier).
async function clientEventsOnProtected(app, name) {
    const a = await pusherWatcher(app, name);
    const b = await pusherWatcher(app, name);
    a.send({ event: 'client-typing', channel: name, data: { marker: 'typing' } });
    assert.deepEqual(dataOf(await b.next(isEvent('client-typing', name))), { marker: 'typing' });
    const outsider = await rawPusher(app);
    assert.deepEqual(await rawSubscribe(outsider, name), { ok: false, status: 401 });
    outsider.send({ event: 'client-typing', channel: name, data: { marker: 'outsider' } });
    assert.equal((await outsider.next(isEvent('pusher:error'))).data.code, 4301);
    a.send({ event: 'client-typing', channel: name, data: { marker: 'after' } });
    assert.deepEqual(dataOf(await b.next(isEvent('client-typing', name))), { marker: 'after' }, 'the outsider\'s event never arrived');
    return { a, b };
}

cell('Pusher client events', 'open', 'protected', 'on a channel subscribed with channel auth: relayed; without a live subscription: 4301', async () => {
    await clientEventsOnProtected(OPEN, unique('private-chat'));
});

cell('Pusher client events', 'require_auth', 'public', 'refused (4301), also on a channel subscribed with channel auth or a signin that allows it', async () => {
    const c = await rawPusher(LOCKED);
    assert.equal((await rawSignin(c, LOCKED, { id: unique('u'), permissions: ALL })).event, 'pusher:signin_success');
    const viaSignin = unique('pub');
    assert.deepEqual(await rawSubscribe(c, viaSignin), { ok: true });
    const viaAuth = unique('pub');
    assert.deepEqual(await rawSubscribe(c, viaAuth, { auth: hmacAuth(c.socketId, viaAuth, undefined, LOCKED.secret, LOCKED.key) }), { ok: true });
    const w = await pusherWatcher(LOCKED, viaAuth);
    for (const name of [viaSignin, viaAuth]) {
        c.send({ event: 'client-x', channel: name, data: { marker: 'client' } });
        assert.equal((await c.next(isEvent('pusher:error'))).data.code, 4301, name);
    }
    // the watcher's next event on the channel is the barrier: nothing the client sent came first
    await servers.secure.trigger(viaAuth, 'ev', { marker: 'server' });
    await w.next(isEvent('ev', viaAuth));
    assert.deepEqual(w.frames.filter((f) => f.event === 'client-x'), []);
});

cell('Pusher client events', 'require_auth', 'protected', 'on a channel subscribed with channel auth: relayed; without a live subscription: 4301', async () => {
    const name = unique('private-chat');
    const { a } = await clientEventsOnProtected(LOCKED, name);
    // on a public channel, even one subscribed with a credential: refused
    const pub = unique('pub');
    assert.deepEqual(await rawSubscribe(a, pub, { auth: hmacAuth(a.socketId, pub, undefined, LOCKED.secret, LOCKED.key) }), { ok: true });
    a.send({ event: 'client-x', channel: pub, data: {} });
    assert.equal((await a.next(isEvent('pusher:error'))).data.code, 4301);
});

// ---- REST publish -----------------------------------------------------------------------------

cell('REST publish', 'open', 'public', 'nothing needed: 200, delivered', async () => {
    const name = unique('pub');
    const w = await pusherWatcher(OPEN, name);
    assert.equal((await restPublish(OPEN, name, { marker: 'rest' })).status, 200);
    await w.next(isEvent('message', name));
});

cell('REST publish', 'open', 'protected', 'no token 401, a token that does not allow it 403, one that does: 200, delivered', async () => {
    const name = unique('private-x');
    const w = await pusherWatcher(OPEN, name);
    for (const ch of [name, unique('presence-x'), unique('private-encrypted-x')]) {
        const r = await restPublish(OPEN, ch, { marker: 'anon' });
        assert.equal(r.status, 401, `${ch}: ${r.body}`);
        assert.equal(r.json?.error?.code, 401);
    }
    assert.equal((await restPublish(OPEN, name, { marker: 'limited' }, restToken(OPEN, PUBLIC_ONLY))).status, 403);
    assert.equal((await restPublish(OPEN, name, { marker: 'granted' }, restToken(OPEN, ALL))).status, 200);
    const got = await w.next(isEvent('message', name));
    assert.deepEqual(JSON.parse(got.data), { marker: 'granted' }, 'the refused ones never arrived first');
});

for (const kind of ['public', 'protected']) {
    cell('REST publish', 'require_auth', kind, 'no token 401, a token that does not allow it 403, one that does: 200', async () => {
        const name = unique(kind === 'public' ? 'pub' : 'presence-x');
        assert.equal((await restPublish(LOCKED, name, { n: 1 })).status, 401);
        assert.equal((await restPublish(LOCKED, name, { n: 1 }, restToken(LOCKED, NEWS_ONLY))).status, 403);
        assert.equal((await restPublish(LOCKED, name, { n: 1 }, restToken(LOCKED, ALL))).status, 200);
    });
}

// ---- server credentials: Pusher HTTP API, events API ---------------------------------------------

for (const [mode, app] of [['open', OPEN], ['require_auth', LOCKED]]) {
    cell('Pusher HTTP API', mode, 'any', 'signed with the app secret: every channel; a bad signature 401', async () => {
        const pub = unique('pub');
        const priv = unique('private-x');
        const w = await pusherWatcher(app, priv);
        for (const ch of [pub, priv, unique('presence-x')]) assert.equal((await servers[app.id].trigger(ch, 'ev', { marker: 'api' })).status, 200, ch);
        assert.deepEqual(dataOf(await w.next(isEvent('ev', priv))), { marker: 'api' });
        const forged = pusherServer(stack.gw.port, { appId: app.id, key: app.key, secret: 'not-the-secret' });
        await assert.rejects(forged.trigger(priv, 'ev', {}), (err) => err.status === 401);
    });

    cell('events API', mode, 'any', 'HTTP Basic key:secret: every channel; a wrong secret 401', async () => {
        const pub = unique('pub');
        const priv = unique('presence-x');
        const w = await pusherWatcher(app, pub);
        for (const ch of [pub, priv]) assert.equal((await eventsApi(app, ch, { marker: 'events' })).status, 200, ch);
        assert.deepEqual(dataOf(await w.next(isEvent('headline', pub))), { marker: 'events' });
        assert.equal((await eventsApi(app, priv, {}, 'not-the-secret')).status, 401);
    });
}

// ---- socket.io ----------------------------------------------------------------------------------

// A socket.io-client socket on app's namespace (`/` is the first app, OPEN), its events kept in socket.events; with
// user, registered as that user (the backend's PUT …/register, then `register`) once `registered` arrived.
async function sioConnect(app, user) {
    const socket = io(app === OPEN ? url : `${url}/${app.id}`, { transports: ['websocket'], reconnection: false, forceNew: true });
    sioSockets.add(socket);
    socket.events = inbox('socket.io event');
    socket.onAny((name, ...args) => socket.events.push({ name, args }));
    await new Promise((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('connect_error', reject);
    });
    if (user) {
        const conn = unique('conn');
        const reg = await httpRequest('PUT', `${url}/api/${user}/register?connectionId=${conn}`, { headers: { 'X-AUTH-TOKEN': app.push_token } });
        assert.equal(reg.status, 200, reg.body);
        socket.emit('register', user, conn);
        await socket.events.next((e) => e.name === 'registered');
    }
    return socket;
}

for (const [mode, app] of [['open', OPEN], ['require_auth', LOCKED]]) {
    cell('socket.io', mode, 'any', 'clients cannot name a channel: no subscribe, join or publish; only their user’s pushes', async () => {
        const dev = await mqttConnect({ port: stack.broker.port, ...stack.gatewayUser, clientId: unique('sio-watch') });
        devices.add(dev);
        const mq = mqttCollector(dev);
        await dev.subscribeAsync(`pushgate/${app.id}/#`, { qos: 1 });

        const user = unique('user');
        const socket = await sioConnect(app);
        const events = socket.events;
        const pub = unique('pub');
        const priv = unique('private-x');
        // what a client of another protocol would send to listen or to publish, in every shape
        for (const ch of [pub, priv]) {
            socket.emit('subscribe', ch);
            socket.emit('subscribe', { channel: ch });
            socket.emit('join', ch);
            socket.emit('publish', ch, { marker: 'sio' });
            socket.emit('publish', { channel: ch, room: ch, message: { marker: 'sio' } });
            socket.emit(ch, { marker: 'sio' });
            socket.emit('message', { channel: ch, marker: 'sio' });
        }
        const conn = unique('conn');
        const reg = await httpRequest('PUT', `${url}/api/${user}/register?connectionId=${conn}`, { headers: { 'X-AUTH-TOKEN': app.push_token } });
        assert.equal(reg.status, 200, reg.body);
        socket.emit('register', user, conn);
        await events.next((e) => e.name === 'registered');
        for (const ch of [pub, priv]) assert.equal((await servers[app.id].trigger(ch, 'ev', { marker: 'channel' })).status, 200);
        // the user's own push is the barrier: it travels after the channel messages
        const pushed = await httpRequest('POST', `${url}/api/${user}/push`, { headers: { 'X-AUTH-TOKEN': app.push_token }, body: { message: { marker: 'push' } } });
        assert.equal(pushed.status, 200, pushed.body);
        assert.deepEqual((await events.next((e) => e.name === 'message')).args, [{ marker: 'push' }]);
        await mq.next((m) => m.topic === `pushgate/${app.id}/u/${user}`);
        await sleep(SETTLE_MS);
        assert.deepEqual(events.items.filter((e) => JSON.stringify(e.args).includes('channel')), [], 'no channel message reached socket.io');
        assert.deepEqual(mq.messages.filter((m) => m.text.includes('"sio"')), [], 'nothing the socket.io client sent was published');
    });
}

// ---- MQTT (devices straight to the broker, governed by the pushgate plugin) -------------------------

const RC_SUCCESS = 0;
const RC_NO_MATCHING_SUBSCRIBERS = 0x10;
const RC_BAD_USER_OR_PASSWORD = 0x86;
const RC_NOT_AUTHORIZED = 0x87;
const topicOf = (app, channel) => `pushgate/${app.id}/c/${channel}`;

// A device of app (username = app id); with perms its password is a token carrying them. Messages in d.inbox.
async function device(app, perms) {
    const clientId = unique('dev');
    const password = perms ? signJwt({ channel: app.id, client: clientId, exp: exp(), permissions: perms }, app.secret) : undefined;
    const d = await mqttConnect({ port: stack.broker.port, username: app.id, password, clientId });
    devices.add(d);
    d.inbox = mqttCollector(d);
    return d;
}

// The CONNACK refusal reason of a device login; fails the test if the broker accepts it.
async function deviceRefused(opts) {
    let d;
    try {
        d = await mqttConnect({ port: stack.broker.port, clientId: unique('refused'), ...opts });
    } catch (err) {
        return err.code;
    }
    d.end(true);
    assert.fail(`the login of ${opts.username} was accepted`);
}

// The SUBACK reason code of one filter.
function mqttSubscribe(d, filter) {
    return new Promise((resolve, reject) => {
        d.subscribe(filter, { qos: 1 }, (err, _granted, packet) => {
            if (packet && Array.isArray(packet.granted)) resolve(packet.granted[0]);
            else reject(err || new Error('no SUBACK'));
        });
    });
}

// The PUBACK reason code of a QoS 1 publish.
function mqttPublish(d, topic, payload) {
    return new Promise((resolve, reject) => {
        d.publish(topic, payload, { qos: 1 }, (err, packet) => {
            if (err && typeof err.code === 'number') resolve(err.code);
            else if (err) reject(err);
            else resolve(typeof packet?.reasonCode === 'number' ? packet.reasonCode : RC_SUCCESS);
        });
    });
}

function assertAccepted(rc, what) {
    assert.ok(rc === RC_SUCCESS || rc === RC_NO_MATCHING_SUBSCRIBERS, `${what}: PUBACK 0x${rc.toString(16)}`);
}

// A device that may use channel: its subscription gets a server publish, its publish reaches watcher w (first:
// nothing refused before it arrived there).
async function deviceUses(app, d, channel, w) {
    assert.equal(await mqttSubscribe(d, topicOf(app, channel)), 1, `subscribe ${channel}`);
    assert.equal((await servers[app.id].trigger(channel, 'ev', { marker: 'to-device' })).status, 200);
    await d.inbox.next((m) => m.topic === topicOf(app, channel) && m.text.includes('to-device'));
    assertAccepted(await mqttPublish(d, topicOf(app, channel), JSON.stringify({ marker: 'from-device' })), `publish ${channel}`);
    assert.deepEqual(dataOf(await w.next(isEvent('message', channel))), { marker: 'from-device' }, 'the first publish that reached the channel');
}

cell('MQTT', 'open', 'public', 'anonymous device (username = app id, no password): subscribe and publish allowed, delivered both ways', async () => {
    const name = unique('pub');
    const w = await pusherWatcher(OPEN, name);
    await deviceUses(OPEN, await device(OPEN), name, w);
});

cell('MQTT', 'open', 'protected', 'anonymous: SUBACK/PUBACK 0x87, QoS 0 dropped, # delivers public only; a token not allowing it 0x87; one that does: delivered', async () => {
    const priv = unique('private-x');
    const pres = unique('presence-x');
    const pub = unique('pub');
    const w = await pusherWatcher(OPEN, priv);
    const anon = await device(OPEN);
    const wide = await device(OPEN);
    assert.equal(await mqttSubscribe(wide, topicOf(OPEN, '#')), 1, 'a wildcard filter is accepted');
    for (const ch of [priv, pres, unique('private-encrypted-x')]) {
        assert.equal(await mqttSubscribe(anon, topicOf(OPEN, ch)), RC_NOT_AUTHORIZED, `subscribe ${ch}`);
        assert.equal(await mqttPublish(anon, topicOf(OPEN, ch), JSON.stringify({ marker: 'anon' })), RC_NOT_AUTHORIZED, `publish ${ch}`);
    }
    anon.publish(topicOf(OPEN, priv), JSON.stringify({ marker: 'anon-qos0' }), { qos: 0 });
    // on one connection the broker handles packets in order: this PUBACK comes after the QoS 0 publish was handled
    assert.equal(await mqttPublish(anon, topicOf(OPEN, priv), 'x'), RC_NOT_AUTHORIZED);

    const limited = await device(OPEN, PUBLIC_ONLY);
    assert.equal(await mqttSubscribe(limited, topicOf(OPEN, priv)), RC_NOT_AUTHORIZED);
    assert.equal(await mqttPublish(limited, topicOf(OPEN, priv), JSON.stringify({ marker: 'limited' })), RC_NOT_AUTHORIZED);
    await deviceUses(OPEN, await device(OPEN, ALL), priv, w);

    // the wildcard subscriber without a token: a public channel published last is the barrier
    assert.equal((await servers.demo.trigger(pres, 'ev', { marker: 'secret' })).status, 200);
    assert.equal((await servers.demo.trigger(pub, 'ev', { marker: 'public' })).status, 200);
    await wide.inbox.next((m) => m.topic === topicOf(OPEN, pub));
    assert.deepEqual(wide.inbox.messages.map((m) => m.topic).filter((t) => /\/c\/(private|presence)-/.test(t)), [], 'no protected channel through #');
});

for (const kind of ['public', 'protected']) {
    cell('MQTT', 'require_auth', kind, 'no token: CONNECT refused (mqtt.js, mosquitto_pub); a token not allowing it: SUBACK/PUBACK 0x87; one that does: delivered', async () => {
        const name = unique(kind === 'public' ? 'pub' : 'private-x');
        const w = await pusherWatcher(LOCKED, name);
        for (const opts of [{ username: LOCKED.id }, { username: LOCKED.id, password: '' }]) {
            const rc = await deviceRefused(opts);
            assert.ok(rc === RC_NOT_AUTHORIZED || rc === RC_BAD_USER_OR_PASSWORD, `no token: CONNACK 0x${Number(rc).toString(16)}`);
        }
        const forgedId = unique('forged');
        const forged = signJwt({ channel: LOCKED.id, client: forgedId, exp: exp(), permissions: ALL }, 'not-the-secret');
        const rc = await deviceRefused({ username: LOCKED.id, password: forged, clientId: forgedId });
        assert.ok(rc === RC_NOT_AUTHORIZED || rc === RC_BAD_USER_OR_PASSWORD, `bad signature: CONNACK 0x${Number(rc).toString(16)}`);
        await assert.rejects(
            run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(stack.broker.port), '-V', 'mqttv311', '-u', LOCKED.id,
                '-i', unique('pub-cli'), '-t', topicOf(LOCKED, name), '-m', JSON.stringify({ marker: 'mosquitto_pub' })]),
            (err) => /refused|not authori[sz]ed|bad user name or password/i.test(err.stderr),
        );

        const limited = await device(LOCKED, kind === 'public' ? NEWS_ONLY : PUBLIC_ONLY);
        assert.equal(await mqttSubscribe(limited, topicOf(LOCKED, name)), RC_NOT_AUTHORIZED);
        assert.equal(await mqttPublish(limited, topicOf(LOCKED, name), JSON.stringify({ marker: 'limited' })), RC_NOT_AUTHORIZED);
        await deviceUses(LOCKED, await device(LOCKED, ALL), name, w);
    });
}

// ---- the app-wide broadcast: events API topic `#general` --------------------------------------------
// Not a channel: nobody subscribes to it, and no channel permission is involved. In an open app every session of
// the app gets it; in a require_auth app every session that holds a credential of the app (a native token, whatever
// its permissions; a Pusher signin; a registered socket.io user). MQTT devices never (the broadcast topic is outside
// their app's channel topics).

const isBroadcast = (f) => f.type === 'broadcast';
const isPusherBroadcast = (f) => f.event === 'headline' && f.channel === undefined;

async function broadcastReachesNoDevice(app, d) {
    for (const filter of [`pushgate/${app.id}/b`, `pushgate/${app.id}/#`, 'pushgate/+/b'])
        assert.equal(await mqttSubscribe(d, filter), RC_NOT_AUTHORIZED, `device subscribes ${filter}`);
}

cell('app-wide broadcast', 'open', 'any', 'every native, Pusher and socket.io session of the app, without credentials; no MQTT device, no other app', async () => {
    const n = await native(OPEN);
    const p = await rawPusher(OPEN);
    const sio = await sioConnect(OPEN);
    const d = await device(OPEN);
    await broadcastReachesNoDevice(OPEN, d);
    const otherApp = await native(LOCKED, ALL);

    assert.equal((await eventsApi(OPEN, '#general', { marker: 'all' })).status, 200);
    const nb = await n.next(isBroadcast);
    assert.deepEqual([nb.event, nb.message], ['headline', { marker: 'all' }]);
    assert.deepEqual(dataOf(await p.next(isPusherBroadcast)), { marker: 'all' });
    assert.deepEqual((await sio.events.next((e) => e.name === 'headline')).args, [{ marker: 'all' }]);
    // a request's reply is the barrier on the other app's session
    assert.equal(errorCode(await request(otherApp, { type: 'subscribe', room: unique('pub') })), 0);
    assert.deepEqual(otherApp.frames.filter(isBroadcast), [], 'another app’s session');
    assert.deepEqual(d.inbox.messages, [], 'the device');
});

cell('app-wide broadcast', 'require_auth', 'any', 'native sessions with a token (even one allowing nothing), signed-in Pusher users, registered socket.io users; nobody else', async () => {
    const anon = await native(LOCKED);
    const tokenNothing = await native(LOCKED, {});
    const priv = unique('private-x');
    const pusherAuthOnly = await pusherWatcher(LOCKED, priv); // channel auth, not signed in
    const signedIn = await rawPusher(LOCKED);
    assert.equal((await rawSignin(signedIn, LOCKED, { id: unique('u') })).event, 'pusher:signin_success');
    const sioAnon = await sioConnect(LOCKED);
    const sioUser = await sioConnect(LOCKED, unique('user'));
    const d = await device(LOCKED, ALL);
    await broadcastReachesNoDevice(LOCKED, d);

    assert.equal((await eventsApi(LOCKED, '#general', { marker: 'members' })).status, 200);
    const nb = await tokenNothing.next(isBroadcast);
    assert.deepEqual([nb.event, nb.message], ['headline', { marker: 'members' }]);
    assert.deepEqual(dataOf(await signedIn.next(isPusherBroadcast)), { marker: 'members' });
    assert.deepEqual((await sioUser.events.next((e) => e.name === 'headline')).args, [{ marker: 'members' }]);

    // those without a credential: a later answer on each connection is the barrier
    assert.equal(errorCode(await request(anon, { type: 'subscribe', room: unique('pub') })), 401);
    assert.deepEqual(anon.frames.filter(isBroadcast), [], 'native session without a token');
    assert.equal((await servers.secure.trigger(priv, 'ev', { marker: 'barrier' })).status, 200);
    await pusherAuthOnly.next(isEvent('ev', priv));
    assert.deepEqual(pusherAuthOnly.frames.filter(isPusherBroadcast), [], 'Pusher connection with channel auth only');
    sioAnon.emit('register', unique('nobody'), unique('no-conn'));
    await sioAnon.events.next((e) => e.name === 'error');
    assert.deepEqual(sioAnon.events.items.filter((e) => e.name === 'headline'), [], 'socket.io session not registered');
    assert.deepEqual(d.inbox.messages, [], 'the device');
});

for (const { name, fn } of cells) test(name, { timeout: 30000 }, fn);

// An app of the store switched to require_auth: what was subscribed while it was open without a credential goes.
test('Pusher WS subscribe | require_auth switched on: a connection holding a public channel without credential is closed with 4200; covered ones stay', { timeout: 60000 }, async () => {
    const admin = { user: 'rules-admin', password: 'rules-admin-password' };
    const basic = { Authorization: `Basic ${Buffer.from(`${admin.user}:${admin.password}`).toString('base64')}` };
    const s2 = await startStack({ apps: [OPEN], gateway: { apps_db: 'apps.db', admin_user: admin.user, admin_password: admin.password } });
    try {
        const created = await httpRequest('POST', `${s2.gw.url}/api/admin/apps`, { headers: basic, body: { app: { name: unique('switch') } } });
        assert.equal(created.status, 201, created.body);
        const app = created.json.data;
        const srv = pusherServer(s2.gw.port, { appId: app.slug, key: app.key, secret: app.secret });
        const connect = async () => {
            const c = await established(await wsConnect(`${s2.gw.wsUrl}/app/${app.key}${PUSHER_QUERY}`));
            sockets.add(c);
            return c;
        };
        const news = unique('news');
        const priv = unique('private-x');
        const anon = await connect();
        assert.deepEqual(await rawSubscribe(anon, news), { ok: true });
        const covered = await connect();
        covered.send({ event: 'pusher:signin', data: srv.authenticateUser(covered.socketId, { id: unique('u'), permissions: NEWS_ONLY }) });
        await covered.next(isEvent('pusher:signin_success'));
        assert.deepEqual(await rawSubscribe(covered, news), { ok: true });
        const privOnly = await connect();
        assert.deepEqual(await rawSubscribe(privOnly, priv, { auth: hmacAuth(privOnly.socketId, priv, undefined, app.secret, app.key) }), { ok: true });

        const r = await httpRequest('PATCH', `${s2.gw.url}/api/admin/apps/${app.slug}`, { headers: basic, body: { app: { require_auth: true } } });
        assert.equal(r.status, 200, r.body);
        assert.equal((await anon.next(isEvent('pusher:error'))).data.code, 4200);
        assert.equal((await anon.closed).code, 4200, 'closed so that pusher-js reconnects under the new rule');
        // back, it needs a credential now
        const again = await connect();
        assert.deepEqual(await rawSubscribe(again, news), { ok: false, status: 401 });

        assert.equal((await srv.trigger([news, priv], 'ev', { marker: 'after' })).status, 200);
        assert.deepEqual(dataOf(await covered.next(isEvent('ev', news))), { marker: 'after' });
        assert.deepEqual(dataOf(await privOnly.next(isEvent('ev', priv))), { marker: 'after' });
        assert.equal(covered.closeInfo, null);
        assert.equal(privOnly.closeInfo, null);
    } finally {
        cleanup();
        await s2.stop();
    }
});

// The README's rule table, cell by cell: each row (a route) × each column (app mode × channel kind) has a test above,
// for that kind or for 'any'; a row or a test route without the other is an error too.
const ROUTES = [
    ['native WS subscribe', 'native WS subscribe'],
    ['native WS publish', 'native WS publish'],
    ['Pusher WS subscribe', 'Pusher WS subscribe'],
    ['Pusher client events', 'Pusher client events'],
    ['REST publish', 'REST `POST /{app}/{channel}/publish`'],
    ['Pusher HTTP API', 'Pusher HTTP API'],
    ['events API', 'events API'],
    ['socket.io', 'socket.io'],
    ['MQTT', 'MQTT subscribe / publish'],
    ['app-wide broadcast', 'app-wide broadcast'],
];
const COLUMNS = [
    ['open', 'public', 'open app, public channel'],
    ['open', 'protected', 'open app, protected channel'],
    ['require_auth', 'public', '`require_auth` app, public channel'],
    ['require_auth', 'protected', '`require_auth` app, protected channel'],
];

function readmeRuleTable() {
    const lines = fs.readFileSync(path.join(REPO_DIR, 'README.md'), 'utf8').split('\n');
    const split = (line) => line.trim().replace(/^\|/, '').replace(/\|$/, '').split(' | ').map((c) => c.trim());
    const start = lines.findIndex((l) => l.startsWith('| route | open app, public channel'));
    assert.ok(start >= 0, 'README.md has the rule table');
    const header = split(lines[start]);
    const rows = [];
    for (let i = start + 2; i < lines.length && lines[i].startsWith('|'); i++) rows.push(split(lines[i]));
    return { header, rows };
}

test('the rule table: every cell of the README table (route × app mode × channel kind) has a test', () => {
    const { header, rows } = readmeRuleTable();
    assert.deepEqual(header.slice(1, 5), COLUMNS.map((c) => c[2]), 'the table’s columns');
    assert.equal(header[5], 'tested in `tests/integration/`');
    const missing = [];
    const rowRoutes = rows.map((row) => {
        assert.equal(row.length, 6, `README row ${row[0]}: ${row.length} cells`);
        const matches = ROUTES.filter(([, label]) => row[0].startsWith(label));
        assert.equal(matches.length, 1, `README row ${row[0]} names one route of this file`);
        const [route] = matches[0];
        assert.ok(row[5].includes(`\`security_rules\` (${route})`), `README row ${route} names its tests in this file: ${row[5]}`);
        COLUMNS.forEach(([mode, kind], k) => {
            assert.ok(row[1 + k].length > 0, `README cell ${route} × ${mode}/${kind} is empty`);
            if (!cells.some((c) => c.route === route && c.mode === mode && (c.kind === kind || c.kind === 'any'))) missing.push(`${route} | ${mode} app | ${kind} channel`);
        });
        return route;
    });
    assert.deepEqual(missing, [], 'cells without a test');
    assert.deepEqual([...rowRoutes].sort(), ROUTES.map((r) => r[0]).sort(), 'every route of the table, each once');
    const strays = cells.filter((c) => !rowRoutes.includes(c.route)).map((c) => c.name);
    assert.deepEqual(strays, [], 'tests of a route the table does not have');
});
