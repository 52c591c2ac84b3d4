// Tenant isolation on the broker (issue 9, findings 2, 3, 4 and 6), with a real mosquitto 2 + the pushgate plugin,
// a real gateway and real clients (mqtt.js, pusher-js, ws):
//  - client ids: a device can never disconnect a device of another app, an operator or a gateway (its CONNACK is
//    refused instead), and never uses a gateway's client id form (`pushgate-…`); a takeover inside one app stays;
//  - metadata: the user properties gateways read as facts (user_id, client_id, socket_id, ts, origin, seq, prev) and protocol event
//    names are removed from device publishes, so Pusher and native clients get an ordinary message;
//  - protected channels: in an open app an anonymous device can neither publish nor subscribe `private-…` /
//    `presence-…`, and its `#` subscription never delivers them; a token that grants them does;
//  - broker accounts: a store app can never be named after a broker account (409), and if one is, the plugin leaves
//    the account to the password file, also when broker_password_file is not set (it reads the broker's own);
//  - wills: a session taken over never gets its will (with forged metadata) delivered.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

import PusherJS from 'pusher-js';

import { BUILD_DIR, DEFAULT_APPS, GATEWAY_BIN, httpRequest, mqttCollector, mqttConnect, mqttRefused, OPERATOR_USER, scaled, signJwt, startStack, userProp, waitFor, wsConnect } from './lib/harness.mjs';
import { DEMO, answer, pusherJsOptions, pusherServer, unique } from './lib/pusher.mjs';
import { isMessage, subscribeNative } from './lib/native.mjs';

const run = promisify(execFile);
const STORE_TOOL = path.join(BUILD_DIR, 'tests', 'integration', 'pushgate_store_tool');
const OTHER = { id: 'other', key: 'other-key', secret: 'other-secret', require_auth: false };
const NODE_ID = 'gw-sec';
const ADMIN = { user: 'sec-admin', password: 'sec-admin-password' };
const ADMIN_AUTH = { Authorization: 'Basic ' + Buffer.from(`${ADMIN.user}:${ADMIN.password}`).toString('base64') };

const RC_SUCCESS = 0;
const RC_NO_MATCHING_SUBSCRIBERS = 0x10;
const RC_BAD_USER_OR_PASSWORD = 0x86;
const RC_NOT_AUTHORIZED = 0x87;

let stack;
let port;
let server;
const mqttClients = new Set();
const pusherClients = new Set();
const sockets = new Set();

before(async () => {
    stack = await startStack({
        apps: [...DEFAULT_APPS, OTHER],
        gateway: {
            node_id: NODE_ID,
            apps_db: 'apps.db',
            admin_user: ADMIN.user,
            admin_password: ADMIN.password,
            // written by the harness next to pushgate.conf: users `pushgate` and `operator`
            broker_password_file: 'passwd',
        },
    });
    port = stack.broker.port;
    server = pusherServer(stack.gw.port);
});

after(async () => {
    cleanup();
    if (stack) await stack.stop();
});

afterEach(cleanup);

function cleanup() {
    for (const c of mqttClients) c.end(true);
    mqttClients.clear();
    for (const c of pusherClients) c.disconnect();
    pusherClients.clear();
    for (const s of sockets) s.terminate();
    sockets.clear();
}

// A connected mqtt.js client that records DISCONNECT packets and closes.
async function connect(opts) {
    const c = await mqttConnect({ port, ...opts });
    mqttClients.add(c);
    c.disconnects = [];
    c.closed = false;
    c.on('disconnect', (packet) => c.disconnects.push(packet));
    c.on('close', () => {
        c.closed = true;
    });
    return c;
}

// Resolves to the CONNACK refusal reason; fails the test if the connection is accepted.
const refused = (opts) => mqttRefused({ port, ...opts });

// The PUBACK reason code of a QoS 1 publish.
function publish(client, topic, payload, properties) {
    return new Promise((resolve, reject) => {
        client.publish(topic, payload, { qos: 1, ...(properties ? { properties } : {}) }, (err, packet) => {
            if (err && typeof err.code === 'number') resolve(err.code);
            else if (err) reject(err);
            else resolve(packet && typeof packet.reasonCode === 'number' ? packet.reasonCode : RC_SUCCESS);
        });
    });
}

// The SUBACK reason code for one topic filter.
function subscribe(client, topic) {
    return new Promise((resolve, reject) => {
        client.subscribe(topic, { qos: 1 }, (err, _subs, packet) => {
            if (packet && Array.isArray(packet.granted)) resolve(packet.granted[0]);
            else reject(err || new Error('no SUBACK'));
        });
    });
}

// Mosquitto 2.0 answers a refused password login with 0x87 on v5; either code means the same here.
function assertRefusedLogin(code, what) {
    assert.ok(code === RC_BAD_USER_OR_PASSWORD || code === RC_NOT_AUTHORIZED, `${what}: 0x${Number(code).toString(16)}`);
}

function assertDelivered(rc, what) {
    assert.ok(rc === RC_SUCCESS || rc === RC_NO_MATCHING_SUBSCRIBERS, `${what}: expected PUBACK success, got 0x${rc.toString(16)}`);
}

function deviceToken(app, clientId, permissions, extra = {}) {
    return signJwt({ channel: app.id, client: clientId, exp: Math.floor(Date.now() / 1000) + 600, permissions, ...extra }, app.secret);
}

// The client stays connected: a QoS 1 round trip through the broker still works and nothing closed it.
async function assertStillConnected(c, what) {
    const topic = `pushgate/${c.appId}/c/${unique('alive')}`;
    const inbox = mqttCollector(c);
    assert.equal(await subscribe(c, topic), 1, `${what}: subscribe`);
    assertDelivered(await publish(c, topic, 'ping'), `${what}: publish`);
    await inbox.next((m) => m.topic === topic);
    assert.equal(c.closed, false, `${what}: closed`);
    assert.deepEqual(c.disconnects, [], `${what}: got DISCONNECT`);
}

async function restPublish(room, body) {
    return httpRequest('POST', `${stack.gw.url}/demo/${room}/publish`, { body });
}

// ---------------------------------------------------------------------------------------------
// Finding 2: client-id takeover across tenants

test('a device of another app cannot take over a client id: CONNACK refused, the victim stays connected', async () => {
    const id = unique('shared-id');
    const victim = await connect({ username: 'demo', clientId: id });
    victim.appId = 'demo';

    assert.equal(await refused({ username: OTHER.id, clientId: id }), RC_NOT_AUTHORIZED, 'open app, anonymous');
    const tok = deviceToken(DEFAULT_APPS[1], id, { '.*': { publish: true, subscribe: true } });
    assert.equal(await refused({ username: 'secure', password: tok, clientId: id }), RC_NOT_AUTHORIZED, 'with a valid token of its own app');
    await assertStillConnected(victim, 'victim of another app');

    // Within one app MQTT's takeover stays: the newer connection wins, the older is closed.
    const newer = await connect({ username: 'demo', clientId: id });
    newer.appId = 'demo';
    await waitFor(() => victim.closed, { message: 'same-app takeover closes the older session' });
    await assertStillConnected(newer, 'same-app newer session');

    // Once the id is free, any app may use it.
    newer.end(true);
    await waitFor(() => newer.closed);
    const later = await waitFor(async () => {
        try {
            return await connect({ username: OTHER.id, clientId: id });
        } catch {
            return null;
        }
    }, { message: 'the freed id is usable by another app' });
    later.appId = OTHER.id;
    await assertStillConnected(later, 'other app after the id was freed');
});

test("devices never use a gateway's client id: refused, and the gateway keeps its broker session", async () => {
    const logsBefore = stack.gw.logs();
    const disconnectsBefore = (logsBefore.match(/broker disconnected/g) || []).length;
    for (const clientId of [`pushgate-${NODE_ID}`, 'pushgate-some-other-node']) {
        for (let i = 0; i < 5; i++) assert.equal(await refused({ username: 'demo', clientId }), RC_NOT_AUTHORIZED, clientId);
        const tok = deviceToken(DEMO, clientId, { '.*': { publish: true, subscribe: true } });
        assert.equal(await refused({ username: 'demo', password: tok, clientId }), RC_NOT_AUTHORIZED, `${clientId} with a token`);
    }
    // mosquitto_pub (MQTT 3.1.1) is refused the same way
    await assert.rejects(
        run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-V', 'mqttv311', '-u', 'demo', '-i', `pushgate-${NODE_ID}`,
            '-t', 'pushgate/demo/c/x', '-m', 'x']),
        (err) => /not authori[sz]ed/i.test(err.stderr),
    );
    // REST publishes need the gateway's broker session: every one is acknowledged.
    for (let i = 0; i < 10; i++) {
        const r = await restPublish(unique('after-attack'), `m${i}`);
        assert.equal(r.status, 200, r.body);
    }
    const disconnectsAfter = (stack.gw.logs().match(/broker disconnected/g) || []).length;
    assert.equal(disconnectsAfter, disconnectsBefore, 'the gateway was never disconnected from the broker');
});

test("a device cannot take over an operator's client id; a refused operator login holds no id", async () => {
    const id = unique('op-session');
    const op = await connect({ ...OPERATOR_USER, clientId: id });
    const opInbox = mqttCollector(op);
    await op.subscribeAsync('pushgate/demo/c/#', { qos: 1 });
    assert.equal(await refused({ username: 'demo', clientId: id }), RC_NOT_AUTHORIZED);
    const room = unique('op-room');
    assert.equal((await restPublish(room, 'still here')).status, 200);
    await opInbox.next((m) => m.topic === `pushgate/demo/c/${room}`);
    assert.equal(op.closed, false);
    assert.deepEqual(op.disconnects, []);

    // A login the password file refuses is not remembered as holding its id.
    const ghost = unique('ghost');
    assertRefusedLogin(await refused({ username: OPERATOR_USER.username, password: 'wrong', clientId: ghost }), 'wrong password');
    const dev = await connect({ username: 'demo', clientId: ghost });
    dev.appId = 'demo';
    await assertStillConnected(dev, 'device with the id of a refused login');
});

test('after SIGHUP (every session re-authenticated) the ids stay held', async () => {
    const opId = unique('op-reload');
    const devId = unique('dev-reload');
    const op = await connect({ ...OPERATOR_USER, clientId: opId });
    const dev = await connect({ username: 'demo', clientId: devId });
    dev.appId = 'demo';
    const reloads = () => stack.broker.logs().split('pushgate_auth: configuration reloaded').length;
    const before = reloads();
    stack.broker.proc.kill('SIGHUP');
    await waitFor(() => reloads() > before, { message: 'reload logged' });
    for (const clientId of [opId, devId]) assert.equal(await refused({ username: OTHER.id, clientId }), RC_NOT_AUTHORIZED, clientId);
    assert.equal(await refused({ username: OTHER.id, clientId: `pushgate-${NODE_ID}` }), RC_NOT_AUTHORIZED);
    await assertStillConnected(dev, 'device after reload');
    assert.equal(op.closed, false);
    assert.equal((await restPublish(unique('after-reload'), 'x')).status, 200);

    // and once the operator is gone, its id is free
    op.end(true);
    await waitFor(() => op.closed);
    const later = await waitFor(async () => {
        try {
            return await connect({ username: OTHER.id, clientId: opId });
        } catch {
            return null;
        }
    }, { message: 'the operator id is free after it left' });
    later.appId = OTHER.id;
    await assertStillConnected(later, 'device with the former operator id');
});

// ---------------------------------------------------------------------------------------------
// Finding 3: metadata forged through MQTT v5 user properties

const FORGED = {
    event: 'pusher_internal:member_added',
    user_id: 'boss',
    client_id: 'web-boss',
    socket_id: '123.456',
    // the delivery sequence gateways stamp (origin, seq, prev): forged, they would fake or hide gaps
    origin: 'gw-forged.1',
    seq: '7',
    prev: '5',
    ts: '1000',
};

function pusherJs() {
    const c = new PusherJS(DEMO.key, {
        ...pusherJsOptions(stack.gw.port),
        channelAuthorization: {
            customHandler: ({ socketId, channelName }, cb) =>
                answer(cb, () => server.authorizeChannel(socketId, channelName, { user_id: 'alice', user_info: { name: 'Alice' } })),
        },
    });
    pusherClients.add(c);
    return c;
}

function pusherSubscribe(client, name) {
    const ch = client.subscribe(name);
    return new Promise((resolve, reject) => {
        ch.bind('pusher:subscription_succeeded', () => resolve(ch));
        ch.bind('pusher:subscription_error', (e) => reject(new Error(`subscription_error ${JSON.stringify(e)}`)));
    });
}

test('a device publish loses forged metadata: pusher-js and native clients get an ordinary message', async () => {
    const room = unique('meta');
    const pusher = pusherJs();
    const ch = await pusherSubscribe(pusher, room);
    const events = [];
    ch.bind_global((event, data) => events.push({ event, data }));
    const messages = [];
    ch.bind('message', (data, meta) => messages.push({ data, meta }));

    const native = await wsConnect(`${stack.gw.wsUrl}/v1/demo`);
    sockets.add(native);
    await subscribeNative(native, room);

    // an MQTT v5 watcher (the operator) sees what the broker delivers
    const op = await connect({ ...OPERATOR_USER, clientId: unique('meta-op') });
    const seen = mqttCollector(op);
    await op.subscribeAsync(`pushgate/demo/c/${room}`, { qos: 1 });

    const dev = await connect({ username: 'demo', clientId: unique('forger') });
    const body = JSON.stringify({ user_id: 'boss', user_info: { name: 'Boss' } });
    assertDelivered(
        await publish(dev, `pushgate/demo/c/${room}`, body, { contentType: 'application/json', userProperties: { ...FORGED, unit: 'C' } }),
        'forged publish',
    );

    const frame = await native.next(isMessage(room));
    assert.equal(frame.client_id, null, 'no forged sender');
    assert.equal(frame.event, undefined, 'no forged event');
    assert.ok(frame.timestamp > Date.now() - scaled(60000), `timestamp is the gateway's, not the forged ts: ${frame.timestamp}`);
    assert.deepEqual(frame.message, JSON.parse(body));

    await waitFor(() => messages.length === 1, { message: 'pusher-js got an ordinary "message" event' });
    assert.deepEqual(messages[0].data, JSON.parse(body));
    assert.equal(messages[0].meta?.user_id, undefined, 'no forged user_id');
    assert.deepEqual(events.map((e) => e.event), ['message']);

    const m = await seen.next((x) => x.topic === `pushgate/demo/c/${room}`);
    for (const name of Object.keys(FORGED)) assert.equal(userProp(m.properties, name), undefined, `property ${name} removed`);
    assert.equal(userProp(m.properties, 'unit'), 'C', 'other user properties pass');
    assert.equal(m.properties.contentType, 'application/json', 'other properties pass');

    // An ordinary event name chosen by the device stays.
    assertDelivered(await publish(dev, `pushgate/demo/c/${room}`, '{"t":21}', { userProperties: { event: 'reading', user_id: 'boss' } }), 'reading');
    await waitFor(() => events.length === 2, { message: 'pusher-js got "reading"' });
    assert.deepEqual(events[1], { event: 'reading', data: { t: 21 } });
    const reading = await native.next(isMessage(room));
    assert.equal(reading.event, 'reading');
    assert.equal(reading.client_id, null);
});

test("a device's will with forged metadata never reaches anyone", async () => {
    const room = unique('will');
    const op = await connect({ ...OPERATOR_USER, clientId: unique('will-op') });
    const seen = mqttCollector(op);
    await op.subscribeAsync(`pushgate/demo/c/${room}`, { qos: 1 });
    const native = await wsConnect(`${stack.gw.wsUrl}/v1/demo`);
    sockets.add(native);
    await subscribeNative(native, room);

    const dev = await connect({
        username: 'demo',
        clientId: unique('will-dev'),
        will: { topic: `pushgate/demo/c/${room}`, payload: Buffer.from('{"user_id":"boss"}'), qos: 1, properties: { userProperties: FORGED } },
    });
    dev.stream.destroy(); // no DISCONNECT packet: the broker would send the will
    await waitFor(() => dev.closed);
    const marker = await restPublish(room, 'marker');
    assert.equal(marker.status, 200);
    await seen.next((x) => x.topic === `pushgate/demo/c/${room}` && x.text === 'marker');
    assert.deepEqual(seen.messages.map((x) => x.text), ['marker'], 'no will delivered');
    const frame = await native.next(isMessage(room));
    assert.equal(frame.message, 'marker');
});

// Mosquitto 2.0 sends the old connection's will when a newer one takes its client id over, before that connection's
// DISCONNECT event (the plugin's state still exists), and a will never passes MOSQ_EVT_MESSAGE, where forged
// properties are removed: the plugin refuses the will of a session being taken over. Device wills are never
// delivered (see README), with or without reserved properties.
test("a session takeover (same app, or a broker account) does not deliver the old connection's will", async () => {
    const room = unique('will-takeover');
    const op = await connect({ ...OPERATOR_USER, clientId: unique('takeover-op') });
    const seen = mqttCollector(op);
    await op.subscribeAsync(`pushgate/demo/c/${room}`, { qos: 1 });
    const native = await wsConnect(`${stack.gw.wsUrl}/v1/demo`);
    sockets.add(native);
    await subscribeNative(native, room);

    // taken over by the same app (with and without reserved properties), and by a broker account
    const cases = [
        [{ userProperties: FORGED }, { username: 'demo' }],
        [{ userProperties: { unit: 'C' } }, { username: 'demo' }],
        [{ userProperties: FORGED }, OPERATOR_USER],
    ];
    for (const [props, login] of cases) {
        const id = unique('dup');
        const old = await connect({
            username: 'demo',
            clientId: id,
            will: { topic: `pushgate/demo/c/${room}`, payload: Buffer.from('{"user_id":"boss"}'), qos: 1, properties: props },
        });
        const newer = await connect({ ...login, clientId: id });
        await waitFor(() => old.closed, { message: `the takeover by ${login.username} closed the older session` });
        if (login.username === 'demo') {
            newer.appId = 'demo';
            await assertStillConnected(newer, 'the session that took over');
        }
    }
    const marker = await restPublish(room, 'marker');
    assert.equal(marker.status, 200);
    await seen.next((x) => x.topic === `pushgate/demo/c/${room}` && x.text === 'marker');
    assert.deepEqual(seen.messages.map((x) => x.text), ['marker'], 'no will delivered to MQTT subscribers');
    const frame = await native.next(isMessage(room));
    assert.equal(frame.message, 'marker', `the first message on the channel is the marker: ${JSON.stringify(frame)}`);
    assert.match(stack.broker.logs(), /write denied client=\S+ app=demo topic=\S+ reason=session taken over/);
});

test('a device with a presence token cannot inject a member into a Pusher presence channel', async () => {
    const room = unique('presence-meta');
    const pusher = pusherJs();
    const ch = await pusherSubscribe(pusher, room);
    assert.deepEqual(Object.keys(ch.members.members), ['alice']);
    const added = [];
    ch.bind('pusher:member_added', (m) => added.push(m));
    const plain = [];
    ch.bind('message', (data, meta) => plain.push({ data, meta }));

    const clientId = unique('presence-dev');
    const dev = await connect({
        username: 'demo',
        password: deviceToken(DEMO, clientId, { [`^${room}$`]: { publish: true, subscribe: true } }, { user_id: 'device-user' }),
        clientId,
    });
    const body = JSON.stringify({ user_id: 'boss', user_info: { name: 'Boss' } });
    assertDelivered(await publish(dev, `pushgate/demo/c/${room}`, body, { userProperties: FORGED }), 'forged member_added');
    await waitFor(() => plain.length === 1, { message: 'pusher-js got the publish as an ordinary message' });
    assert.equal(plain[0].meta?.user_id, undefined);
    assert.deepEqual(added, []);
    assert.deepEqual(Object.keys(ch.members.members), ['alice'], 'no forged member');
});

// ---------------------------------------------------------------------------------------------
// Finding 4 (MQTT): private- and presence- channels need a credential in open apps too

test('open app: an anonymous device can neither subscribe nor publish private-/presence- channels; # skips them', async () => {
    const priv = unique('private-x');
    const pres = unique('presence-x');
    const pub = unique('public-x');
    const dev = await connect({ username: 'demo', clientId: unique('anon') });
    for (const ch of [priv, pres]) {
        assert.equal(await subscribe(dev, `pushgate/demo/c/${ch}`), 0x87, `subscribe ${ch}`);
        assert.equal(await publish(dev, `pushgate/demo/c/${ch}`, 'x'), RC_NOT_AUTHORIZED, `publish ${ch}`);
    }

    const wide = await connect({ username: 'demo', clientId: unique('anon-wide') });
    const got = mqttCollector(wide);
    assert.equal(await subscribe(wide, 'pushgate/demo/c/#'), 1);
    const gwc = await connect({ ...stack.gatewayUser, clientId: unique('sec-gwuser') });
    for (const ch of [priv, pres, pub]) assertDelivered(await publish(gwc, `pushgate/demo/c/${ch}`, ch), ch);
    const marker = unique('marker');
    assertDelivered(await publish(gwc, `pushgate/demo/c/${marker}`, 'm'), 'marker');
    await got.next((m) => m.topic === `pushgate/demo/c/${marker}`);
    assert.deepEqual(
        got.messages.map((m) => m.topic),
        [`pushgate/demo/c/${pub}`, `pushgate/demo/c/${marker}`],
        'the # subscription delivers public channels only',
    );
});

test('open app: a device whose token grants private-x may use it, and only it', async () => {
    const priv = unique('private-granted');
    const other = unique('private-other');
    const clientId = unique('granted');
    const dev = await connect({
        username: 'demo',
        password: deviceToken(DEMO, clientId, { [`^${priv}$`]: { publish: true, subscribe: true }, '^public-': { publish: true, subscribe: true } }),
        clientId,
    });
    const got = mqttCollector(dev);
    assert.equal(await subscribe(dev, `pushgate/demo/c/${priv}`), 1);
    assertDelivered(await publish(dev, `pushgate/demo/c/${priv}`, 'mine'), 'granted private publish');
    await got.next((m) => m.topic === `pushgate/demo/c/${priv}` && m.text === 'mine');
    assert.equal(await subscribe(dev, `pushgate/demo/c/${other}`), 0x87);
    assert.equal(await publish(dev, `pushgate/demo/c/${other}`, 'x'), RC_NOT_AUTHORIZED);
});

// ---------------------------------------------------------------------------------------------
// Finding 6: app slugs shadowing broker accounts

test('the admin API refuses app ids that are broker accounts (409); the accounts keep working', async () => {
    for (const name of ['operator', 'pushgate']) {
        const r = await httpRequest('POST', `${stack.gw.url}/api/admin/apps`, { headers: ADMIN_AUTH, body: { app: { name } } });
        assert.equal(r.status, 409, `${name}: ${r.body}`);
        assert.equal(r.json.error.code, 409);
        assert.match(r.json.error.message, /broker account/);
    }
    const list = await httpRequest('GET', `${stack.gw.url}/api/admin/apps`, { headers: ADMIN_AUTH });
    assert.deepEqual(list.json.data.map((a) => a.slug).filter((s) => s === 'operator' || s === 'pushgate'), []);

    const op = await connect({ ...OPERATOR_USER, clientId: unique('op-login') });
    op.end(true);
    assertRefusedLogin(await refused({ username: OPERATOR_USER.username, clientId: unique('anon-op') }), 'anonymous operator');
});

test('a replicated app named after a broker account is not stored by this gateway', async () => {
    const gwc = await connect({ ...stack.gatewayUser, clientId: unique('sec-replicator') });
    const app = { slug: 'operator', name: 'operator', key: 'replicated-op-key', secret: 'replicated-op-secret', active: true,
        require_auth: false, allowed_origins: [], updated_ms: Date.now() };
    await gwc.publishAsync('pushgate/_ctl/apps/operator', JSON.stringify(app), { qos: 1, retain: true });
    await waitFor(() => /replicated app operator not stored: a broker account here/.test(stack.gw.logs()), {
        message: 'the gateway refused the replicated app',
    });
    const r = await httpRequest('GET', `${stack.gw.url}/api/admin/apps/operator`, { headers: ADMIN_AUTH });
    assert.equal(r.status, 404);
});

test('a store app named after a broker account never shadows it in the plugin', async () => {
    // Written straight into the store (as an older gateway or a replicated copy could have), bypassing the admin API.
    const loads = () => (stack.broker.logs().match(/apps store loaded/g) || []).length;
    const before = loads();
    execFileSync(STORE_TOOL, [path.join(stack.dir, 'apps.db'), 'create', 'operator'], { encoding: 'utf8' });
    await waitFor(() => loads() > before, { message: 'the plugin read the store again' });
    const op = await connect({ ...OPERATOR_USER, clientId: unique('op-after') });
    const seen = mqttCollector(op);
    await op.subscribeAsync('pushgate/demo/c/#', { qos: 1 });
    const room = unique('op-reads');
    assert.equal((await restPublish(room, 'x')).status, 200);
    await seen.next((m) => m.topic === `pushgate/demo/c/${room}`);
    assertRefusedLogin(await refused({ username: 'operator', clientId: unique('anon-op2') }), 'anonymous operator');
    assertRefusedLogin(await refused({ username: 'operator', password: 'wrong', clientId: unique('anon-op3') }), 'wrong password');
    assert.equal((stack.broker.logs().match(/app operator is ignored/g) || []).length, 1, 'warned once');
});

test('a config app named after a user of broker_password_file is a config error', async () => {
    const dir = stack.dir;
    const conf = path.join(dir, 'shadow.conf');
    await fsp.writeFile(conf, ['broker_password_file = passwd', '', '[app operator]', 'secret = operator-app-secret', ''].join('\n'));
    await assert.rejects(run(GATEWAY_BIN, ['--check', '--config', conf]), (err) => {
        assert.match(err.stderr, /\[app operator\]: app id is a user of broker_password_file/);
        return true;
    });
    await fsp.writeFile(conf, ['broker_password_file = no-such-passwd', ''].join('\n'));
    await assert.rejects(run(GATEWAY_BIN, ['--check', '--config', conf]), (err) => {
        assert.match(err.stderr, /broker_password_file: .*no-such-passwd: cannot open/);
        return true;
    });
});

test("without broker_password_file the plugin still never lets an app shadow a user of the broker's password_file", async () => {
    // A deployment that never set broker_password_file: the plugin reads the broker's own password_file instead.
    const own = await startStack({
        gateway: { node_id: 'gw-sec-nopw', apps_db: 'apps.db', admin_user: ADMIN.user, admin_password: ADMIN.password },
    });
    try {
        // The admin API cannot see the broker's file: the gateway says so at start-up.
        assert.match(own.gw.logs(), /broker_password_file is not set: the admin API cannot refuse \(409\) apps named after broker accounts/);
        const loads = () => (own.broker.logs().match(/apps store loaded/g) || []).length;
        await waitFor(() => loads() > 0, { message: 'the plugin read the store once' });
        const before = loads();
        execFileSync(STORE_TOOL, [path.join(own.dir, 'apps.db'), 'create', 'operator'], { encoding: 'utf8' });
        await waitFor(() => loads() > before, { message: 'the plugin read the store again' });

        const ownPort = own.broker.port;
        let anon = null;
        const code = await mqttConnect({ port: ownPort, username: 'operator', clientId: unique('anon-op-nopw') }).then(
            (c) => {
                anon = c;
                return RC_SUCCESS;
            },
            (err) => err.code,
        );
        if (anon) anon.end(true);
        assertRefusedLogin(code, 'anonymous login as operator');
        const op = await mqttConnect({ port: ownPort, ...OPERATOR_USER, clientId: unique('op-nopw') });
        op.end(true);
        await waitFor(() => /app operator is ignored: operator is a broker account/.test(own.broker.logs()), {
            message: 'the plugin warned that it ignores app operator',
        });
    } finally {
        await own.stop();
    }
});
