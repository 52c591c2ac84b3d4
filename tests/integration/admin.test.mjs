// Apps admin API (ExPusherLite): apps in SQLite, created and changed over HTTP with admin Basic auth, taking effect on
// every pushgate process without a restart; the per-app events API with #general; revocation of client ids and jti.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import vm from 'node:vm';
import WebSocket from 'ws';
import { io } from 'socket.io-client';

import { BUILD_DIR, OPERATOR_USER, REPO_DIR, freePort, httpRequest, mqttConnect, signJwt, startStack, waitFor, wsConnect } from './lib/harness.mjs';
import { PUSHER_QUERY, established, isEvent, dataOf, pusherServer } from './lib/pusher.mjs';
import { isMessage } from './lib/native.mjs';

const STORE_TOOL = path.join(BUILD_DIR, 'tests', 'integration', 'pushgate_store_tool');

const run = promisify(execFile);
const CLIENT_FILE = path.join(REPO_DIR, 'gateway', 'static', 'pushgate.js');

function loadClient() {
    const mod = { exports: {} };
    vm.compileFunction(fs.readFileSync(CLIENT_FILE, 'utf8'), ['module', 'exports'], { filename: CLIENT_FILE })(mod, mod.exports);
    return mod.exports;
}
const ADMIN = { user: 'root-admin', password: 'admin-password-123' };
const basic = (u, p) => 'Basic ' + Buffer.from(`${u}:${p}`).toString('base64');
const ADMIN_AUTH = { Authorization: basic(ADMIN.user, ADMIN.password) };

let stack;
let gw1;
let gw2;
const sockets = [];

before(async () => {
    stack = await startStack({
        gateway: { apps_db: 'apps.db', admin_user: ADMIN.user, admin_password: ADMIN.password },
    });
    gw1 = stack.gw;
    const port2 = await freePort();
    gw2 = await stack.startGateway({ port: port2, args: ['--listen_port', String(port2)] });
});

after(async () => {
    for (const c of sockets) c.terminate();
    if (stack) await stack.stop();
});

function admin(method, path, body, headers = {}, gw = gw1) {
    return httpRequest(method, `${gw.url}${path}`, { headers: { ...ADMIN_AUTH, ...headers }, body });
}

async function native(gw, app, query = '') {
    const c = await wsConnect(`${gw.wsUrl}/v1/${app}${query}`);
    sockets.push(c);
    c.open = await c.next((f) => f.type === 'open');
    return c;
}

async function pusher(gw, key) {
    const c = await wsConnect(`${gw.wsUrl}/app/${key}${PUSHER_QUERY}`);
    sockets.push(c);
    return established(c);
}

async function createApp(name) {
    const r = await admin('POST', '/api/admin/apps', { app: { name } });
    assert.equal(r.status, 201, r.body);
    return r.json.data;
}

test('admin credentials: none or wrong -> 401 with a Basic challenge; other admin paths 404', async () => {
    for (const headers of [{}, { Authorization: basic(ADMIN.user, 'wrong-password!') }, { Authorization: basic('x', ADMIN.password) },
        { Authorization: 'Basic !!!' }, { Authorization: 'Bearer abc' }]) {
        const r = await httpRequest('GET', `${gw1.url}/api/admin/apps`, { headers });
        assert.equal(r.status, 401, JSON.stringify(headers));
        assert.match(r.headers['www-authenticate'] || '', /^Basic realm=/);
        assert.equal(r.json.error.code, 401);
    }
    const r = await admin('GET', '/api/admin/nothing');
    assert.equal(r.status, 404);
});

test("the seed's curl creates an app with a random key and secret; list, show, duplicate 409", async () => {
    const url = `http://${ADMIN.user}:${ADMIN.password}@127.0.0.1:${gw1.port}/api/admin/apps`;
    const { stdout } = await run('curl', ['-sS', '--data', 'app[name]=foo-app', url]);
    const data = JSON.parse(stdout).data;
    assert.equal(data.slug, 'foo-app');
    assert.equal(data.name, 'foo-app');
    assert.equal(data.active, true);
    assert.match(data.key, /^[A-Za-z0-9]{20}$/);
    assert.match(data.secret, /^[A-Za-z0-9]{40}$/);
    assert.equal(typeof data.id, 'number');

    const again = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--data', 'app[name]=foo-app', url]);
    assert.equal(again.stdout, '409', 'duplicate slug');
    const other = await createApp('Foo App 2');
    assert.notEqual(other.key, data.key);
    assert.notEqual(other.secret, data.secret);

    const list = await admin('GET', '/api/admin/apps');
    assert.equal(list.status, 200);
    assert.deepEqual(list.json.data.map((a) => a.slug).filter((s) => s.startsWith('foo-app')), ['foo-app', 'foo-app-2']);
    const show = await admin('GET', '/api/admin/apps/foo-app', undefined, {}, gw2);
    assert.equal(show.status, 200);
    assert.deepEqual(show.json.data, data, 'the other process reads the same store');
    assert.equal((await admin('GET', '/api/admin/apps/nope')).status, 404);
    // a slug that is not UTF-8 (found by tests/fuzz/fuzz_http): the error still has its JSON body
    const odd = await admin('GET', '/api/admin/apps/%FFnope');
    assert.equal(odd.status, 404);
    assert.equal(odd.json?.error?.code, 404, odd.body);
    assert.equal((await admin('POST', '/api/admin/apps', { app: { name: 'demo' } })).status, 409, 'a config app id is taken');
});

test('malformed admin bodies -> 400, wrong methods -> 405, oversized -> 413', async () => {
    const cases = [
        ['{"app":', 'application/json'],
        ['[1,2]', 'application/json'],
        ['{"app":{"name":""}}', 'application/json'],
        ['{"app":{"name":42}}', 'application/json'],
        ['{"app":{}}', 'application/json'],
        ['{"app":{"name":"a","name":"b"}}', 'application/json'],
        ['app[name]=%zz', 'application/x-www-form-urlencoded'],
        ['app[name', 'application/x-www-form-urlencoded'],
        ['app[name]=a&app[name]=b', 'application/x-www-form-urlencoded'],
        ['app[name]=%FF%FE', 'application/x-www-form-urlencoded'],
        ['app[name]=---', 'application/x-www-form-urlencoded'],
    ];
    for (const [body, type] of cases) {
        const r = await admin('POST', '/api/admin/apps', body, { 'Content-Type': type });
        assert.equal(r.status, 400, `${body}: ${r.body}`);
        assert.equal(r.json.error.code, 400);
    }
    await createApp('patch-me');
    for (const body of ['{"app":{"key":"x"}}', '{"app":{"active":"yes"}}', '{"app":{"allowed_origins":[1]}}', 'nope']) {
        const r = await admin('PATCH', '/api/admin/apps/patch-me', body, { 'Content-Type': 'application/json' });
        assert.equal(r.status, 400, `${body}: ${r.body}`);
    }
    const form = await admin('PATCH', '/api/admin/apps/patch-me', 'app[active]=maybe', { 'Content-Type': 'application/x-www-form-urlencoded' });
    assert.equal(form.status, 400);
    assert.equal((await admin('DELETE', '/api/admin/apps')).status, 405);
    assert.equal((await admin('POST', '/api/admin/apps/patch-me')).status, 405);
    const big = await admin('POST', '/api/admin/apps', { app: { name: 'x'.repeat(70 * 1024) } });
    assert.equal(big.status, 413);
    assert.equal((await admin('GET', '/api/admin/apps/patch-me')).json.data.active, true, 'refused changes changed nothing');
});

test('a new app works on every process at once; deactivating closes its sessions everywhere (4003); delete', async () => {
    const app = await createApp('Live App');
    // gw2 was running before the app existed: it sees the store change on its own
    const n2 = await waitFor(async () => native(gw2, app.slug).catch(() => null), { message: 'gw2 accepts the new app' });
    const n1 = await native(gw1, app.slug);
    const p2 = await pusher(gw2, app.key);

    const r = await admin('PATCH', `/api/admin/apps/${app.slug}`, 'app[active]=false', { 'Content-Type': 'application/x-www-form-urlencoded' });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.data.active, false);
    for (const c of [n1, n2, p2]) {
        const info = await c.closed;
        assert.equal(info.code, 4003, `closed with 4003: ${JSON.stringify(info)}`);
    }
    assert.equal(n1.frames.find((f) => f.type === 'error')?.error.code, 403, 'native sessions are told why');
    await assert.rejects(wsConnect(`${gw2.wsUrl}/v1/${app.slug}`), /403/, 'no new native sessions');
    const p = await wsConnect(`${gw1.wsUrl}/app/${app.key}${PUSHER_QUERY}`);
    sockets.push(p);
    assert.equal((await p.closed).code, 4003, 'Pusher clients get 4003 on connect');
    const sdk = pusherServer(gw2.port, { appId: app.slug, key: app.key, secret: app.secret });
    await assert.rejects(sdk.trigger('news', 'e', {}), (e) => e.status === 403, 'the Pusher HTTP API refuses a disabled app');
    const ev = await httpRequest('POST', `${gw2.url}/api/apps/${app.slug}/events`, {
        headers: { Authorization: basic(app.key, app.secret) }, body: { topic: 'x', event: 'e', message: 1 } });
    assert.equal(ev.status, 403, 'so does the events API');

    assert.equal((await admin('PATCH', `/api/admin/apps/${app.slug}`, { app: { active: true } })).status, 200);
    const back = await waitFor(async () => native(gw2, app.slug).catch(() => null), { message: 'reactivated' });
    assert.ok(back.open.client_id);

    const del = await admin('DELETE', `/api/admin/apps/${app.slug}`);
    assert.equal(del.status, 200);
    assert.equal((await back.closed).code, 4003);
    assert.equal((await admin('GET', `/api/admin/apps/${app.slug}`)).status, 404);
    // gone for users everywhere: unknown to REST, WebSocket, /metrics, the dashboard, revocations and events
    await waitFor(async () => (await httpRequest('POST', `${gw2.url}/${app.slug}/room/publish`, { body: 'x' })).status === 404);
    await assert.rejects(wsConnect(`${gw2.wsUrl}/v1/${app.slug}`), (e) => e.statusCode === 404);
    assert.ok(!(await httpRequest('GET', `${gw2.url}/metrics`)).body.includes(`app="${app.slug}"`));
    assert.equal((await admin('GET', `/dashboard/${app.slug}/data`, undefined, {}, gw2)).status, 404);
    assert.equal((await admin('POST', `/api/admin/apps/${app.slug}/revocations`, { jti: 'x' }, {}, gw2)).status, 404);
    const gone = await httpRequest('POST', `${gw2.url}/api/apps/${app.slug}/events`, {
        headers: { Authorization: basic(app.key, app.secret) }, body: { topic: 'x', event: 'e', message: 1 } });
    assert.equal(gone.status, 404);
    assert.ok(app.push_token, 'store apps have a push token');
    const push = await httpRequest('POST', `${gw2.url}/api/someone/push`, { headers: { 'X-AUTH-TOKEN': app.push_token }, body: { m: 1 } });
    assert.equal(push.status, 401, `the push API no longer knows the token: ${push.body}`);
});

test('POST /api/apps/{slug}/events: key:secret Basic auth; a channel; #general reaches every session everywhere', async () => {
    const app = await createApp('Events App');
    const auth = { Authorization: basic(app.key, app.secret) };
    const url = `${gw1.url}/api/apps/${app.slug}/events`;
    const roomOnly = await native(gw1, app.slug);
    roomOnly.send(JSON.stringify({ type: 'subscribe', room: 'news', cb: 1 }));
    await roomOnly.next((f) => f.type === 'subscribe' && f.cb === 1 && !f.error);
    const quiet = await waitFor(async () => native(gw2, app.slug).catch(() => null));
    const p = await pusher(gw2, app.key);
    const Pushgate = loadClient();
    const drone = new Pushgate(app.slug, { url: `${gw2.wsUrl}/v1/${app.slug}`, WebSocket });
    const droneBroadcast = new Promise((resolve) => drone.on('broadcast', (event, message) => resolve({ event, message })));
    await new Promise((resolve, reject) => drone.on('open', (err) => (err ? reject(err) : resolve())));
    // socket.io: the namespace names the app
    const sio = io(`${gw1.url}/${app.slug}`, { transports: ['websocket'], reconnection: false });
    const sioBroadcast = new Promise((resolve) => sio.on('msg', (message) => resolve(message)));
    await new Promise((resolve, reject) => {
        sio.on('connect', resolve);
        sio.on('connect_error', reject);
    });

    for (const headers of [{}, { Authorization: basic(app.key, 'wrong') }, { Authorization: basic('demo-key', 'demo-secret') }]) {
        const r = await httpRequest('POST', url, { headers, body: { topic: 'news', event: 'e', message: {} } });
        assert.equal(r.status, 401);
    }
    let r = await httpRequest('POST', url, { headers: auth, body: { topic: 'news', event: 'headline', message: { t: 1 } } });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json, {});
    const m = await roomOnly.next(isMessage('news'));
    assert.deepEqual(m.message, { t: 1 });

    // the seed's Rails client: Net::HTTP.post_form with topic, event, scope and payload (JSON text)
    const form = new URLSearchParams({ topic: '#general', event: 'msg', scope: 'public', payload: JSON.stringify({ name: 'n', message: 'hi' }) });
    r = await httpRequest('POST', url, { headers: { ...auth, 'Content-Type': 'application/x-www-form-urlencoded' }, body: form.toString() });
    assert.equal(r.status, 200, r.body);
    for (const c of [roomOnly, quiet]) {
        const b = await c.next((f) => f.type === 'broadcast');
        assert.equal(b.event, 'msg');
        assert.deepEqual(b.message, { name: 'n', message: 'hi' });
    }
    assert.deepEqual(await droneBroadcast, { event: 'msg', message: { name: 'n', message: 'hi' } }, 'pushgate.js emits broadcast');
    drone.close();
    assert.deepEqual(await sioBroadcast, { name: 'n', message: 'hi' }, 'socket.io sessions get the event');
    sio.close();
    const pb = await p.next(isEvent('msg'));
    assert.equal(pb.channel, undefined, 'Pusher: an event without a channel (pusher.bind)');
    assert.deepEqual(dataOf(pb), { name: 'n', message: 'hi' });

    for (const body of [{ event: 'e', message: 1 }, { topic: 'a+b', event: 'e', message: 1 }, { topic: 'x', message: 1 }, '{', '[]']) {
        r = await httpRequest('POST', url, { headers: auth, body });
        assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.body}`);
    }
    r = await httpRequest('POST', url, { headers: auth, body: { topic: 'news', event: 'e', message: 'x'.repeat(65 * 1024) } });
    assert.equal(r.status, 413);
    assert.equal((await httpRequest('POST', `${gw1.url}/api/apps/nope/events`, { headers: auth, body: {} })).status, 404);
    assert.equal((await httpRequest('GET', url, { headers: auth })).status, 405);
});

test('revoking a jti or a client id closes those sessions on every process and refuses them afterwards', async () => {
    const app = await createApp('Revoke App');
    const exp = Math.floor(Date.now() / 1000) + 600;
    const connectAuthed = async (gw, jti) => {
        const c = await waitFor(async () => native(gw, app.slug).catch(() => null));
        const token = signJwt({ channel: app.slug, client: c.open.client_id, exp, jti, permissions: { '.*': { publish: true, subscribe: true } } }, app.secret);
        c.send(JSON.stringify({ type: 'authenticate', token, cb: 1 }));
        c.auth = await c.next((f) => f.type === 'authenticate' && f.cb === 1);
        c.token = token;
        return c;
    };
    const a = await connectAuthed(gw2, 'jti-a');
    const b = await connectAuthed(gw1, 'jti-b');
    assert.equal(a.auth.error, undefined);

    let r = await admin('POST', `/api/admin/apps/${app.slug}/revocations`, { jti: 'jti-a' });
    assert.equal(r.status, 201, r.body);
    assert.equal(r.json.data.kind, 'jti');
    assert.ok(r.json.data.expires_ms > Date.now());
    assert.equal((await a.closed).code, 4009, 'the session using the revoked token is closed on the other process');
    assert.equal(b.closeInfo, null, 'other sessions stay');

    const again = await connectAuthed(gw1, 'jti-a');
    assert.equal(again.auth.error?.code, 401, 'the revoked token is refused afterwards');
    const rest = await httpRequest('POST', `${gw2.url}/${app.slug}/room/publish`, {
        headers: { Authorization: `Bearer ${signJwt({ channel: app.slug, exp, jti: 'jti-a', permissions: { '.*': { publish: true } } }, app.secret)}` },
        body: 'x',
    });
    assert.equal(rest.status, 401);
    const device9 = `Bearer ${signJwt({ channel: app.slug, client: 'device-9', exp, permissions: { '.*': { publish: true } } }, app.secret)}`;
    const restAs = () => httpRequest('POST', `${gw2.url}/${app.slug}/room/publish`, { headers: { Authorization: device9 }, body: 'x' });
    assert.equal((await restAs()).status, 200);
    await admin('POST', `/api/admin/apps/${app.slug}/revocations`, { client: 'device-9' });
    // the other process learns it from the store or the broker within a moment
    await waitFor(async () => (await restAs()).status === 401, { message: 'a token whose client claim is revoked is refused on REST too' });

    r = await admin('POST', `/api/admin/apps/${app.slug}/revocations`, `client=${b.open.client_id}&ttl_s=60`, { 'Content-Type': 'application/x-www-form-urlencoded' });
    assert.equal(r.status, 201, r.body);
    assert.equal((await b.closed).code, 4009);
    const list = await admin('GET', `/api/admin/apps/${app.slug}/revocations`, undefined, {}, gw2);
    assert.deepEqual(list.json.data.map((x) => `${x.kind}:${x.value}`).sort(), [`client:${b.open.client_id}`, 'client:device-9', 'jti:jti-a'].sort());

    for (const body of [{}, { client: 'a', jti: 'b' }, { client: 5 }, { jti: 'x', ttl_s: 0 }, { jti: '' }]) {
        r = await admin('POST', `/api/admin/apps/${app.slug}/revocations`, body);
        assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.body}`);
    }
    assert.equal((await admin('POST', '/api/admin/apps/nope/revocations', { jti: 'x' })).status, 404);
    // config apps can be revoked too
    assert.equal((await admin('POST', '/api/admin/apps/demo/revocations', { client: 'device-1' })).status, 201);
});

test('allowed_origins set over the admin API: upgrades from other Origins get 403 on every process', async () => {
    const app = await createApp('Origin App');
    const r = await admin('PATCH', `/api/admin/apps/${app.slug}`, { app: { allowed_origins: ['https://app.example'] } });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json.data.allowed_origins, ['https://app.example']);
    for (const gw of [gw1, gw2]) {
        for (const url of [`${gw.wsUrl}/v1/${app.slug}`, `${gw.wsUrl}/app/${app.key}${PUSHER_QUERY}`]) {
            await waitFor(async () => {
                const e = await wsConnect(url, { headers: { Origin: 'https://evil.example' } }).then(
                    (c) => (c.terminate(), null),
                    (err) => err,
                );
                return e && e.statusCode === 403;
            }, { message: `403 for another Origin at ${url}` });
            const ok = await wsConnect(url, { headers: { Origin: 'https://app.example' } });
            sockets.push(ok);
        }
    }
});

test('a gateway on another store file gets every app change through the broker, also when it starts later', async () => {
    const app = await createApp('Replicated App');
    const port3 = await freePort();
    // a third process with its own store: it learns the app from the retained _ctl message
    const gw3 = await stack.startGateway({ port: port3, args: ['--listen_port', String(port3), '--apps_db', `${stack.dir}/other.db`] });
    const shown = await waitFor(async () => {
        const r = await admin('GET', `/api/admin/apps/${app.slug}`, undefined, {}, gw3);
        return r.status === 200 && r.json.data;
    }, { message: 'gw3 stores the replicated app' });
    for (const k of ['slug', 'name', 'key', 'secret', 'active', 'push_token']) assert.equal(shown[k], app[k], k);
    const c = await native(gw3, app.slug);
    const revoked = await native(gw3, app.slug);
    const exp = Math.floor(Date.now() / 1000) + 600;
    revoked.send(JSON.stringify({ type: 'authenticate', token: signJwt({ channel: app.slug, client: revoked.open.client_id, exp, jti: 'r-1' }, app.secret), cb: 1 }));
    assert.equal((await revoked.next((f) => f.cb === 1)).error, undefined);
    assert.equal((await admin('POST', `/api/admin/apps/${app.slug}/revocations`, { jti: 'r-1' })).status, 201);
    assert.equal((await revoked.closed).code, 4009, 'a revocation reaches a gateway on another store');
    const r3 = await admin('GET', `/api/admin/apps/${app.slug}/revocations`, undefined, {}, gw3);
    assert.deepEqual(r3.json.data.map((x) => x.value), ['r-1'], 'and is kept in its store for its broker plugin');

    await admin('PATCH', `/api/admin/apps/${app.slug}`, { app: { active: false } });
    assert.equal((await c.closed).code, 4003, 'deactivation reaches the other store');
    await admin('DELETE', `/api/admin/apps/${app.slug}`);
    await waitFor(async () => (await admin('GET', `/api/admin/apps/${app.slug}`, undefined, {}, gw3)).status === 404,
        { message: 'delete reaches the other store' });

    // operators may watch pushgate/# but never _ctl, where secrets travel
    const op = await mqttConnect({ port: stack.brokerPort, username: OPERATOR_USER.username, password: OPERATOR_USER.password });
    const seen = [];
    op.on('message', (topic) => seen.push(topic));
    await op.subscribeAsync('pushgate/#');
    await createApp('Watched App');
    await httpRequest('POST', `${gw1.url}/demo/room/publish`, { body: 'x' });
    await waitFor(() => seen.includes('pushgate/demo/c/room'), { message: 'the operator sees channel traffic' });
    assert.deepEqual(seen.filter((t) => t.includes('/_ctl/')), [], 'no _ctl message reaches the operator');
    await op.endAsync();
});

test('a deletion made while a gateway on another store was away reaches it when it comes back', async () => {
    const app = await createApp('Away App');
    const port = await freePort();
    const args = ['--listen_port', String(port), '--apps_db', `${stack.dir}/away.db`];
    const away = await stack.startGateway({ port, args });
    await waitFor(async () => (await admin('GET', `/api/admin/apps/${app.slug}`, undefined, {}, away)).status === 200,
        { message: 'the other store has the app' });
    await away.stop();
    assert.equal((await admin('DELETE', `/api/admin/apps/${app.slug}`)).status, 200);
    // the retained tombstone is what tells the returning gateway: no message would look like "nothing changed"
    const back = await stack.startGateway({ port, args });
    await waitFor(async () => (await admin('GET', `/api/admin/apps/${app.slug}`, undefined, {}, back)).status === 404,
        { message: 'the deletion reaches the returning gateway' });
    await assert.rejects(wsConnect(`${back.wsUrl}/v1/${app.slug}`), (e) => e.statusCode === 404, 'its sessions are refused');
    const pub = await httpRequest('POST', `${back.url}/${app.slug}/room/publish`, { body: { x: 1 } });
    assert.equal(pub.status, 404, `REST publish to the deleted app: ${pub.body}`);
    assert.match(back.logs(), new RegExp(`app ${app.slug} deleted from another gateway`));
    await back.stop();

    // A copy changed after the deletion (here: in that gateway's store while it was stopped) is kept.
    const kept = await createApp('Kept App');
    const again = await stack.startGateway({ port, args });
    await waitFor(async () => (await admin('GET', `/api/admin/apps/${kept.slug}`, undefined, {}, again)).status === 200,
        { message: 'the other store has the second app' });
    await again.stop();
    assert.equal((await admin('DELETE', `/api/admin/apps/${kept.slug}`)).status, 200);
    await new Promise((r) => setTimeout(r, 5));
    await run(STORE_TOOL, [`${stack.dir}/away.db`, 'update', kept.slug, JSON.stringify({ name: 'Kept Here' })]);
    const third = await stack.startGateway({ port, args });
    await waitFor(() => third.logs().includes(`app ${kept.slug} kept: changed here after its deletion elsewhere`),
        { message: 'the returning gateway weighs the tombstone against its newer copy' });
    const mine = await admin('GET', `/api/admin/apps/${kept.slug}`, undefined, {}, third);
    assert.equal(mine.status, 200);
    assert.equal(mine.json.data.name, 'Kept Here');
    // and it replaces the tombstone at the broker: the gateway that deleted it has it again
    const restored = await waitFor(async () => {
        const r = await admin('GET', `/api/admin/apps/${kept.slug}`);
        return r.status === 200 && r.json.data;
    }, { message: 'the newer copy reaches the gateway that deleted the app' });
    assert.equal(restored.name, 'Kept Here');
    await third.stop();
    assert.equal((await admin('DELETE', `/api/admin/apps/${kept.slug}`)).status, 200);
});

// A loopback TCP relay to the broker that the test can cut: a gateway behind it is away from the broker while every
// other process stays connected.
async function brokerRelay() {
    const port = await freePort();
    const pairs = new Set();
    let cut = false;
    const server = net.createServer((client) => {
        if (cut) return client.destroy();
        const upstream = net.connect(stack.brokerPort, '127.0.0.1');
        const pair = [client, upstream];
        pairs.add(pair);
        const drop = () => {
            pairs.delete(pair);
            client.destroy();
            upstream.destroy();
        };
        for (const sock of pair) {
            sock.on('error', drop);
            sock.on('close', drop);
        }
        client.pipe(upstream);
        upstream.pipe(client);
    });
    await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
    return {
        port,
        cut() {
            cut = true;
            for (const [a, b] of pairs) (a.destroy(), b.destroy());
            pairs.clear();
        },
        restore() {
            cut = false;
        },
        server,
        pairs,
    };
}

test('deletion wins: an app changed on a gateway away from the broker and deleted elsewhere stays deleted', async () => {
    const app = await createApp('Deleted While Away');
    const relay = await brokerRelay();
    const port = await freePort();
    const args = ['--listen_port', String(port), '--apps_db', `${stack.dir}/away-wins.db`, '--broker_port', String(relay.port),
        '--broker_reconnect_min_ms', '50', '--broker_reconnect_max_ms', '200'];
    const away = await stack.startGateway({ port, args });
    let marker;
    try {
        await waitFor(async () => (await admin('GET', `/api/admin/apps/${app.slug}`, undefined, {}, away)).status === 200,
            { message: 'the other store has the app' });
        relay.cut();
        await waitFor(async () => (await httpRequest('GET', `${away.url}/readyz`)).status === 503,
            { message: 'the gateway behind the relay lost the broker' });
        // changed there while away (announced only on its return), then deleted here, later
        const changed = await admin('PATCH', `/api/admin/apps/${app.slug}`, { app: { name: 'Changed While Away' } }, {}, away);
        assert.equal(changed.status, 200, changed.body);
        await new Promise((r) => setTimeout(r, 5)); // the deletion's time is later than the change's
        assert.equal((await admin('DELETE', `/api/admin/apps/${app.slug}`)).status, 200);
        relay.restore();
        await waitFor(async () => (await httpRequest('GET', `${away.url}/readyz`)).status === 200,
            { message: 'the gateway is back on the broker' });
        // the returning gateway announces its older copy; the gateway that deleted the app ignores it and puts the
        // tombstone back at the broker
        // a marker created there after its return travels behind the older copy: once it is here, so was that copy
        marker = await admin('POST', '/api/admin/apps', { app: { name: 'Away Marker' } }, {}, away);
        assert.equal(marker.status, 201, marker.body);
        await waitFor(async () => (await admin('GET', `/api/admin/apps/${marker.json.data.slug}`)).status === 200,
            { message: 'the marker reached the gateway that deleted the app' });
        assert.equal((await admin('GET', `/api/admin/apps/${app.slug}`)).status, 404, 'the older copy did not bring the app back');
        for (const g of [gw1, gw2, away])
            await waitFor(async () => (await admin('GET', `/api/admin/apps/${app.slug}`, undefined, {}, g)).status === 404,
                { message: `deleted on the gateway on port ${g.port}` });
        // a gateway that starts later, on a store of its own, learns the deletion, not the older copy
        const port4 = await freePort();
        const late = await stack.startGateway({ port: port4, args: ['--listen_port', String(port4), '--apps_db', `${stack.dir}/late.db`] });
        try {
            const late_marker = await createApp('Late Marker');
            await waitFor(async () => (await admin('GET', `/api/admin/apps/${late_marker.slug}`, undefined, {}, late)).status === 200,
                { message: 'the late gateway is replicating' });
            assert.equal((await admin('GET', `/api/admin/apps/${app.slug}`, undefined, {}, late)).status, 404,
                'the broker retains the deletion');
            await assert.rejects(wsConnect(`${gw1.wsUrl}/v1/${app.slug}`), (e) => e.statusCode === 404, 'its sessions are refused');
        } finally {
            await late.stop();
        }
        // the deletions record lives in the store: across a restart the app is still never taken back
        await away.stop();
        const again = await stack.startGateway({ port, args });
        try {
            const gwc = await mqttConnect({ port: stack.brokerPort, ...stack.gatewayUser, clientId: 'deleted-replay' });
            await gwc.publishAsync(`pushgate/_ctl/apps/${app.slug}`,
                JSON.stringify({ ...app, name: 'Replayed', updated_ms: changed.json.data.updated_ms }), { qos: 1, retain: true });
            await gwc.endAsync();
            await waitFor(() => again.logs().includes(`app ${app.slug} stays deleted`), { message: 'the replay is ignored' });
            assert.equal((await admin('GET', `/api/admin/apps/${app.slug}`, undefined, {}, again)).status, 404);
            assert.equal((await admin('GET', `/api/admin/apps/${app.slug}`)).status, 404);
        } finally {
            await again.stop();
        }
        // created again later, the slug lives again everywhere
        const reborn = await createApp('Deleted While Away');
        assert.equal(reborn.slug, app.slug);
        assert.ok(reborn.updated_ms > changed.json.data.updated_ms);
        await waitFor(async () => (await admin('GET', `/api/admin/apps/${app.slug}`, undefined, {}, gw2)).status === 200,
            { message: 'a re-created slug is replicated' });
        assert.equal((await admin('DELETE', `/api/admin/apps/${app.slug}`)).status, 200);
        for (const slug of [marker.json.data.slug, 'late-marker'])
            assert.equal((await admin('DELETE', `/api/admin/apps/${slug}`)).status, 200);
    } finally {
        await away.stop();
        relay.cut();
        await new Promise((resolve) => relay.server.close(resolve));
    }
});

test('admin calls reach MQTT devices through the broker plugin: revoked client ids and deactivated apps are kicked', async () => {
    const app = await createApp('Device App');
    const exp = Math.floor(Date.now() / 1000) + 600;
    const device = async (clientId, jti) => {
        const c = await waitFor(async () => mqttConnect({
            port: stack.brokerPort, username: app.slug, clientId,
            password: signJwt({ channel: app.slug, client: clientId, exp, jti }, app.secret),
        }).catch(() => null), { message: `device ${clientId} connects to the new app without a broker restart` });
        c.gone = new Promise((resolve) => c.once('close', resolve));
        return c;
    };
    const a = await device('dev-a', 'tok-a');
    const b = await device('dev-b', 'tok-b');
    const c = await device('dev-c', 'tok-c');

    assert.equal((await admin('POST', `/api/admin/apps/${app.slug}/revocations`, { client: 'dev-a' })).status, 201);
    await a.gone;
    assert.equal((await admin('POST', `/api/admin/apps/${app.slug}/revocations`, { jti: 'tok-b' })).status, 201);
    await b.gone;
    await assert.rejects(mqttConnect({
        port: stack.brokerPort, username: app.slug, clientId: 'dev-a',
        password: signJwt({ channel: app.slug, client: 'dev-a', exp }, app.secret),
    }), 'a revoked client id is refused');
    assert.equal(c.connected, true, 'other devices stay');

    assert.equal((await admin('PATCH', `/api/admin/apps/${app.slug}`, { app: { active: false } })).status, 200);
    await c.gone;
    await assert.rejects(mqttConnect({
        port: stack.brokerPort, username: app.slug, clientId: 'dev-c',
        password: signJwt({ channel: app.slug, client: 'dev-c', exp }, app.secret),
    }), 'a deactivated app refuses devices');
});

test('require_auth switched on: token-less sessions are closed; #general reaches only authenticated sessions', async () => {
    const app = await createApp('Locked App');
    const open = await native(gw1, app.slug);
    const open2 = await waitFor(async () => native(gw2, app.slug).catch(() => null));
    assert.equal((await admin('PATCH', `/api/admin/apps/${app.slug}`, { app: { require_auth: true } })).status, 200);
    assert.equal((await open.closed).code, 4009, 'a session without a token is closed');
    assert.equal(open.frames.find((f) => f.type === 'error')?.error.code, 401);
    assert.equal((await open2.closed).code, 4009, 'on every process');

    const anon = await waitFor(async () => native(gw2, app.slug).catch(() => null));
    const authed = await native(gw2, app.slug);
    const exp = Math.floor(Date.now() / 1000) + 600;
    authed.send(JSON.stringify({ type: 'authenticate', token: signJwt({ channel: app.slug, client: authed.open.client_id, exp }, app.secret), cb: 1 }));
    assert.equal((await authed.next((f) => f.cb === 1)).error, undefined);
    const r = await httpRequest('POST', `${gw1.url}/api/apps/${app.slug}/events`, {
        headers: { Authorization: basic(app.key, app.secret) }, body: { topic: '#general', event: 'secret', message: { s: 1 } } });
    assert.equal(r.status, 200);
    assert.deepEqual((await authed.next((f) => f.type === 'broadcast')).message, { s: 1 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(anon.frames.filter((f) => f.type === 'broadcast').length, 0, 'an unauthenticated session gets nothing');
});

test('a stale copy of an app from the broker never undoes a newer local state', async () => {
    const app = await createApp('Stale App');
    const r = await admin('PATCH', `/api/admin/apps/${app.slug}`, { app: { active: false } });
    assert.equal(r.json.data.active, false);
    assert.ok(r.json.data.updated_ms > app.updated_ms, 'updated_ms moves forward');
    // replay the app as it was at creation, as a broker that missed the change would
    const gwc = await mqttConnect({ port: stack.brokerPort, ...stack.gatewayUser, clientId: 'stale-replay' });
    await gwc.publishAsync(`pushgate/_ctl/apps/${app.slug}`, JSON.stringify(app), { qos: 1 });
    // one publisher, one subscription: once this later message is applied, the stale one has been handled
    const marker = { ...app, slug: 'stale-marker', name: 'marker', key: 'stale-marker-key', updated_ms: Date.now() };
    await gwc.publishAsync('pushgate/_ctl/apps/stale-marker', JSON.stringify(marker), { qos: 1 });
    await waitFor(async () => (await admin('GET', '/api/admin/apps/stale-marker')).status === 200, { message: 'marker applied' });
    assert.equal((await admin('GET', `/api/admin/apps/${app.slug}`)).json.data.active, false, 'the stale copy was ignored');

    const newer = { ...r.json.data, name: 'Renamed Elsewhere', updated_ms: r.json.data.updated_ms + 1000 };
    await gwc.publishAsync(`pushgate/_ctl/apps/${app.slug}`, JSON.stringify(newer), { qos: 1 });
    await gwc.endAsync();
    await waitFor(async () => (await admin('GET', `/api/admin/apps/${app.slug}`)).json.data.name === 'Renamed Elsewhere',
        { message: 'a newer copy is applied' });
});

test('an admin answer is sent even when bytes follow the body (the connection then closes)', async () => {
    const body = 'app[name]=stray-crlf-app';
    const req = `POST /api/admin/apps HTTP/1.1\r\nHost: x\r\nAuthorization: Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.password}`).toString('base64')}\r\n` +
        `Content-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n\r\n${body}\r\n`;
    const out = await new Promise((resolve, reject) => {
        let text = '';
        const sock = net.connect(gw1.port, '127.0.0.1', () => sock.write(req));
        const timer = setTimeout(() => sock.destroy(), 5000);
        sock.on('data', (d) => (text += d));
        sock.on('close', () => (clearTimeout(timer), resolve(text)));
        sock.on('error', reject);
    });
    assert.match(out, /^HTTP\/1\.1 201/, out);
    const data = JSON.parse(out.slice(out.indexOf('\r\n\r\n') + 4)).data;
    assert.equal(data.slug, 'stray-crlf-app');
    assert.equal((await admin('GET', '/api/admin/apps/stray-crlf-app')).json.data.key, data.key, 'the answer holds the stored key');
});
