// socket.io-client's browser bundle (dist/socket.io.min.js, unmodified) in headless Chromium, long-polling only
// (what old browsers without WebSockets get), on a page of ANOTHER origin than the gateway, as
// notification-socket.io pages usually are: the seed's snippet registers with a connectionId the backend
// registered, and a push made through the REST API arrives as a `message` event.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';

import { launchChromium } from './lib/browser.mjs';
import { DEFAULT_APPS, REPO_DIR, httpRequest, startStack } from './lib/harness.mjs';

const SIO_WEB = path.join(REPO_DIR, 'node_modules', 'socket.io-client', 'dist', 'socket.io.min.js');
const TOKEN = 'demo-push-token-0123456789';
const WAIT_MS = 10000;

let stack;
let browser;
let site;

before(async () => {
    stack = await startStack({ apps: [{ ...DEFAULT_APPS[0], push_token: TOKEN }, DEFAULT_APPS[1]] });
    browser = await launchChromium();
    // the application's own site: a blank page on another port (another origin)
    site = http.createServer((req, res) => {
        res.writeHead(200, { 'Content-Type': 'text/html' });
        res.end('<!doctype html><title>app</title>');
    });
    await new Promise((r) => site.listen(0, '127.0.0.1', r));
});

after(async () => {
    try {
        if (browser) await browser.close();
        if (site) await new Promise((r) => site.close(r));
    } finally {
        if (stack) await stack.stop();
    }
});

test("socket.io-client in Chromium, transports ['polling'], cross-origin: register, then a push arrives", { timeout: 60000 }, async () => {
    const user = `browser-${process.pid}`;
    const connectionId = `conn-${process.pid}-${Date.now()}`;
    const url = stack.gw.url;
    // the backend's part: register the pair it hands to the page
    const reg = await httpRequest('PUT', `${url}/api/${user}/register?connectionId=${connectionId}`, {
        headers: { 'X-AUTH-TOKEN': TOKEN },
    });
    assert.equal(reg.status, 200, reg.body);

    const page = await browser.newPage();
    const problems = [];
    page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
    const resp = await page.goto(`http://127.0.0.1:${site.address().port}/`, { waitUntil: 'load', timeout: WAIT_MS });
    assert.equal(resp.status(), 200);
    await page.addScriptTag({ path: SIO_WEB });
    assert.equal(await page.evaluate(() => typeof window.io), 'function', 'the browser bundle defines window.io');

    const registered = await page.evaluate(
        ({ url: u, userId, connectionId: cid }) =>
            new Promise((resolve, reject) => {
                window.received = [];
                const notificationSocketIo = { url: u, connectionId: cid };
                // the seed's snippet (transports pinned to long-polling)
                var socket = io.connect(notificationSocketIo.url, { transports: ['polling'] });
                socket.on('connect', function () {
                    socket.emit('register', userId, notificationSocketIo.connectionId);
                });
                socket.on('message', function (msg) {
                    window.received.push(msg);
                });
                window.socket = socket;
                socket.on('registered', (r) => resolve({ ...r, transport: socket.io.engine.transport.name }));
                socket.on('error', (e) => reject(new Error(`error event ${JSON.stringify(e)}`)));
                socket.on('connect_error', (e) => reject(new Error(`connect_error ${e.message}`)));
                setTimeout(() => reject(new Error('not registered in time')), 8000);
            }),
        { url, userId: user, connectionId },
    );
    assert.deepEqual(registered, { userId: user, transport: 'polling' });

    const message = { title: 'Title of message', body: 'Body of message', params: { from: 'backend' } };
    const r = await httpRequest('POST', `${url}/api/${user}/push`, { headers: { 'X-AUTH-TOKEN': TOKEN }, body: { message } });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json, { recipients: 1 });
    await page.waitForFunction(() => window.received.length > 0, null, { timeout: WAIT_MS });
    assert.deepEqual(await page.evaluate(() => window.received), [message]);
    assert.equal(await page.evaluate(() => window.socket.io.engine.transport.name), 'polling');
    await page.evaluate(() => window.socket.disconnect());
    await page.close();
    assert.deepEqual(problems, []);
});

test('polling with extraHeaders from another origin: the CORS preflight is answered and the session works', { timeout: 60000 }, async () => {
    const user = `browser-xh-${process.pid}`;
    const connectionId = `conn-xh-${process.pid}-${Date.now()}`;
    const url = stack.gw.url;
    const reg = await httpRequest('PUT', `${url}/api/${user}/register?connectionId=${connectionId}`, { headers: { 'X-AUTH-TOKEN': TOKEN } });
    assert.equal(reg.status, 200, reg.body);
    const page = await browser.newPage();
    const problems = [];
    page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
    await page.goto(`http://127.0.0.1:${site.address().port}/`, { waitUntil: 'load', timeout: WAIT_MS });
    await page.addScriptTag({ path: SIO_WEB });
    const registered = await page.evaluate(
        ({ url: u, userId, connectionId: cid }) =>
            new Promise((resolve, reject) => {
                window.received = [];
                // a custom header makes the browser ask first (CORS preflight, which Chromium does not show to
                // playwright): without an answer to it, the polling requests are blocked and nothing connects
                const socket = io(u, { transports: ['polling'], extraHeaders: { 'X-Client-Version': '7' } });
                socket.on('connect', () => socket.emit('register', userId, cid));
                socket.on('message', (msg) => window.received.push(msg));
                window.socket = socket;
                socket.on('registered', resolve);
                socket.on('connect_error', (e) => reject(new Error(`connect_error ${e.message}`)));
                setTimeout(() => reject(new Error('not registered in time')), 8000);
            }),
        { url, userId: user, connectionId },
    );
    assert.deepEqual(registered, { userId: user });
    const r = await httpRequest('POST', `${url}/api/${user}/push`, { headers: { 'X-AUTH-TOKEN': TOKEN }, body: { message: { n: 1 } } });
    assert.deepEqual(r.json, { recipients: 1 });
    await page.waitForFunction(() => window.received.length > 0, null, { timeout: WAIT_MS });
    assert.deepEqual(await page.evaluate(() => window.received), [{ n: 1 }]);
    await page.evaluate(() => window.socket.disconnect());
    await page.close();
    assert.deepEqual(problems, []);
});
