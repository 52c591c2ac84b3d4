// Headless Chromium for the browser tests: Debian's chromium driven by playwright-core.
import { chromium } from 'playwright-core';

import { CHROMIUM } from './harness.mjs';

export function launchChromium() {
    return chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        timeout: 30000,
        args: [
            '--no-sandbox',
            '--disable-gpu',
            '--disable-quic',
            '--no-first-run',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
        ],
    });
}
