// Pusher HTTP API (README "Pusher Channels compatibility", /apps/{app_id}/…) against a real mosquitto + pushgate stack, driven
// by the unmodified `pusher` server SDK, with raw signed requests (signature computed in lib/pusher.mjs with
// node:crypto) for the malformed cases the SDK refuses to send. Events reach pusher-js subscribers and
// MQTT v5 subscribers of pushgate/{app}/c/{channel} (event name in the `event` user property, payload =
// the data string); socket_id exclusion; batch_events; 401 for bad/stale signatures and body_md5, 400 for
// too many channels/events, invalid channel names and bad bodies, 413 for oversized data, 404 for an
// unknown app; no 2xx while the broker cannot acknowledge; the info endpoints (channels with prefix filter
// and user_count, one channel's occupied/user_count/subscription_count, presence users) and
// users/{id}/terminate_connections, all through the SDK.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import PusherJS from 'pusher-js';

import { httpRequest, mqttCollector, mqttConnect, scaled, startStack, userProp, waitFor, wsConnect } from './lib/harness.mjs';
import {
    DEMO,
    PUSHER_QUERY,
    established,
    nextEvent,
    openedSets,
    pusherJsOptions,
    pusherServer,
    recordConnection,
    signedPath,
    sleep,
    unique,
} from './lib/pusher.mjs';

// Every trigger here waits for the broker's PUBACK up to this long before failing: room for a slow (sanitized) round
// trip. The broker-down test bounds its answer by it (its own test timeout is 60 s).
const PUBLISH_TIMEOUT_MS = scaled(1500);

let stack;
let server;
const { clients, devices, close: cleanup } = openedSets();

function sdk(overrides = {}) {
    return pusherServer(stack.gw.port, overrides);
}

before(async () => {
    stack = await startStack({ gateway: { publish_timeout_ms: PUBLISH_TIMEOUT_MS } });
    server = sdk();
});

after(async () => {
    cleanup();
    if (stack) await stack.stop();
});

afterEach(cleanup);

// ---------------------------------------------------------------------------------------------
// Subscribers

// presence: the channel_data the SDK signs for presence- channels; user: signs in as that user.
async function pusherClient({ presence, user } = {}) {
    const client = new PusherJS(DEMO.key, {
        ...pusherJsOptions(stack.gw.port),
        channelAuthorization: {
            customHandler: ({ socketId, channelName }, cb) =>
                cb(null, server.authorizeChannel(socketId, channelName, channelName.startsWith('presence-') ? presence : undefined)),
        },
        userAuthentication: {
            customHandler: ({ socketId }, cb) => cb(null, server.authenticateUser(socketId, user)),
        },
    });
    clients.add(client);
    recordConnection(client);
    if (client.connection.state !== 'connected') await nextEvent(client.connection, 'connected', 10000);
    if (user) {
        client.signin();
        await waitFor(() => client.messages.some((m) => m.event === 'pusher:signin_success'), {
            timeoutMs: 8000,
            message: `signin_success for ${user.id}`,
        });
    }
    return client;
}

// Subscribes and keeps every event delivered on the channel: [{event, data}].
async function listen(client, name) {
    const channel = client.subscribe(name);
    const got = [];
    channel.bind_global((event, data) => {
        if (!event.startsWith('pusher:') && !event.startsWith('pusher_internal:')) got.push({ event, data });
    });
    const res = await Promise.race([
        nextEvent(channel, 'pusher:subscription_succeeded', 8000).then(() => 'ok'),
        nextEvent(channel, 'pusher:subscription_error', 8000).then((e) => `error ${JSON.stringify(e)}`),
    ]);
    assert.equal(res, 'ok', `subscribe ${name}`);
    return got;
}

async function mqttListener(channels) {
    const dev = await mqttConnect({ port: stack.broker.port, ...stack.gatewayUser, clientId: unique('pusher-http-sub') });
    devices.add(dev);
    const col = mqttCollector(dev);
    await dev.subscribeAsync(channels.map((c) => `pushgate/demo/c/${c}`), { qos: 1 });
    return col;
}

// ---------------------------------------------------------------------------------------------
// Raw signed requests, signed by signedPath

// body: an object is sent as JSON; a string as is.
function rawPost(path, body, opts = {}) {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    return httpRequest('POST', `${stack.gw.url}${signedPath('POST', path, { ...opts, body: text })}`, {
        body: text,
        headers: { 'Content-Type': 'application/json' },
    });
}

// The SDK's promise settles to a fetch Response or rejects with a RequestError carrying .status.
async function sdkStatus(promise) {
    try {
        const res = await promise;
        return { status: res.status, body: await res.text() };
    } catch (err) {
        if (err.status === undefined) throw err;
        return { status: err.status, body: err.body };
    }
}

// ---------------------------------------------------------------------------------------------
// events

test('trigger: 200 {} and the event reaches pusher-js and the MQTT topic with its name as a user property', { timeout: 30000 }, async () => {
    const name = unique('news');
    const client = await pusherClient();
    const got = await listen(client, name);
    const mq = await mqttListener([name]);

    const res = await server.trigger(name, 'breaking', { headline: 'hi', n: [1, 2] });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {});
    await waitFor(() => got.length === 1, { message: 'pusher-js got the event' });
    assert.deepEqual(got[0], { event: 'breaking', data: { headline: 'hi', n: [1, 2] } });
    const m = await mq.next((x) => x.topic === `pushgate/demo/c/${name}`);
    assert.equal(userProp(m.properties, 'event'), 'breaking');
    assert.equal(m.text, JSON.stringify({ headline: 'hi', n: [1, 2] }), 'the payload is the data string');

    // a string data is relayed as the same string
    await server.trigger(name, 'text', 'plain words');
    await waitFor(() => got.length === 2);
    assert.deepEqual(got[1], { event: 'text', data: 'plain words' });
    const m2 = await mq.next();
    assert.equal(m2.text, 'plain words');
    assert.equal(userProp(m2.properties, 'event'), 'text');
});

test('trigger to several channels (up to 100) delivers on each; a private channel too', { timeout: 30000 }, async () => {
    const a = unique('multi-a');
    const b = unique('private-multi-b');
    const client = await pusherClient();
    const gotA = await listen(client, a);
    const gotB = await listen(client, b);
    const mq = await mqttListener([a, b]);

    const res = await server.trigger([a, b], 'multi', { x: 1 });
    assert.equal(res.status, 200);
    await waitFor(() => gotA.length === 1 && gotB.length === 1, { message: 'both channels' });
    assert.deepEqual(gotA[0].data, { x: 1 });
    assert.deepEqual(gotB[0].data, { x: 1 });
    const topics = [(await mq.next()).topic, (await mq.next()).topic].sort();
    assert.deepEqual(topics, [`pushgate/demo/c/${a}`, `pushgate/demo/c/${b}`].sort());

    // exactly 100 channels is accepted
    const hundred = [a, ...Array.from({ length: 99 }, (_, i) => `${a}-fill-${i}`)];
    const res100 = await server.trigger(hundred, 'hundred', 'h');
    assert.equal(res100.status, 200);
    await waitFor(() => gotA.length === 2);
    assert.deepEqual(gotA[1], { event: 'hundred', data: 'h' });
});

test('socket_id exclusion: the excluded connection does not get the event, the others do', { timeout: 30000 }, async () => {
    const name = unique('excl');
    const sender = await pusherClient();
    const other = await pusherClient();
    const gotSender = await listen(sender, name);
    const gotOther = await listen(other, name);

    const res = await server.trigger(name, 'edit', { v: 1 }, { socket_id: sender.connection.socket_id });
    assert.equal(res.status, 200);
    await waitFor(() => gotOther.length === 1, { message: 'the other connection got it' });
    // a later event to everyone: once the sender has it, the excluded one would have come first
    await server.trigger(name, 'marker', {});
    await waitFor(() => gotSender.length >= 1, { message: 'the sender got the marker' });
    assert.deepEqual(gotSender.map((g) => g.event), ['marker']);
    await waitFor(() => gotOther.length === 2);
    assert.deepEqual(gotOther.map((g) => g.event), ['edit', 'marker']);
});

test('triggerBatch: up to 10 events, each delivered to its channel with its name and data', { timeout: 30000 }, async () => {
    const a = unique('batch-a');
    const b = unique('batch-b');
    const client = await pusherClient();
    const gotA = await listen(client, a);
    const gotB = await listen(client, b);
    const mq = await mqttListener([a, b]);

    const res = await server.triggerBatch([
        { channel: a, name: 'one', data: { n: 1 } },
        { channel: b, name: 'two', data: 'second' },
        { channel: a, name: 'three', data: { n: 3 } },
    ]);
    assert.equal(res.status, 200);
    await waitFor(() => gotA.length === 2 && gotB.length === 1, { message: 'batch delivered' });
    assert.deepEqual(gotA, [
        { event: 'one', data: { n: 1 } },
        { event: 'three', data: { n: 3 } },
    ]);
    assert.deepEqual(gotB, [{ event: 'two', data: 'second' }]);
    const ms = [await mq.next(), await mq.next(), await mq.next()];
    const seen = ms.map((m) => `${m.topic.slice('pushgate/demo/c/'.length)}|${userProp(m.properties, 'event')}|${m.text}`).sort();
    assert.deepEqual(seen, [`${a}|one|{"n":1}`, `${a}|three|{"n":3}`, `${b}|two|second`].sort());

    // a batch item's socket_id excludes that connection from that item only
    const other = await pusherClient();
    const gotOther = await listen(other, a);
    assert.equal(
        (
            await server.triggerBatch([
                { channel: a, name: 'not-for-client', data: '1', socket_id: client.connection.socket_id },
                { channel: a, name: 'for-all', data: '2' },
            ])
        ).status,
        200,
    );
    await waitFor(() => gotOther.length === 2 && gotA.length === 3, { message: 'batch with socket_id delivered' });
    assert.deepEqual(gotOther.map((g) => g.event), ['not-for-client', 'for-all']);
    assert.deepEqual(gotA.slice(2).map((g) => g.event), ['for-all']);
    gotA.splice(2);
    await mq.next();
    await mq.next();

    // ten is the limit and is accepted
    const ten = Array.from({ length: 10 }, (_, i) => ({ channel: a, name: `e${i}`, data: String(i) }));
    assert.equal((await server.triggerBatch(ten)).status, 200);
    await waitFor(() => gotA.length === 12, { message: 'ten batch events' });
    assert.deepEqual(gotA.slice(2).map((g) => g.event), ten.map((e) => e.name));
});

test('a correctly signed raw request is accepted (the raw signer below is right)', { timeout: 30000 }, async () => {
    const name = unique('raw-ok');
    const client = await pusherClient();
    const got = await listen(client, name);
    const res = await rawPost('/apps/demo/events', { name: 'raw', channel: name, data: '{"r":1}' });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(res.json, {});
    await waitFor(() => got.length === 1);
    assert.deepEqual(got[0], { event: 'raw', data: { r: 1 } });
    // a timestamp 500 s old is still within the tolerance
    const old = await rawPost('/apps/demo/events', { name: 'raw', channel: name, data: 'x' }, { timestamp: Math.floor(Date.now() / 1000) - 500 });
    assert.equal(old.status, 200, old.body);
    // the server sorts the query itself: the same signed parameters in another order are accepted
    const body = JSON.stringify({ name: 'raw', channel: name, data: 'y' });
    const [p, q] = signedPath('POST', '/apps/demo/events', { body }).split('?');
    const reordered = `${p}?${q.split('&').reverse().join('&')}`;
    const res2 = await httpRequest('POST', `${stack.gw.url}${reordered}`, { body, headers: { 'Content-Type': 'application/json' } });
    assert.equal(res2.status, 200, `${reordered}: ${res2.body}`);
    await waitFor(() => got.length === 3, { message: 'both later events delivered' });
});

// ---------------------------------------------------------------------------------------------
// Refusals

test('bad signatures are 401: wrong secret (SDK), altered or missing signature, wrong key, stale or future timestamp', { timeout: 30000 }, async () => {
    const name = unique('sig');
    const client = await pusherClient();
    const got = await listen(client, name);

    const wrong = await sdkStatus(sdk({ secret: 'not-the-secret' }).trigger(name, 'ev', 'x'));
    assert.equal(wrong.status, 401, wrong.body);

    const body = JSON.stringify({ name: 'ev', channel: name, data: 'x' });
    const post = (path) => httpRequest('POST', `${stack.gw.url}${path}`, { body, headers: { 'Content-Type': 'application/json' } });
    const good = signedPath('POST', '/apps/demo/events', { body });
    const flipped = good.replace(/auth_signature=([0-9a-f])/, (_, c) => `auth_signature=${c === '0' ? '1' : '0'}`);
    assert.notEqual(flipped, good);
    const now = Math.floor(Date.now() / 1000);
    const cases = [
        ['altered signature', flipped],
        ['missing signature', good.replace(/&auth_signature=[0-9a-f]+$/, '')],
        ['empty signature', signedPath('POST', '/apps/demo/events', { body, signature: '' })],
        ['unknown auth_key', signedPath('POST', '/apps/demo/events', { body, key: 'other-key' })],
        ['signed for another path', signedPath('POST', '/apps/demo/batch_events', { body }).replace('/apps/demo/batch_events', '/apps/demo/events')],
        ['stale timestamp (700 s old)', signedPath('POST', '/apps/demo/events', { body, timestamp: now - 700 })],
        ['future timestamp (700 s ahead)', signedPath('POST', '/apps/demo/events', { body, timestamp: now + 700 })],
        ['no query at all', '/apps/demo/events'],
    ];
    for (const [what, path] of cases) {
        const res = await post(path);
        assert.equal(res.status, 401, `${what}: ${res.status} ${res.body}`);
    }
    // none of them was delivered; a good one afterwards is
    const ok = await post(good);
    assert.equal(ok.status, 200, ok.body);
    await waitFor(() => got.length === 1);
    await sleep(200);
    assert.equal(got.length, 1, 'only the well-signed request was delivered');
});

test('body_md5 that does not match the body, or missing with a body, is 401', { timeout: 30000 }, async () => {
    const name = unique('md5');
    const client = await pusherClient();
    const got = await listen(client, name);
    const body = { name: 'ev', channel: name, data: 'x' };
    const wrongMd5 = crypto.createHash('md5').update('something else').digest('hex');
    let res = await rawPost('/apps/demo/events', body, { md5: wrongMd5 });
    assert.equal(res.status, 401, `wrong body_md5: ${res.body}`);
    res = await rawPost('/apps/demo/events', body, { md5: null });
    assert.equal(res.status, 401, `missing body_md5: ${res.body}`);
    // signed over one body, another sent
    const signed = JSON.stringify(body);
    const path = signedPath('POST', '/apps/demo/events', { body: signed });
    res = await httpRequest('POST', `${stack.gw.url}${path}`, {
        body: JSON.stringify({ ...body, data: 'tampered' }),
        headers: { 'Content-Type': 'application/json' },
    });
    assert.equal(res.status, 401, `swapped body: ${res.body}`);
    await sleep(300);
    assert.equal(got.length, 0);
});

test('more than 100 channels or more than 10 batch events is 400, and nothing is delivered', { timeout: 30000 }, async () => {
    const name = unique('limits');
    const client = await pusherClient();
    const got = await listen(client, name);
    const channels = [name, ...Array.from({ length: 100 }, (_, i) => `${name}-x${i}`)];
    assert.equal(channels.length, 101);
    const res = await rawPost('/apps/demo/events', { name: 'ev', channels, data: 'x' });
    assert.equal(res.status, 400, res.body);

    const eleven = Array.from({ length: 11 }, (_, i) => ({ channel: name, name: `b${i}`, data: String(i) }));
    const batch = await sdkStatus(server.triggerBatch(eleven));
    assert.equal(batch.status, 400, batch.body);
    await sleep(400);
    assert.equal(got.length, 0, JSON.stringify(got));
});

test('data over 10 KB is 413; data under it is delivered intact', { timeout: 30000 }, async () => {
    const name = unique('size');
    const client = await pusherClient();
    const got = await listen(client, name);
    const big = await sdkStatus(server.trigger(name, 'big', 'x'.repeat(12 * 1024)));
    assert.equal(big.status, 413, big.body);
    const bigBatch = await sdkStatus(server.triggerBatch([{ channel: name, name: 'big', data: 'y'.repeat(12 * 1024) }]));
    assert.equal(bigBatch.status, 413, bigBatch.body);

    const fits = 'z'.repeat(9 * 1024);
    const ok = await server.trigger(name, 'fits', fits);
    assert.equal(ok.status, 200);
    await waitFor(() => got.length === 1);
    assert.deepEqual(got[0], { event: 'fits', data: fits });
    await sleep(200);
    assert.equal(got.length, 1, 'the oversized events were not delivered');
});

test('invalid channel names and malformed bodies are 400', { timeout: 30000 }, async () => {
    const name = unique('valid');
    const client = await pusherClient();
    const got = await listen(client, name);
    for (const bad of ['wild+card', 'hash#tag', 'sp ace', '']) {
        let res = await rawPost('/apps/demo/events', { name: 'ev', channel: bad, data: 'x' });
        assert.equal(res.status, 400, `channel ${JSON.stringify(bad)}: ${res.status} ${res.body}`);
        // one bad name among good ones refuses the whole request
        res = await rawPost('/apps/demo/events', { name: 'ev', channels: [name, bad], data: 'x' });
        assert.equal(res.status, 400, `channels [ok, ${JSON.stringify(bad)}]: ${res.status} ${res.body}`);
        res = await rawPost('/apps/demo/batch_events', { batch: [{ name: 'ev', channel: bad, data: 'x' }] });
        assert.equal(res.status, 400, `batch channel ${JSON.stringify(bad)}: ${res.status} ${res.body}`);
    }
    const malformed = [
        ['not JSON', '{"name": "ev", '],
        ['no event name', { channel: name, data: 'x' }],
        ['no channel', { name: 'ev', data: 'x' }],
        ['batch not an array', { batch: { name: 'ev', channel: name, data: 'x' } }],
    ];
    for (const [what, body] of malformed) {
        const path = what.startsWith('batch') ? '/apps/demo/batch_events' : '/apps/demo/events';
        const res = await rawPost(path, body);
        assert.equal(res.status, 400, `${what}: ${res.status} ${res.body}`);
    }
    await sleep(300);
    assert.equal(got.length, 0, JSON.stringify(got));
});

test('unknown app id is 404', { timeout: 30000 }, async () => {
    const res = await sdkStatus(sdk({ appId: 'no-such-app' }).trigger('anything', 'ev', 'x'));
    assert.equal(res.status, 404, res.body);
    const raw = await rawPost('/apps/no-such-app/events', { name: 'ev', channel: 'anything', data: 'x' });
    assert.equal(raw.status, 404, raw.body);
});

// ---------------------------------------------------------------------------------------------
// Info endpoints (GET, signed by the SDK)

async function getJson(path, params) {
    const res = await server.get({ path, params });
    assert.equal(res.status, 200, `GET ${path}`);
    return res.json();
}

// This test's channels among the app's: names starting with `stem`.
function mine(channels, stem) {
    return Object.fromEntries(Object.entries(channels).filter(([n]) => n.includes(stem)));
}

test('channels, channels/{ch} and channels/{presence}/users follow subscriptions and presence members', { timeout: 40000 }, async () => {
    const stem = unique('info');
    const pres = `presence-${stem}`;
    const pub = `pub-${stem}`;
    const priv = `private-${stem}`;
    const alice = { user_id: 'alice', user_info: { name: 'Alice' } };
    const bob = { user_id: 'bob', user_info: { name: 'Bob' } };

    // nothing yet
    assert.deepEqual(await getJson(`/channels/${pres}`, { info: 'subscription_count,user_count' }), {
        occupied: false,
        subscription_count: 0,
        user_count: 0,
    });
    assert.deepEqual(mine((await getJson('/channels')).channels, stem), {});

    const a1 = await pusherClient({ presence: alice });
    const a2 = await pusherClient({ presence: alice });
    const b = await pusherClient({ presence: bob });
    for (const c of [a1, a2, b]) await listen(c, pres);
    await listen(a1, pub);
    await listen(b, pub);
    await listen(b, priv);

    // every occupied channel, each {} without info
    assert.deepEqual(mine((await getJson('/channels')).channels, stem), { [pres]: {}, [pub]: {}, [priv]: {} });
    // prefix filter, and user_count for presence channels
    assert.deepEqual(mine((await getJson('/channels', { filter_by_prefix: 'presence-', info: 'user_count' })).channels, stem), {
        [pres]: { user_count: 2 },
    });
    const presOnly = (await getJson('/channels', { filter_by_prefix: 'presence-' })).channels;
    assert.ok(Object.keys(presOnly).every((n) => n.startsWith('presence-')), JSON.stringify(presOnly));
    assert.deepEqual(mine((await getJson('/channels', { filter_by_prefix: 'private-' })).channels, stem), { [priv]: {} });
    // user_count is only for presence channels: asking for it without the presence- filter is a 400
    const noFilter = await sdkStatus(server.get({ path: '/channels', params: { info: 'user_count' } }));
    assert.equal(noFilter.status, 400, noFilter.body);

    // one channel: subscription counts arrive through node snapshots (at most every 200 ms)
    await waitFor(
        async () => {
            const r = await getJson(`/channels/${pres}`, { info: 'subscription_count,user_count' });
            return r.occupied === true && r.user_count === 2 && r.subscription_count === 3;
        },
        { timeoutMs: scaled(3000), intervalMs: 100, message: `${pres}: occupied, 2 users, 3 subscriptions` },
    );
    assert.deepEqual(await getJson(`/channels/${pres}`), { occupied: true }, 'attributes only when asked');
    await waitFor(
        async () => {
            const r = await getJson(`/channels/${pub}`, { info: 'subscription_count' });
            return r.occupied === true && r.subscription_count === 2;
        },
        { timeoutMs: scaled(3000), intervalMs: 100, message: `${pub}: occupied, 2 subscriptions` },
    );

    // presence users: one entry per user, not per connection
    const users = await getJson(`/channels/${pres}/users`);
    assert.deepEqual(users.users.map((u) => u.id).sort(), ['alice', 'bob']);
    assert.deepEqual(Object.keys(users.users[0]), ['id']);
    const notPresence = await sdkStatus(server.get({ path: `/channels/${pub}/users` }));
    assert.equal(notPresence.status, 400, notPresence.body);

    // alice's first connection leaves: still two users, one subscription fewer
    a1.disconnect();
    clients.delete(a1);
    await waitFor(
        async () => {
            const r = await getJson(`/channels/${pres}`, { info: 'subscription_count,user_count' });
            return r.user_count === 2 && r.subscription_count === 2;
        },
        { timeoutMs: scaled(3000), intervalMs: 100, message: `${pres}: 2 users over 2 subscriptions` },
    );
    // bob leaves everything: alice alone in the presence channel, the private channel vacated
    b.disconnect();
    clients.delete(b);
    await waitFor(
        async () => {
            const r = await getJson(`/channels/${pres}`, { info: 'subscription_count,user_count' });
            return r.user_count === 1 && r.subscription_count === 1;
        },
        { timeoutMs: scaled(3000), intervalMs: 100, message: `${pres}: alice alone` },
    );
    assert.deepEqual((await getJson(`/channels/${pres}/users`)).users, [{ id: 'alice' }]);
    assert.deepEqual((await getJson(`/channels/${priv}`)).occupied, false);
    assert.deepEqual(mine((await getJson('/channels')).channels, stem), { [pres]: {} });

    a2.disconnect();
    clients.delete(a2);
    await waitFor(async () => (await getJson(`/channels/${pres}`)).occupied === false, {
        timeoutMs: scaled(3000),
        intervalMs: 100,
        message: `${pres} vacated`,
    });
    assert.deepEqual((await getJson(`/channels/${pres}/users`)).users, []);
    assert.deepEqual(mine((await getJson('/channels')).channels, stem), {});
});

test('a signed-in user’s #server-to-user channel is not listed as an occupied channel', { timeout: 30000 }, async () => {
    const id = unique('listed');
    const client = await pusherClient({ user: { id } });
    const pub = unique('listed-pub');
    await listen(client, pub);
    await waitFor(async () => (await getJson(`/channels/${pub}`)).occupied === true, { message: `${pub} occupied` });
    await sleep(300); // one snapshot interval
    const all = (await getJson('/channels')).channels;
    assert.ok(pub in all, JSON.stringify(all));
    assert.deepEqual(Object.keys(all).filter((n) => n.startsWith('#')), [], JSON.stringify(all));
});

// ---------------------------------------------------------------------------------------------
// users/{id}/terminate_connections

test('terminateUserConnections: every connection of the user gets pusher:error 4009 and close 4009; others stay', { timeout: 30000 }, async () => {
    const id = unique('term');
    const otherId = unique('keep');
    const a = await pusherClient({ user: { id } });
    const b = await pusherClient({ user: { id } });
    const other = await pusherClient({ user: { id: otherId } });
    const anon = await pusherClient();
    const name = unique('term-pub');
    const gotOther = await listen(other, name);
    const gotAnon = await listen(anon, name);

    // a raw connection of the same user shows the wire: error frame first, then the close code
    const raw = await established(await wsConnect(`${stack.gw.wsUrl}/app/${DEMO.key}${PUSHER_QUERY}`));
    const signed = server.authenticateUser(raw.socketId, { id });
    raw.send({ event: 'pusher:signin', data: signed });
    await raw.next((f) => f.event === 'pusher:signin_success');

    // a user nobody signed in as: {} and no one is closed
    const none = await server.terminateUserConnections(unique('nobody'));
    assert.equal(none.status, 200);
    assert.deepEqual(await none.json(), {});

    // pusher-js closes its already closed WebSocket again after a 4009 close, which arms the WebSocket
    // library's 30 s close timer; unref'd below so it does not hold the process after the last test.
    const transports = [a, b].map((c) => c.connection.connection?.transport?.socket);
    const res = await server.terminateUserConnections(id);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {});
    const closed = await Promise.race([raw.closed, sleep(scaled(5000)).then(() => null)]);
    assert.ok(closed, 'the raw connection was closed');
    assert.equal(closed.code, 4009);
    const err = raw.frames.find((f) => f.event === 'pusher:error');
    assert.ok(err, `pusher:error before the close: ${JSON.stringify(raw.frames)}`);
    assert.equal((typeof err.data === 'string' ? JSON.parse(err.data) : err.data).code, 4009);
    assert.ok(raw.frames.indexOf(err) === raw.frames.length - 1, 'the error is the last frame');

    for (const [what, c] of [['a', a], ['b', b]]) {
        await waitFor(() => c.connection.state !== 'connected', { message: `${what} disconnected (states ${c.states})` });
        assert.ok(c.errors.some((e) => (e.data?.code ?? e.error?.data?.code) === 4009), `${what}: ${JSON.stringify(c.errors)}`);
    }
    // 4009 is in 4000-4099: pusher-js does not reconnect
    await sleep(1500);
    for (const c of [a, b]) {
        assert.ok(['disconnected', 'failed'].includes(c.connection.state), c.states.join(','));
        assert.equal(c.states.filter((s) => s === 'connected').length, 1, c.states.join(','));
    }
    // the others are untouched and still receive
    for (const c of [other, anon]) {
        assert.equal(c.connection.state, 'connected');
        assert.deepEqual(c.states, ['connected']);
    }
    await server.trigger(name, 'still-here', { ok: 1 });
    await waitFor(() => gotOther.length === 1 && gotAnon.length === 1, { message: 'the others still receive' });
    for (const sock of transports) sock?._closeTimer?.unref?.();
});

test('trigger with info returns each channel’s user_count (presence) and subscription_count', { timeout: 30000 }, async () => {
    const stem = unique('tinfo');
    const pres = `presence-${stem}`;
    const pub = `pub-${stem}`;
    const a1 = await pusherClient({ presence: { user_id: 'ann', user_info: {} } });
    const a2 = await pusherClient({ presence: { user_id: 'ann', user_info: {} } });
    const b = await pusherClient({ presence: { user_id: 'ben', user_info: {} } });
    for (const c of [a1, a2, b]) await listen(c, pres);
    const gotPub = await listen(b, pub);

    let res = await server.trigger(pres, 'ev', { n: 1 }, { info: 'user_count,subscription_count' });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { channels: { [pres]: { user_count: 2, subscription_count: 3 } } });
    res = await server.trigger([pres, pub], 'ev', { n: 2 }, { info: 'subscription_count' });
    assert.deepEqual(await res.json(), { channels: { [pres]: { subscription_count: 3 }, [pub]: { subscription_count: 1 } } });
    // without info the answer stays {}
    res = await server.trigger(pub, 'ev', { n: 3 });
    assert.deepEqual(await res.json(), {});
    await waitFor(() => gotPub.length === 2, { message: 'the events were delivered as well' });
});

// Last: stops and restarts the broker.
test('no 2xx while the broker cannot acknowledge; 200 again once it is back', { timeout: 60000 }, async () => {
    const name = unique('down');
    await stack.broker.stop();
    try {
        const t0 = Date.now();
        const res = await sdkStatus(server.trigger(name, 'ev', 'x'));
        assert.ok(res.status >= 500, `trigger with the broker down: ${res.status} ${res.body}`);
        assert.ok(Date.now() - t0 < PUBLISH_TIMEOUT_MS + 8000, 'answered within a bounded time');
    } finally {
        await stack.broker.start();
    }
    await waitFor(
        async () => {
            const r = await sdkStatus(server.trigger(name, 'ev', 'x'));
            return r.status === 200;
        },
        { timeoutMs: 20000, intervalMs: 500, message: 'trigger 200 after the broker restart' },
    );
    const client = await pusherClient();
    const got = await listen(client, name);
    await server.trigger(name, 'back', { ok: true });
    await waitFor(() => got.length === 1);
    assert.deepEqual(got[0], { event: 'back', data: { ok: true } });
});

