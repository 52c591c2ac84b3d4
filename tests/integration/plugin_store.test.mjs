// The broker plugin reading the gateway's SQLite apps store (apps_db) against a real mosquitto 2 broker: the store
// may appear after the broker started; apps created in it admit devices without a broker restart; deactivating or
// deleting a store app kicks its devices and refuses them; revoked client ids and token ids (jti) are kicked and
// refused until the revocation expires; a config app wins over a store app with the same id.
//
// The store is changed with build/tests/integration/pushgate_store_tool, a small program on the gateway's own store
// code (store/), so the test needs no gateway and writes exactly what the admin API would.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { BUILD_DIR, DEFAULT_APPS, mqttCollector, mqttConnect, mqttRefused, scaled, signJwt, startStack, waitFor } from './lib/harness.mjs';

const STORE_TOOL = path.join(BUILD_DIR, 'tests', 'integration', 'pushgate_store_tool');
const SECURE = DEFAULT_APPS.find((a) => a.id === 'secure');
const RC_SUCCESS = 0;
const RC_NO_MATCHING_SUBSCRIBERS = 0x10;
const RC_BAD_USER_OR_PASSWORD = 0x86;
const RC_NOT_AUTHORIZED = 0x87;
const RC_ADMINISTRATIVE_ACTION = 0x98;
// The kick happens at a broker tick (at most ~100 ms apart) after the plugin noticed the commit.
const KICK_WITHIN_MS = scaled(2000);
// A store change made by the tool is read at the plugin's next data_version poll (a tick, ~100 ms).
const ADMIT_WITHIN_MS = scaled(3000);

let stack;
let port;
let dbPath;
const clients = new Set();
let seq = 0;

before(async () => {
    // apps_db relative to the config file, as the gateway resolves it; the file does not exist yet.
    stack = await startStack({ startGateway: false, gateway: { apps_db: 'apps.db' } });
    port = stack.broker.port;
    dbPath = path.join(stack.dir, 'apps.db');
});

after(async () => {
    for (const c of clients) c.end(true);
    if (stack) await stack.stop();
});

function uniqueId(prefix) {
    seq += 1;
    return `${prefix}-${process.pid}-${seq}`;
}

function tool(...args) {
    return execFileSync(STORE_TOOL, [dbPath, ...args.map(String)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

const createApp = (name) => JSON.parse(tool('create', name));
const updateApp = (slug, changes) => JSON.parse(tool('update', slug, JSON.stringify(changes)));
const revoke = (app, kind, value, ttlMs = 600000) => tool('revoke', app, kind, value, ttlMs);

function token(app, clientId, extra = {}) {
    return signJwt(
        { channel: app.slug, client: clientId, exp: Math.floor(Date.now() / 1000) + 600, permissions: { '.*': { publish: true, subscribe: true } }, ...extra },
        app.secret,
    );
}

async function connect(opts) {
    const c = await mqttConnect({ port, ...opts });
    clients.add(c);
    c.disconnects = [];
    c.on('disconnect', (packet) => c.disconnects.push(packet));
    c.on('close', () => clients.delete(c));
    return c;
}

function connectDevice(app, clientId = uniqueId('dev'), extra = {}) {
    return connect({ username: app.slug, password: token(app, clientId, extra), clientId });
}

// Resolves to the CONNACK refusal reason; fails the test if the connection is accepted.
const refused = (opts) => mqttRefused({ port, ...opts });

function publish(client, topic, payload) {
    return new Promise((resolve, reject) => {
        client.publish(topic, payload, { qos: 1 }, (err, packet) => {
            if (err && typeof err.code === 'number') resolve(err.code);
            else if (err) reject(err);
            else resolve(packet && typeof packet.reasonCode === 'number' ? packet.reasonCode : RC_SUCCESS);
        });
    });
}

function assertAccepted(rc, what) {
    assert.ok(rc === RC_SUCCESS || rc === RC_NO_MATCHING_SUBSCRIBERS, `${what}: expected PUBACK success, got 0x${rc.toString(16)}`);
}

// The broker closed the connection with a v5 DISCONNECT "administrative action" within ms.
async function expectKicked(client, ms = KICK_WITHIN_MS) {
    const started = Date.now();
    await waitFor(() => !client.connected, { timeoutMs: ms, intervalMs: 20, message: `client ${client.options.clientId} kicked` });
    assert.ok(Date.now() - started <= ms);
    assert.ok(client.disconnects.length >= 1, 'expected a v5 DISCONNECT from the broker before the close');
    assert.equal(client.disconnects[0].reasonCode, RC_ADMINISTRATIVE_ACTION);
}

function brokerLogHas(text) {
    return waitFor(() => stack.broker.logs().includes(text), { message: `broker log line: ${text}` });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------------------------
// Kept first: the store is created by this test, after the broker started.

test('a store created after the broker started: its new app admits devices without a broker restart', async () => {
    assert.equal(fs.existsSync(dbPath), false, 'no store before the test creates it');
    await brokerLogHas(`pushgate_auth: apps store not available: ${dbPath}`);
    const pid = stack.broker.proc.pid;

    const app = createApp('Store App');
    assert.equal(app.slug, 'store-app');
    assert.equal(fs.statSync(dbPath).mode & 0o777, 0o600, 'the store is private to its owner');
    // The plugin retries opening once a second, then reads the app at its next tick.
    const clientId = uniqueId('dev');
    const c = await waitFor(() => connectDevice(app, clientId).catch(() => null), { timeoutMs: scaled(5000), intervalMs: 200, message: 'store app admitted' });
    assert.equal(stack.broker.proc.pid, pid, 'same broker process');
    assertAccepted(await publish(c, 'pushgate/store-app/c/room-1', 'hi'), 'publish on its own channel');
    assert.equal(await publish(c, 'pushgate/secure/c/room-1', 'x'), RC_NOT_AUTHORIZED, 'other apps stay closed');
    // Tokens are checked against the store's secret.
    const forged = signJwt({ channel: app.slug, client: clientId, exp: Math.floor(Date.now() / 1000) + 600 }, 'not-the-secret');
    assert.equal(await refused({ username: app.slug, password: forged, clientId }), RC_NOT_AUTHORIZED);

    // An app created while the store is open is picked up at a tick too.
    const later = createApp('Later App');
    const l = await waitFor(() => connectDevice(later).catch(() => null), { timeoutMs: ADMIT_WITHIN_MS, intervalMs: 100, message: 'later app admitted' });
    assertAccepted(await publish(l, 'pushgate/later-app/c/x', 'x'), 'publish of the later app');
    c.end(true);
    l.end(true);
});

test('deactivating a store app kicks its devices and refuses them; reactivating admits them again', async () => {
    const app = createApp(uniqueId('Deact'));
    const other = createApp(uniqueId('Bystander'));
    const c = await waitFor(() => connectDevice(app).catch(() => null), { timeoutMs: ADMIT_WITHIN_MS, intervalMs: 100 });
    const bystander = await waitFor(() => connectDevice(other).catch(() => null), { timeoutMs: ADMIT_WITHIN_MS, intervalMs: 100 });

    updateApp(app.slug, { active: false });
    await expectKicked(c);
    await brokerLogHas(`pushgate_auth: disconnecting client=${c.options.clientId} reason=app removed or inactive`);
    const clientId = uniqueId('dev');
    assert.equal(await refused({ username: app.slug, password: token(app, clientId), clientId }), RC_NOT_AUTHORIZED);
    await brokerLogHas(`pushgate_auth: connect denied client=${clientId} app=${app.slug} reason=app inactive`);
    assert.equal(bystander.connected, true, 'devices of other apps stay');

    updateApp(app.slug, { active: true });
    const again = await waitFor(() => connectDevice(app).catch(() => null), { timeoutMs: ADMIT_WITHIN_MS, intervalMs: 100, message: 'reactivated app admitted' });
    again.end(true);
    bystander.end(true);
});

test('deleting a store app kicks its devices; its name is then no app at all', async () => {
    const app = createApp(uniqueId('Doomed'));
    const c = await waitFor(() => connectDevice(app).catch(() => null), { timeoutMs: ADMIT_WITHIN_MS, intervalMs: 100 });
    tool('delete', app.slug);
    await expectKicked(c);
    const clientId = uniqueId('dev');
    // Not an app any more: the password file decides, and it does not know the name.
    const code = await refused({ username: app.slug, password: token(app, clientId), clientId });
    assert.ok(code === RC_NOT_AUTHORIZED || code === RC_BAD_USER_OR_PASSWORD, `refused with 0x${code.toString(16)}`);
});

test('a revoked client id is kicked and refused; other client ids of the app still connect', async () => {
    const app = createApp(uniqueId('Revoke Client'));
    const victimId = uniqueId('victim');
    const victim = await waitFor(() => connectDevice(app, victimId).catch(() => null), { timeoutMs: ADMIT_WITHIN_MS, intervalMs: 100 });
    const other = await connectDevice(app);
    const watcher = await connect({ ...stack.gatewayUser, clientId: uniqueId('gw') });
    const seen = mqttCollector(watcher);
    await new Promise((r, j) => watcher.subscribe('pushgate/#', { qos: 1 }, (e) => (e ? j(e) : r())));

    revoke(app.slug, 'client', victimId);
    await expectKicked(victim);
    await brokerLogHas(`pushgate_auth: disconnecting client=${victimId} reason=client id revoked`);
    assert.equal(await refused({ username: app.slug, password: token(app, victimId), clientId: victimId }), RC_NOT_AUTHORIZED);
    await brokerLogHas(`pushgate_auth: connect denied client=${victimId} app=${app.slug} reason=client id revoked`);
    assert.equal(other.connected, true, 'the other client id stays connected');
    const fresh = await connectDevice(app);
    assertAccepted(await publish(fresh, `pushgate/${app.slug}/c/room`, 'fresh'), 'another client id publishes');
    await seen.next((m) => m.text === 'fresh');

    // The same client id under another app is not revoked.
    const sibling = createApp(uniqueId('Sibling'));
    const s = await waitFor(() => connectDevice(sibling, victimId).catch(() => null), { timeoutMs: ADMIT_WITHIN_MS, intervalMs: 100 });
    s.end(true);
    other.end(true);
    fresh.end(true);
    watcher.end(true);
});

test('a revoked token id (jti) is kicked and that token refused; a new token for the same client connects', async () => {
    const app = createApp(uniqueId('Revoke Jti'));
    const clientId = uniqueId('dev');
    const stolen = token(app, clientId, { jti: uniqueId('jti') });
    const c = await waitFor(() => connect({ username: app.slug, password: stolen, clientId }).catch(() => null), { timeoutMs: ADMIT_WITHIN_MS, intervalMs: 100 });
    const jtiOf = JSON.parse(Buffer.from(stolen.split('.')[1], 'base64url').toString()).jti;

    revoke(app.slug, 'jti', jtiOf);
    await expectKicked(c);
    await brokerLogHas(`pushgate_auth: disconnecting client=${clientId} reason=token revoked`);
    assert.equal(await refused({ username: app.slug, password: stolen, clientId }), RC_NOT_AUTHORIZED);
    await brokerLogHas(`pushgate_auth: connect denied client=${clientId} app=${app.slug} reason=token revoked`);
    const renewed = await connect({ username: app.slug, password: token(app, clientId, { jti: uniqueId('jti') }), clientId });
    assertAccepted(await publish(renewed, `pushgate/${app.slug}/c/room`, 'x'), 'the renewed token works');
    renewed.end(true);
});

test('revocations expire, and they apply to config-file apps as well', async () => {
    // The store takes revocations for any app id, including the config file's.
    const clientId = uniqueId('cfg');
    const secureToken = (cid) =>
        signJwt({ channel: 'secure', client: cid, exp: Math.floor(Date.now() / 1000) + 600, permissions: { '.*': { publish: true, subscribe: true } } }, SECURE.secret);
    const c = await connect({ username: 'secure', password: secureToken(clientId), clientId });
    // Long enough for the kick (KICK_WITHIN_MS) and the refused reconnect to land while it is still in force.
    const ttl = KICK_WITHIN_MS + scaled(3000);
    revoke('secure', 'client', clientId, ttl);
    const expiresBy = Date.now() + ttl; // the tool adds ttl to its own clock, read before it returned
    await expectKicked(c);
    assert.equal(await refused({ username: 'secure', password: secureToken(clientId), clientId }), RC_NOT_AUTHORIZED);
    // Nothing in the store changes when the revocation runs out: the plugin compares expiry with the clock.
    await sleep(Math.max(0, expiresBy + 200 - Date.now()));
    const back = await connect({ username: 'secure', password: secureToken(clientId), clientId });
    assert.equal(back.connected, true);
    back.end(true);

    // Already expired when written: never in force.
    const app = createApp(uniqueId('Expired'));
    const id = uniqueId('dev');
    revoke(app.slug, 'client', id, -1000);
    const d = await waitFor(() => connectDevice(app, id).catch(() => null), { timeoutMs: ADMIT_WITHIN_MS, intervalMs: 100, message: 'expired revocation ignored' });
    await sleep(500);
    assert.equal(d.connected, true, 'an expired revocation kicks nobody');
    d.end(true);
});

test('a config app wins over a store app with the same id', async () => {
    const shadow = createApp('secure'); // slug "secure", its own random secret
    assert.equal(shadow.slug, 'secure');
    await sleep(300); // a few ticks: the store app is loaded by now
    const clientId = uniqueId('shadow');
    assert.equal(await refused({ username: 'secure', password: token(shadow, clientId), clientId }), RC_NOT_AUTHORIZED);
    const cfgToken = signJwt({ channel: 'secure', client: clientId, exp: Math.floor(Date.now() / 1000) + 600 }, SECURE.secret);
    const c = await connect({ username: 'secure', password: cfgToken, clientId });
    // Deactivating the store twin does not touch the config app.
    updateApp('secure', { active: false });
    await sleep(500);
    assert.equal(c.connected, true, 'the config app is not affected by its store twin');
    c.end(true);
    tool('delete', 'secure');
});

test('the broker log shows store changes and never a store secret or token', async () => {
    const app = createApp(uniqueId('Quiet'));
    const clientId = uniqueId('dev');
    const jwt = token(app, clientId);
    const c = await waitFor(() => connect({ username: app.slug, password: jwt, clientId }).catch(() => null), { timeoutMs: ADMIT_WITHIN_MS, intervalMs: 100 });
    c.end(true);
    await refused({ username: app.slug, password: token({ ...app, secret: 'forged' }, clientId), clientId });
    await brokerLogHas(`pushgate_auth: connect denied client=${clientId} app=${app.slug} reason=`);
    const logs = stack.broker.logs();
    assert.match(logs, /pushgate_auth: apps store opened: /);
    assert.match(logs, /pushgate_auth: apps store loaded: \d+ app\(s\), \d+ revocation\(s\)/);
    for (const secret of [app.secret, app.push_token, jwt, jwt.split('.')[2]]) {
        assert.ok(!logs.includes(secret), 'a store secret or token appears in the broker log');
    }
});

test('SIGHUP re-authenticates every session with the store still loaded: store devices stay, revocations made after it still apply', async () => {
    const app = createApp(uniqueId('Reload'));
    const keep = await waitFor(() => connectDevice(app).catch(() => null), { timeoutMs: ADMIT_WITHIN_MS, intervalMs: 100 });
    const reloads = () => stack.broker.logs().split('pushgate_auth: configuration reloaded').length;
    const before = reloads();
    stack.broker.proc.kill('SIGHUP');
    await waitFor(() => reloads() > before, { message: 'reload logged' });
    await sleep(300);
    assert.equal(keep.connected, true, 'a store app session survives the re-authentication after a reload');
    assertAccepted(await publish(keep, `pushgate/${app.slug}/c/room`, 'x'), 'still allowed after the reload');
    const clientId = uniqueId('dev');
    // The plugin logs "apps store loaded" each time it re-reads the store after a commit (store_load in
    // plugin/store_reader.c); the reload above found no change, so the next one is the revocation's.
    const loads = () => stack.broker.logs().split('pushgate_auth: apps store loaded:').length;
    const loadsBefore = loads();
    revoke(app.slug, 'client', clientId);
    await waitFor(() => loads() > loadsBefore, { message: 'store reloaded after the revocation' });
    assert.equal(await refused({ username: app.slug, password: token(app, clientId), clientId }), RC_NOT_AUTHORIZED);
    keep.end(true);
});
