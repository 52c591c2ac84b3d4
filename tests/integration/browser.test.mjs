// The demo chat page in a real headless Chromium (Debian's chromium driven by playwright-core) against a
// real mosquitto + pushgate stack: two browser contexts in one room see each other's typed messages, a
// device publishing with the real mosquitto_pub CLI reaches both pages, a device subscribed with
// mosquitto_sub sees what a page typed, and untrusted message content is rendered as text, never as HTML.
// A screenshot of the second page is left in tests/artifacts/demo-chat.png for people, not for assertions.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { launchChromium } from './lib/browser.mjs';
import { REPO_DIR, startStack } from './lib/harness.mjs';

const WAIT_MS = 10000;
const ARTIFACTS_DIR = path.join(REPO_DIR, 'tests', 'artifacts');
const SCREENSHOT = path.join(ARTIFACTS_DIR, 'demo-chat.png');
const APP = 'demo';
// A `/` in the room name exercises multi-level channels end to end (URL parameter, WebSocket, MQTT topic).
const ROOM = `it-browser/${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
const TOPIC = `pushgate/${APP}/c/${ROOM}`;

let stack;
let browser;
const pages = []; // [{name, page, problems: [string]}]

function uniq(label) {
    return `${label} ${crypto.randomBytes(5).toString('hex')}`;
}

function run(cmd, args, timeoutMs = WAIT_MS) {
    return new Promise((resolve, reject) => {
        execFile(cmd, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
            if (err) {
                err.message += `\n${cmd} ${args.join(' ')}\nstdout: ${stdout}\nstderr: ${stderr}`;
                reject(err);
            } else {
                resolve({ stdout, stderr });
            }
        });
    });
}

// The open demo app admits a device by app id alone; the client id is the device's own.
function devicePublish(payload) {
    return run('mosquitto_pub', [
        '-h', '127.0.0.1', '-p', String(stack.brokerPort),
        '-u', APP, '-i', `it-device-pub-${crypto.randomBytes(4).toString('hex')}`,
        '-q', '1', '-t', TOPIC, '-m', payload,
    ]);
}

// Starts mosquitto_sub on the room's topic and resolves once its SUBACK arrived, with
// next(pred) -> the first received payload matching pred, and stop().
function deviceSubscribe() {
    return new Promise((resolve, reject) => {
        // stdbuf: mosquitto_sub's stdout is block-buffered into a pipe, and its SUBACK line is the ready signal.
        const child = spawn('stdbuf', ['-oL', 'mosquitto_sub',
            '-h', '127.0.0.1', '-p', String(stack.brokerPort),
            '-u', APP, '-i', `it-device-sub-${crypto.randomBytes(4).toString('hex')}`,
            '-q', '1', '-t', TOPIC, '-d', '-F', 'PAYLOAD %p',
        ], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let subscribed = false;
        const waiters = [];
        const payloads = () => out.split('\n').filter((l) => l.startsWith('PAYLOAD ')).map((l) => l.slice(8));
        const check = () => {
            for (const w of waiters.slice()) {
                const hit = payloads().find(w.pred);
                if (hit !== undefined) {
                    waiters.splice(waiters.indexOf(w), 1);
                    clearTimeout(w.timer);
                    w.resolve(hit);
                }
            }
        };
        const handle = {
            output: () => out,
            next(pred, timeoutMs = WAIT_MS) {
                return new Promise((res, rej) => {
                    const w = { pred, resolve: res };
                    w.timer = setTimeout(() => {
                        waiters.splice(waiters.indexOf(w), 1);
                        rej(new Error(`mosquitto_sub got no matching payload in ${timeoutMs} ms; output:\n${out}`));
                    }, timeoutMs);
                    waiters.push(w);
                    check();
                });
            },
            stop() {
                if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
            },
        };
        const startTimer = setTimeout(() => {
            handle.stop();
            reject(new Error(`mosquitto_sub got no SUBACK in ${WAIT_MS} ms; output:\n${out}`));
        }, WAIT_MS);
        const onData = (b) => {
            out += b.toString('utf8');
            if (!subscribed && /Client \S+ received SUBACK/.test(out)) {
                subscribed = true;
                clearTimeout(startTimer);
                resolve(handle);
            }
            check();
        };
        child.stdout.on('data', onData);
        child.stderr.on('data', onData);
        child.on('error', (err) => {
            clearTimeout(startTimer);
            reject(err);
        });
        child.on('close', (code) => {
            if (!subscribed) {
                clearTimeout(startTimer);
                reject(new Error(`mosquitto_sub exited (${code}) before SUBACK; output:\n${out}`));
            }
        });
    });
}

// What a page shows, for failure messages.
async function describe(p) {
    try {
        return JSON.stringify(
            await p.page.evaluate(() => ({
                status: document.getElementById('status').textContent,
                notice: document.getElementById('notice').textContent,
                messages: Array.from(document.querySelectorAll('#messages li')).map((li) => li.textContent),
            })),
        );
    } catch (err) {
        return `(page not readable: ${err.message})`;
    }
}

// Waits for a #messages item whose whole text is `text`, and returns what the page made of it.
async function waitForItem(p, text) {
    try {
        await p.page.waitForFunction(
            (t) => Array.from(document.querySelectorAll('#messages li')).some((li) => li.textContent === t),
            text,
            { timeout: WAIT_MS, polling: 50 },
        );
    } catch (err) {
        const page = await describe(p);
        throw new Error(`${p.name}: no message ${JSON.stringify(text)} within ${WAIT_MS} ms; page: ${page}\n` +
            `gateway log tail:\n${stack.gw.logs().slice(-3000)}`, { cause: err });
    }
    return p.page.evaluate((t) => {
        const li = Array.from(document.querySelectorAll('#messages li')).find((x) => x.textContent === t);
        return {
            className: li.className,
            childTags: Array.from(li.querySelectorAll('*')).map((e) => e.tagName.toLowerCase()),
            name: li.querySelector('.name') ? li.querySelector('.name').textContent : null,
            text: li.querySelector('.text') ? li.querySelector('.text').textContent : null,
        };
    }, text);
}

async function openDemoPage(name) {
    const context = await browser.newContext({ viewport: { width: 800, height: 600 } });
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    const p = { name, page, context, problems: [], dialogs: [] };
    page.on('pageerror', (err) => p.problems.push(`pageerror: ${err.message}`));
    page.on('console', (msg) => {
        if (msg.type() === 'error') p.problems.push(`console.error: ${msg.text()}`);
    });
    page.on('requestfailed', (req) => p.problems.push(`request failed: ${req.url()} ${req.failure()?.errorText}`));
    page.on('dialog', (d) => {
        p.dialogs.push(`${d.type()}: ${d.message()}`);
        d.dismiss().catch(() => {});
    });
    pages.push(p);
    const resp = await page.goto(`${stack.gw.url}/demo?room=${encodeURIComponent(ROOM)}`, { timeout: WAIT_MS });
    assert.equal(resp.status(), 200, `${name}: GET /demo answered ${resp.status()}`);
    return p;
}

async function waitConnected(p) {
    try {
        await p.page.waitForFunction(() => document.getElementById('status').textContent === 'connected', null, {
            timeout: WAIT_MS,
            polling: 50,
        });
    } catch (err) {
        throw new Error(`${p.name}: #status never "connected": ${await describe(p)}\n${p.problems.join('\n')}`, {
            cause: err,
        });
    }
}

before(async () => {
    stack = await startStack();
    browser = await launchChromium();
});

after(async () => {
    try {
        if (pages[1]) {
            await fsp.mkdir(ARTIFACTS_DIR, { recursive: true });
            await pages[1].page.screenshot({ path: SCREENSHOT, timeout: WAIT_MS }).catch((err) => {
                process.stderr.write(`screenshot not saved: ${err.message}\n`);
            });
        }
    } finally {
        try {
            if (browser) await browser.close();
        } finally {
            if (stack) await stack.stop();
        }
    }
});

test('two pages of the demo join the same room', async () => {
    const p1 = await openDemoPage('page 1');
    const p2 = await openDemoPage('page 2');
    await Promise.all([waitConnected(p1), waitConnected(p2)]);
    for (const p of [p1, p2]) {
        assert.equal(await p.page.textContent('#where'), `${APP} / ${ROOM}`);
        assert.equal(await p.page.textContent('#notice'), '');
    }
});

test('a message typed in one page appears in both, marked as its own only in the sender', async () => {
    const [p1, p2] = pages;
    assert.ok(p1 && p2, 'pages are open');
    const text = uniq('hello from page 1 <b>not bold</b>');
    await p1.page.fill('#name', 'alice');
    await p1.page.click('#text');
    await p1.page.keyboard.type(text);
    await p1.page.click('#send');

    const shown = `alice: ${text}`;
    const [in1, in2] = await Promise.all([waitForItem(p1, shown), waitForItem(p2, shown)]);
    for (const item of [in1, in2]) {
        assert.equal(item.name, 'alice: ');
        assert.equal(item.text, text);
        assert.deepEqual(item.childTags, ['span', 'span'], 'only the page\'s own spans, no markup from the text');
    }
    assert.equal(in1.className, 'mine', 'the sender sees its own message as its own');
    assert.equal(in2.className, '', 'the other page does not');
    assert.equal(await p1.page.inputValue('#text'), '', 'the input is cleared after sending');

    // Enter in the text field sends too (the form's submit), from the second page this time.
    const reply = uniq('reply from page 2');
    await p2.page.fill('#name', 'bob');
    await p2.page.fill('#text', reply);
    await p2.page.press('#text', 'Enter');
    await Promise.all([waitForItem(p1, `bob: ${reply}`), waitForItem(p2, `bob: ${reply}`)]);
});

test('a device subscribed with mosquitto_sub receives what a page typed', async () => {
    const [p1] = pages;
    assert.ok(p1, 'page is open');
    const sub = await deviceSubscribe();
    try {
        const text = uniq('to the device');
        await p1.page.fill('#name', 'alice');
        await p1.page.fill('#text', text);
        await p1.page.click('#send');
        const payload = await sub.next((pl) => pl.includes(text));
        assert.deepEqual(JSON.parse(payload), { name: 'alice', text });
    } finally {
        sub.stop();
    }
});

test('a message published by a device with mosquitto_pub appears in both pages', async () => {
    const [p1, p2] = pages;
    assert.ok(p1 && p2, 'pages are open');
    const text = uniq('plain text from a device');
    await devicePublish(text);
    const items = await Promise.all([waitForItem(p1, text), waitForItem(p2, text)]);
    for (const item of items) {
        assert.equal(item.className, 'raw', 'a non-JSON payload is shown as a raw line');
        assert.deepEqual(item.childTags, []);
    }

    // A device speaking the page's own {name, text} shape is shown like a browser's message.
    const structured = uniq('structured from a device');
    await devicePublish(JSON.stringify({ name: 'sensor-7', text: structured }));
    const shown = `sensor-7: ${structured}`;
    const items2 = await Promise.all([waitForItem(p1, shown), waitForItem(p2, shown)]);
    for (const item of items2) {
        assert.equal(item.className, '', 'a device message is nobody\'s own');
        assert.equal(item.text, structured);
    }
});

test('message content is rendered as text, never as HTML', async () => {
    const [p1, p2] = pages;
    assert.ok(p1 && p2, 'pages are open');
    const raw = '<img src=x onerror=alert(1)>';
    await devicePublish(raw);
    await Promise.all([waitForItem(p1, raw), waitForItem(p2, raw)]);

    const name = '<img src=y onerror=alert(2)>';
    const text = `<script>window.__pwned = 1</script><b>${crypto.randomBytes(4).toString('hex')}</b>`;
    await devicePublish(JSON.stringify({ name, text }));
    await Promise.all([waitForItem(p1, `${name}: ${text}`), waitForItem(p2, `${name}: ${text}`)]);

    for (const p of [p1, p2]) {
        const dom = await p.page.evaluate(() => ({
            imgs: document.querySelectorAll('img').length,
            injected: document.querySelectorAll('#messages script, #messages b, #messages img').length,
            pwned: window.__pwned,
        }));
        const none = { imgs: 0, injected: 0, pwned: undefined };
        assert.deepEqual(dom, none, `${p.name}: markup from a message became DOM`);
        // An error handler on a broken image would have run by now; give it one more turn of the event loop.
        await p.page.waitForTimeout(200);
        assert.deepEqual(p.dialogs, [], `${p.name}: a message opened a dialog`);
    }
});

test('neither page reported a script error, failed request or dialog', async () => {
    assert.equal(pages.length, 2);
    for (const p of pages) {
        assert.equal(await p.page.textContent('#status'), 'connected', `${p.name}: still connected at the end`);
        assert.equal(await p.page.textContent('#notice'), '', `${p.name}: no notice shown`);
        assert.deepEqual(p.problems, [], `${p.name}: problems`);
        assert.deepEqual(p.dialogs, [], `${p.name}: dialogs`);
    }
});
