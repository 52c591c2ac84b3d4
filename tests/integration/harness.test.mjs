// Self-test of the integration harness: the pieces every other integration test relies on.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { WebSocketServer } from 'ws';
import {
    freePort,
    signJwt,
    rsaKeyPair,
    startBroker,
    mqttConnect,
    mqttCollector,
    userProp,
    wsConnect,
    waitFor,
    httpRequest,
    makeTempDir,
    removeTempDir,
    writePushgateConf,
    DEFAULT_APPS,
    OPERATOR_USER,
} from './lib/harness.mjs';

function decodePart(part) {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

describe('signJwt', () => {
    test('HS256 signature verifies with node:crypto and carries header and claims', () => {
        const claims = { channel: 'demo', client: 'c1', exp: Math.floor(Date.now() / 1000) + 60 };
        const tok = signJwt(claims, 'demo-secret', { header: { kid: 'k1' } });
        const [h, p, s] = tok.split('.');
        assert.deepEqual(decodePart(h), { alg: 'HS256', typ: 'JWT', kid: 'k1' });
        assert.deepEqual(decodePart(p), claims);
        const expect = crypto.createHmac('sha256', 'demo-secret').update(`${h}.${p}`).digest('base64url');
        assert.equal(s, expect);
        const other = crypto.createHmac('sha256', 'wrong').update(`${h}.${p}`).digest('base64url');
        assert.notEqual(s, other);
        assert.ok(!/[=+/]/.test(tok), 'compact JWT must be unpadded base64url');
    });

    test('RS256 signature verifies with the public key only', () => {
        const { publicKeyPem, privateKeyPem } = rsaKeyPair();
        assert.match(publicKeyPem, /BEGIN PUBLIC KEY/);
        assert.match(privateKeyPem, /BEGIN PRIVATE KEY/);
        const tok = signJwt({ channel: 'demo', exp: 1 }, privateKeyPem, { alg: 'RS256' });
        const [h, p, s] = tok.split('.');
        assert.equal(decodePart(h).alg, 'RS256');
        const ok = crypto.verify('sha256', Buffer.from(`${h}.${p}`), publicKeyPem, Buffer.from(s, 'base64url'));
        assert.equal(ok, true);
        const other = rsaKeyPair();
        const bad = crypto.verify('sha256', Buffer.from(`${h}.${p}`), other.publicKeyPem, Buffer.from(s, 'base64url'));
        assert.equal(bad, false);
    });

    test("alg 'none' has an empty signature and raw string claims are signed verbatim", () => {
        const tok = signJwt({ channel: 'demo' }, 'x', { alg: 'none' });
        assert.ok(tok.endsWith('.'));
        assert.equal(decodePart(tok.split('.')[0]).alg, 'none');
        const raw = signJwt('not json', 'k');
        assert.equal(Buffer.from(raw.split('.')[1], 'base64url').toString(), 'not json');
    });
});

test('freePort returns a bindable loopback port', async () => {
    const port = await freePort();
    assert.ok(port > 0 && port < 65536);
    const srv = net.createServer();
    await new Promise((res, rej) => srv.once('error', rej).listen(port, '127.0.0.1', res));
    await new Promise((res) => srv.close(res));
});

test('waitFor returns the truthy value and times out with a message', async () => {
    let n = 0;
    assert.equal(await waitFor(() => (++n >= 3 ? n : 0), { intervalMs: 5 }), 3);
    await assert.rejects(waitFor(() => false, { timeoutMs: 100, intervalMs: 10 }), /timed out after 100 ms/);
});

test('writePushgateConf writes globals, overrides and app sections', async () => {
    const dir = await makeTempDir();
    try {
        const { publicKeyPem } = rsaKeyPair();
        const apps = [...DEFAULT_APPS, { id: 'rsa', key: 'rk', secret: 'rs', jwt_alg: 'RS256', public_key_pem: publicKeyPem }];
        const file = await writePushgateConf({
            dir,
            listenPort: 1111,
            brokerPort: 2222,
            brokerPassword: 'pw',
            gateway: { topic_root: 'pg2', log_level: 'info', broker_host: null },
            apps,
        });
        const text = await fsp.readFile(file, 'utf8');
        assert.match(text, /^listen_port = 1111$/m);
        assert.match(text, /^broker_port = 2222$/m);
        assert.match(text, /^topic_root = pg2$/m);
        assert.match(text, /^log_level = info$/m);
        assert.doesNotMatch(text, /broker_host/);
        assert.match(text, /\[app secure\]\nkey = secure-key\nsecret = secure-secret-0123456789\nrequire_auth = true/);
        const pemFile = path.join(dir, 'rsa.pub.pem');
        assert.match(text, new RegExp(`^public_key_file = ${pemFile}$`, 'm'));
        assert.equal(await fsp.readFile(pemFile, 'utf8'), publicKeyPem);
        assert.equal((await fsp.stat(dir)).mode & 0o777, 0o755);
    } finally {
        await removeTempDir(dir);
    }
    assert.equal(fs.existsSync(dir), false);
});

describe('broker without plugin', () => {
    let dir;
    let broker;
    const clients = [];
    after(async () => {
        for (const c of clients) c.end(true);
        if (broker) await broker.stop();
        if (dir) await removeTempDir(dir);
    });

    test('starts, authenticates the gateway account, enforces ACLs, and relays v5 user properties', async () => {
        dir = await makeTempDir();
        broker = await startBroker({ dir, plugin: false, brokerPassword: 'gw-pass' });
        assert.equal(broker.url, `mqtt://127.0.0.1:${broker.port}`);

        const gwc = await mqttConnect({ port: broker.port, username: 'pushgate', password: 'gw-pass', clientId: 'gw-1' });
        clients.push(gwc);
        const op = await mqttConnect({ port: broker.port, ...OPERATOR_USER });
        clients.push(op);
        const gwMsgs = mqttCollector(gwc);
        const opMsgs = mqttCollector(op);
        await gwc.subscribeAsync('pushgate/demo/c/#', { qos: 1 });
        await op.subscribeAsync('pushgate/#', { qos: 1 });

        for (let i = 0; i < 5; i++) {
            await gwc.publishAsync(`pushgate/demo/c/room/${i}`, `m${i}`, {
                qos: 1,
                properties: { userProperties: { event: `ev${i}`, client_id: 'web-1' } },
            });
        }
        for (let i = 0; i < 5; i++) {
            const m = await gwMsgs.next((x) => x.topic === `pushgate/demo/c/room/${i}`);
            assert.equal(m.text, `m${i}`);
            assert.equal(userProp(m.properties, 'event'), `ev${i}`);
            assert.equal(userProp(m.properties, 'client_id'), 'web-1');
            const o = await opMsgs.next((x) => x.topic === `pushgate/demo/c/room/${i}`);
            assert.equal(o.text, `m${i}`);
        }

        // The operator account is read-only: its publish is refused (v5 PUBACK 135) and never delivered.
        await assert.rejects(op.publishAsync('pushgate/demo/c/room/x', 'forged', { qos: 1 }), (err) => err.code === 135);
        await gwc.publishAsync('pushgate/demo/c/room/marker', 'marker', { qos: 1 });
        await gwMsgs.next((x) => x.topic === 'pushgate/demo/c/room/marker');
        assert.equal(gwMsgs.messages.filter((m) => m.text === 'forged').length, 0);
    });

    test('refuses bad credentials with the CONNACK reason', async () => {
        await assert.rejects(
            mqttConnect({ port: broker.port, username: 'pushgate', password: 'wrong' }),
            (err) => err.reasonCode === 135 || err.reasonCode === 134,
        );
        await assert.rejects(
            mqttConnect({ port: broker.port, username: 'pushgate', password: 'wrong', protocolVersion: 4 }),
            (err) => err.reasonCode === 5 || err.reasonCode === 4,
        );
    });

    test('restart keeps the port and accepts connections again; stop is idempotent', async () => {
        const port = broker.port;
        const oldPid = broker.proc.pid;
        await broker.restart();
        assert.equal(broker.port, port);
        assert.notEqual(broker.proc.pid, oldPid);
        const c = await mqttConnect({ port, username: 'pushgate', password: 'gw-pass' });
        const got = mqttCollector(c);
        await c.subscribeAsync('pushgate/x/c/after', { qos: 1 });
        await c.publishAsync('pushgate/x/c/after', 'again', { qos: 1 });
        assert.equal((await got.next()).text, 'again');
        await c.endAsync();
        assert.match(broker.logs(), /broker restarted/);

        const r1 = await broker.stop();
        const r2 = await broker.stop();
        assert.deepEqual(r1, { code: 0, signal: null });
        assert.deepEqual(r2, r1);
        await assert.rejects(mqttConnect({ port, username: 'pushgate', password: 'gw-pass', connectTimeout: 2000 }));
    });

    test('kill then start brings the broker back on the same port', async () => {
        const port = broker.port;
        await broker.start();
        await broker.kill();
        await assert.rejects(mqttConnect({ port, username: 'pushgate', password: 'gw-pass', connectTimeout: 2000 }));
        await broker.start();
        const c = await mqttConnect({ port, username: 'pushgate', password: 'gw-pass' });
        await c.endAsync();
    });
});

describe('wsConnect and httpRequest', () => {
    let server;
    let port;
    after(async () => {
        if (server) await new Promise((r) => server.close(r));
    });

    test('frames queue, predicates, send, close and HTTP refusal', async () => {
        port = await freePort();
        server = new WebSocketServer({
            host: '127.0.0.1',
            port,
            verifyClient: (info, cb) => (info.req.url === '/refuse' ? cb(false, 403, 'Forbidden') : cb(true)),
        });
        await new Promise((r) => server.once('listening', r));
        server.on('connection', (sock, req) => {
            sock.send(JSON.stringify({ event: 'hello', path: req.url, proto: sock.protocol }));
            sock.on('message', (data) => {
                const msg = JSON.parse(data.toString());
                if (msg.op === 'burst') for (let i = 0; i < 3; i++) sock.send(JSON.stringify({ event: 'n', i }));
                if (msg.op === 'bye') sock.close(4001, 'bye now');
            });
        });

        const c = await wsConnect(`ws://127.0.0.1:${port}/app/demo`, { protocols: 'pushgate' });
        const hello = await c.next();
        assert.deepEqual(hello, { event: 'hello', path: '/app/demo', proto: 'pushgate' });
        c.send({ op: 'burst' });
        const last = await c.next((f) => f.i === 2);
        assert.equal(last.i, 2);
        assert.deepEqual(
            c.pending.map((f) => f.i),
            [0, 1],
        );
        assert.equal((await c.next()).i, 0);
        assert.equal(c.frames.length, 4);
        await assert.rejects(c.next((f) => f.event === 'never', 100), /within 100 ms/);
        c.send(JSON.stringify({ op: 'bye' }));
        assert.deepEqual(await c.closed, { code: 4001, reason: 'bye now' });
        await assert.rejects(c.next((f) => f.event === 'never'), /closed \(4001/);
        assert.equal((await c.next()).i, 1, 'frames received before the close stay available');

        await assert.rejects(wsConnect(`ws://127.0.0.1:${port}/refuse`), (err) => err.statusCode === 403);

        const r = await httpRequest('GET', `http://127.0.0.1:${port}/plain`);
        assert.equal(r.status, 426);
        assert.equal(r.json, undefined);
        assert.equal(typeof r.body, 'string');
    });
});

describe('startGateway crash and sanitizer detection', () => {
    // A stand-in executable at BUILD_DIR/gateway/pushgate lets the harness's own checks be exercised
    // without depending on the real gateway; the real gateway's tests rely on exactly these checks.
    let fakeBuild;
    let h;
    after(async () => {
        if (fakeBuild) await fsp.rm(fakeBuild, { recursive: true, force: true });
    });

    async function load() {
        fakeBuild = await fsp.mkdtemp(path.join(os.tmpdir(), 'pushgate-fakebuild-'));
        await fsp.mkdir(path.join(fakeBuild, 'gateway'));
        const script = `#!/usr/bin/env node
const http = require('node:http');
const fs = require('node:fs');
const conf = fs.readFileSync(process.argv[process.argv.indexOf('--config') + 1], 'utf8');
const port = Number(/^listen_port = (\\d+)$/m.exec(conf)[1]);
const mode = /^fake_mode = (\\w+)$/m.exec(conf)[1];
const srv = http.createServer((req, res) => { res.writeHead(req.url === '/healthz' ? 200 : 404); res.end('ok'); });
srv.listen(port, '127.0.0.1');
process.on('SIGTERM', () => {
    if (mode === 'asan') { process.stderr.write('==1==ERROR: AddressSanitizer: heap-use-after-free\\n'); process.exit(1); }
    if (mode === 'ubsan') { process.stderr.write('x.c:1:2: runtime error: signed integer overflow\\n'); process.exit(0); }
    if (mode === 'segv') { process.kill(process.pid, 'SIGSEGV'); return; }
    if (mode === 'code') process.exit(3);
    process.exit(0);
});
`;
        const bin = path.join(fakeBuild, 'gateway', 'pushgate');
        await fsp.writeFile(bin, script, { mode: 0o755 });
        const saved = process.env.PUSHGATE_BUILD_DIR;
        process.env.PUSHGATE_BUILD_DIR = fakeBuild;
        try {
            // A distinct module instance so BUILD_DIR is read again.
            h = await import(`./lib/harness.mjs?fake=${Date.now()}`);
        } finally {
            if (saved === undefined) delete process.env.PUSHGATE_BUILD_DIR;
            else process.env.PUSHGATE_BUILD_DIR = saved;
        }
        assert.equal(h.BUILD_DIR, fakeBuild);
    }

    for (const [mode, expect] of [
        ['clean', null],
        ['asan', /sanitizer report.*AddressSanitizer/s],
        ['ubsan', /sanitizer report.*runtime error:/s],
        ['segv', /killed by SIGSEGV/],
        ['code', /exit code 3/],
    ]) {
        test(`gw.stop() ${expect ? 'throws' : 'succeeds'} for mode ${mode}`, async () => {
            if (!h) await load();
            const stack = await h.startStack({ broker: false, gateway: { fake_mode: mode } });
            try {
                assert.equal(stack.gw.url, `http://127.0.0.1:${stack.gw.port}`);
                const r = await h.httpRequest('GET', `${stack.gw.url}/healthz`);
                assert.equal(r.status, 200);
                if (expect) {
                    await assert.rejects(stack.gw.stop(), expect);
                } else {
                    assert.deepEqual(await stack.gw.stop(), { code: 0, signal: null });
                }
                // A second stop neither throws again nor hangs.
                const again = await stack.gw.stop();
                assert.ok(again && 'code' in again);
            } finally {
                await stack.stop();
            }
            assert.equal(fs.existsSync(stack.dir), false);
        });
    }

    test('stack.stop() reports a crash the test did not check itself', async () => {
        if (!h) await load();
        const stack = await h.startStack({ broker: false, gateway: { fake_mode: 'asan' } });
        await assert.rejects(stack.stop(), /AddressSanitizer/);
        await stack.stop();
        assert.equal(fs.existsSync(stack.dir), false);
    });
});
