// The Mosquitto auth plugin (pushgate_auth.so) against a real mosquitto 2 broker: devices authenticate with
// username = app id, password = JWT, client id = the token's `client` claim; the token's permissions decide
// publish, subscribe and per-message delivery; everything outside pushgate/{own app}/c/ is refused; users that
// are not app ids are left to mosquitto's password and ACL files.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';

import { DEFAULT_APPS, freePort, makeTempDir, mqttCollector, mqttConnect, mqttRefused, OPERATOR_USER, removeTempDir, rsaKeyPair, scaled, signJwt, startBroker, startStack, waitFor } from './lib/harness.mjs';

const SECURE = DEFAULT_APPS.find((a) => a.id === 'secure');
const DEMO = DEFAULT_APPS.find((a) => a.id === 'demo');
const RSA = rsaKeyPair();
const APPS = [
    ...DEFAULT_APPS,
    { id: 'rsa', key: 'rsa-key', secret: 'rsa-secret-0123456789', jwt_alg: 'RS256', public_key_pem: RSA.publicKeyPem, require_auth: true },
];
const LEEWAY_MS = 500;
// The expiry tests give a token this long to live: connecting, subscribing and publishing (and a delivery) before it
// expires must fit, also under sanitizers. The post-expiry checks wait from exp itself, so they hold for any value.
const EXPIRES_IN_MS = scaled(2500);

// room-*: publish + subscribe; ro-*: subscribe only; room-secret: a denying rule that overrides room-*.
const PERMISSIONS = {
    '^room-': { publish: true, subscribe: true },
    '^ro-': { subscribe: true, publish: false },
    '^room-secret$': { publish: false, subscribe: false },
};

const RC_SUCCESS = 0;
const RC_NO_MATCHING_SUBSCRIBERS = 0x10;
const RC_NOT_AUTHORIZED = 0x87;
const RC_ADMINISTRATIVE_ACTION = 0x98;

let stack;
let port;
const clients = new Set();
let seq = 0;

before(async () => {
    stack = await startStack({ apps: APPS, startGateway: false, gateway: { jwt_leeway_ms: LEEWAY_MS } });
    port = stack.broker.port;
});

after(async () => {
    for (const c of clients) c.end(true);
    if (stack) await stack.stop();
});

function uniqueId(prefix) {
    seq += 1;
    return `${prefix}-${process.pid}-${seq}`;
}

function token(clientId, extra = {}, { secret = SECURE.secret, app = 'secure', alg = 'HS256', header } = {}) {
    return signJwt(
        { channel: app, client: clientId, exp: Math.floor(Date.now() / 1000) + 600, permissions: PERMISSIONS, ...extra },
        secret,
        { alg, header },
    );
}

async function connect(opts) {
    const c = await mqttConnect({ port, ...opts });
    clients.add(c);
    c.on('close', () => clients.delete(c));
    return c;
}

async function connectSecure(extra = {}, opts = {}) {
    const clientId = opts.clientId || uniqueId('dev');
    return connect({ username: 'secure', password: token(clientId, extra), clientId, ...opts });
}

async function connectGateway() {
    return connect({ ...stack.gatewayUser, clientId: uniqueId('gw') });
}

// Resolves to the CONNACK refusal reason; fails the test if the connection is accepted.
const refused = (opts) => mqttRefused({ port, ...opts });

// The SUBACK reason code for one topic filter.
function subscribe(client, topic, qos = 1) {
    return new Promise((resolve, reject) => {
        client.subscribe(topic, { qos }, (err, _subs, packet) => {
            if (packet && Array.isArray(packet.granted)) resolve(packet.granted[0]);
            else reject(err || new Error('no SUBACK'));
        });
    });
}

// The PUBACK reason code of a QoS 1 publish.
function publish(client, topic, payload, qos = 1) {
    return new Promise((resolve, reject) => {
        client.publish(topic, payload, { qos }, (err, packet) => {
            if (err && typeof err.code === 'number') resolve(err.code);
            else if (err) reject(err);
            else resolve(packet && typeof packet.reasonCode === 'number' ? packet.reasonCode : RC_SUCCESS);
        });
    });
}

function assertAccepted(rc, what) {
    assert.ok(rc === RC_SUCCESS || rc === RC_NO_MATCHING_SUBSCRIBERS, `${what}: expected PUBACK success, got 0x${rc.toString(16)}`);
}

function closed(client) {
    if (!client.connected) return Promise.resolve();
    return new Promise((resolve) => client.once('close', resolve));
}

// Waits until `client` has disconnected, collecting any DISCONNECT packet the broker sent.
async function expectKicked(client, disconnectPackets, timeoutMs = scaled(5000)) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`client not disconnected within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
        await Promise.race([closed(client), timeout]);
    } finally {
        clearTimeout(timer);
    }
    assert.ok(disconnectPackets.length >= 1, 'expected a v5 DISCONNECT from the broker before the close');
    assert.equal(disconnectPackets[0].reasonCode, RC_ADMINISTRATIVE_ACTION);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------------------------

test('a device with a valid JWT and matching client id connects', async () => {
    const c = await connectSecure();
    assert.equal(c.connected, true);
    assertAccepted(await publish(c, 'pushgate/secure/c/room-1', 'hi'), 'publish on a permitted channel');
    c.end(true);
});

test('RS256 app: RS256 token accepted, HS256 token keyed with the public key refused', async () => {
    const clientId = uniqueId('rsa');
    const good = signJwt({ channel: 'rsa', client: clientId, exp: Math.floor(Date.now() / 1000) + 600, permissions: PERMISSIONS }, RSA.privateKeyPem, { alg: 'RS256' });
    const c = await connect({ username: 'rsa', password: good, clientId });
    assertAccepted(await publish(c, 'pushgate/rsa/c/room-1', 'x'), 'RS256 device publish');
    c.end(true);

    const confused = signJwt({ channel: 'rsa', client: clientId, exp: Math.floor(Date.now() / 1000) + 600 }, RSA.publicKeyPem, { alg: 'HS256' });
    assert.equal(await refused({ username: 'rsa', password: confused, clientId }), RC_NOT_AUTHORIZED);
});

test('refused: wrong client id, missing client claim, expired, forged, alg none, other app, garbage, no token', async () => {
    const clientId = uniqueId('bad');
    const now = Math.floor(Date.now() / 1000);
    const cases = {
        'client claim of another session': { password: token('someone-else'), clientId },
        'no client claim': { password: token(undefined), clientId },
        'expired (seconds)': { password: token(clientId, { exp: now - 60 }), clientId },
        'expired (milliseconds)': { password: token(clientId, { exp: Date.now() - 60000 }), clientId },
        'not yet valid': { password: token(clientId, { nbf: now + 3600 }), clientId },
        'no exp': { password: token(clientId, { exp: undefined }), clientId },
        'signed with another secret': { password: token(clientId, {}, { secret: 'not-the-secret' }), clientId },
        'alg none': { password: token(clientId, {}, { alg: 'none' }), clientId },
        'HS512 instead of the pinned HS256': { password: token(clientId, {}, { alg: 'HS512' }), clientId },
        'token of another app': { password: token(clientId, { channel: 'demo' }, { secret: SECURE.secret }), clientId },
        'not a JWT': { password: 'not.a.jwt', clientId },
        'invalid permission pattern': { password: token(clientId, { permissions: { '(': { publish: true } } }), clientId },
        'no password on an app that requires auth': { clientId },
    };
    for (const [name, c] of Object.entries(cases)) {
        const code = await refused({ username: 'secure', ...c });
        assert.equal(code, RC_NOT_AUTHORIZED, `${name}: expected CONNACK 0x87, got ${code}`);
    }
    // MQTT 3.1.1 has its own refusal code (5, not authorized).
    assert.equal(await refused({ username: 'secure', password: token('someone-else'), clientId, protocolVersion: 4 }), 5);
});

test('users that are not app ids are left to the password file', async () => {
    const op = await connect({ ...OPERATOR_USER, clientId: uniqueId('op') });
    assert.equal(op.connected, true);
    // The operator's ACL (read pushgate/#) comes from the acl_file, not from the plugin.
    assert.equal(await subscribe(op, 'pushgate/#'), 1);
    op.end(true);

    const gw = await connectGateway();
    assert.equal(gw.connected, true);
    gw.end(true);

    assert.equal(await refused({ username: 'nobody', password: 'guess', clientId: uniqueId('x') }), RC_NOT_AUTHORIZED);
    assert.equal(await refused({ username: OPERATOR_USER.username, password: 'wrong', clientId: uniqueId('x') }), RC_NOT_AUTHORIZED);
});

test('publish is allowed or refused per the token rules (PUBACK 0x87) and refused messages are not delivered', async () => {
    const gw = await connectGateway();
    const seen = mqttCollector(gw);
    assert.equal(await subscribe(gw, 'pushgate/#'), 1);
    const c = await connectSecure();

    assert.equal(await publish(c, 'pushgate/secure/c/ro-news', 'denied-ro'), RC_NOT_AUTHORIZED, 'subscribe-only channel');
    assert.equal(await publish(c, 'pushgate/secure/c/room-secret', 'denied-deny-wins'), RC_NOT_AUTHORIZED, 'deny rule wins');
    assert.equal(await publish(c, 'pushgate/secure/c/unlisted', 'denied-unlisted'), RC_NOT_AUTHORIZED, 'no matching rule');
    assert.equal(await publish(c, 'pushgate/secure/c/', 'denied-empty'), RC_NOT_AUTHORIZED, 'empty channel');
    assertAccepted(await publish(c, 'pushgate/secure/c/room-a/kitchen', 'ok-1'), 'multi-level channel');
    assertAccepted(await publish(c, 'pushgate/secure/c/room-b', 'ok-2'), 'permitted channel');

    await seen.next((m) => m.text === 'ok-2');
    // The plugin's own device presence reports (devices.test.mjs) are not the device's publishes.
    const published = seen.messages.filter((m) => !m.topic.startsWith('pushgate/secure/d/') && m.topic !== 'pushgate/secure/c/private-pushgate-devices');
    assert.deepEqual(published.map((m) => m.text), ['ok-1', 'ok-2'], 'only the permitted publishes reach a subscriber');
    assert.equal(published[0].topic, 'pushgate/secure/c/room-a/kitchen');
    c.end(true);
    gw.end(true);
});

test('exact subscriptions are checked at SUBSCRIBE (SUBACK 0x87 / 0x80 on v3.1.1)', async () => {
    const c = await connectSecure();
    assert.equal(await subscribe(c, 'pushgate/secure/c/room-1'), 1);
    assert.equal(await subscribe(c, 'pushgate/secure/c/ro-news'), 1);
    assert.equal(await subscribe(c, 'pushgate/secure/c/room-secret'), RC_NOT_AUTHORIZED);
    assert.equal(await subscribe(c, 'pushgate/secure/c/unlisted'), RC_NOT_AUTHORIZED);
    c.end(true);

    const clientId = uniqueId('v4');
    const v4 = await connect({ username: 'secure', password: token(clientId), clientId, protocolVersion: 4 });
    assert.equal(await subscribe(v4, 'pushgate/secure/c/room-secret'), 0x80);
    assert.equal(await subscribe(v4, 'pushgate/secure/c/room-1'), 1);
    v4.end(true);
});

test('a wildcard subscription inside the app receives exactly the permitted channels', async () => {
    const c = await connectSecure();
    const got = mqttCollector(c);
    assert.equal(await subscribe(c, 'pushgate/secure/c/#'), 1);
    const plus = await connectSecure();
    const gotPlus = mqttCollector(plus);
    assert.equal(await subscribe(plus, 'pushgate/secure/c/+'), 1);

    const gw = await connectGateway();
    const sends = [
        ['pushgate/secure/c/room-secret', 'forbidden-1'],
        ['pushgate/secure/c/unlisted', 'forbidden-2'],
        ['pushgate/secure/c/room-1', 'allowed-1'],
        ['pushgate/secure/c/ro-news', 'allowed-2'],
        ['pushgate/secure/c/secret/room-x', 'forbidden-3'], // `^room-` is anchored: no match
        ['pushgate/secure/c/room-2/deeper', 'allowed-3'],
        ['pushgate/demo/c/room-1', 'other-app'],
        ['pushgate/secure/c/room-last', 'marker'],
    ];
    for (const [topic, payload] of sends) assertAccepted(await publish(gw, topic, payload), `gateway publish ${topic}`);

    // One publisher, QoS 1, one connection: delivery order is publish order, so the marker comes last.
    await got.next((m) => m.text === 'marker');
    assert.deepEqual(got.messages.map((m) => m.text), ['allowed-1', 'allowed-2', 'allowed-3', 'marker']);
    await gotPlus.next((m) => m.text === 'marker');
    assert.deepEqual(gotPlus.messages.map((m) => m.text), ['allowed-1', 'allowed-2', 'marker']);
    c.end(true);
    plus.end(true);
    gw.end(true);
});

test('nothing outside pushgate/{own app}/c/ is allowed to an app device', async () => {
    const c = await connectSecure();
    for (const filter of [
        'pushgate/#',
        'pushgate/+/c/room-1',
        'pushgate/secure/#',
        'pushgate/secure/u/someone',
        'pushgate/demo/c/room-1',
        'pushgate/demo/c/#',
        'pushgate/_ctl/#',
        'pushgate/_node/x',
        '#',
        '$SYS/#',
        '$share/g/pushgate/secure/c/room-1',
        'elsewhere/room-1',
    ]) {
        assert.equal(await subscribe(c, filter), RC_NOT_AUTHORIZED, `subscribe ${filter}`);
    }
    for (const topic of [
        'pushgate/demo/c/room-1',
        'pushgate/secure/room-1',
        'pushgate/secure/u/someone',
        'pushgate/_ctl/kick',
        'pushgate/secure/p/node/room-1',
        'pushgatex/secure/c/room-1',
        'elsewhere',
    ]) {
        assert.equal(await publish(c, topic, 'x'), RC_NOT_AUTHORIZED, `publish ${topic}`);
    }
    assert.equal(c.connected, true, 'denials alone do not disconnect a valid session');
    c.end(true);
});

test('an app without require_auth admits devices without a token, only inside its own channels', async () => {
    const c = await connect({ username: 'demo', clientId: uniqueId('open') });
    assertAccepted(await publish(c, 'pushgate/demo/c/anything', 'x'), 'open app publish');
    assert.equal(await subscribe(c, 'pushgate/demo/c/#'), 1);
    assert.equal(await subscribe(c, 'pushgate/demo/c/lobby'), 1);
    assert.equal(await publish(c, 'pushgate/secure/c/room-1', 'x'), RC_NOT_AUTHORIZED);
    assert.equal(await publish(c, 'pushgate/_ctl/x', 'x'), RC_NOT_AUTHORIZED);
    assert.equal(await subscribe(c, 'pushgate/secure/c/#'), RC_NOT_AUTHORIZED);
    c.end(true);

    // A token presented to an open app is still verified: a bad one is refused, not ignored.
    const clientId = uniqueId('open');
    assert.equal(await refused({ username: 'demo', password: token(clientId, {}, { secret: 'wrong', app: 'demo' }), clientId }), RC_NOT_AUTHORIZED);
    const withToken = await connect({ username: 'demo', password: token(clientId, {}, { secret: DEMO.secret, app: 'demo' }), clientId });
    assertAccepted(await publish(withToken, 'pushgate/demo/c/room-1', 'x'), 'open app with token, permitted');
    assert.equal(await publish(withToken, 'pushgate/demo/c/ro-x', 'x'), RC_NOT_AUTHORIZED, 'token rules apply on an open app');
    withToken.end(true);
});

test('an expired token is denied at its next publish and the device is disconnected', async () => {
    const clientId = uniqueId('exp');
    const exp = Date.now() + EXPIRES_IN_MS; // milliseconds form of exp
    const c = await connect({ username: 'secure', password: token(clientId, { exp }), clientId });
    const disconnects = [];
    c.on('disconnect', (packet) => disconnects.push(packet));
    assertAccepted(await publish(c, 'pushgate/secure/c/room-1', 'before'), 'publish before expiry');
    await sleep(exp + LEEWAY_MS - Date.now() + 300);
    const rc = await Promise.race([publish(c, 'pushgate/secure/c/room-1', 'after'), closed(c).then(() => 'closed')]);
    assert.ok(rc === RC_NOT_AUTHORIZED || rc === 'closed', `publish after expiry: expected 0x87 or a disconnect, got ${rc}`);
    await expectKicked(c, disconnects);
});

test('an expired token is denied at its next subscribe and the device is disconnected', async () => {
    const clientId = uniqueId('exp');
    const exp = Math.ceil((Date.now() + EXPIRES_IN_MS) / 1000); // seconds form of exp
    const c = await connect({ username: 'secure', password: token(clientId, { exp }), clientId });
    const disconnects = [];
    c.on('disconnect', (packet) => disconnects.push(packet));
    assert.equal(await subscribe(c, 'pushgate/secure/c/room-1'), 1);
    await sleep(exp * 1000 + LEEWAY_MS - Date.now() + 300);
    const rc = await Promise.race([subscribe(c, 'pushgate/secure/c/room-2'), closed(c).then(() => 'closed')]);
    assert.ok(rc === RC_NOT_AUTHORIZED || rc === 'closed', `subscribe after expiry: expected 0x87 or a disconnect, got ${rc}`);
    await expectKicked(c, disconnects);
});

test('an expired subscriber stops receiving and is disconnected at its next delivery', async () => {
    const clientId = uniqueId('exp');
    const exp = Date.now() + EXPIRES_IN_MS;
    const c = await connect({ username: 'secure', password: token(clientId, { exp }), clientId });
    const disconnects = [];
    c.on('disconnect', (packet) => disconnects.push(packet));
    const got = mqttCollector(c);
    assert.equal(await subscribe(c, 'pushgate/secure/c/#'), 1);
    const gw = await connectGateway();
    assertAccepted(await publish(gw, 'pushgate/secure/c/room-1', 'early'), 'gateway publish');
    await got.next((m) => m.text === 'early');
    await sleep(exp + LEEWAY_MS - Date.now() + 300);
    assertAccepted(await publish(gw, 'pushgate/secure/c/room-1', 'late'), 'gateway publish');
    await expectKicked(c, disconnects);
    assert.deepEqual(got.messages.map((m) => m.text), ['early']);
    gw.end(true);
});

test('session takeover: the new connection keeps its rights when the old one is dropped', async () => {
    const clientId = uniqueId('take');
    const first = await connect({ username: 'secure', password: token(clientId), clientId });
    const second = await connect({ username: 'secure', password: token(clientId), clientId });
    await waitFor(() => !first.connected, { message: 'old connection closed by the takeover' });
    first.end(true);
    assertAccepted(await publish(second, 'pushgate/secure/c/room-1', 'x'), 'publish on the new connection');
    assert.equal(await subscribe(second, 'pushgate/secure/c/room-1'), 1);
    assert.equal(await publish(second, 'pushgate/secure/c/ro-1', 'x'), RC_NOT_AUTHORIZED);
    second.end(true);
});

test('a persistent session: nothing is queued while offline, the resumed session is checked with its new token', async () => {
    const clientId = uniqueId('persist');
    const session = { clean: false, properties: { sessionExpiryInterval: 300 } };
    const first = await connect({ username: 'secure', password: token(clientId), clientId, ...session });
    assert.equal(await subscribe(first, 'pushgate/secure/c/#'), 1);
    first.end(true);
    await closed(first);
    // A reload re-runs authentication for every session the broker knows, offline ones included; that must not
    // bring the offline one back to life in the plugin.
    const reloads = () => stack.broker.logs().split('pushgate_auth: configuration reloaded').length;
    const before = reloads();
    stack.broker.proc.kill('SIGHUP');
    await waitFor(() => reloads() > before, { message: 'reload logged' });

    const gw = await connectGateway();
    // The offline session has no live credential, so the broker must not queue for it.
    assertAccepted(await publish(gw, 'pushgate/secure/c/room-1', 'while-offline'), 'gateway publish');

    const resumed = await connect({ username: 'secure', password: token(clientId), clientId, ...session });
    const got = mqttCollector(resumed);
    assert.equal(resumed.connack.sessionPresent, true, 'the broker kept the session');
    assertAccepted(await publish(gw, 'pushgate/secure/c/room-secret', 'forbidden'), 'gateway publish');
    assertAccepted(await publish(gw, 'pushgate/secure/c/room-2', 'after-resume'), 'gateway publish');
    await got.next((m) => m.text === 'after-resume');
    assert.deepEqual(got.messages.map((m) => m.text), ['after-resume']);
    // The broker's own record: the offline session was refused the message, and it was never sent.
    const deniedLine = `pushgate_auth: read denied client=${clientId} topic=pushgate/secure/c/room-1 reason=no live session`;
    await waitFor(() => stack.broker.logs().includes(deniedLine), { message: 'the offline session was denied by the plugin' });
    const logs = stack.broker.logs();
    const sent = logs.split('\n').filter((l) => l.includes(`Sending PUBLISH to ${clientId} `) && l.includes("'pushgate/secure/c/room-1'"));
    assert.deepEqual(sent, [], 'nothing queued while offline');
    resumed.end(true);
    gw.end(true);
});

test('SIGHUP reloads the apps: a deactivated app is refused and its sessions are disconnected', async () => {
    const own = await startStack({ startGateway: false });
    try {
        const p = own.broker.port;
        const dev = await mqttConnect({ port: p, username: 'demo', clientId: uniqueId('reload') });
        assertAccepted(await publish(dev, 'pushgate/demo/c/room-1', 'x'), 'publish before reload');

        // A broken file is refused and the running configuration stays.
        const original = await fsp.readFile(own.conf, 'utf8');
        await fsp.writeFile(own.conf, 'regex_depth_limit = deep\n' + original);
        own.broker.proc.kill('SIGHUP');
        await waitFor(() => /pushgate_auth: reload failed, keeping the previous configuration: \S+pushgate\.conf:1: regex_depth_limit/.test(own.broker.logs()), { message: 'reload failure logged' });
        assertAccepted(await publish(dev, 'pushgate/demo/c/room-1', 'x'), 'publish after a failed reload');

        await fsp.writeFile(own.conf, original.replace('[app demo]', '[app demo]\nactive = false'));
        own.broker.proc.kill('SIGHUP');
        await waitFor(() => /pushgate_auth: configuration reloaded/.test(own.broker.logs()), { message: 'reload logged' });
        // Mosquitto re-runs every connected client's authentication on reload, so the session ends at once.
        await waitFor(() => !dev.connected, { message: 'session of the deactivated app closed' });
        await waitFor(() => own.broker.logs().includes('pushgate_auth: connect denied client=' + dev.options.clientId + ' app=demo reason=app inactive'),
            { message: 'the re-check denial is logged' });
        await assert.rejects(mqttConnect({ port: p, username: 'demo', clientId: uniqueId('reload') }), (err) => err.code === RC_NOT_AUTHORIZED);
        // The other app is untouched.
        const clientId = uniqueId('reload');
        const sec = await mqttConnect({ port: p, username: 'secure', password: token(clientId), clientId });
        assertAccepted(await publish(sec, 'pushgate/secure/c/room-1', 'x'), 'other app still works');
        sec.end(true);
    } finally {
        await own.stop();
    }
});

test('broker log has one line per decision and never a token or secret', async () => {
    const clientId = uniqueId('log');
    const jwt = token(clientId);
    const c = await connect({ username: 'secure', password: jwt, clientId });
    assert.equal(await publish(c, 'pushgate/secure/c/ro-x', 'x'), RC_NOT_AUTHORIZED);
    c.end(true);
    await refused({ username: 'secure', password: token(clientId, {}, { secret: 'forged' }), clientId });
    // the broker's output reaches us asynchronously: wait until both decisions are in it
    const denied = new RegExp(`pushgate_auth: connect denied client=${clientId} app=secure reason=`);
    const logs = await waitFor(() => {
        const l = stack.broker.logs();
        return /pushgate_auth: write denied client=\S+ app=secure topic=pushgate\/secure\/c\/ro-x reason=publish not permitted/.test(l) &&
            denied.test(l) && l;
    }, { message: 'the denials are logged' });
    assert.match(logs, new RegExp(`pushgate_auth: connect allowed client=${clientId} app=secure`));
    assert.match(logs, new RegExp(`pushgate_auth: connect denied client=${clientId} app=secure reason=`));
    for (const secret of [jwt, jwt.split('.')[2], SECURE.secret, DEMO.secret, 'rsa-secret-0123456789', stack.gatewayUser.password]) {
        assert.ok(!logs.includes(secret), 'a secret or token appears in the broker log');
    }
});

// ---------------------------------------------------------------------------------------------------------------
// Configuration errors stop the broker with file:line.

async function brokerWithConf(text) {
    const dir = await makeTempDir();
    const conf = path.join(dir, 'pushgate.conf');
    await fsp.writeFile(conf, text, { mode: 0o644 });
    try {
        const broker = await startBroker({ dir, port: await freePort(), pushgateConf: conf, brokerPassword: crypto.randomBytes(8).toString('hex') });
        await broker.stop();
        return { conf, started: true };
    } catch (err) {
        return { conf, started: false, message: err.message };
    } finally {
        await removeTempDir(dir);
    }
}

test('a bad configuration stops the broker with a log line naming file:line', async () => {
    const bad = await brokerWithConf('# pushgate\ntopic_root = pushgate\nregex_match_limit = lots\n');
    assert.equal(bad.started, false);
    assert.ok(bad.message.includes(`${bad.conf}:3: regex_match_limit`), `expected ${bad.conf}:3 in:\n${bad.message}`);

    const noSecret = await brokerWithConf('listen_port = 8080\n\n[app lonely]\nkey = k\nrequire_auth = true\n');
    assert.equal(noSecret.started, false);
    assert.ok(noSecret.message.includes(`${noSecret.conf}:3:`), `expected ${noSecret.conf}:3 in:\n${noSecret.message}`);

    const badValue = await brokerWithConf('[app x]\nsecret = s\njwt_alg = none\n');
    assert.equal(badValue.started, false);
    assert.ok(badValue.message.includes(`${badValue.conf}:3: jwt_alg`), `expected ${badValue.conf}:3 in:\n${badValue.message}`);

    // Options and sections the gateway owns are not the plugin's business.
    const gatewayOnly = await brokerWithConf('max_sessions = 5\nlog_level = debug\n[app y]\nsecret = s\nwebhook_url = http://127.0.0.1/\n[webhook z]\nurl = x\n');
    assert.equal(gatewayOnly.started, true, gatewayOnly.message);
});
