// local_first = 1 (core/publish.c): a gateway's own subscribers get its publishes before the broker's round trip,
// exactly once (the broker's copy is dropped by its origin), in order and without a gap signal, while the other
// gateways on the broker get them from it as before. The broker does not even send a gateway's own publishes back
// to it: its channel subscriptions carry MQTT v5 No Local (gateway/server.c), so it has no copy to drop. With the broker frozen the difference shows: the local
// subscriber has the message at once and the REST caller gets 504, the other gateway's subscriber gets it once the
// broker runs again; a gateway without local_first delivers nothing meanwhile.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';

import { spawnSync } from 'node:child_process';

import { GATEWAY_BIN, freePort, httpRequest, startStack } from './lib/harness.mjs';
import { isMessage, nativeSubscriber, publishRest, within } from './lib/native.mjs';

const stacks = [];
const sockets = [];
after(async () => {
    for (const c of sockets) c.terminate();
    for (const s of stacks) await s.stop().catch(() => {});
});

const subscriber = (gw, room) => nativeSubscriber(gw, room, sockets);
const publish = publishRest;

// The messages c received on room, in order, and whether any gap signal came.
function received(c, room) {
    return {
        messages: c.frames.filter((f) => f.type === 'message' && f.room === room).map((f) => f.message),
        gaps: c.frames.filter((f) => f.type === 'gap').length,
    };
}

// The broker's copies of gw's own publishes that gw received and dropped (/metrics).
async function ownCopies(gw) {
    const r = await httpRequest('GET', `${gw.url}/metrics`);
    const m = r.body.match(/^pushgate_own_copies_dropped_total (\d+)$/m);
    assert.ok(m, r.body);
    return Number(m[1]);
}

async function twoGateways(publishTimeoutMs = 5000) {
    const stack = await startStack({ gateway: { local_first: 1, publish_timeout_ms: publishTimeoutMs } });
    stacks.push(stack);
    const a = stack.gw;
    const port = await freePort();
    // the second gateway delivers through the broker only
    const b = await stack.startGateway({ port, args: ['--listen_port', String(port), '--local_first', '0'] });
    return { stack, a, b };
}

test('local_first: own subscribers get each publish once and in order, the other gateway too, no gap', { timeout: 60000 }, async () => {
    const { a, b } = await twoGateways();
    const room = `lf-${process.pid}`;
    const here = await subscriber(a, room);
    const there = await subscriber(b, room);
    const sent = [];
    for (let i = 0; i < 20; i++) {
        const r = await publish(i % 4 === 3 ? b : a, room, { i }); // every fourth through the other gateway
        assert.equal(r.status, 200, r.body);
        sent.push({ i });
    }
    for (const c of [here, there]) await c.next(isMessage(room, (f) => f.message.i === 19));
    await new Promise((r) => setTimeout(r, 500)); // the broker's copies of a's publishes would be in by now
    assert.deepEqual(received(here, room), { messages: sent, gaps: 0 });
    assert.deepEqual(received(there, room), { messages: sent, gaps: 0 });
    assert.equal(await ownCopies(a), 0, 'the broker sent none of its 15 publishes back to a (No Local)');
});

test('local_first with the broker frozen: the local subscriber has it at once, the caller gets 504, the other gateway gets it later', { timeout: 60000 }, async () => {
    const { stack, a, b } = await twoGateways(1000);
    const room = `lf-frozen-${process.pid}`;
    const here = await subscriber(a, room);
    const there = await subscriber(b, room);
    const broker = stack.broker.proc;
    let answer;
    broker.kill('SIGSTOP');
    try {
        const viaB = publish(b, room, { via: 'b' });
        answer = publish(a, room, { via: 'a' });
        const got = await within(here.next(isMessage(room, (f) => f.message.via === 'a')), 800);
        assert.ok(got, 'the local subscriber had the message while the broker was frozen');
        assert.equal((await answer).status, 504, 'nothing acknowledged it');
        assert.equal((await viaB).status, 504);
        assert.deepEqual(received(there, room).messages, [], 'without local_first nothing is delivered meanwhile');
    } finally {
        broker.kill('SIGCONT');
    }
    // the broker reads what it was sent while frozen and passes it on: to the other gateway only, for a's message
    await there.next(isMessage(room, (f) => f.message.via === 'a'));
    await here.next(isMessage(room, (f) => f.message.via === 'b'));
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(received(here, room).messages.filter((m) => m.via === 'a'), [{ via: 'a' }], 'no second copy here');
    assert.deepEqual(received(there, room).messages.filter((m) => m.via === 'a'), [{ via: 'a' }]);
    assert.equal(await ownCopies(a), 0, 'a got no copy of its publish to drop');
});

test('local_first takes 0 or 1: another value is refused at start, exit 2', () => {
    const env = { ...process.env };
    delete env.PUSHGATE_LOCAL_FIRST;
    const r = spawnSync(GATEWAY_BIN, ['--local_first', '2'], { env, encoding: 'utf8', timeout: 20000 });
    assert.equal(r.status, 2, `exit status ${r.status} signal ${r.signal}\n${r.stderr}`);
    assert.match(r.stderr, /local_first/);
});
