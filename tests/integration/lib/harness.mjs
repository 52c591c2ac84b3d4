// Shared fixtures for the integration tests: real mosquitto and pushgate processes on loopback,
// real MQTT and WebSocket clients. Every process started here is tracked so a failing test never
// leaves one behind.
import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import WebSocket from 'ws';

export const REPO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const BUILD_DIR = path.resolve(process.env.PUSHGATE_BUILD_DIR || path.join(REPO_DIR, 'build'));
// ctest passes PUSHGATE_SANITIZE; a test run by hand falls back to the build's own cache.
export const SANITIZE =
    process.env.PUSHGATE_SANITIZE !== undefined && process.env.PUSHGATE_SANITIZE !== ''
        ? /^(on|1|true|yes)$/i.test(process.env.PUSHGATE_SANITIZE)
        : cacheSaysSanitize(BUILD_DIR);

// Sanitizer builds run everything several times slower: deadlines that bound a positive wait (waitFor, next) are
// multiplied by TIME_SCALE, and tests wrap their own literal deadlines in scaled(). PUSHGATE_TEST_TIME_SCALE overrides.
// The gateway's `workers` in every written config unless a test sets it (default 1: one process, no supervisor).
export const TEST_WORKERS = Number(process.env.PUSHGATE_TEST_WORKERS) || 1;
export const TIME_SCALE = Number(process.env.PUSHGATE_TEST_TIME_SCALE) || (SANITIZE ? 3 : 1);
export const scaled = (ms) => Math.round(ms * TIME_SCALE);

function cacheSaysSanitize(buildDir) {
    try {
        return /^PUSHGATE_SANITIZE:BOOL=(ON|1|TRUE|YES)$/im.test(fs.readFileSync(path.join(buildDir, 'CMakeCache.txt'), 'utf8'));
    } catch {
        return false;
    }
}
export const GATEWAY_BIN = path.join(BUILD_DIR, 'gateway', 'pushgate');
export const PLUGIN_SO = path.join(BUILD_DIR, 'auth', 'pushgate_auth.so');
export const MOSQUITTO_BIN = process.env.MOSQUITTO_BIN || findExecutable('mosquitto', ['/usr/sbin', '/usr/local/sbin']);
// Debian's chromium, for playwright-core's chromium.launch({ executablePath: CHROMIUM }).
export const CHROMIUM = process.env.CHROMIUM_BIN || findExecutable('chromium', ['/usr/bin']);
export const OPERATOR_USER = { username: 'operator', password: 'operator-pw' };

export const DEFAULT_APPS = [
    { id: 'demo', key: 'demo-key', secret: 'demo-secret', require_auth: false },
    { id: 'secure', key: 'secure-key', secret: 'secure-secret-0123456789', require_auth: true },
];

const SANITIZER_MARKERS = ['AddressSanitizer', 'LeakSanitizer', 'runtime error:'];
const LOG_CAP = 16 * 1024 * 1024;

function findExecutable(name, extraDirs) {
    const dirs = [...(process.env.PATH || '').split(':'), ...extraDirs].filter(Boolean);
    for (const d of dirs) {
        const p = path.join(d, name);
        try {
            fs.accessSync(p, fs.constants.X_OK);
            return p;
        } catch {
            // keep looking
        }
    }
    return name;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Child-process bookkeeping

const liveChildren = new Set();
const liveTempDirs = new Set();

function killEverything() {
    for (const child of liveChildren) {
        try {
            child.kill('SIGKILL');
        } catch {
            // already gone
        }
    }
    liveChildren.clear();
    for (const d of liveTempDirs) {
        try {
            fs.rmSync(d, { recursive: true, force: true });
        } catch {
            // best effort at exit
        }
    }
    liveTempDirs.clear();
}

process.on('exit', killEverything);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(sig, () => {
        killEverything();
        process.exit(128 + os.constants.signals[sig]);
    });
}

// A spawned process whose output is kept (tail-capped) and scanned for sanitizer reports as it
// arrives, so the scan survives the cap.
function spawnTracked(cmd, args, { env, cwd, name }) {
    const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const rec = {
        name,
        child,
        output: '',
        dropped: 0,
        sanitizerHit: false,
        exitInfo: null,
        exited: null,
    };
    let carry = '';
    const onData = (buf) => {
        const s = buf.toString('utf8');
        const scan = carry + s;
        if (!rec.sanitizerHit && SANITIZER_MARKERS.some((m) => scan.includes(m))) rec.sanitizerHit = true;
        carry = scan.slice(-64);
        rec.output += s;
        if (rec.output.length > LOG_CAP) {
            const cut = rec.output.length - LOG_CAP / 2;
            rec.dropped += cut;
            rec.output = rec.output.slice(cut);
        }
        if (process.env.PUSHGATE_TEST_VERBOSE) process.stderr.write(`[${name}] ${s}`);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    liveChildren.add(child);
    rec.exited = new Promise((resolve) => {
        child.on('error', (err) => {
            rec.output += `\n[harness] spawn error: ${err.message}\n`;
            liveChildren.delete(child);
            rec.exitInfo = { code: null, signal: null, error: err };
            resolve(rec.exitInfo);
        });
        // 'close' fires after the pipes are drained, so logs() is complete once exited resolves.
        child.on('close', (code, signal) => {
            liveChildren.delete(child);
            if (!rec.exitInfo) rec.exitInfo = { code, signal };
            resolve(rec.exitInfo);
        });
    });
    return rec;
}

async function terminate(rec, { signal = 'SIGTERM', graceMs = 15000 } = {}) {
    if (rec.exitInfo) return rec.exitInfo;
    try {
        rec.child.kill(signal);
    } catch {
        // raced with exit
    }
    let handle;
    const timer = new Promise((r) => {
        handle = setTimeout(() => r('timeout'), graceMs);
    });
    const first = await Promise.race([rec.exited, timer]);
    clearTimeout(handle);
    if (first === 'timeout') {
        rec.output += `\n[harness] ${rec.name} did not exit ${graceMs} ms after ${signal}; sent SIGKILL\n`;
        rec.timedOut = true;
        try {
            rec.child.kill('SIGKILL');
        } catch {
            // raced with exit
        }
    }
    return rec.exited;
}

function tail(s, n = 4000) {
    return s.length > n ? s.slice(-n) : s;
}

// ---------------------------------------------------------------------------------------------
// Small utilities

// Ports handed out by freePort in this process: two servers of one test (broker and gateway, two gateways) must
// never be given the same one.
const portsGiven = new Set();

// Where freePort looks: below the kernel's ephemeral range (net.ipv4.ip_local_port_range), read once. A port the
// kernel picks for `listen(0)` comes from that range, which every outgoing connection of every test (and of the
// load tests' thousands of clients) also draws its source port from: between the probe closing it and mosquitto
// or pushgate binding it, a client connection could take it ("Address already in use"). Below that range only
// another listener can; a random start keeps the parallel test files (ctest -j) apart.
function portWindow() {
    let low = 32768;
    try {
        low = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || low;
    } catch {
        /* not Linux: the default range */
    }
    const top = Math.min(low, 65536) - 1;
    return { lo: Math.max(1024, top - 20000), hi: top };
}
const PORTS = portWindow();

function bindable(port) {
    return new Promise((resolve) => {
        const srv = net.createServer();
        srv.unref();
        srv.once('error', () => resolve(false));
        srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
}

export async function freePort() {
    const span = PORTS.hi - PORTS.lo + 1;
    for (let i = 0; i < 2000; i++) {
        const port = PORTS.lo + crypto.randomInt(span);
        if (portsGiven.has(port) || !(await bindable(port))) continue;
        portsGiven.add(port);
        return port;
    }
    throw new Error(`freePort: no free port in ${PORTS.lo}-${PORTS.hi}`);
}

export async function waitFor(fn, { timeoutMs = scaled(5000), intervalMs = 50, message } = {}) {
    const deadline = Date.now() + timeoutMs;
    let lastErr;
    for (;;) {
        try {
            const v = await fn();
            if (v) return v;
        } catch (err) {
            lastErr = err;
        }
        if (Date.now() >= deadline) {
            const e = new Error(
                `waitFor timed out after ${timeoutMs} ms${message ? `: ${message}` : ''}` +
                    (lastErr ? ` (last error: ${lastErr.message})` : ''),
            );
            if (lastErr) e.cause = lastErr;
            throw e;
        }
        await sleep(intervalMs);
    }
}

function tcpProbe(port, host = '127.0.0.1') {
    return new Promise((resolve) => {
        const s = net.connect({ port, host });
        s.once('connect', () => {
            s.destroy();
            resolve(true);
        });
        s.once('error', () => resolve(false));
        s.setTimeout(1000, () => {
            s.destroy();
            resolve(false);
        });
    });
}

function b64url(buf) {
    return Buffer.from(buf).toString('base64url');
}

// claims may be a string to sign a deliberately malformed payload verbatim.
export function signJwt(claims, key, { alg = 'HS256', header = {} } = {}) {
    const hdr = { alg, typ: 'JWT', ...header };
    const payload = typeof claims === 'string' ? claims : JSON.stringify(claims);
    const input = `${b64url(JSON.stringify(hdr))}.${b64url(payload)}`;
    let sig;
    if (alg === 'none') {
        sig = '';
    } else if (/^HS(256|384|512)$/.test(alg)) {
        sig = b64url(crypto.createHmac(`sha${alg.slice(2)}`, key).update(input).digest());
    } else if (/^RS(256|384|512)$/.test(alg)) {
        sig = b64url(crypto.sign(`sha${alg.slice(2)}`, Buffer.from(input), key));
    } else {
        throw new Error(`signJwt: unsupported alg ${alg}`);
    }
    return `${input}.${sig}`;
}

export function rsaKeyPair(modulusLength = 2048) {
    const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', {
        modulusLength,
        publicKeyEncoding: { type: 'spki', format: 'pem' },
        privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    return { publicKeyPem: publicKey, privateKeyPem: privateKey };
}

// body: string/Buffer sent as is; any other non-undefined value is sent as JSON.
export function httpRequest(method, url, { headers = {}, body, timeoutMs = 10000 } = {}) {
    return new Promise((resolve, reject) => {
        const hdrs = { ...headers };
        let data;
        if (body !== undefined && body !== null) {
            if (typeof body === 'string' || Buffer.isBuffer(body)) {
                data = body;
            } else {
                data = JSON.stringify(body);
                if (!Object.keys(hdrs).some((k) => k.toLowerCase() === 'content-type')) {
                    hdrs['Content-Type'] = 'application/json';
                }
            }
            if (!Object.keys(hdrs).some((k) => k.toLowerCase() === 'content-length')) {
                hdrs['Content-Length'] = Buffer.byteLength(data);
            }
        }
        const req = http.request(url, { method, headers: hdrs, agent: false }, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('error', reject);
            res.on('end', () => {
                const text = Buffer.concat(chunks).toString('utf8');
                let json;
                try {
                    json = text.length ? JSON.parse(text) : undefined;
                } catch {
                    json = undefined;
                }
                resolve({ status: res.statusCode, headers: res.headers, body: text, json });
            });
        });
        req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${url}: no response in ${timeoutMs} ms`)));
        req.on('error', reject);
        if (data !== undefined) req.write(data);
        req.end();
    });
}

// ---------------------------------------------------------------------------------------------
// Configuration files

function confValue(v) {
    if (typeof v === 'boolean') return v ? 'true' : 'false';
    return String(v);
}

// Writes DIR/pushgate.conf; returns its path. `gateway` values override the defaults; null drops an option.
export async function writePushgateConf({ dir, listenPort, brokerPort, brokerPassword, gateway = {}, apps = DEFAULT_APPS }) {
    const opts = {
        listen_host: '127.0.0.1',
        listen_port: listenPort,
        broker_host: '127.0.0.1',
        broker_port: brokerPort,
        broker_username: 'pushgate',
        broker_password: brokerPassword,
        log_level: 'debug',
        // one process unless the test asks for workers, or PUSHGATE_TEST_WORKERS runs a whole file with several
        workers: TEST_WORKERS,
        ...gateway,
    };
    const lines = ['# written by tests/integration/lib/harness.mjs'];
    for (const [k, v] of Object.entries(opts)) {
        if (v === null || v === undefined) continue;
        lines.push(`${k} = ${confValue(v)}`);
    }
    for (const app of apps) {
        lines.push('', `[app ${app.id}]`);
        const { id, public_key_pem: pem, ...rest } = app;
        if (pem) {
            const file = path.join(dir, `${id}.pub.pem`);
            await fsp.writeFile(file, pem, { mode: 0o644 });
            rest.public_key_file = file;
        }
        for (const [k, v] of Object.entries(rest)) {
            if (v === null || v === undefined) continue;
            lines.push(`${k} = ${confValue(v)}`);
        }
    }
    const file = path.join(dir, 'pushgate.conf');
    await fsp.writeFile(file, lines.join('\n') + '\n', { mode: 0o644 });
    return file;
}

function readConfOption(file, name) {
    const text = fs.readFileSync(file, 'utf8');
    for (const raw of text.split('\n')) {
        const line = raw.replace(/#.*$/, '').trim();
        if (line.startsWith('[')) break;
        const m = /^([A-Za-z0-9_]+)\s*=\s*(.*)$/.exec(line);
        if (m && m[1] === name) return m[2].trim();
    }
    return undefined;
}

export async function makeTempDir(prefix = 'pushgate-it-') {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), prefix));
    await fsp.chmod(dir, 0o755);
    liveTempDirs.add(dir);
    return dir;
}

export async function removeTempDir(dir) {
    liveTempDirs.delete(dir);
    await fsp.rm(dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// Sanitizer runtime for the uninstrumented broker loading the instrumented plugin

let sanitizerPreload;
function sanitizerPreloadList() {
    if (sanitizerPreload !== undefined) return sanitizerPreload;
    const libs = [];
    for (const lib of ['libasan.so', 'libubsan.so']) {
        let p;
        try {
            p = execFileSync(process.env.CC || 'gcc', [`-print-file-name=${lib}`], { encoding: 'utf8' }).trim();
        } catch {
            p = '';
        }
        // gcc echoes the bare name back when it has no such library.
        if (p && path.isAbsolute(p) && fs.existsSync(p)) libs.push(fs.realpathSync(p));
    }
    sanitizerPreload = libs;
    return libs;
}

// ---------------------------------------------------------------------------------------------
// Broker

async function mosquittoPasswd(file, user, password, create) {
    const args = ['-b'];
    if (create) args.push('-c');
    args.push(file, user, password);
    execFileSync('mosquitto_passwd', args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * Starts mosquitto on 127.0.0.1:port with password file + ACL (users `pushgate` and `operator`) and,
 * when plugin is true, the pushgate auth plugin reading pushgateConf.
 * extraUsers: [{username, password, acl: ['topic read x/#', ...]}]; extraConf: appended verbatim; headConf: written
 * before the listener (e.g. per_listener_settings). passwordFile / aclFile false: the broker has no such file (the
 * users above are then not authenticated); allowAnonymous: its allow_anonymous. pluginOpts: {name: value} written
 * as plugin_opt_name value. logTypes: the broker's log_type lines; every packet by default, which the tests read
 * back; what conf/mosquitto.conf ships (error, warning, notice) where a benchmark must not pay for a log line per
 * packet.
 */
export async function startBroker({
    dir,
    port,
    pushgateConf,
    plugin = true,
    brokerPassword,
    topicRoot = 'pushgate',
    extraUsers = [],
    extraConf = '',
    headConf = '',
    passwordFile = true,
    aclFile = true,
    allowAnonymous = false,
    pluginOpts = {},
    logTypes = ['all'],
} = {}) {
    if (!dir) throw new Error('startBroker: dir is required');
    if (!port) port = await freePort();
    if (plugin) {
        if (!pushgateConf) throw new Error('startBroker: pushgateConf is required with plugin');
        if (!fs.existsSync(PLUGIN_SO)) throw new Error(`startBroker: plugin not built: ${PLUGIN_SO}`);
    }
    if (!brokerPassword && pushgateConf) brokerPassword = readConfOption(pushgateConf, 'broker_password');
    if (!brokerPassword) brokerPassword = crypto.randomBytes(12).toString('hex');
    if (pushgateConf) topicRoot = readConfOption(pushgateConf, 'topic_root') || topicRoot;

    const passwd = path.join(dir, 'passwd');
    const acl = path.join(dir, 'acl');
    const confPath = path.join(dir, 'mosquitto.conf');
    await mosquittoPasswd(passwd, 'pushgate', brokerPassword, true);
    await mosquittoPasswd(passwd, OPERATOR_USER.username, OPERATOR_USER.password, false);
    for (const u of extraUsers) await mosquittoPasswd(passwd, u.username, u.password, false);
    const aclLines = [
        'user pushgate',
        `topic readwrite ${topicRoot}/#`,
        'topic read $SYS/broker/publish/messages/dropped',
        '',
        `user ${OPERATOR_USER.username}`,
        `topic read ${topicRoot}/#`,
        `topic deny ${topicRoot}/_ctl/#`, // app secrets travel there between gateways
        'topic read $SYS/#',
    ];
    for (const u of extraUsers) aclLines.push('', `user ${u.username}`, ...(u.acl || []));
    await fsp.writeFile(acl, aclLines.join('\n') + '\n', { mode: 0o644 });

    const conf = [
        '# written by tests/integration/lib/harness.mjs',
        'user root',
        ...(headConf ? [headConf] : []),
        `listener ${port} 127.0.0.1`,
        `allow_anonymous ${allowAnonymous ? 'true' : 'false'}`,
        'persistence false',
        'set_tcp_nodelay true',
        // what conf/mosquitto.conf ships: hold a lagging gateway's messages, bounded in bytes, instead of dropping
        'max_queued_messages 100000000',
        'max_queued_bytes 64000000',
        ...(passwordFile ? [`password_file ${passwd}`] : []),
        ...(aclFile ? [`acl_file ${acl}`] : []),
        'log_dest stderr',
        ...logTypes.map((t) => `log_type ${t}`),
        'connection_messages true',
    ];
    if (plugin) {
        conf.push(`plugin ${PLUGIN_SO}`, `plugin_opt_config ${pushgateConf}`);
        for (const [k, v] of Object.entries(pluginOpts)) conf.push(`plugin_opt_${k} ${v}`);
    }
    if (extraConf) conf.push(extraConf);
    await fsp.writeFile(confPath, conf.join('\n') + '\n', { mode: 0o644 });

    const env = { ...process.env };
    if (SANITIZE && plugin) {
        const pre = sanitizerPreloadList();
        if (pre.length) env.LD_PRELOAD = [...pre, env.LD_PRELOAD].filter(Boolean).join(':');
        // mosquitto's own allocations are not ours to police; the plugin's errors still abort.
        env.ASAN_OPTIONS = 'detect_leaks=0:abort_on_error=0';
        env.UBSAN_OPTIONS = 'print_stacktrace=1:halt_on_error=1';
    }

    const broker = {
        port,
        url: `mqtt://127.0.0.1:${port}`,
        confPath,
        passwordFile: passwd,
        aclFile: acl,
        brokerPassword,
        proc: null,
        _rec: null,
        _history: '',
        _stopResult: null,
        logs() {
            return broker._history + (broker._rec ? broker._rec.output : '');
        },
    };

    async function launch() {
        const rec = spawnTracked(MOSQUITTO_BIN, ['-c', confPath], { env, cwd: dir, name: 'mosquitto' });
        broker._rec = rec;
        broker.proc = rec.child;
        broker._stopResult = null;
        const deadline = Date.now() + (SANITIZE ? 20000 : 10000);
        for (;;) {
            if (rec.exitInfo) {
                throw new Error(
                    `mosquitto exited during startup (${JSON.stringify(rec.exitInfo)}):\n${tail(rec.output)}`,
                );
            }
            if (await tcpProbe(port)) return;
            if (Date.now() > deadline) {
                await terminate(rec, { signal: 'SIGKILL' });
                throw new Error(`mosquitto did not listen on ${port}:\n${tail(rec.output)}`);
            }
            await sleep(50);
        }
    }

    function check(rec, info) {
        const problems = [];
        if (info.error) problems.push(`spawn error ${info.error.message}`);
        if (info.signal && !rec.killedOnPurpose) problems.push(`killed by ${info.signal}`);
        if (info.code !== 0 && info.code !== null) problems.push(`exit code ${info.code}`);
        if (rec.timedOut) problems.push('did not exit after SIGTERM');
        if (rec.sanitizerHit) problems.push('sanitizer report in output');
        if (problems.length) {
            const e = new Error(`mosquitto: ${problems.join(', ')}\n--- broker output (tail) ---\n${tail(rec.output)}`);
            e.exit = info;
            throw e;
        }
    }

    broker.stop = async () => {
        const rec = broker._rec;
        if (!rec) return broker._stopResult;
        if (rec.stopPromise) return rec.stopPromise.catch(() => rec.exitInfo);
        rec.stopPromise = (async () => {
            const info = await terminate(rec);
            broker._stopResult = info;
            check(rec, info);
            return info;
        })();
        return rec.stopPromise;
    };
    broker.kill = async () => {
        const rec = broker._rec;
        if (!rec) return null;
        rec.killedOnPurpose = true;
        const info = await terminate(rec, { signal: 'SIGKILL' });
        if (!rec.stopPromise) rec.stopPromise = Promise.resolve(info);
        return info;
    };
    broker.restart = async () => {
        const old = broker._rec;
        if (old) {
            if (old.stopPromise) await old.stopPromise.catch(() => {});
            await broker.stop();
            broker._history += old.output + '\n[harness] --- broker restarted ---\n';
        }
        // The old socket may linger briefly; retry a few times rather than fail on EADDRINUSE.
        let lastErr;
        for (let i = 0; i < 20; i++) {
            try {
                await launch();
                return broker;
            } catch (err) {
                lastErr = err;
                broker._history += broker._rec.output;
                if (!/Address already in use/i.test(broker._rec.output)) break;
                await sleep(100);
            }
        }
        throw lastErr;
    };
    /** Starts a stopped/killed broker again on the same port (restart() does stop + start). */
    broker.start = async () => {
        if (broker._rec && !broker._rec.exitInfo) return broker;
        return broker.restart();
    };

    await launch();
    return broker;
}

// ---------------------------------------------------------------------------------------------
// Gateway

/**
 * Spawns the gateway with --config conf and waits until GET /healthz is 200, or with waitReady until
 * GET /readyz is 200 (connected to the broker: before that, new sessions and publishes are refused with 503).
 * port defaults to listen_port read from conf. env/args are added to the defaults.
 */
export async function startGateway({ dir, conf, port, env: extraEnv = {}, args = [], readyTimeoutMs, waitReady = false } = {}) {
    if (!conf) throw new Error('startGateway: conf is required');
    if (!fs.existsSync(GATEWAY_BIN)) throw new Error(`startGateway: gateway not built: ${GATEWAY_BIN}`);
    if (!port) port = Number(readConfOption(conf, 'listen_port'));
    if (!port) throw new Error(`startGateway: no listen_port in ${conf}`);
    const env = { ...process.env };
    if (SANITIZE) {
        env.ASAN_OPTIONS = 'detect_leaks=1:abort_on_error=0';
        env.UBSAN_OPTIONS = 'print_stacktrace=1:halt_on_error=1';
    }
    Object.assign(env, extraEnv);
    const rec = spawnTracked(GATEWAY_BIN, ['--config', conf, ...args], {
        env,
        cwd: dir || path.dirname(conf),
        name: 'pushgate',
    });
    const gw = {
        port,
        url: `http://127.0.0.1:${port}`,
        wsUrl: `ws://127.0.0.1:${port}`,
        proc: rec.child,
        conf,
        logs: () => rec.output,
        exited: rec.exited,
    };

    function check(info) {
        const problems = [];
        if (info.error) problems.push(`spawn error ${info.error.message}`);
        if (info.signal && !rec.killedOnPurpose) problems.push(`killed by ${info.signal}`);
        if (info.code !== 0 && info.code !== null) problems.push(`exit code ${info.code}`);
        if (rec.timedOut) problems.push('did not exit within the grace period after SIGTERM');
        if (rec.sanitizerHit) problems.push('sanitizer report in output');
        if (problems.length) {
            const e = new Error(`pushgate: ${problems.join(', ')}\n--- gateway output (tail) ---\n${tail(rec.output)}`);
            e.exit = info;
            throw e;
        }
    }

    // First call checks and may throw; later calls return the same {code, signal} without throwing again.
    gw.stop = async ({ signal = 'SIGTERM', graceMs = 15000 } = {}) => {
        if (rec.stopPromise) return rec.stopPromise.catch(() => rec.exitInfo);
        rec.stopPromise = (async () => {
            const info = await terminate(rec, { signal, graceMs });
            check(info);
            return { code: info.code, signal: info.signal };
        })();
        return rec.stopPromise;
    };
    gw.kill = async (signal = 'SIGKILL') => {
        rec.killedOnPurpose = true;
        const info = await terminate(rec, { signal });
        if (!rec.stopPromise) rec.stopPromise = Promise.resolve({ code: info.code, signal: info.signal });
        return { code: info.code, signal: info.signal };
    };
    gw.signal = (sig) => rec.child.kill(sig);

    gw.workers = gatewayWorkers(conf, args, env);
    // worker number -> pid of its latest start, from the supervisor's log ("worker 1 started (pid 1234)")
    gw.workerPids = () => {
        const pids = new Map();
        for (const m of rec.output.matchAll(/worker (\d+) started \(pid (\d+)\)/g)) pids.set(Number(m[1]), Number(m[2]));
        return pids;
    };

    // With workers, ready means every worker answered the probe: new connections land on any of them.
    const deadline = Date.now() + (readyTimeoutMs || (SANITIZE ? 30000 : 15000));
    const probe = waitReady ? '/readyz' : '/healthz';
    const answered = new Set();
    for (;;) {
        if (rec.exitInfo) {
            throw new Error(`pushgate exited during startup (${JSON.stringify(rec.exitInfo)}):\n${tail(rec.output)}`);
        }
        try {
            const r = await httpRequest('GET', `${gw.url}${probe}`, { timeoutMs: 1000 });
            if (r.status === 200) answered.add(gw.workers > 1 ? r.headers['x-pushgate-worker'] : 'only');
            if (answered.size >= gw.workers) break;
            if (r.status === 200) {
                await sleep(5); // another worker may answer the next connection: ask again soon
                continue;
            }
        } catch {
            // not listening yet
        }
        if (Date.now() > deadline) {
            await terminate(rec, { signal: 'SIGKILL' });
            throw new Error(`pushgate ${probe} not 200 within the startup timeout:\n${tail(rec.output)}`);
        }
        await sleep(50);
    }
    return gw;
}

// The number of processes a gateway started with conf, args and env serves with (workers: argv over env over file).
function gatewayWorkers(conf, args, env) {
    let v = readConfOption(conf, 'workers');
    if (env.PUSHGATE_WORKERS !== undefined) v = env.PUSHGATE_WORKERS;
    for (let i = 0; i < args.length; i++) {
        if (args[i] === '--workers') v = args[i + 1];
        else if (args[i].startsWith('--workers=')) v = args[i].slice('--workers='.length);
    }
    const n = Number(v ?? 0);
    return n === 0 ? os.availableParallelism() : n;
}

/**
 * Waits until every worker of gw answers request() so that ok(response) holds (the one process: one passing answer).
 * With workers each is its own node and converges on its own: requests (each a new connection, which the kernel gives
 * to any worker) are repeated until each worker, named by X-Pushgate-Worker, has given a passing answer as its latest,
 * or the timeout ends with an error naming every worker's latest answer.
 */
export async function expectEveryWorker(gw, request, ok, { timeoutMs = scaled(5000), message = 'every worker' } = {}) {
    const last = new Map();
    try {
        await waitFor(async () => {
            const r = await request();
            last.set(r.headers['x-pushgate-worker'] ?? 'only', ok(r) ? null : `${r.status} ${r.body}`);
            return last.size >= gw.workers && [...last.values()].every((v) => v === null);
        }, { timeoutMs, message });
    } catch (err) {
        err.message += `; latest answer per worker (null: passed): ${JSON.stringify(Object.fromEntries(last))}`;
        throw err;
    }
}

// ---------------------------------------------------------------------------------------------
// Whole stack

/**
 * Temp dir + pushgate.conf + broker (with plugin) + gateway.
 * gateway: extra/overriding global options (null drops one). brokerOptions: passed to startBroker.
 * The returned stack has startGateway() to start (or start again) the gateway later, and stop().
 * While the broker runs, startGateway() waits for /readyz (broker connected), otherwise for /healthz.
 */
export async function startStack({
    apps = DEFAULT_APPS,
    gateway = {},
    broker = true,
    startGateway: sg = true,
    plugin = true,
    brokerOptions = {},
} = {}) {
    const dir = await makeTempDir();
    const stack = { dir, broker: null, gw: null, conf: null, gatewayUser: null, apps };
    const gateways = [];
    let stopped = null;
    try {
        const listenPort = await freePort();
        const brokerPort = await freePort();
        const brokerPassword = crypto.randomBytes(12).toString('hex');
        stack.conf = await writePushgateConf({ dir, listenPort, brokerPort, brokerPassword, gateway, apps });
        stack.gatewayUser = { username: 'pushgate', password: brokerPassword };
        stack.brokerPort = brokerPort;
        stack.listenPort = listenPort;
        if (broker) {
            stack.broker = await startBroker({
                dir,
                port: brokerPort,
                pushgateConf: stack.conf,
                plugin,
                brokerPassword,
                ...brokerOptions,
            });
        }
        // With the stack's broker up, a started gateway is ready: tests may open sessions at once.
        stack.startGateway = async (opts = {}) => {
            const brokerUp = Boolean(stack.broker?._rec && !stack.broker._rec.exitInfo && !stack.broker._rec.stopPromise);
            const gw = await startGateway({ dir, conf: stack.conf, waitReady: brokerUp, ...opts });
            gateways.push(gw);
            stack.gw = gw;
            return gw;
        };
        if (sg) await stack.startGateway();
    } catch (err) {
        for (const g of gateways) await g.kill().catch(() => {});
        if (stack.broker) await stack.broker.kill().catch(() => {});
        await removeTempDir(dir).catch(() => {});
        throw err;
    }
    stack.stop = () => {
        if (!stopped) {
            stopped = (async () => {
                const errors = [];
                for (const g of gateways) {
                    try {
                        await g.stop();
                    } catch (err) {
                        errors.push(err);
                    }
                }
                if (stack.broker) {
                    try {
                        await stack.broker.stop();
                    } catch (err) {
                        errors.push(err);
                    }
                }
                await removeTempDir(dir).catch(() => {});
                if (errors.length === 1) throw errors[0];
                if (errors.length > 1) throw new AggregateError(errors, errors.map((e) => e.message).join('\n\n'));
            })();
            return stopped;
        }
        return stopped.catch(() => {});
    };
    return stack;
}

// ---------------------------------------------------------------------------------------------
// Clients

/** Resolves to the CONNACK refusal reason of mqttConnect(opts); rejects if the connection is accepted. */
export async function mqttRefused(opts) {
    let client;
    try {
        client = await mqttConnect(opts);
    } catch (err) {
        return err.code;
    }
    client.end(true);
    throw new Error(`connection as ${opts.username}/${opts.clientId} was accepted, expected a refusal`);
}

/**
 * mqtt.js client, resolved once CONNACK accepted the session. Rejects with an Error carrying
 * .code / .reasonCode (the CONNACK reason) on refusal, or on close before connecting.
 */
export function mqttConnect({ port, host = '127.0.0.1', username, password, clientId, protocolVersion = 5, ...more } = {}) {
    return new Promise((resolve, reject) => {
        const opts = {
            host,
            port,
            protocolVersion,
            reconnectPeriod: 0,
            connectTimeout: 10000,
            clean: true,
            ...more,
        };
        if (username !== undefined) opts.username = username;
        if (password !== undefined) opts.password = password;
        if (clientId !== undefined) opts.clientId = clientId;
        const client = mqtt.connect(`mqtt://${host}:${port}`, opts);
        let settled = false;
        const fail = (err) => {
            if (settled) return;
            settled = true;
            client.end(true);
            reject(err);
        };
        client.once('connect', (connack) => {
            if (settled) return;
            settled = true;
            client.connack = connack;
            resolve(client);
        });
        client.once('error', (err) => {
            const e = new Error(`MQTT connect refused: ${err.message}`);
            e.code = err.code;
            e.reasonCode = err.code;
            e.cause = err;
            fail(e);
        });
        client.once('close', () => {
            const e = new Error('MQTT connection closed before CONNACK success');
            e.code = 'CLOSED';
            fail(e);
        });
    });
}

function parseFrame(data, isBinary) {
    const text = Buffer.isBuffer(data) ? data.toString('utf8') : Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data).toString('utf8');
    try {
        return JSON.parse(text);
    } catch {
        // Non-JSON frames are kept as their text so a test can still see them.
        return isBinary ? { __binary: text } : text;
    }
}

/**
 * WebSocket client. Resolves after the handshake to
 *   { ws, frames, pending, next(pred?, timeoutMs), send(objOrString), close(code?, reason?), closed }
 * frames: every frame received, in order (history, never consumed). next() consumes from pending:
 * the first pending frame matching pred is removed and returned; non-matching frames stay pending.
 * next() rejects on timeout, or when the socket closed and no pending frame matches.
 * opts: ws client options (headers, ...) plus protocols (string|string[]).
 * Rejects with an Error carrying statusCode/headers/body when the server refused the upgrade.
 */
// One HTTP/1.1 exchange on a raw socket: the answer's status, lower-cased headers and body (Content-Length framed).
export function rawExchange(sock, request) {
    return new Promise((resolve, reject) => {
        let buf = Buffer.alloc(0);
        const onData = (d) => {
            buf = Buffer.concat([buf, d]);
            const end = buf.indexOf('\r\n\r\n');
            if (end < 0) return;
            const [statusLine, ...lines] = buf.subarray(0, end).toString('latin1').split('\r\n');
            const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
            const len = Number(headers['content-length'] ?? 0);
            if (buf.length < end + 4 + len) return;
            sock.off('data', onData);
            sock.off('error', reject);
            resolve({ status: Number(statusLine.split(' ')[1]), headers, body: buf.subarray(end + 4, end + 4 + len).toString() });
        };
        sock.on('data', onData);
        sock.once('error', reject);
        sock.write(request);
    });
}

export function wsConnect(url, opts = {}) {
    const { protocols, ...wsOpts } = opts;
    return new Promise((resolve, reject) => {
        const ws = new WebSocket(url, protocols, { handshakeTimeout: 10000, ...wsOpts });
        const frames = [];
        const pending = [];
        const waiters = [];
        let closeInfo = null;
        let resolveClosed;
        const closed = new Promise((r) => {
            resolveClosed = r;
        });

        const wrapper = {
            ws,
            frames,
            pending,
            closed,
            get closeInfo() {
                return closeInfo;
            },
            send(obj) {
                ws.send(typeof obj === 'string' || Buffer.isBuffer(obj) ? obj : JSON.stringify(obj));
            },
            close(code, reason) {
                if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(code, reason);
                return closed;
            },
            terminate() {
                ws.terminate();
                return closed;
            },
            next(pred = () => true, timeoutMs = scaled(5000)) {
                const idx = pending.findIndex((f) => pred(f));
                if (idx >= 0) return Promise.resolve(pending.splice(idx, 1)[0]);
                if (closeInfo) {
                    return Promise.reject(
                        Object.assign(new Error(`WebSocket closed (${closeInfo.code} ${closeInfo.reason}) before a matching frame`), {
                            closeInfo,
                        }),
                    );
                }
                return new Promise((res, rej) => {
                    const w = { pred, res, rej };
                    w.timer = setTimeout(() => {
                        waiters.splice(waiters.indexOf(w), 1);
                        rej(
                            new Error(
                                `no matching WebSocket frame within ${timeoutMs} ms; pending: ${JSON.stringify(pending).slice(0, 2000)}`,
                            ),
                        );
                    }, timeoutMs);
                    waiters.push(w);
                });
            },
        };

        ws.on('message', (data, isBinary) => {
            const f = parseFrame(data, isBinary);
            frames.push(f);
            const wi = waiters.findIndex((w) => w.pred(f));
            if (wi >= 0) {
                const [w] = waiters.splice(wi, 1);
                clearTimeout(w.timer);
                w.res(f);
            } else {
                pending.push(f);
            }
        });
        ws.on('close', (code, reason) => {
            closeInfo = { code, reason: reason.toString('utf8') };
            resolveClosed(closeInfo);
            for (const w of waiters.splice(0)) {
                clearTimeout(w.timer);
                w.rej(
                    Object.assign(new Error(`WebSocket closed (${code} ${closeInfo.reason}) before a matching frame`), {
                        closeInfo,
                    }),
                );
            }
        });
        // the worker that accepted the connection (X-Pushgate-Worker; undefined when the gateway is one process)
        ws.on('upgrade', (res) => {
            wrapper.worker = res.headers['x-pushgate-worker'];
        });
        let opened = false;
        ws.on('unexpected-response', (req, res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            const done = () => {
                const e = new Error(`WebSocket upgrade refused with HTTP ${res.statusCode}`);
                e.statusCode = res.statusCode;
                e.headers = res.headers;
                e.body = Buffer.concat(chunks).toString('utf8');
                req.destroy();
                reject(e);
            };
            res.on('end', done);
            res.on('error', done);
            res.on('close', done);
        });
        ws.on('error', (err) => {
            if (!opened) reject(err);
        });
        ws.on('open', () => {
            opened = true;
            resolve(wrapper);
        });
    });
}

// Collects messages on an mqtt.js client: returns {messages, next(pred, timeoutMs)} where each message
// is {topic, payload (Buffer), text, properties, packet}.
export function mqttCollector(client) {
    const box = inbox('MQTT message');
    client.on('message', (topic, payload, packet) => {
        box.push({ topic, payload, text: payload.toString('utf8'), properties: packet.properties || {}, packet });
    });
    return { messages: box.items, pending: box.pending, next: box.next };
}

/**
 * Arrivals a test awaits one by one: push(item) as they come; next(pred, timeoutMs) resolves with the first item
 * matching pred that no earlier next() took, at once or when it arrives. items keeps everything, in order.
 */
export function inbox(what) {
    const items = [];
    const pending = [];
    const waiters = [];
    return {
        items,
        pending,
        push(item) {
            items.push(item);
            const wi = waiters.findIndex((w) => w.pred(item));
            if (wi >= 0) {
                const [w] = waiters.splice(wi, 1);
                clearTimeout(w.timer);
                w.res(item);
            } else {
                pending.push(item);
            }
        },
        next(pred = () => true, timeoutMs = scaled(5000)) {
            const idx = pending.findIndex((m) => pred(m));
            if (idx >= 0) return Promise.resolve(pending.splice(idx, 1)[0]);
            return new Promise((res, rej) => {
                const w = { pred, res };
                w.timer = setTimeout(() => {
                    waiters.splice(waiters.indexOf(w), 1);
                    rej(new Error(`no matching ${what} within ${timeoutMs} ms`));
                }, timeoutMs);
                waiters.push(w);
            });
        },
    };
}

// mqtt.js v5 user properties may hold a string or an array of strings per key.
export function userProp(props, name) {
    const up = props && props.userProperties;
    if (!up) return undefined;
    const v = up[name];
    return Array.isArray(v) ? v[0] : v;
}
