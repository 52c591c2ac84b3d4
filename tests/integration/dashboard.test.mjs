// The per-app dashboard: /dashboard/{app}/data behind the admin credentials counts the open
// WebSocket sessions of every protocol, keeps a history from the gateway's start and adds the other
// nodes' counts; /dashboard/{app} renders it in a real headless Chromium, whose screenshot is kept in
// tests/artifacts/dashboard-demo.png.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';

import { launchChromium } from './lib/browser.mjs';
import { subscribeNative } from './lib/native.mjs';
import { REPO_DIR, freePort, httpRequest, startStack, waitFor, wsConnect } from './lib/harness.mjs';

const APP = 'demo';
const ADMIN = { username: 'ops', password: `dashboard-${process.pid}-pw` }; // admin_password needs 12+ characters: a short pid must not make it too short
const ARTIFACTS_DIR = path.join(REPO_DIR, 'tests', 'artifacts');
const SCREENSHOT = path.join(ARTIFACTS_DIR, `dashboard-${APP}.png`);

let stack;
let browser;
const sockets = [];

after(async () => {
    for (const c of sockets) c.terminate();
    if (browser) await browser.close().catch(() => {});
    if (stack) await stack.stop();
});

const basic = ({ username, password }) => ({ Authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` });

function get(gw, p, creds = ADMIN) {
    return httpRequest('GET', `${gw.url}${p}`, { headers: creds ? basic(creds) : {} });
}

async function native(gw) {
    const c = await wsConnect(`${gw.wsUrl}/v1/${APP}`);
    sockets.push(c);
    await c.next((f) => f.type === 'open');
    return c;
}

async function pusher(gw) {
    const c = await wsConnect(`${gw.wsUrl}/app/demo-key?protocol=7&client=js&version=8.4.0`);
    sockets.push(c);
    await c.next((f) => f.event === 'pusher:connection_established');
    return c;
}

test('dashboard data and page: admin only, live session counts, history, cluster total, Chromium render', { timeout: 120000 }, async () => {
    // the admin API keeps its apps in apps_db (relative to the config file), so it comes with the credentials
    stack = await startStack({ gateway: { admin_user: ADMIN.username, admin_password: ADMIN.password, apps_db: 'apps.db' } });
    const gw = stack.gw;

    // credentials: none, wrong user, wrong password; the page as well as its data
    for (const creds of [null, { ...ADMIN, username: 'nobody' }, { ...ADMIN, password: 'wrong' }]) {
        for (const p of [`/dashboard/${APP}/data`, `/dashboard/${APP}`]) {
            const r = await get(gw, p, creds);
            assert.equal(r.status, 401, `${p} with ${JSON.stringify(creds)}: ${r.status} ${r.body}`);
            assert.match(r.headers['www-authenticate'] || '', /^Basic /, 'a 401 asks for Basic credentials');
            assert.equal(r.json?.error?.code, 401, r.body);
            assert.ok(!r.body.includes('"history"'), 'no data without credentials');
        }
    }
    // the embedded page is not reachable by some other path without credentials
    assert.equal((await get(gw, '/dashboard.html', null)).status, 404);

    // right credentials: unknown app, stray paths, methods
    let r = await get(gw, '/dashboard/no-such-app/data');
    assert.equal(r.status, 404, r.body);
    assert.equal(r.json?.error?.code, 404);
    assert.equal((await get(gw, '/dashboard/no-such-app')).status, 404);
    assert.equal((await get(gw, `/dashboard/${APP}/other`)).status, 404);
    r = await httpRequest('POST', `${gw.url}/dashboard/${APP}/data`, { headers: basic(ADMIN), body: {} });
    assert.equal(r.status, 405, r.body);

    // before any session: zero now, and the sample taken at start is already there
    r = await get(gw, `/dashboard/${APP}/data`);
    assert.equal(r.status, 200, r.body);
    assert.match(r.headers['content-type'], /^application\/json/);
    assert.equal(r.json.app, APP);
    assert.equal(r.json.now.sessions, 0);
    assert.ok(r.json.history.length >= 2, `a start sample plus the "now" point: ${JSON.stringify(r.json.history)}`);
    assert.ok(r.json.history[0].t >= r.json.started_ms && r.json.history[0].t <= r.json.now.t, 'start sample time');

    // three native sessions and two Pusher sessions on this node
    for (let i = 0; i < 3; i++) await native(gw);
    const p1 = await pusher(gw);
    await pusher(gw);
    const open = 5;
    r = await get(gw, `/dashboard/${APP}/data`);
    assert.equal(r.status, 200, r.body);
    const d = r.json;
    assert.equal(d.app, APP);
    assert.equal(typeof d.node, 'string');
    assert.ok(d.node.length > 0);
    assert.equal(d.now.sessions, open, JSON.stringify(d.now));
    assert.equal(d.now.by_protocol.native, 3, JSON.stringify(d.now.by_protocol));
    assert.equal(d.now.by_protocol.pusher, 2, JSON.stringify(d.now.by_protocol));
    assert.equal(d.now.cluster_sessions, open, 'one node: the cluster total is this node');
    assert.equal(d.now.cluster_nodes, 1);
    assert.equal(d.interval_ms, 10000);
    assert.equal(d.window_ms, 3600000);
    assert.ok(Array.isArray(d.history) && d.history.length >= 1, 'history has samples');
    for (const s of d.history) {
        assert.ok(Number.isInteger(s.t) && Number.isInteger(s.sessions), JSON.stringify(s));
        assert.ok(s.t > d.now.t - d.window_ms && s.t <= d.now.t, `sample within the last hour: ${s.t}`);
    }
    assert.deepEqual(d.history.at(-1), { t: d.now.t, sessions: open }, 'the history ends with "now"');
    for (const k of ['frames_in', 'bytes_in', 'frames_out', 'bytes_out', 'published', 'publish_failed', 'delivered', 'slow_closes']) {
        assert.ok(Number.isInteger(d.stats[k]) && d.stats[k] >= 0, `stats.${k}: ${d.stats[k]}`);
    }
    assert.ok(d.stats.frames_out >= open, `every session got a greeting frame: frames_out ${d.stats.frames_out}`);
    // the other app's dashboard does not count them
    assert.equal((await get(gw, '/dashboard/secure/data')).json.now.sessions, 0);

    // a closed session leaves the count
    await p1.close();
    await waitFor(async () => (await get(gw, `/dashboard/${APP}/data`)).json.now.sessions === open - 1, {
        message: 'now.sessions drops after a close',
    });
    const live = open - 1;
    const closedAt = Date.now();

    // a second node on the same broker: each node counts its own sessions, the cluster total adds them up
    const port2 = await freePort();
    const gw2 = await stack.startGateway({ port: port2, args: ['--listen_port', String(port2)] });
    await native(gw2);
    await pusher(gw2);
    await waitFor(
        async () => {
            const n = (await get(gw, `/dashboard/${APP}/data`)).json.now;
            return n.cluster_sessions === live + 2 && n.cluster_nodes === 2 && n.cluster_nodes_reporting === 2;
        },
        { timeoutMs: 10000, message: 'node 1 sees node 2 sessions in cluster_sessions' },
    );
    const n2 = (await get(gw2, `/dashboard/${APP}/data`)).json;
    assert.equal(n2.now.sessions, 2, 'node 2 counts only its own sessions');
    assert.notEqual(n2.node, d.node);
    await waitFor(async () => (await get(gw2, `/dashboard/${APP}/data`)).json.now.cluster_sessions === live + 2, {
        timeoutMs: 10000,
        message: 'node 2 sees node 1 sessions in cluster_sessions',
    });

    // a sample every 10 s: wait for the next one after the start sample
    const samples = await waitFor(
        async () => {
            const h = (await get(gw, `/dashboard/${APP}/data`)).json.history.slice(0, -1); // without "now"
            return h.length >= 2 && h;
        },
        { timeoutMs: 15000, intervalMs: 250, message: 'a second sample 10 s after the first' },
    );
    const spacing = samples[1].t - samples[0].t;
    assert.ok(spacing >= 9000 && spacing <= 12000, `samples 10 s apart: ${spacing} ms`);
    for (const s of samples.filter((x) => x.t > closedAt)) assert.equal(s.sessions, live, 'a sample counts the open sessions');

    // the page in headless Chromium, with the admin credentials
    browser = await launchChromium();
    const context = await browser.newContext({ viewport: { width: 1000, height: 600 }, httpCredentials: ADMIN });
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
    page.on('request', (req) => {
        if (!req.url().startsWith(gw.url)) problems.push(`external request: ${req.url()}`);
    });
    const resp = await page.goto(`${gw.url}/dashboard/${APP}`, { timeout: 15000 });
    assert.equal(resp.status(), 200);
    assert.match(resp.headers()['content-type'], /^text\/html/);
    await page.waitForSelector('body[data-ready="1"]', { timeout: 15000 });
    assert.equal((await page.textContent('#now-sessions')).trim(), String(live), 'the page shows the real count');
    assert.equal((await page.textContent('#app')).trim(), APP);
    assert.equal((await page.textContent('#cluster-sessions')).trim(), String(live + 2));
    assert.equal((await page.textContent('#status')).trim(), 'live');
    // the chart was drawn: a good share of the canvas holds the line colour or its fill
    const drawn = await page.evaluate(() => {
        const c = document.getElementById('chart');
        const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let ink = 0, line = 0;
        for (let i = 0; i < px.length; i += 4) {
            if (px[i + 3] > 0) ink++;
            if (px[i] === 0x24 && px[i + 1] === 0x56 && px[i + 2] === 0xa6 && px[i + 3] === 255) line++;
        }
        return { w: c.width, h: c.height, ink, line };
    });
    assert.ok(drawn.w >= 600 && drawn.h >= 200, `canvas size ${JSON.stringify(drawn)}`);
    assert.ok(drawn.ink > 2000, `chart has axes, labels and data: ${JSON.stringify(drawn)}`);
    assert.ok(drawn.line > 20, `the session line is drawn: ${JSON.stringify(drawn)}`);
    assert.deepEqual(problems, []);

    await fsp.mkdir(ARTIFACTS_DIR, { recursive: true });
    await page.screenshot({ path: SCREENSHOT, timeout: 15000 });
    const size = fs.statSync(SCREENSHOT).size;
    process.stdout.write(`dashboard screenshot: ${SCREENSHOT} (${size} bytes)\n`);
    assert.ok(size > 20 * 1024, `screenshot is ${size} bytes`);
    await context.close();
});

test('an app named dashboard: its REST publish reaches its subscribers, and its dashboard is still admin only', { timeout: 60000 }, async () => {
    const apps = [{ id: 'dashboard', key: 'dashboard-key', secret: 'dashboard-secret', require_auth: false }];
    const own = await startStack({ apps, gateway: { admin_user: ADMIN.username, admin_password: ADMIN.password, apps_db: 'apps.db' } });
    try {
        const gw = own.gw;
        const sub = await wsConnect(`${gw.wsUrl}/v1/dashboard`);
        sockets.push(sub);
        await subscribeNative(sub, 'data'); // "data": the dashboard's own last path segment, as a channel
        const res = await httpRequest('POST', `${gw.url}/dashboard/data/publish`, {
            body: JSON.stringify({ n: 1 }),
            headers: { 'Content-Type': 'application/json' },
        });
        assert.equal(res.status, 200, res.body);
        const m = await sub.next((f) => f.type === 'message' && f.room === 'data');
        assert.deepEqual(m.message, { n: 1 });
        assert.equal((await get(gw, '/dashboard/dashboard/data', null)).status, 401, 'the dashboard asks for credentials');
        const data = await get(gw, '/dashboard/dashboard/data');
        assert.equal(data.status, 200, data.body);
    } finally {
        await own.stop();
    }
});
