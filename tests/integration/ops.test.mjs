// Operating the gateway: --help lists every option of the option table, configuration errors name the
// file, line and option and exit with 2, /healthz and /readyz, and SIGTERM closing sessions with 1001
// before a clean exit 0, refusing new sessions while it drains.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

import { GATEWAY_BIN, SANITIZE, httpRequest, makeTempDir, rawExchange, removeTempDir, scaled, startStack, waitFor, wsConnect } from './lib/harness.mjs';

const stacks = [];
const dirs = [];

after(async () => {
    for (const s of stacks) await s.stop().catch(() => {});
    for (const d of dirs) await removeTempDir(d).catch(() => {});
});

function run(args) {
    const env = { ...process.env };
    // option values from the environment would change what these tests see
    for (const k of Object.keys(env)) if (k.startsWith('PUSHGATE_') && k !== 'PUSHGATE_BUILD_DIR' && k !== 'PUSHGATE_SANITIZE') delete env[k];
    if (SANITIZE) env.ASAN_OPTIONS = 'detect_leaks=1';
    const r = spawnSync(GATEWAY_BIN, args, { encoding: 'utf8', env, timeout: 30000 });
    if (r.error) throw r.error;
    return r;
}

function assertNoSanitizer(r) {
    for (const m of ['AddressSanitizer', 'LeakSanitizer', 'runtime error:']) {
        assert.ok(!r.stderr.includes(m), `sanitizer report:\n${r.stderr}`);
    }
}

async function confFile(name, lines) {
    const dir = await makeTempDir('pushgate-ops-');
    dirs.push(dir);
    const file = path.join(dir, name);
    await fsp.writeFile(file, lines.join('\n') + '\n');
    return file;
}

// ---------------------------------------------------------------------------------------------

test('--help exits 0 and lists every option of the option table', { timeout: 30000 }, () => {
    const md = run(['--markdown-options']);
    assert.equal(md.status, 0, md.stderr);
    const names = [...md.stdout.matchAll(/^\| `([a-z0-9_]+)` \|/gm)].map((m) => m[1]);
    assert.ok(names.length >= 20, `option table parsed: ${names.length} options`);
    for (const must of ['listen_port', 'broker_host', 'max_frame_bytes', 'max_queue_bytes', 'shutdown_grace_ms', 'log_level']) {
        assert.ok(names.includes(must), `${must} in the option table`);
    }

    const help = run(['--help']);
    assert.equal(help.status, 0, help.stderr);
    assertNoSanitizer(help);
    assert.match(help.stdout, /Usage:/);
    const missing = names.filter((n) => !new RegExp(`--${n}\\b`).test(help.stdout));
    assert.deepEqual(missing, [], 'options missing from --help');
    // each option's environment variable is documented too
    for (const n of names) assert.ok(help.stdout.includes(`PUSHGATE_${n.toUpperCase()}`), `env name of ${n}`);
    assert.equal(run(['-h']).status, 0);
});

test('config error: a bad value names file, line and option; exit code 2', { timeout: 30000 }, async () => {
    const file = await confFile('bad-value.conf', ['# pushgate', 'listen_host = 127.0.0.1', 'listen_port = lots', 'log_level = info']);
    const r = run(['--config', file]);
    assert.equal(r.status, 2, `exit ${r.status}\n${r.stderr}`);
    assert.ok(r.stderr.includes(`${file}:3: listen_port`), r.stderr);
    assert.equal(r.stdout, '');
    assertNoSanitizer(r);

    const range = await confFile('range.conf', ['listen_port = 70000']);
    const r2 = run(['--config', range]);
    assert.equal(r2.status, 2);
    assert.ok(r2.stderr.includes(`${range}:1: listen_port`), r2.stderr);
    assertNoSanitizer(r2);
});

test('config error: an unknown option names file and line; so do bad app sections', { timeout: 30000 }, async () => {
    const file = await confFile('unknown.conf', ['listen_port = 8080', '', '# comment', 'listen_prot = 8081']);
    const r = run(['--config', file]);
    assert.equal(r.status, 2, r.stderr);
    assert.ok(r.stderr.includes(`${file}:4: listen_prot`), r.stderr);
    assertNoSanitizer(r);

    const app = await confFile('app.conf', ['listen_port = 8080', '[app demo]', 'key = k', 'secret = s', 'colour = blue']);
    const r2 = run(['--config', app]);
    assert.equal(r2.status, 2, r2.stderr);
    assert.ok(r2.stderr.includes(`${app}:5: colour`), r2.stderr);
    assertNoSanitizer(r2);

    const missing = run(['--config', path.join(path.dirname(app), 'does-not-exist.conf')]);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /does-not-exist\.conf/);

    // the command line is checked too, and --check accepts a good file
    assert.equal(run(['--no_such_option', '1']).status, 2);
    // an app named like the gateway's broker account would capture the gateway's own broker login
    const clash = await confFile('clash.conf', ['broker_username = pushgate', '[app pushgate]', 'secret = s']);
    const rc = run(['--config', clash]);
    assert.equal(rc.status, 2, rc.stderr);
    assert.ok(rc.stderr.includes(`${clash}:2: [app pushgate]: app id equals broker_username`), rc.stderr);
    const good = await confFile('good.conf', ['listen_port = 8080', '[app demo]', 'key = k', 'secret = s']);
    const ok = run(['--config', good, '--check']);
    assert.equal(ok.status, 0, ok.stderr);
});

test('/healthz 200; /readyz 200, then 503 once the broker is gone', { timeout: 30000 }, async () => {
    const stack = await startStack();
    stacks.push(stack);
    const h = await httpRequest('GET', `${stack.gw.url}/healthz`);
    assert.equal(h.status, 200);
    assert.deepEqual(h.json, { status: 'ok' });
    await waitFor(async () => (await httpRequest('GET', `${stack.gw.url}/readyz`)).status === 200, { message: '/readyz 200' });
    await stack.broker.stop();
    await waitFor(async () => (await httpRequest('GET', `${stack.gw.url}/readyz`)).status === 503, { timeoutMs: scaled(10000), message: '/readyz 503' });
    const r = await httpRequest('GET', `${stack.gw.url}/readyz`);
    assert.equal(r.json.broker, false);
    assert.equal((await httpRequest('GET', `${stack.gw.url}/healthz`)).status, 200, 'alive while not ready');
    await stack.stop();
});

test('SIGTERM: connected sessions get close code 1001 and the process exits 0', { timeout: 60000 }, async () => {
    const stack = await startStack({ gateway: { shutdown_grace_ms: 30000 } });
    stacks.push(stack);
    const sessions = [];
    for (let i = 0; i < 3; i++) {
        const c = await wsConnect(`${stack.gw.wsUrl}/v1/demo`);
        await c.next((f) => f.type === 'open');
        c.send({ type: 'subscribe', room: `term-${i}`, cb: 1 });
        await c.next((f) => f.cb === 1);
        sessions.push(c);
    }
    const t0 = Date.now();
    const res = await stack.gw.stop();
    const took = Date.now() - t0;
    assert.deepEqual(res, { code: 0, signal: null });
    for (const c of sessions) {
        const info = await c.closed;
        assert.equal(info.code, 1001, JSON.stringify(info));
    }
    // sessions were closed at once, not after the 30 s grace period ran out (a sanitizer exit scans for leaks first)
    assert.ok(took < scaled(5000), `exit took ${took} ms`);
    await waitFor(() => /stopped/.test(stack.gw.logs()), { message: 'the gateway logs its stop' });
    await stack.stop();
});

test('SIGTERM drain: a publish awaiting the broker is answered before exit; meanwhile new sessions and /readyz get 503', { timeout: 40000 }, async () => {
    const stack = await startStack({ gateway: { shutdown_grace_ms: 20000, publish_timeout_ms: 20000 } });
    stacks.push(stack);
    const published = async () => {
        const m = (await httpRequest('GET', `${stack.gw.url}/metrics`)).body.match(/^pushgate_published_total\{app="demo"\} (\d+)$/m);
        return m ? Number(m[1]) : 0;
    };
    // A stopped broker never acknowledges: the REST publish stays pending, which keeps the gateway draining.
    stack.broker.proc.kill('SIGSTOP');
    try {
        const answer = httpRequest('POST', `${stack.gw.url}/demo/drain/publish`, {
            body: '{"last":true}',
            headers: { 'Content-Type': 'application/json' },
            timeoutMs: 30000,
        });
        await waitFor(async () => (await published()) === 1, { message: 'the publish was handed to the broker' });
        stack.gw.signal('SIGTERM');
        await waitFor(async () => (await httpRequest('GET', `${stack.gw.url}/readyz`)).status === 503, { message: '/readyz 503 while draining' });
        await assert.rejects(
            wsConnect(`${stack.gw.wsUrl}/v1/demo`),
            (e) => e.statusCode === 503 && JSON.parse(e.body).error.message === 'shutting down',
            'a new native upgrade is refused',
        );
        await assert.rejects(
            wsConnect(`${stack.gw.wsUrl}/app/demo-key?protocol=7&client=js&version=8.6.0`),
            (e) => e.statusCode === 503 && JSON.parse(e.body).error.message === 'shutting down',
            'a new Pusher upgrade is refused',
        );
        const poll = await httpRequest('GET', `${stack.gw.url}/socket.io/?EIO=4&transport=polling`);
        assert.equal(poll.status, 503, poll.body);
        assert.equal(JSON.parse(poll.body).error.message, 'shutting down');
        await delay(1000); // ten drain checks later
        assert.equal(stack.gw.proc.exitCode, null, 'still draining while the publish is unanswered');
        stack.broker.proc.kill('SIGCONT');
        const res = await answer;
        assert.equal(res.status, 200, res.body);
        assert.deepEqual(await stack.gw.stop(), { code: 0, signal: null });
    } finally {
        stack.broker.proc.kill('SIGCONT');
    }
});

test('a connection silent past the accept deferral (TCP_DEFER_ACCEPT) is still served when its request comes', { timeout: 30000 }, async () => {
    const stack = await startStack();
    stacks.push(stack);
    const c = net.connect(stack.gw.port, '127.0.0.1');
    try {
        await new Promise((resolve, reject) => c.once('connect', resolve).once('error', reject));
        await delay(2500); // past PG_LISTEN_DEFER_ACCEPT_S (1 s): the kernel hands it over without bytes
        const a = await rawExchange(c, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${stack.gw.port}\r\n\r\n`);
        assert.equal(a.status, 200, a.body);
    } finally {
        c.destroy();
    }
});

test('GET /metrics: Prometheus text with sessions, traffic counters and broker state', { timeout: 30000 }, async () => {
    const stack = await startStack();
    stacks.push(stack);
    const scrape = async () => {
        const r = await httpRequest('GET', `${stack.gw.url}/metrics`);
        assert.equal(r.status, 200);
        assert.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4/);
        const values = new Map();
        for (const line of r.body.split('\n')) {
            if (!line || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
            const m = line.match(/^([a-z_]+(?:\{[^}]*\})?) (\d+)$/);
            assert.ok(m, `not a Prometheus sample line: ${line}`);
            values.set(m[1], Number(m[2]));
        }
        return values;
    };
    const before = await scrape();
    assert.equal(before.get('pushgate_broker_connected'), 1);
    assert.equal(before.get('pushgate_sessions{app="demo",protocol="native"}'), 0);

    const c = await wsConnect(`${stack.gw.wsUrl}/v1/demo`);
    const p = await wsConnect(`${stack.gw.wsUrl}/app/demo-key?protocol=7`);
    await c.next((f) => f.type === 'open');
    await p.next((f) => f.event === 'pusher:connection_established');
    c.send({ type: 'subscribe', room: 'm', cb: 1 });
    await c.next((f) => f.cb === 1);
    c.send({ type: 'publish', room: 'm', message: 'x', cb: 2 });
    await c.next((f) => f.type === 'message');
    const after = await scrape();
    assert.equal(after.get('pushgate_sessions{app="demo",protocol="native"}'), 1);
    assert.equal(after.get('pushgate_sessions{app="demo",protocol="pusher"}'), 1);
    assert.ok(after.get('pushgate_frames_in_total{app="demo"}') >= 2);
    assert.equal(after.get('pushgate_published_total{app="demo"}') - before.get('pushgate_published_total{app="demo"}'), 1);
    assert.ok(after.get('pushgate_delivered_total{app="demo"}') >= 1);
    assert.ok(after.get('pushgate_frames_out_total{app="demo"}') >= 4); // open, established, replies, the message
    c.close();
    p.close();

    await stack.broker.stop();
    await waitFor(async () => (await scrape()).get('pushgate_broker_connected') === 0);
});

test('allowed_origins: a WebSocket upgrade from another Origin gets 403, on both protocols', { timeout: 30000 }, async () => {
    const apps = [{ id: 'demo', key: 'demo-key', secret: 'demo-secret', allowed_origins: 'https://app.example, http://127.0.0.1:9' }];
    const stack = await startStack({ apps });
    stacks.push(stack);
    for (const path of ['/v1/demo', '/app/demo-key?protocol=7']) {
        const url = `${stack.gw.wsUrl}${path}`;
        await assert.rejects(
            wsConnect(url, { headers: { Origin: 'https://evil.example' } }),
            (e) => e.statusCode === 403 && JSON.parse(e.body).error.message === 'origin not allowed',
        );
        const ok = await wsConnect(url, { headers: { Origin: 'https://app.example' } });
        await ok.next(() => true);
        ok.close();
        const plain = await wsConnect(url); // no Origin: not a browser, nothing to protect
        await plain.next(() => true);
        plain.close();
    }
    // a bad value names file and line
    const bad = await confFile('origins.conf', ['[app demo]', 'secret = s', 'allowed_origins = app.example']);
    const r = run(['--config', bad]);
    assert.equal(r.status, 2);
    assert.ok(r.stderr.includes(`${bad}:3: allowed_origins`), r.stderr);
});

test('a client offering an h2c upgrade (curl --http2) is answered, not refused as an unknown WebSocket path', { timeout: 30000 }, async () => {
    const stack = await startStack();
    stacks.push(stack);
    const r = spawnSync('curl', ['-s', '-m', '10', '--http2', '-w', '\n%{http_code}', `${stack.gw.url}/healthz`], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.split('\n'), ['{"status":"ok"}', '200']);
});

test('max_sessions: upgrades and socket.io handshakes over the limit get 503; a freed slot is usable again', { timeout: 30000 }, async () => {
    const stack = await startStack({ gateway: { max_sessions: 2 } });
    stacks.push(stack);
    const url = `${stack.gw.wsUrl}/v1/demo`;
    const a = await wsConnect(url);
    const b = await wsConnect(`${stack.gw.wsUrl}/app/demo-key?protocol=7&client=js&version=8.6.0`);
    await assert.rejects(
        wsConnect(url),
        (e) => e.statusCode === 503 && /^application\/json/.test(e.headers['content-type']) && /max_sessions/.test(JSON.parse(e.body).error.message),
        'a third WebSocket is refused with a JSON error',
    );
    const poll = await httpRequest('GET', `${stack.gw.url}/socket.io/?EIO=4&transport=polling`);
    assert.equal(poll.status, 503, poll.body);
    assert.match(poll.body, /max_sessions/);
    a.terminate();
    await waitFor(async () => wsConnect(url).then((c) => (c.terminate(), true), () => false), { message: 'a slot frees up' });
    b.terminate();
});
