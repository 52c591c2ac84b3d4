// Pusher activity: the server pings a silent connection and closes it with 4201 when the ping goes
// unanswered; any frame from the client counts as activity.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';

import { scaled, startStack, wsConnect } from './lib/harness.mjs';

// The polite client's pong must reach the gateway within this (whole seconds, as configured); more under sanitizers.
const PONG_TIMEOUT_S = Math.ceil(scaled(1000) / 1000);

let stack;
after(async () => {
    if (stack) await stack.stop();
});

test('a silent connection is pinged, then closed with 4201; an answering one stays', { timeout: 30000 }, async () => {
    stack = await startStack({ gateway: { pusher_activity_timeout_s: 1, pusher_pong_timeout_s: PONG_TIMEOUT_S } });
    const url = `${stack.gw.wsUrl}/app/demo-key?protocol=7&client=js&version=8.4.0`;
    const silent = await wsConnect(url);
    const polite = await wsConnect(url);
    const est = await silent.next((f) => f.event === 'pusher:connection_established');
    assert.equal(JSON.parse(est.data).activity_timeout, 1, 'the configured timeout is announced');

    // the polite client answers every server ping with a pong
    polite.ws.on('message', (raw) => {
        if (JSON.parse(raw).event === 'pusher:ping') polite.send({ event: 'pusher:pong', data: {} });
    });
    await silent.next((f) => f.event === 'pusher:ping', scaled(3000));
    const err = await silent.next((f) => f.event === 'pusher:error', PONG_TIMEOUT_S * 1000 + scaled(3000));
    assert.equal(err.data.code, 4201);
    const closed = await silent.closed;
    assert.equal(closed.code, 4201);

    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(polite.closeInfo, null, 'a connection that answers the ping stays open');
    assert.ok(polite.frames.some((f) => f.event === 'pusher:ping'), 'it was pinged');
    polite.close();
});
