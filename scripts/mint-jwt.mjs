#!/usr/bin/env node
// Mints an HS256 JWT for a pushgate app (for trying things out; production backends use their own JWT library).
//   node scripts/mint-jwt.mjs --app ID --secret SECRET [--client ID] [--ttl SECONDS]
//                             [--permissions JSON] [--user-id ID]
import { createHmac } from 'node:crypto';
import { parseArgs } from 'node:util';

const { values: o } = parseArgs({
    options: {
        app: { type: 'string' },
        secret: { type: 'string' },
        client: { type: 'string' },
        ttl: { type: 'string', default: '3600' },
        permissions: { type: 'string', default: '{".*":{"publish":true,"subscribe":true}}' },
        'user-id': { type: 'string' },
    },
});
if (!o.app || !o.secret) {
    console.error('usage: mint-jwt.mjs --app ID --secret SECRET [--client ID] [--ttl S] [--permissions JSON]');
    process.exit(2);
}
const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const claims = { channel: o.app, exp: Math.floor(Date.now() / 1000) + Number(o.ttl), permissions: JSON.parse(o.permissions) };
if (o.client) claims.client = o.client;
if (o['user-id']) claims.user_id = o['user-id'];
const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
console.log(`${head}.${createHmac('sha256', o.secret).update(head).digest('base64url')}`);
