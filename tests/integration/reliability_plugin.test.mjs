// The plugin drops into an operator's broker: clients that are not pushgate apps (anonymous, or with a username that
// is no app id) get what Mosquitto 2 gives them without the plugin, whether the broker has an acl_file and a
// password_file or not. Each test starts the same broker configuration twice, with and without the plugin, runs the
// same clients against both (connect, subscribe, publish, retained messages, wills, unsubscribe) and compares what
// each client saw. Also: a broker whose plugin gets no tick (per_listener_settings true) says so in its log.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';

import {
    freePort,
    makeTempDir,
    mqttCollector,
    mqttConnect,
    removeTempDir,
    scaled,
    startBroker,
    waitFor,
    writePushgateConf,
} from './lib/harness.mjs';

const dirs = [];
const brokers = [];
const clients = new Set();

after(async () => {
    for (const c of clients) c.end(true);
    for (const b of brokers) await b.stop();
    for (const d of dirs) await removeTempDir(d);
});

// alice is in the password file and may use shared/#; with no password file any password is hers.
const ALICE = { username: 'alice', password: 'alice-pw', acl: ['topic readwrite shared/#'] };
const WHO = [
    { name: 'anonymous' },
    { name: 'alice', username: ALICE.username, password: ALICE.password },
    { name: 'alice-wrong-password', username: ALICE.username, password: 'not-her-password' },
];

async function broker(plugin, options) {
    const dir = await makeTempDir('pushgate-rel-plugin-');
    dirs.push(dir);
    const port = await freePort();
    const pushgateConf = plugin
        ? await writePushgateConf({ dir, listenPort: await freePort(), brokerPort: port, brokerPassword: 'gw-pw' })
        : undefined;
    const b = await startBroker({ dir, port, plugin, pushgateConf, extraUsers: [ALICE], ...options });
    brokers.push(b);
    return b;
}

async function connect(port, who, more = {}) {
    const c = await mqttConnect({ port, username: who.username, password: who.password, ...more });
    clients.add(c);
    c.on('close', () => clients.delete(c));
    return c;
}

function subscribe(client, topic) {
    return new Promise((resolve, reject) => {
        client.subscribe(topic, { qos: 1 }, (err, _subs, packet) => {
            if (packet && Array.isArray(packet.granted)) resolve(packet.granted[0]);
            else reject(err || new Error('no SUBACK'));
        });
    });
}

// The UNSUBACK reason code. The broker answers on the client's connection after everything it queued for that
// client before, so it is also the point after which no earlier delivery is still on its way.
function unsubscribe(client, topic) {
    return new Promise((resolve, reject) => {
        client.unsubscribe(topic, (err, packet) => {
            if (packet && Array.isArray(packet.granted)) resolve(packet.granted[0]);
            else reject(err || new Error('no UNSUBACK'));
        });
    });
}

function publish(client, topic, payload, opts) {
    return new Promise((resolve, reject) => {
        client.publish(topic, payload, { qos: 1, ...opts }, (err, packet) => {
            if (err && typeof err.code === 'number') resolve(err.code);
            else if (err) reject(err);
            else resolve(packet && typeof packet.reasonCode === 'number' ? packet.reasonCode : 0);
        });
    });
}

const seen = (box) => box.messages.map((m) => `${m.topic}${m.packet.retain ? ' (retained)' : ''} ${m.text}`).sort();

/*
 * What the clients of WHO see on the broker at port: a record of outcomes that must be the same with and without
 * the plugin. Waiting is bounded: a message that is refused never arrives, so the wait for wills has a deadline.
 */
async function scenario(port) {
    const out = {};
    const conns = {};
    for (const who of WHO) {
        try {
            conns[who.name] = await connect(port, who, { clientId: `c-${who.name}` });
            out[`connect ${who.name}`] = 'accepted';
        } catch (err) {
            out[`connect ${who.name}`] = `refused ${err.code}`;
        }
    }
    const names = Object.keys(conns);
    const boxes = {};
    for (const name of names) {
        boxes[name] = mqttCollector(conns[name]);
        out[`subscribe shared/# by ${name}`] = await subscribe(conns[name], 'shared/#');
    }
    for (const name of names) {
        out[`publish by ${name}`] = await publish(conns[name], `shared/from/${name}`, 'hello');
        out[`publish retained by ${name}`] = await publish(conns[name], `shared/kept/${name}`, 'kept', { retain: true });
    }
    for (const name of names) out[`unsubscribe by ${name}`] = await unsubscribe(conns[name], 'elsewhere/#');
    for (const name of names) out[`received by ${name}`] = seen(boxes[name]);

    // Retained messages reach a client that subscribes later.
    for (const name of names) {
        const who = WHO.find((w) => w.name === name);
        const late = await connect(port, who, { clientId: `late-${name}` });
        const box = mqttCollector(late);
        out[`late subscribe by ${name}`] = await subscribe(late, 'shared/kept/#');
        await unsubscribe(late, 'elsewhere/#');
        out[`retained to late ${name}`] = seen(box);
        late.end(true);
    }

    // A will is sent when its client goes away without DISCONNECT.
    const wills = [];
    for (const name of names) {
        const who = WHO.find((w) => w.name === name);
        const topic = `shared/will/${name}`;
        const dying = await connect(port, who, { clientId: `will-${name}`, will: { topic, payload: 'gone', qos: 1 } });
        dying.stream.destroy();
        wills.push(topic);
    }
    const listening = names.filter((n) => out[`subscribe shared/# by ${n}`] < 0x80);
    const willSeen = (n) => wills.every((t) => boxes[n].messages.some((m) => m.topic === t));
    if (listening.length && wills.length) {
        await waitFor(() => listening.every(willSeen), { timeoutMs: scaled(1500) }).catch(() => {});
    }
    for (const name of names) {
        out[`wills received by ${name}`] = boxes[name].messages.filter((m) => m.topic.startsWith('shared/will/')).map((m) => m.topic).sort();
    }
    for (const c of Object.values(conns)) c.end(true);
    return out;
}

async function compare(options, check) {
    const [plain, withPlugin] = await Promise.all([broker(false, options), broker(true, options)]);
    const [without, withIt] = await Promise.all([scenario(plain.port), scenario(withPlugin.port)]);
    assert.deepEqual(withIt, without, `clients that are not apps saw something else with the plugin loaded`);
    check(without, withPlugin);
}

const delivered = (out, name) => out[`received by ${name}`].length > 0 && out[`wills received by ${name}`].length > 0;

test('no acl_file, no password_file, allow_anonymous true: everyone may do everything, as without the plugin', async () => {
    await compare({ passwordFile: false, aclFile: false, allowAnonymous: true }, (out, b) => {
        for (const who of WHO) assert.equal(out[`connect ${who.name}`], 'accepted', who.name);
        assert.ok(delivered(out, 'anonymous') && delivered(out, 'alice'), JSON.stringify(out));
        assert.equal(out['retained to late anonymous'].length, 3);
        assert.match(b.logs(), /clients that are not apps: publish\/subscribe allowed \(the broker has no acl_file\), logins with a username accepted/);
    });
});

test('no acl_file, a password_file: named clients are checked, then may do everything', async () => {
    await compare({ passwordFile: true, aclFile: false, allowAnonymous: false }, (out, b) => {
        assert.equal(out['connect alice'], 'accepted');
        assert.notEqual(out['connect alice-wrong-password'], 'accepted');
        assert.ok(delivered(out, 'alice'), JSON.stringify(out));
        assert.match(b.logs(), /publish\/subscribe allowed \(the broker has no acl_file\), logins with a username left to the broker \(the broker has a password_file\)/);
    });
});

test('an acl_file, no password_file, allow_anonymous true: the acl_file decides, any password is accepted', async () => {
    await compare({ passwordFile: false, aclFile: true, allowAnonymous: true }, (out, b) => {
        assert.equal(out['connect alice-wrong-password'], 'accepted');
        assert.ok(delivered(out, 'alice'), JSON.stringify(out));
        assert.equal(out['received by anonymous'].length, 0, 'the acl_file grants anonymous clients nothing');
        assert.match(b.logs(), /publish\/subscribe left to the broker \(the broker has an acl_file\), logins with a username accepted/);
    });
});

test('both files (pushgate\'s own broker configuration): nothing changes', async () => {
    await compare({ passwordFile: true, aclFile: true, allowAnonymous: false }, (out) => {
        assert.notEqual(out['connect anonymous'], 'accepted');
        assert.ok(delivered(out, 'alice'), JSON.stringify(out));
    });
});

test('no files, allow_anonymous false: every login is refused, as without the plugin', async () => {
    await compare({ passwordFile: false, aclFile: false, allowAnonymous: false }, (out) => {
        for (const who of WHO) assert.notEqual(out[`connect ${who.name}`], 'accepted', who.name);
    });
});

test('plugin_opt_non_app_acl defer keeps non-app clients to the broker\'s own checks; a bad value stops the broker', async () => {
    const b = await broker(true, { passwordFile: false, aclFile: false, allowAnonymous: true, pluginOpts: { non_app_acl: 'defer' } });
    assert.match(b.logs(), /publish\/subscribe left to the broker \(plugin_opt_non_app_acl\)/);
    const c = await connect(b.port, WHO[1], { clientId: 'deferred' });
    assert.equal(await subscribe(c, 'shared/#'), 0x87);
    c.end(true);
    await assert.rejects(
        broker(true, { passwordFile: false, aclFile: false, allowAnonymous: true, pluginOpts: { non_app_login: 'sometimes' } }),
        /plugin_opt_non_app_login: expected auto, defer or allow/,
    );
});

test('per_listener_settings true: the broker log warns that the plugin gets no tick', async () => {
    const b = await broker(true, { headConf: 'per_listener_settings true' });
    await waitFor(() => /pushgate_auth: the broker sends this plugin no tick/.test(b.logs()), {
        message: 'no warning about the missing tick in the broker log',
    });
    // The broker's files are per listener there, but the plugin still finds them: nothing opened.
    assert.match(b.logs(), /publish\/subscribe left to the broker \(the broker has an acl_file\), logins with a username left to the broker/);
});

test('SIGHUP: an acl_file added to the broker\'s configuration is obeyed for clients that are not apps', async () => {
    const b = await broker(true, { passwordFile: false, aclFile: false, allowAnonymous: true });
    const c = await connect(b.port, WHO[0], { clientId: 'before-reload' });
    assert.ok((await publish(c, 'shared/x', 'allowed')) < 0x80, 'accepted before the reload');
    const conf = await fsp.readFile(b.confPath, 'utf8');
    await fsp.writeFile(b.confPath, `${conf}acl_file ${b.aclFile}\n`);
    b.proc.kill('SIGHUP');
    await waitFor(() => /publish\/subscribe left to the broker \(the broker has an acl_file\)/.test(b.logs()), {
        message: 'the plugin did not see the new acl_file',
    });
    // The acl_file grants anonymous clients nothing.
    assert.equal(await publish(c, 'shared/x', 'denied'), 0x87);
});
