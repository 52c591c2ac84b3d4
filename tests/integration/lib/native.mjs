// Small helpers shared by the tests that speak the native protocol (/v1/{app}).
import assert from 'node:assert/strict';

import { httpRequest, wsConnect } from './harness.mjs';

// Resolves to what promise resolves to, or null after ms (the timer does not outlive the race).
export function within(promise, ms) {
    let timer;
    const timeout = new Promise((r) => {
        timer = setTimeout(() => r(null), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// A frame predicate: a message on room that also satisfies pred.
export function isMessage(room, pred = () => true) {
    return (f) => f.type === 'message' && f.room === room && pred(f);
}

// Waits for the "open" frame of a native client c (a harness wsConnect), subscribes it to room and asserts the
// subscribe was granted. Resolves to the reply.
export async function subscribeNative(c, room) {
    await c.next((f) => f.type === 'open');
    c.send({ type: 'subscribe', room, cb: 1 });
    const r = await c.next((f) => f.cb === 1);
    assert.equal(r.error, undefined, JSON.stringify(r));
    return r;
}

// A native client of app demo on gateway gw, subscribed to room; pushed to sockets (the test's list to close).
export async function nativeSubscriber(gw, room, sockets) {
    const c = await wsConnect(`${gw.wsUrl}/v1/demo`);
    sockets.push(c);
    await subscribeNative(c, room);
    return c;
}

// A REST publish of message (JSON) to room of app demo on gateway gw; resolves to the answer.
export function publishRest(gw, room, message) {
    return httpRequest('POST', `${gw.url}/demo/${room}/publish`, {
        body: JSON.stringify(message),
        headers: { 'Content-Type': 'application/json' },
    });
}
