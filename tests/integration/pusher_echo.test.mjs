// Laravel Echo (its `pusher` broadcaster over the unmodified pusher-js 8 node build) against a real
// mosquitto + pushgate stack, with channel authorization signed by the `pusher` server SDK the way a
// Laravel backend's /broadcasting/auth answers: a private channel (Echo adds `private-`) receiving
// SDK-triggered events under Laravel's namespaced and dotted event names, whispers between two clients,
// a refused authorization reaching Echo's error callback, and a presence channel (`presence-`) with
// here/joining/leaving across two Echo clients.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';

import Echo from 'laravel-echo';
import PusherJS from 'pusher-js';

import { startStack, waitFor } from './lib/harness.mjs';
import { DEMO, SOCKET_ID, answer, openedSets, pusherJsOptions, pusherServer, sleep, unique } from './lib/pusher.mjs';

let stack;
let server;
const { clients: echos, close: cleanup } = openedSets();

before(async () => {
    stack = await startStack();
    server = pusherServer(stack.gw.port);
});

after(async () => {
    cleanup();
    if (stack) await stack.stop();
});

afterEach(cleanup);

/**
 * An Echo client on the pusher broadcaster. Echo hands its options to `new Pusher(key, options)`;
 * `authorizer` is how an app replaces the /broadcasting/auth request: here it answers what the
 * backend would, signed by the server SDK (presence data for presence channels).
 */
function echoClient({ presence, sign } = {}) {
    const authorize = sign || ((socketId, name) => server.authorizeChannel(socketId, name, name.startsWith('presence-') ? presence : undefined));
    const echo = new Echo({
        broadcaster: 'pusher',
        key: DEMO.key,
        ...pusherJsOptions(stack.gw.port),
        Pusher: PusherJS,
        authorizer: (channel) => ({
            authorize: (socketId, cb) => answer(cb, () => authorize(socketId, channel.name)),
        }),
    });
    echos.add(echo);
    return echo;
}

async function connected(echo) {
    await waitFor(() => echo.connectionStatus() === 'connected', { timeoutMs: 10000, message: 'Echo connected' });
    assert.match(echo.socketId(), SOCKET_ID);
    return echo;
}

// Resolves once Echo reports the channel subscribed; rejects with the error Echo reports.
function subscribed(channel, timeoutMs = 8000) {
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no subscription result within ${timeoutMs} ms`)), timeoutMs);
        channel.subscribed(() => {
            clearTimeout(timer);
            resolve(channel);
        });
        channel.error((err) => {
            clearTimeout(timer);
            reject(Object.assign(new Error(`subscription failed: ${JSON.stringify(err)}`), { detail: err }));
        });
    });
}

test('Echo.private(): Laravel event names, dotted and namespaced, arrive from the SDK on private-{name}', { timeout: 30000 }, async () => {
    const room = `${unique('orders')}.1`;
    const echo = await connected(echoClient());
    const shipped = [];
    const namespaced = [];
    const channel = echo
        .private(room)
        .listen('.OrderShipped', (e) => shipped.push(e))
        .listen('OrderPaid', (e) => namespaced.push(e));
    assert.equal(channel.name, `private-${room}`);
    await subscribed(channel);

    let res = await server.trigger(`private-${room}`, 'OrderShipped', { order: { id: 1 } });
    assert.equal(res.status, 200);
    await waitFor(() => shipped.length === 1, { message: '.OrderShipped delivered' });
    assert.deepEqual(shipped[0], { order: { id: 1 } });

    // without the leading dot Echo listens for the class name under its App.Events namespace, the name
    // a Laravel broadcast carries
    res = await server.trigger(`private-${room}`, 'App\\Events\\OrderPaid', { order: { id: 1 }, amount: 5 });
    assert.equal(res.status, 200);
    await waitFor(() => namespaced.length === 1, { message: 'App\\Events\\OrderPaid delivered' });
    assert.deepEqual(namespaced[0], { order: { id: 1 }, amount: 5 });
    await sleep(200);
    assert.equal(shipped.length, 1);

    // after leave() nothing more arrives
    echo.leave(room);
    await sleep(300);
    await server.trigger(`private-${room}`, 'OrderShipped', { order: { id: 2 } });
    await sleep(500);
    assert.equal(shipped.length, 1);
});

test('Echo whisper on a private channel reaches the other client, not the sender', { timeout: 30000 }, async () => {
    const room = unique('chat');
    const a = await connected(echoClient());
    const b = await connected(echoClient());
    const gotA = [];
    const gotB = [];
    const chA = a.private(room).listenForWhisper('typing', (e) => gotA.push(e));
    const chB = b.private(room).listenForWhisper('typing', (e) => gotB.push(e));
    await Promise.all([subscribed(chA), subscribed(chB)]);
    chA.whisper('typing', { name: 'a' });
    await waitFor(() => gotB.length === 1, { message: 'b got the whisper' });
    assert.deepEqual(gotB[0], { name: 'a' });
    chB.whisper('typing', { name: 'b' });
    await waitFor(() => gotA.length === 1, { message: 'a got the whisper' });
    await sleep(200);
    assert.deepEqual(gotA, [{ name: 'b' }]);
    assert.deepEqual(gotB, [{ name: 'a' }]);
});

test('Echo.private() with an authorization the gateway refuses: Echo’s error callback gets AuthError 401', { timeout: 30000 }, async () => {
    const room = unique('denied');
    const forged = pusherServer(stack.gw.port, { secret: 'not-the-secret' });
    const echo = await connected(echoClient({ sign: (socketId, name) => forged.authorizeChannel(socketId, name) }));
    const got = [];
    const err = await subscribed(echo.private(room).listen('.Nope', (e) => got.push(e))).then(
        () => assert.fail('a wrongly signed authorization was accepted'),
        (e) => e.detail,
    );
    assert.equal(err.type, 'AuthError', JSON.stringify(err));
    assert.equal(err.status, 401, JSON.stringify(err));
    await server.trigger(`private-${room}`, 'Nope', {});
    await sleep(400);
    assert.equal(got.length, 0);
    assert.equal(echo.connectionStatus(), 'connected', 'the connection stays');
});

test('Echo.join(): here, joining and leaving on presence-{name} with two clients', { timeout: 30000 }, async () => {
    const room = `${unique('room')}.1`;
    const alice = await connected(echoClient({ presence: { user_id: '1', user_info: { id: 1, name: 'Alice' } } }));
    const bob = await connected(echoClient({ presence: { user_id: '2', user_info: { id: 2, name: 'Bob' } } }));

    const aliceHere = [];
    const aliceJoining = [];
    const aliceLeaving = [];
    const aliceEvents = [];
    const chA = alice
        .join(room)
        .here((users) => aliceHere.push(users))
        .joining((user) => aliceJoining.push(user))
        .leaving((user) => aliceLeaving.push(user))
        .listen('.RoomMessage', (e) => aliceEvents.push(e));
    assert.equal(chA.name, `presence-${room}`);
    await waitFor(() => aliceHere.length === 1, { message: 'alice: here()' });
    assert.deepEqual(aliceHere[0], [{ id: 1, name: 'Alice' }]);

    const bobHere = [];
    const chB = bob.join(room).here((users) => bobHere.push(users));
    await waitFor(() => bobHere.length === 1, { message: 'bob: here()' });
    assert.deepEqual(
        [...bobHere[0]].sort((x, y) => x.id - y.id),
        [
            { id: 1, name: 'Alice' },
            { id: 2, name: 'Bob' },
        ],
    );
    await waitFor(() => aliceJoining.length === 1, { message: 'alice: joining(bob)' });
    assert.deepEqual(aliceJoining[0], { id: 2, name: 'Bob' });

    // a server event on the presence channel reaches Echo too
    await server.trigger(`presence-${room}`, 'RoomMessage', { text: 'hi' });
    await waitFor(() => aliceEvents.length === 1);
    assert.deepEqual(aliceEvents[0], { text: 'hi' });

    bob.leave(room);
    await waitFor(() => aliceLeaving.length === 1, { message: 'alice: leaving(bob)' });
    assert.deepEqual(aliceLeaving[0], { id: 2, name: 'Bob' });
    await sleep(300);
    assert.equal(aliceJoining.length, 1);
    assert.equal(aliceLeaving.length, 1);
    assert.equal(chB.name, `presence-${room}`);
});
