// The structure rules of the source tree, read from the files themselves (ARCHITECTURE.md explains them):
//  - a module is one .c and its .h under gateway/ (gateway/core/session.c + gateway/core/session.h = core/session);
//    module A depends on module B when A's .c or .h includes B's header; those dependencies have no cycle;
//  - no header over MAX_HEADER_LINES and no source over MAX_SOURCE_LINES lines unless its first comment says why
//    (a line containing LONG_FILE_MARK);
//  - only gateway/proto/ compares protocols: the rest of the gateway goes through the protocol ops table;
//  - only common/topic.c spells out pushgate topics (gateway/ and plugin/ build them with common/pg_topic.h);
//  - the broker plugin includes nothing from gateway/;
//  - every gateway module appears in ARCHITECTURE.md's module table, and the table names no module that is gone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MAX_HEADER_LINES = 250;
const MAX_SOURCE_LINES = 700;
const LONG_FILE_MARK = 'Why this file is long:';

function walk(dir, exts) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p, exts));
    else if (exts.some((x) => e.name.endsWith(x))) out.push(p);
  }
  return out.sort();
}

function quotedIncludes(file) {
  return [...fs.readFileSync(file, 'utf8').matchAll(/^\s*#\s*include\s+"([^"]+)"/gm)].map((m) => m[1]);
}

// Module name of a file: its path under base without extension.
function moduleOf(base, file) {
  return path.relative(base, file).replace(/\.[ch]$/, '');
}

// The dependency graph of the modules under base: {module: Set(modules it includes)}. An include resolves as the
// compiler would with -I base: next to the including file first, then from base.
export function moduleGraph(base) {
  const files = walk(base, ['.c', '.h']);
  const graph = new Map();
  for (const f of files) {
    const from = moduleOf(base, f);
    if (!graph.has(from)) graph.set(from, new Set());
    for (const inc of quotedIncludes(f)) {
      const candidates = [path.join(path.dirname(f), inc), path.join(base, inc)];
      const hit = candidates.find((c) => fs.existsSync(c));
      if (!hit) continue; // a header of another library (auth, bridge, common, store) or generated
      const to = moduleOf(base, hit);
      if (to !== from) graph.get(from).add(to);
    }
  }
  return graph;
}

// One cycle of the graph as a list of modules (first repeated at the end), or null.
export function findCycle(graph) {
  const state = new Map(); // undefined: unseen, 1: on the stack, 2: done
  const stack = [];
  const visit = (n) => {
    state.set(n, 1);
    stack.push(n);
    for (const m of graph.get(n) ?? []) {
      if (state.get(m) === 1) return [...stack.slice(stack.indexOf(m)), m];
      if (!state.get(m)) {
        const c = visit(m);
        if (c) return c;
      }
    }
    stack.pop();
    state.set(n, 2);
    return null;
  };
  for (const n of [...graph.keys()].sort()) {
    if (!state.get(n)) {
      const c = visit(n);
      if (c) return c;
    }
  }
  return null;
}

function firstComment(file) {
  const m = fs.readFileSync(file, 'utf8').match(/^\s*\/\*[\s\S]*?\*\//);
  return m ? m[0] : '';
}

const GATEWAY = path.join(ROOT, 'gateway');

test('the cycle check finds a cycle through a header and a source file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pg-arch-'));
  try {
    fs.mkdirSync(path.join(dir, 'core'));
    fs.writeFileSync(path.join(dir, 'core/a.h'), '#include "core/b.h"\n');
    fs.writeFileSync(path.join(dir, 'core/a.c'), '#include "a.h"\n');
    fs.writeFileSync(path.join(dir, 'core/b.h'), '\n');
    fs.writeFileSync(path.join(dir, 'core/b.c'), '#include "core/b.h"\n#include "pushgate_auth.h"\n');
    assert.equal(findCycle(moduleGraph(dir)), null);
    fs.writeFileSync(path.join(dir, 'core/b.c'), '#include "core/b.h"\n#include "a.h"\n');
    assert.deepEqual(findCycle(moduleGraph(dir)), ['core/a', 'core/b', 'core/a']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('gateway modules include each other without a cycle', () => {
  const graph = moduleGraph(GATEWAY);
  assert.ok(graph.size > 20, `expected the gateway's modules, found ${graph.size}`);
  const cycle = findCycle(graph);
  assert.equal(cycle, null, `include cycle: ${cycle?.join(' -> ')}`);
});

test('there is no catch-all gateway header', () => {
  assert.equal(fs.existsSync(path.join(GATEWAY, 'gateway.h')), false);
});

test('files stay small, or say why they are not', () => {
  const dirs = ['gateway', 'auth', 'bridge', 'common', 'store', 'plugin'].map((d) => path.join(ROOT, d));
  const long = [];
  for (const d of dirs.filter((x) => fs.existsSync(x))) {
    for (const f of walk(d, ['.c', '.h'])) {
      const lines = fs.readFileSync(f, 'utf8').split('\n').length - 1;
      const max = f.endsWith('.h') ? MAX_HEADER_LINES : MAX_SOURCE_LINES;
      if (lines > max && !firstComment(f).includes(LONG_FILE_MARK))
        long.push(`${path.relative(ROOT, f)} (${lines} lines, limit ${max})`);
    }
  }
  assert.deepEqual(long, [], `over the limit without "${LONG_FILE_MARK}" in the first comment`);
});

test('only the protocol modules compare protocols', () => {
  const hits = [];
  for (const f of walk(GATEWAY, ['.c', '.h'])) {
    if (path.relative(GATEWAY, f).startsWith('proto' + path.sep)) continue;
    fs.readFileSync(f, 'utf8').split('\n').forEach((line, i) => {
      if (/proto\s*[!=]=|PG_PROTO_(NATIVE|PUSHER|SIO)\b/.test(line)) hits.push(`${path.relative(ROOT, f)}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.deepEqual(hits, []);
});

test('only the topic module spells out topics', () => {
  // string literals that build or match pushgate topics: "{root}/{app}/..." formats, control and node levels
  const topicish = /"[^"\n]*(%s\/%s|\/_ctl\/|\/_node\/|^_ctl\/|\/[cudpb]\/%s)[^"\n]*"/;
  const hits = [];
  for (const d of ['gateway', 'plugin'].map((x) => path.join(ROOT, x))) {
    for (const f of walk(d, ['.c', '.h'])) {
      fs.readFileSync(f, 'utf8').split('\n').forEach((line, i) => {
        const code = line.replace(/\/\*.*?\*\/|\/\/.*$/g, '');
        if (/^\s*\*/.test(line) || !topicish.test(code)) return;
        if (/snprintf\(path,/.test(code)) return; // file paths, not topics
        hits.push(`${path.relative(ROOT, f)}:${i + 1}: ${line.trim()}`);
      });
    }
  }
  assert.deepEqual(hits, [], 'build topics with common/pg_topic.h');
});

test('the broker plugin includes nothing from gateway/', () => {
  const pluginDir = fs.existsSync(path.join(ROOT, 'plugin')) ? path.join(ROOT, 'plugin') : path.join(ROOT, 'auth');
  const files = walk(pluginDir, ['.c', '.h']);
  assert.ok(files.length > 0);
  const gatewayHeaders = new Set(walk(GATEWAY, ['.h']).map((f) => path.relative(GATEWAY, f)));
  const bad = [];
  for (const f of files)
    for (const inc of quotedIncludes(f)) if (gatewayHeaders.has(inc) || gatewayHeaders.has(path.basename(inc))) bad.push(`${path.relative(ROOT, f)}: ${inc}`);
  assert.deepEqual(bad, []);
  const cmake = fs.readFileSync(path.join(pluginDir, 'CMakeLists.txt'), 'utf8');
  assert.doesNotMatch(cmake, /pushgate_gateway|\bgateway\//);
});

test('ARCHITECTURE.md lists every gateway module, and only those', () => {
  const doc = fs.readFileSync(path.join(ROOT, 'ARCHITECTURE.md'), 'utf8');
  // module rows: | `core/session` | ...
  const listed = new Set([...doc.matchAll(/^\|\s*`([a-z_]+(?:\/[a-z_]+)?)`\s*\|/gm)].map((m) => m[1]));
  const modules = new Set([...moduleGraph(GATEWAY).keys()]);
  const missing = [...modules].filter((m) => !listed.has(m));
  const stale = [...listed].filter((m) => !modules.has(m));
  assert.deepEqual({ missing, stale }, { missing: [], stale: [] });
});
