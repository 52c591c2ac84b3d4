// MQTT device presence against a real mosquitto + pushgate stack: the broker plugin reports each device it admits
// with a retained {root}/{app}/d/{client_id} record and device_joined / device_left events on the device channel
// (private-pushgate-devices); Pusher clients (private-channel auth) and native clients (a token) subscribed to it receive
// them; GET /apps/{id}/devices (Pusher-signed) lists the devices online; devices cannot forge any of it.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';

import { freePort, httpRequest, mqttCollector, mqttConnect, signJwt, startGateway, startStack, waitFor, wsConnect } from './lib/harness.mjs';
import { DEMO, PUSHER_QUERY, dataOf, established, hmacAuth, isEvent, pusherServer, signedPath, sleep, unique } from './lib/pusher.mjs';

const DEVICE_CHANNEL = 'private-pushgate-devices';
const RC_SUCCESS = 0;
const RC_NO_MATCHING_SUBSCRIBERS = 0x10;
const RC_NOT_AUTHORIZED = 0x87;

let stack;
let server; // the `pusher` server SDK, pointed at the gateway
const sockets = new Set();
const devices = new Set();

before(async () => {
    stack = await startStack();
    server = pusherServer(stack.gw.port);
    // Presence comes through the broker: start once the gateway's own MQTT session is up.
    await waitFor(async () => (await httpRequest('GET', `${stack.gw.url}/readyz`)).status === 200, { timeoutMs: 15000, message: 'gateway ready' });
});

after(async () => {
    cleanup();
    if (stack) await stack.stop();
});

function cleanup() {
    for (const s of sockets) s.terminate();
    sockets.clear();
    for (const d of devices) d.end(true);
    devices.clear();
}

afterEach(cleanup);

function demoToken(clientId, extra = {}) {
    return signJwt(
        { channel: 'demo', client: clientId, exp: Math.floor(Date.now() / 1000) + 600, permissions: { '.*': { publish: true, subscribe: true } }, ...extra },
        DEMO.secret,
    );
}

async function device(clientId, { token = true, ...extra } = {}) {
    const c = await mqttConnect({
        port: stack.broker.port,
        username: 'demo',
        clientId,
        ...(token ? { password: demoToken(clientId, typeof token === 'object' ? token : {}) } : {}),
        ...extra,
    });
    devices.add(c);
    return c;
}

function ended(client) {
    return new Promise((resolve) => client.end(false, {}, resolve));
}

// A raw Pusher connection subscribed to the device channel with a valid private-channel signature.
async function pusherWatcher() {
    const c = await established(await wsConnect(`${stack.gw.wsUrl}/app/${DEMO.key}${PUSHER_QUERY}`));
    sockets.add(c);
    c.send({ event: 'pusher:subscribe', data: { channel: DEVICE_CHANNEL, auth: hmacAuth(c.socketId, DEVICE_CHANNEL) } });
    await c.next(isEvent('pusher_internal:subscription_succeeded', DEVICE_CHANNEL));
    return c;
}

// A native session watching the device channel: a private- channel, so even in an app without require_auth it
// needs a token that allows subscribing to it (without one: 401).
async function nativeWatcher() {
    const c = await wsConnect(`${stack.gw.wsUrl}/v1/demo`);
    sockets.add(c);
    const { client_id: clientId } = await c.next((f) => f.type === 'open');
    c.send({ type: 'subscribe', room: DEVICE_CHANNEL, cb: 1 });
    assert.equal((await c.next((f) => f.cb === 1)).error?.code, 401, 'no token, no device channel');
    c.send({ type: 'authenticate', token: demoToken(clientId), cb: 2 });
    assert.equal((await c.next((f) => f.cb === 2)).error, undefined);
    c.send({ type: 'subscribe', room: DEVICE_CHANNEL, cb: 3 });
    const r = await c.next((f) => f.cb === 3);
    assert.equal(r.error, undefined, JSON.stringify(r));
    return c;
}

const deviceEvent = (name, id) => (f) => isEvent(name, DEVICE_CHANNEL)(f) && dataOf(f).id === id;
const nativeMessage = (id) => (f) => f.type === 'message' && f.room === DEVICE_CHANNEL && f.message && f.message.id === id;

async function listDevices(srv = server) {
    const res = await srv.get({ path: '/devices' });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.ok(Array.isArray(body.devices), JSON.stringify(body));
    return body.devices;
}

function publish(client, topic, payload, opts = {}) {
    return new Promise((resolve, reject) => {
        client.publish(topic, payload, { qos: 1, ...opts }, (err, packet) => {
            if (err && typeof err.code === 'number') resolve(err.code);
            else if (err) reject(err);
            else resolve(packet && typeof packet.reasonCode === 'number' ? packet.reasonCode : RC_SUCCESS);
        });
    });
}

// ---------------------------------------------------------------------------------------------------------------

test('a device joining and leaving: device_joined then device_left for Pusher and native clients; GET /devices follows', { timeout: 30000 }, async () => {
    const pusher = await pusherWatcher();
    const native = await nativeWatcher();
    const id = unique('sensor');
    const before = Date.now();
    const d = await device(id, { token: { user_id: 'u-42' } });
    const after = Date.now();

    const joined = await pusher.next(deviceEvent('device_joined', id));
    assert.deepEqual(dataOf(joined), { id, user_id: 'u-42' });
    const nj = await native.next(nativeMessage(id));
    assert.deepEqual(nj.message, { id, user_id: 'u-42' });
    assert.equal(nj.event, 'device_joined', 'native frames name the event');

    const listed = await waitFor(async () => (await listDevices()).find((x) => x.id === id), { message: 'device listed' });
    assert.deepEqual(Object.keys(listed).sort(), ['connected_at', 'id', 'user_id']);
    assert.equal(listed.user_id, 'u-42');
    assert.ok(listed.connected_at >= before - 1000 && listed.connected_at <= after + 1000, `connected_at ${listed.connected_at}`);

    await ended(d);
    devices.delete(d);
    const left = await pusher.next(deviceEvent('device_left', id));
    assert.deepEqual(dataOf(left), { id, user_id: 'u-42' });
    const nl = await native.next(nativeMessage(id));
    assert.deepEqual(nl.message, { id, user_id: 'u-42' });
    assert.equal(nl.event, 'device_left');
    await waitFor(async () => !(await listDevices()).some((x) => x.id === id), { message: 'device no longer listed' });

    const mine = pusher.frames.filter((f) => f && f.channel === DEVICE_CHANNEL && f.event && f.event.startsWith('device_') && dataOf(f).id === id);
    assert.deepEqual(mine.map((f) => f.event), ['device_joined', 'device_left']);
});

test('a device without a token (app without require_auth) is reported with user_id null', { timeout: 30000 }, async () => {
    const pusher = await pusherWatcher();
    const id = unique('open');
    const d = await device(id, { token: false });
    assert.deepEqual(dataOf(await pusher.next(deviceEvent('device_joined', id))), { id, user_id: null });
    const listed = await waitFor(async () => (await listDevices()).find((x) => x.id === id), { message: 'device listed' });
    assert.equal(listed.user_id, null);
    await ended(d);
    devices.delete(d);
    assert.deepEqual(dataOf(await pusher.next(deviceEvent('device_left', id))), { id, user_id: null });
});

test('a session takeover keeps the device online: one device_joined, one device_left when the last connection ends', { timeout: 30000 }, async () => {
    const pusher = await pusherWatcher();
    const id = unique('roamer');
    const first = await device(id, { token: { user_id: 'u-1' } });
    await pusher.next(deviceEvent('device_joined', id));
    const second = await device(id, { token: { user_id: 'u-1' } });
    await waitFor(() => !first.connected, { message: 'the old connection was taken over' });
    first.end(true);
    devices.delete(first);
    await sleep(500); // a device_left for the old connection would have arrived by now
    const events = () => pusher.frames.filter((f) => f && f.channel === DEVICE_CHANNEL && dataOf(f).id === id).map((f) => f.event);
    assert.deepEqual(events(), ['device_joined']);
    assert.equal((await listDevices()).filter((x) => x.id === id).length, 1, 'listed once while the new connection lives');

    await ended(second);
    devices.delete(second);
    await pusher.next(deviceEvent('device_left', id));
    await waitFor(async () => !(await listDevices()).some((x) => x.id === id), { message: 'gone after the last connection' });
    assert.deepEqual(events(), ['device_joined', 'device_left']);
});

test('devices cannot publish on the device channel or the presence records; nobody sees such attempts', { timeout: 30000 }, async () => {
    const pusher = await pusherWatcher();
    const watcher = await mqttConnect({ port: stack.broker.port, ...stack.gatewayUser, clientId: unique('watch') });
    devices.add(watcher);
    const seen = mqttCollector(watcher);
    await new Promise((r, j) => watcher.subscribe('pushgate/#', { qos: 1 }, (e) => (e ? j(e) : r())));

    const id = unique('forger');
    const d = await device(id, { token: { user_id: 'real' } }); // its token allows publishing on every channel
    await pusher.next(deviceEvent('device_joined', id));
    const forged = JSON.stringify({ id: 'ghost', user_id: 'forged', connected_at: 1 });
    const denied = [
        [`pushgate/demo/c/${DEVICE_CHANNEL}`, JSON.stringify({ id: 'ghost', user_id: 'forged' }), { properties: { userProperties: { event: 'device_joined' } } }],
        [`pushgate/demo/d/ghost`, forged, { retain: true }],
        [`pushgate/demo/d/${id}`, '', { retain: true }],
    ];
    for (const [topic, payload, opts] of denied) {
        assert.equal(await publish(d, topic, payload, opts), RC_NOT_AUTHORIZED, `publish ${topic}`);
    }
    const rc = await publish(d, 'pushgate/demo/c/room-1', 'marker');
    assert.ok(rc === RC_SUCCESS || rc === RC_NO_MATCHING_SUBSCRIBERS, `marker publish 0x${rc.toString(16)}`);
    await seen.next((m) => m.text === 'marker');
    // The broker handles one connection's packets in order: had a denied one been accepted, it arrived first.
    assert.deepEqual(seen.messages.filter((m) => m.text.includes('forged') || (m.topic === `pushgate/demo/d/${id}` && m.text === '')), []);
    await sleep(200);
    assert.equal(pusher.frames.filter((f) => f && f.channel === DEVICE_CHANNEL && dataOf(f).id === 'ghost').length, 0, 'no forged event reached the web client');
    const list = await listDevices();
    assert.ok(!list.some((x) => x.id === 'ghost'), 'no forged device listed');
    assert.equal(list.find((x) => x.id === id)?.user_id, 'real', 'the real record is intact');
    assert.equal(d.connected, true, 'denials alone do not disconnect the device');
});

test('a gateway started later learns the online devices from the retained records', { timeout: 60000 }, async () => {
    const id = unique('early');
    await device(id, { token: { user_id: 'u-early' } });
    await waitFor(async () => (await listDevices()).some((x) => x.id === id), { message: 'listed on the first gateway' });
    const port = await freePort();
    const gw2 = await startGateway({ dir: stack.dir, conf: stack.conf, port, args: ['--listen-port', String(port)] });
    try {
        await waitFor(async () => (await httpRequest('GET', `${gw2.url}/readyz`)).status === 200, { timeoutMs: 15000, message: 'second gateway ready' });
        const srv2 = pusherServer(port);
        const listed = await waitFor(async () => (await listDevices(srv2)).find((x) => x.id === id), { message: 'listed on the second gateway' });
        assert.equal(listed.user_id, 'u-early');
    } finally {
        await gw2.stop();
    }
});

test('GET /apps/{id}/devices needs a valid Pusher signature and a known app', { timeout: 30000 }, async () => {
    const unsigned = await httpRequest('GET', `${stack.gw.url}/apps/demo/devices`);
    assert.equal(unsigned.status, 401);
    const wrong = await httpRequest('GET', `${stack.gw.url}${signedPath('GET', '/apps/demo/devices', { secret: 'not-the-secret' })}`);
    assert.equal(wrong.status, 401);
    const signed = await httpRequest('GET', `${stack.gw.url}${signedPath('GET', '/apps/demo/devices')}`);
    assert.equal(signed.status, 200, signed.body);
    assert.ok(Array.isArray(signed.json.devices));
    const unknown = await httpRequest('GET', `${stack.gw.url}${signedPath('GET', '/apps/nope/devices')}`);
    assert.equal(unknown.status, 404);
});

test('web, REST and server publishes to the device channel are refused: only the broker reports presence', { timeout: 30000 }, async () => {
    const native = await nativeWatcher();
    native.send({ type: 'publish', room: DEVICE_CHANNEL, message: { id: 'forged' }, cb: 9 });
    assert.equal((await native.next((f) => f.cb === 9)).error?.code, 403, 'not even with a token that allows publishing everywhere');

    const rest = await httpRequest('POST', `${stack.gw.url}/demo/${DEVICE_CHANNEL}/publish`, { body: { id: 'forged' } });
    assert.equal(rest.status, 403, rest.body);

    await assert.rejects(server.trigger(DEVICE_CHANNEL, 'device_joined', { id: 'forged' }), (e) => e.status === 403);

    const p = await pusherWatcher();
    p.send({ event: 'client-device_joined', channel: DEVICE_CHANNEL, data: { id: 'forged' } });
    const err = await p.next(isEvent('pusher:error'));
    assert.equal(dataOf(err).code, 4301);

    await sleep(300);
    assert.equal(native.frames.filter((f) => f.type === 'message').length, 0, 'nothing reached the channel');
});
