// The gateway's broker connect never stalls its event loop. Two broker addresses on this machine that never
// complete the MQTT handshake: a loopback listener whose accept queue is full (the kernel drops the SYN, so the TCP
// connect itself hangs) and one that accepts and never answers CONNECT (the CONNACK never comes). Against both,
// /healthz keeps answering promptly and /readyz says 503; an attempt without CONNACK is dropped after
// broker_connect_timeout_ms and retried; and once a real mosquitto listens on the configured port, the gateway
// connects and turns ready. Loopback only.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { once } from 'node:events';

import { BUILD_DIR, httpRequest, scaled, startBroker, startStack, waitFor } from './lib/harness.mjs';

const CONNECT_TIMEOUT_MS = 1000;
const GATEWAY = { broker_connect_timeout_ms: CONNECT_TIMEOUT_MS, broker_reconnect_min_ms: 100, broker_reconnect_max_ms: 400 };
// how long the gateway may take for one /healthz while its broker connect hangs
const PROMPT_MS = scaled(1000);
// observe the loop over several connect attempts (each dropped after CONNECT_TIMEOUT_MS)
const OBSERVE_MS = 3 * CONNECT_TIMEOUT_MS;

const cleanups = [];
after(async () => {
    for (const fn of cleanups.reverse()) await fn();
});

async function startGatewayless() {
    const stack = await startStack({ broker: false, startGateway: false, gateway: GATEWAY });
    cleanups.push(() => stack.stop());
    return stack;
}

// GET /healthz and /readyz back to back for OBSERVE_MS: every /healthz is 200 within PROMPT_MS, every /readyz 503.
async function assertServedWhileConnecting(gw) {
    const end = Date.now() + OBSERVE_MS;
    let rounds = 0;
    let slowest = 0;
    while (Date.now() < end) {
        const t0 = Date.now();
        const health = await httpRequest('GET', `${gw.url}/healthz`, { timeoutMs: scaled(10000) });
        const took = Date.now() - t0;
        slowest = Math.max(slowest, took);
        assert.equal(health.status, 200, '/healthz');
        assert.ok(took < PROMPT_MS, `/healthz answered in ${took} ms while the broker connect hangs (limit ${PROMPT_MS} ms)`);
        const ready = await httpRequest('GET', `${gw.url}/readyz`, { timeoutMs: scaled(10000) });
        assert.equal(ready.status, 503, '/readyz while not connected');
        rounds += 1;
        await new Promise((resolve) => setTimeout(resolve, 50)); // pacing, not synchronisation
    }
    assert.ok(rounds >= 5, `${rounds} rounds of /healthz in ${OBSERVE_MS} ms (slowest ${slowest} ms)`);
}

async function brokerOn(stack) {
    stack.broker = await startBroker({
        dir: stack.dir,
        port: stack.brokerPort,
        pushgateConf: stack.conf,
        brokerPassword: stack.gatewayUser.password,
    });
}

async function assertTurnsReady(gw) {
    await waitFor(async () => (await httpRequest('GET', `${gw.url}/readyz`, { timeoutMs: scaled(2000) })).status === 200, {
        timeoutMs: scaled(10000),
        message: '/readyz 200 once a real broker listens on the configured port',
    });
}

test('a broker address whose accept queue is full: the loop keeps serving, then the gateway connects', { timeout: 90000 }, async () => {
    const stack = await startGatewayless();
    const tool = spawn(path.join(BUILD_DIR, 'tests', 'integration', 'pushgate_listen_tool'), [String(stack.brokerPort)], {
        stdio: ['pipe', 'pipe', 'inherit'],
    });
    const toolExited = once(tool, 'exit');
    cleanups.push(async () => {
        if (tool.exitCode === null && tool.signalCode === null) {
            tool.stdin.end();
            await toolExited;
        }
    });
    let out = '';
    tool.stdout.on('data', (d) => (out += d));
    await waitFor(() => out.includes(`full ${stack.brokerPort}`), { message: 'listener with a full accept queue' });

    // a blocking connect would hang in connect() before the loop serves anything: /healthz would never answer
    const gw = await stack.startGateway({ readyTimeoutMs: scaled(5000) });
    await assertServedWhileConnecting(gw);
    assert.match(gw.logs(), /no CONNACK within 1000 ms \(broker_connect_timeout_ms\)/, 'the hung attempt is dropped and logged');

    tool.stdin.end();
    const [code] = await toolExited;
    assert.equal(code, 0, 'listen tool exit');
    await brokerOn(stack);
    await assertTurnsReady(gw);
});

test('a broker address that accepts and never answers CONNECT: the attempt times out, is retried, then connects', { timeout: 90000 }, async () => {
    const stack = await startGatewayless();
    const accepted = [];
    const silent = net.createServer((sock) => {
        const conn = { sock, bytes: Buffer.alloc(0), closedByPeer: false };
        sock.on('data', (d) => (conn.bytes = Buffer.concat([conn.bytes, d])));
        sock.on('end', () => (conn.closedByPeer = true));
        sock.on('error', () => (conn.closedByPeer = true));
        accepted.push(conn);
    });
    silent.listen({ port: stack.brokerPort, host: '127.0.0.1' });
    await once(silent, 'listening');
    cleanups.push(async () => {
        for (const c of accepted) c.sock.destroy();
        if (silent.listening) silent.close();
    });

    const gw = await stack.startGateway();
    // the TCP connect went through and CONNECT (packet type 1) was sent: the gateway now waits for a CONNACK
    await waitFor(() => accepted.length >= 1 && accepted[0].bytes.length > 0, { message: 'CONNECT received' });
    assert.equal(accepted[0].bytes[0] >> 4, 1, 'first packet is CONNECT');
    await assertServedWhileConnecting(gw);

    // the attempt without CONNACK was given up (our side saw the gateway close it) and a new one made
    await waitFor(() => accepted.length >= 2 && accepted[0].closedByPeer, {
        timeoutMs: scaled(5000),
        message: 'the gateway drops a connection without CONNACK and tries again',
    });

    // stop accepting (connections already accepted stay open and silent), and bring a real broker up on the port
    silent.close();
    await brokerOn(stack);
    await assertTurnsReady(gw);
    for (const c of accepted) c.sock.destroy();
});
