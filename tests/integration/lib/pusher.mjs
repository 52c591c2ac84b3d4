// Pieces the Pusher integration tests share: the `pusher` server SDK and pusher-js pointed at a test
// gateway, waiting on pusher-js events, and the signatures (README "Pusher Channels compatibility") of raw frames and requests.
import crypto from 'node:crypto';
import http from 'node:http';

import PusherServer from 'pusher';

import { DEFAULT_APPS, scaled } from './harness.mjs';

export const DEMO = DEFAULT_APPS.find((a) => a.id === 'demo');
export const PUSHER_QUERY = '?protocol=7&client=js&version=8.6.0&flash=false';
export const SOCKET_ID = /^\d+\.\d+$/;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let seq = 0;

export function unique(prefix) {
    seq += 1;
    return `${prefix}-${process.pid}-${seq}`;
}

/**
 * The `pusher` server SDK for the demo app, pointed at a gateway on 127.0.0.1:port. node's default agent
 * keeps idle sockets open, which holds the test process past its last test, so the default here does not
 * keep them; overrides replace any option (agent: undefined for node's default agent).
 */
export function pusherServer(port, overrides = {}) {
    return new PusherServer({
        appId: DEMO.id,
        key: DEMO.key,
        secret: DEMO.secret,
        host: '127.0.0.1',
        port,
        useTLS: false,
        timeout: 10000,
        agent: new http.Agent({ keepAlive: false }),
        ...overrides,
    });
}

// pusher-js options that reach a gateway on 127.0.0.1:port over plain WebSocket only, with no stats
// requests; plain data, so a page can take them too.
export function pusherJsOptions(port) {
    return {
        wsHost: '127.0.0.1',
        wsPort: port,
        forceTLS: false,
        enabledTransports: ['ws'],
        cluster: 'x',
        enableStats: false,
    };
}

// What the tests of a file open: pusher-js (or Echo) clients, raw WebSockets and MQTT devices; close()
// disconnects, terminates and ends them all and empties the sets.
export function openedSets() {
    const clients = new Set();
    const sockets = new Set();
    const devices = new Set();
    function close() {
        for (const c of clients) c.disconnect();
        clients.clear();
        for (const s of sockets) s.terminate();
        sockets.clear();
        for (const d of devices) d.end(true);
        devices.clear();
    }
    return { clients, sockets, devices, close };
}

// Hands what fn() returns to a pusher-js style (err, result) callback, or what it throws.
export function answer(cb, fn) {
    let res;
    try {
        res = fn();
    } catch (err) {
        cb(err, null);
        return;
    }
    cb(null, res);
}

// Keeps every state after the constructor's synchronous 'connecting' (to prove the client never
// reconnected behind a test's back), every error and every message of a pusher-js client.
export function recordConnection(client) {
    client.states = [];
    client.errors = [];
    client.messages = [];
    client.connection.bind('state_change', (s) => client.states.push(s.current));
    client.connection.bind('error', (e) => client.errors.push(e));
    client.connection.bind('message', (m) => client.messages.push(m));
    return client;
}

// Resolves with the first `event` emitted by emitter (a channel or a pusher-js connection/client).
export function nextEvent(emitter, event, timeoutMs = scaled(5000)) {
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
            emitter.unbind(event, handler);
            reject(new Error(`no '${event}' within ${timeoutMs} ms`));
        }, timeoutMs);
        const handler = (...args) => {
            clearTimeout(timer);
            emitter.unbind(event, handler);
            resolve(args.length > 1 ? args : args[0]);
        };
        emitter.bind(event, handler);
    });
}

// ---------------------------------------------------------------------------------------------
// raw WebSocket frames (connections from wsConnect)

export const isEvent = (name, channel) => (f) => f && typeof f === 'object' && f.event === name && (channel === undefined || f.channel === channel);

export function dataOf(frame) {
    return typeof frame.data === 'string' ? JSON.parse(frame.data) : frame.data;
}

// Waits for connection_established on a raw connection and keeps its socket id as c.socketId.
export async function established(c) {
    const f = await c.next(isEvent('pusher:connection_established'));
    c.socketId = dataOf(f).socket_id;
    return c;
}

// The `auth` of a private or presence subscription (channelData for presence).
export function hmacAuth(socketId, channel, channelData, secret = DEMO.secret, key = DEMO.key) {
    const input = channelData === undefined ? `${socketId}:${channel}` : `${socketId}:${channel}:${channelData}`;
    return `${key}:${crypto.createHmac('sha256', secret).update(input).digest('hex')}`;
}

// ---------------------------------------------------------------------------------------------
// Raw signed HTTP API requests (METHOD \n path \n sorted lower-cased query without auth_signature)

export function signedPath(method, path, { body, params = {}, key = DEMO.key, secret = DEMO.secret, timestamp, md5, signature } = {}) {
    const q = {
        auth_key: key,
        auth_timestamp: String(timestamp ?? Math.floor(Date.now() / 1000)),
        auth_version: '1.0',
        ...params,
    };
    if (body !== undefined && md5 !== null) q.body_md5 = md5 ?? crypto.createHash('md5').update(body, 'utf8').digest('hex');
    const qs = Object.keys(q)
        .map((k) => [k.toLowerCase(), q[k]])
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => `${k}=${v}`)
        .join('&');
    const sig = signature ?? crypto.createHmac('sha256', secret).update(`${method}\n${path}\n${qs}`).digest('hex');
    return `${path}?${qs}&auth_signature=${sig}`;
}
