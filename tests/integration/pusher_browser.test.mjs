// pusher-js's browser build (dist/web/pusher.min.js, unmodified) in headless Chromium against a real
// mosquitto + pushgate stack: one page of the gateway's own origin loads it, connects to /app/{key},
// subscribes to a private channel authorized by the `pusher` server SDK (running in node, reached through
// an exposed function as a page would reach its backend's auth endpoint), receives an SDK-triggered event
// and an MQTT device's publish, and sends a client event that a node pusher-js client receives.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';

import PusherJS from 'pusher-js';

import { launchChromium } from './lib/browser.mjs';
import { REPO_DIR, mqttConnect, startStack, waitFor } from './lib/harness.mjs';
import { DEMO, SOCKET_ID, pusherJsOptions, pusherServer } from './lib/pusher.mjs';

const PUSHER_WEB = path.join(REPO_DIR, 'node_modules', 'pusher-js', 'dist', 'web', 'pusher.min.js');
const WAIT_MS = 10000;

let stack;
let server;
let browser;
let nodeClient;
let device;

before(async () => {
    stack = await startStack();
    server = pusherServer(stack.gw.port);
    browser = await launchChromium();
});

after(async () => {
    try {
        if (nodeClient) nodeClient.disconnect();
        if (device) device.end(true);
        if (browser) await browser.close();
    } finally {
        if (stack) await stack.stop();
    }
});

test('pusher-js in Chromium: private channel via the SDK’s auth, SDK and MQTT events in, a client event out', { timeout: 50000 }, async () => {
    const channel = `private-browser-${process.pid}`;
    const page = await browser.newPage();
    const problems = [];
    page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));

    // the page's "backend": signs the subscription with the app secret, which never enters the page
    await page.exposeFunction('authorizeChannel', (socketId, channelName) => server.authorizeChannel(socketId, channelName));
    // a page of the gateway's own origin, so the WebSocket to the same host:port is same-origin
    const resp = await page.goto(`${stack.gw.url}/demo`, { waitUntil: 'load', timeout: WAIT_MS });
    assert.equal(resp.status(), 200);
    await page.addScriptTag({ path: PUSHER_WEB });
    assert.equal(await page.evaluate(() => typeof window.Pusher), 'function', 'the browser build defines window.Pusher');

    const socketId = await page.evaluate(
        ({ key, options, channel: name }) =>
            new Promise((resolve, reject) => {
                const pusher = new window.Pusher(key, {
                    ...options,
                    channelAuthorization: {
                        customHandler: ({ socketId: sid, channelName }, cb) =>
                            window.authorizeChannel(sid, channelName).then((auth) => cb(null, auth), (err) => cb(err, null)),
                    },
                });
                window.received = [];
                window.pusherClient = pusher;
                const ch = pusher.subscribe(name);
                ch.bind_global((event, data) => {
                    if (!event.startsWith('pusher:')) window.received.push({ event, data });
                });
                ch.bind('pusher:subscription_succeeded', () => resolve(pusher.connection.socket_id));
                ch.bind('pusher:subscription_error', (e) => reject(new Error(`subscription_error ${JSON.stringify(e)}`)));
                setTimeout(() => reject(new Error(`not subscribed; state ${pusher.connection.state}`)), 8000);
            }),
        { key: DEMO.key, options: pusherJsOptions(stack.gw.port), channel },
    );
    assert.match(socketId, SOCKET_ID);
    assert.equal(await page.evaluate(() => window.pusherClient.connection.state), 'connected');

    const received = () => page.evaluate(() => window.received);

    // the SDK triggers, the page receives
    const res = await server.trigger(channel, 'order-shipped', { id: 7, items: ['a', 'b'] });
    assert.equal(res.status, 200);
    await waitFor(async () => (await received()).length === 1, { timeoutMs: WAIT_MS, message: 'the page got the SDK event' });
    assert.deepEqual((await received())[0], { event: 'order-shipped', data: { id: 7, items: ['a', 'b'] } });

    // a device publishes on the channel's MQTT topic, the page receives
    device = await mqttConnect({ port: stack.broker.port, ...stack.gatewayUser, clientId: `browser-dev-${process.pid}` });
    await device.publishAsync(`pushgate/demo/c/${channel}`, '{"t":21}', {
        qos: 1,
        properties: { userProperties: { event: 'reading' } },
    });
    await waitFor(async () => (await received()).length === 2, { timeoutMs: WAIT_MS, message: 'the page got the MQTT publish' });
    assert.deepEqual((await received())[1], { event: 'reading', data: { t: 21 } });

    // the page sends a client event; a node pusher-js client on the same channel gets it, the page does not
    nodeClient = new PusherJS(DEMO.key, {
        ...pusherJsOptions(stack.gw.port),
        channelAuthorization: {
            customHandler: ({ socketId: sid, channelName }, cb) => cb(null, server.authorizeChannel(sid, channelName)),
        },
    });
    const nodeGot = [];
    const nodeCh = nodeClient.subscribe(channel);
    nodeCh.bind('client-hello', (data) => nodeGot.push(data));
    await new Promise((resolve, reject) => {
        nodeCh.bind('pusher:subscription_succeeded', resolve);
        nodeCh.bind('pusher:subscription_error', (e) => reject(new Error(JSON.stringify(e))));
    });
    const sent = await page.evaluate((name) => window.pusherClient.channel(name).trigger('client-hello', { from: 'browser' }), channel);
    assert.equal(sent, true);
    await waitFor(() => nodeGot.length === 1, { timeoutMs: WAIT_MS, message: 'node pusher-js got the browser’s client event' });
    assert.deepEqual(nodeGot[0], { from: 'browser' });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await received()).length, 2, 'the client event is not echoed to the page');
    assert.deepEqual(problems, []);
    await page.close();
});
