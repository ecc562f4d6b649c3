// drive_dashboard.js - drives deploy/dashboard/index.html in headless Chromium (playwright-core)
// against a real mosquitto and real edgelmd nodes started by test_dashboard.sh, and prints one
// "ok - ..." or "not ok - ..." line per check (the shell counts them). Not standalone: every
// input comes from the environment the shell sets (below). Exit status 0 only if all passed.
// Steps: node A online with its model; node B started here and discovered live; a fleet request;
// a streamed request to A (screenshot); a cancel; hostile and stale retained reports (escaped,
// llama.cpp names, "stale"); A stopped with SIGTERM turns offline; 360 px without sideways
// scrolling; the page without mqtt.min.js says so; the page served by mosquitto's http_dir;
// no console errors.
'use strict';
const fs = require('fs');
const path = require('path');
const { spawn, execFileSync } = require('child_process');

const env = (name, fallback) => {
    const v = process.env[name];
    if (v === undefined || v === '') {
        if (fallback !== undefined) return fallback;
        throw new Error('drive_dashboard.js: environment variable ' + name + ' not set');
    }
    return v;
};
const { chromium } = require(path.join(env('PLAYWRIGHT_DIR'), 'node_modules', 'playwright-core'));

const CHROMIUM = env('CHROMIUM');
const PAGE_URL = env('PAGE_URL');            // the page (python3 -m http.server)
const NOLIB_URL = env('NOLIB_URL');          // the same page without mqtt.min.js
const HTTPDIR_URL = env('HTTPDIR_URL', '');  // the page from mosquitto's http_dir
const WS_URL = env('WS_URL');                // ws://127.0.0.1:PORT
const MQTT_PORT = env('MQTT_PORT');          // the TCP listener, for mosquitto_pub
const NODE_A = env('NODE_A');
const NODE_A_PID = Number(env('NODE_A_PID'));
const MODEL = env('MODEL');                  // "model" of the nodes' health documents
const NODE_B = env('NODE_B');
const NODE_B_CMD = JSON.parse(env('NODE_B_CMD')); // argv of the second edgelmd
const NODE_B_LOG = env('NODE_B_LOG');
const NODE_B_PIDFILE = env('NODE_B_PIDFILE');
const OUT_DIR = env('OUT_DIR');              // screenshots
const TIMEOUT_MS = Number(env('STEP_TIMEOUT_MS', '30000'));
// a broker with passwords and acl.conf + docs/dashboard.md's lines (empty: that part is skipped)
const ACL_WS_URL = env('ACL_WS_URL', '');
const ACL_NODE = env('ACL_NODE', '');
const ACL_OPERATOR_PW = env('ACL_OPERATOR_PW', '');
const ACL_DASHBOARD_PW = env('ACL_DASHBOARD_PW', '');

let failures = 0;
let checks = 0;
function ok(desc) { checks++; console.log('ok - ' + desc); }
function notOk(desc, detail) {
    checks++;
    failures++;
    console.log('not ok - ' + desc + (detail ? ': ' + String(detail).split('\n')[0] : ''));
}
// check(desc, async fn): fn throws or returns false to fail; returns whether it passed
async function check(desc, fn) {
    try {
        const r = await fn();
        if (r === false) { notOk(desc); return false; }
        ok(desc);
        return true;
    } catch (e) {
        notOk(desc, e && e.message ? e.message : e);
        return false;
    }
}

function pub(topic, payload, retain) { // mosquitto_pub on the TCP listener; payload null = clear
    const args = ['-h', '127.0.0.1', '-p', MQTT_PORT, '-q', '1', '-t', topic];
    if (retain) args.push('-r');
    if (payload === null) args.push('-n'); else args.push('-m', payload);
    execFileSync('mosquitto_pub', args, { stdio: 'pipe', timeout: 10000 });
}

// page.waitForFunction with a readable failure: on timeout, what the predicate's probe saw
async function waitPage(page, fn, arg, timeout = TIMEOUT_MS) {
    await page.waitForFunction(fn, arg, { timeout, polling: 100 });
}

const rowText = (page, node, cls) =>
    page.evaluate(([n, c]) => {
        const td = document.querySelector('tr[data-node="' + n + '"] .' + c);
        return td ? td.textContent : null;
    }, [node, cls]);

async function waitStatus(page, node, status, timeout) {
    await waitPage(page, ([n, s]) => {
        const tr = document.querySelector('tr[data-node="' + n + '"]');
        return tr && tr.dataset.status === s;
    }, [node, status], timeout);
}

async function sendPrompt(page, target, prompt, maxTokens, temperature) {
    await page.selectOption('#target', target);
    await page.fill('#prompt', prompt);
    await page.fill('#max-tokens', String(maxTokens));
    await page.fill('#temperature', temperature === undefined ? '' : String(temperature));
    await page.check('#stream');
    const before = await page.evaluate(() =>
        Array.from(document.querySelectorAll('#requests .request'), (c) => c.dataset.requestId));
    await page.click('#send');
    await waitPage(page, (b) => {
        const c = document.querySelector('#requests .request');
        return c && !b.includes(c.dataset.requestId);
    }, before, 5000);
    return page.evaluate(() => document.querySelector('#requests .request').dataset.requestId);
}

async function waitFinished(page, id, timeout) {
    await waitPage(page, (i) => {
        const c = document.querySelector('[data-request-id="' + i + '"]');
        return c && ['done', 'error', 'cancelled'].includes(c.dataset.state);
    }, id, timeout);
    return page.evaluate((i) => {
        const c = document.querySelector('[data-request-id="' + i + '"]');
        return { ...c.dataset, text: c.querySelector('.answer-text').textContent,
                 status: c.querySelector('.answer-status').textContent };
    }, id);
}

async function main() {
    const browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
               '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const consoleErrors = [];
    const watch = (page, label) => {
        page.on('console', (m) => {
            if (m.type() === 'error') consoleErrors.push(label + ': ' + m.text() + ' (' + m.location().url + ')');
        });
        page.on('pageerror', (e) => consoleErrors.push(label + ': uncaught ' + e.message));
    };
    try {
        const context = await browser.newContext({ viewport: { width: 1200, height: 820 },
                                                   deviceScaleFactor: 1, colorScheme: 'light' });
        const page = await context.newPage();
        watch(page, 'page');
        const url = PAGE_URL + '?broker=' + encodeURIComponent(WS_URL);
        await page.goto(url);

        if (!await check('the page connects to ' + WS_URL + ' (MQTT 5 over websockets)', () =>
            waitPage(page, () => document.getElementById('conn-state').dataset.state === 'connected'))) {
            return;
        }
        await check('the broker URL from ?broker= is in the form', async () =>
            (await page.inputValue('#broker')) === WS_URL);
        if (!await check('node ' + NODE_A + ' appears online', () => waitStatus(page, NODE_A, 'online'))) {
            return;
        }
        await check('node ' + NODE_A + ' shows its model "' + MODEL + '"', () =>
            waitPage(page, ([n, m]) => {
                const td = document.querySelector('tr[data-node="' + n + '"] .c-model');
                return td && td.textContent === m;
            }, [NODE_A, MODEL]));
        await check(NODE_A + ': state idle, queue 0, RSS in MiB', async () => {
            await waitPage(page, (n) => {
                const td = document.querySelector('tr[data-node="' + n + '"] .c-rss');
                return td && /MiB$/.test(td.textContent);
            }, NODE_A);
            const st = await rowText(page, NODE_A, 'c-state');
            const q = await rowText(page, NODE_A, 'c-queue');
            if (st !== 'idle' || q !== '0') throw new Error('state "' + st + '", queue "' + q + '"');
        });

        // ---- a second node, started now: discovered live ------------------------------------
        const logFd = fs.openSync(NODE_B_LOG, 'a');
        const nodeB = spawn(NODE_B_CMD[0], NODE_B_CMD.slice(1), { stdio: ['ignore', logFd, logFd] });
        fs.writeFileSync(NODE_B_PIDFILE, String(nodeB.pid));
        await check('a second node ' + NODE_B + ' appears online (started after the page)', () =>
            waitStatus(page, NODE_B, 'online', 60000));
        await check('... with its model', () => waitPage(page, ([n, m]) => {
            const td = document.querySelector('tr[data-node="' + n + '"] .c-model');
            return td && td.textContent === m;
        }, [NODE_B, MODEL]));
        await check('the node count says 2 of 2 online', async () =>
            (await page.textContent('#node-count')) === '(2 of 2 online)');
        await check('both nodes are in the "Send to" list', async () => {
            const opts = await page.$$eval('#target option', (os) => os.map((o) => o.value));
            return opts.includes('fleet') && opts.includes(NODE_A) && opts.includes(NODE_B);
        });

        // ---- a fleet request: one of the nodes answers -----------------------------------------
        let r;
        await check('a fleet request (edgelm/fleet/request) is answered by one of the nodes', async () => {
            const id = await sendPrompt(page, 'fleet', 'The cat', 16, 0);
            r = await waitFinished(page, id, 60000);
            if (r.state !== 'done') throw new Error(r.state + ': ' + r.status);
            if (!r.status.startsWith(NODE_A + ' ') && !r.status.startsWith(NODE_B + ' ')) {
                throw new Error('answered by? ' + r.status);
            }
        });

        // ---- a streamed request to node A -----------------------------------------------------
        let id;
        await check('a streamed request to ' + NODE_A + ' gets its result', async () => {
            id = await sendPrompt(page, NODE_A, 'Once upon a time', 96, 0);
            r = await waitFinished(page, id, 60000);
            if (r.state !== 'done') throw new Error(r.state + ': ' + r.status);
        });
        if (r && id) {
            await check('the request id is dash-<random>', () => /^dash-[0-9a-f]{16}$/.test(id));
            await check('token chunks were streamed (' + (r.chunks || 0) + ')', () => Number(r.chunks) > 1);
            await check('the streamed chunks add up to the result text', () => r.streamMatches === 'true');
            await check('the answer text is shown', () => r.text.length > 20);
            await check('the result shows finish_reason (length)', () =>
                r.finishReason === 'length' && r.status.includes('finish_reason: length'));
            await check('the result shows tokens/s', () => /[0-9.]+ tokens\/s/.test(r.status));
            await check('replies matched by MQTT 5 Correlation Data', () => r.correlated === 'true');
            await check(NODE_A + ': tokens/s of the last request in the table', () =>
                waitPage(page, (n) => {
                    const td = document.querySelector('tr[data-node="' + n + '"] .c-tps');
                    return td && Number(td.textContent) > 0;
                }, NODE_A));
            await check(NODE_A + ': requests counted', () =>
                waitPage(page, (n) => {
                    const td = document.querySelector('tr[data-node="' + n + '"] .c-requests');
                    return td && /^[1-9][0-9]* ok/.test(td.textContent);
                }, NODE_A));
        }
        await page.waitForTimeout(300); // the last-seen ages settle on "just now"
        await page.screenshot({ path: path.join(OUT_DIR, 'dashboard.png'), fullPage: true });

        // ---- cancel ---------------------------------------------------------------------------
        await check('Cancel stops a long request (finish_reason or error "cancelled")', async () => {
            const cid = await sendPrompt(page, NODE_A, 'Once upon a time', 2048);
            await page.click('[data-request-id="' + cid + '"] .cancel');
            const c = await waitFinished(page, cid, 60000);
            if (c.state !== 'cancelled') throw new Error(c.state + ': ' + c.status);
        });

        // ---- retained reports from the network: escaped, llama.cpp names, stale ---------------
        const evil = '<img src=x onerror="window.__pwned=1"><b>bold</b>';
        const now = Date.now();
        pub('edgelm/zz-hostile/status', 'online', true);
        pub('edgelm/zz-hostile/health', JSON.stringify({ v: 1, state: 'idle', model: evil, queue_depth: 0,
            uptime_s: 5, version: '<i>1</i>', ts: now, node: 'zz-hostile' }), true);
        pub('edgelm/zz-hostile/metrics', JSON.stringify({ v: 1, last_predicted_tokens_seconds: 12.5,
            predicted_tokens_per_second: 99, requests_deferred: 3, queue_depth: 7, cpu_temp_c: 51.25,
            rss_bytes: 3 * 1048576, requests_total: { ok: 4, error: 1, cancelled: 0, rejected: 2 },
            last_error: evil, ts: now - 10 * 60 * 1000 }), true);
        await check('a node with markup in its reports shows it as text', async () => {
            await waitPage(page, (m) => {
                const td = document.querySelector('tr[data-node="zz-hostile"] .c-model');
                return td && td.textContent === m;
            }, evil);
            const err = await rowText(page, 'zz-hostile', 'c-error');
            const n = await page.evaluate(() =>
                document.querySelectorAll('#nodes img, #nodes b, #nodes i').length);
            const pwned = await page.evaluate(() => window.__pwned === 1);
            if (err !== evil || n !== 0 || pwned) throw new Error('error "' + err + '", elements ' + n);
        });
        await check('metrics with llama.cpp names: last_predicted_tokens_seconds, requests_deferred',
            async () => (await rowText(page, 'zz-hostile', 'c-tps')) === '12.5' &&
                         (await rowText(page, 'zz-hostile', 'c-queue')) === '3');
        await check('CPU temperature and RSS shown', async () =>
            (await rowText(page, 'zz-hostile', 'c-temp')) === '51.3 °C' &&
            (await rowText(page, 'zz-hostile', 'c-rss')) === '3.0 MiB');
        await check('metrics ts 10 min old: the node is marked stale', () =>
            waitPage(page, () => {
                const tr = document.querySelector('tr[data-node="zz-hostile"]');
                return tr && tr.dataset.stale === 'true' && /stale/.test(tr.querySelector('.c-status').textContent);
            }, null, 5000));
        await check('fresh nodes are not stale', async () =>
            (await page.$$eval('tr[data-stale="true"]', (rows) => rows.map((t) => t.dataset.node)))
                .join(',') === 'zz-hostile');
        for (const kind of ['status', 'health', 'metrics']) pub('edgelm/zz-hostile/' + kind, null, true);
        await check('clearing its retained reports removes the node', () =>
            waitPage(page, () => !document.querySelector('tr[data-node="zz-hostile"]'), null, 10000));

        // ---- node A stops: offline -----------------------------------------------------------
        process.kill(NODE_A_PID, 'SIGTERM');
        await check('edgelmd ' + NODE_A + ' stopped (SIGTERM): shown offline', () =>
            waitStatus(page, NODE_A, 'offline', 60000));
        await check('... and ' + NODE_B + ' still online, "1 of 2 online"', async () =>
            (await page.evaluate((n) => document.querySelector('tr[data-node="' + n + '"]').dataset.status,
                                 NODE_B)) === 'online' &&
            (await page.textContent('#node-count')) === '(1 of 2 online)');
        await check('a request to the stopped node: "no node is subscribed" (PUBACK 16) at once', async () => {
            const nid = await sendPrompt(page, NODE_A, 'Hello', 8);
            const a = await waitFinished(page, nid, 10000);
            if (a.state !== 'error' || !/no node is subscribed/.test(a.status)) {
                throw new Error(a.state + ': ' + a.status);
            }
        });
        await page.screenshot({ path: path.join(OUT_DIR, 'dashboard-offline.png'), fullPage: true });

        // ---- phones: 360 px wide --------------------------------------------------------------
        await page.setViewportSize({ width: 360, height: 740 });
        await check('at 360 px nothing scrolls sideways', () =>
            waitPage(page, () => document.documentElement.scrollWidth <= 360, null, 5000));
        await check('at 360 px the nodes are cards (one block per node)', async () =>
            (await page.$eval('tr[data-node="' + NODE_B + '"]', (tr) => getComputedStyle(tr).display)) === 'grid');
        await page.screenshot({ path: path.join(OUT_DIR, 'dashboard-360.png'), fullPage: true });

        // ---- without mqtt.min.js: the page says what to do ------------------------------------
        const nolib = await context.newPage(); // its 404 is expected: not watched for errors
        await nolib.goto(NOLIB_URL);
        await check('without mqtt.min.js the page says so and names build.sh', async () => {
            await waitPage(nolib, () => !document.getElementById('no-mqtt').hidden, null, 5000);
            return /build\.sh/.test(await nolib.textContent('#no-mqtt'));
        });
        await nolib.close();

        // ---- served by mosquitto itself (http_dir on the websockets listener) ------------------
        if (HTTPDIR_URL) {
            const hd = await context.newPage();
            watch(hd, 'http_dir page');
            await hd.goto(HTTPDIR_URL + '?broker=' + encodeURIComponent(WS_URL));
            await check('the page served by mosquitto (http_dir) connects and lists ' + NODE_B, () =>
                waitStatus(hd, NODE_B, 'online'));
            // mosquitto 2.0.11 sends no Content-Type: the browser must still apply the styles
            await check('... with its style sheet applied', async () =>
                (await hd.$eval('.panel', (p) => getComputedStyle(p).borderTopLeftRadius)) === '8px');
            await hd.close();
        }
        // ---- the ACL of docs/dashboard.md: read-only "dashboard" and an "operator" -----------
        if (ACL_WS_URL) {
            for (const [user, password, mayAsk] of [['dashboard', ACL_DASHBOARD_PW, false],
                                                    ['operator', ACL_OPERATOR_PW, true]]) {
                const ctx = await browser.newContext({ viewport: { width: 1000, height: 800 } });
                const p = await ctx.newPage();
                watch(p, 'acl page (' + user + ')');
                await p.goto(PAGE_URL + '?broker=' + encodeURIComponent(ACL_WS_URL) + '&username=' + user);
                if (user === 'dashboard') { // on load, with no password yet
                    await check('ACL broker, no password: the login is refused and not retried', async () => {
                        await waitPage(p, () => document.getElementById('conn-state').dataset.state === 'error');
                        const e = await p.textContent('#conn-error');
                        if (!/Connection refused/.test(e)) throw new Error('conn-error: ' + e);
                        await p.waitForTimeout(3500); // longer than the reconnect period
                        if (await p.evaluate(() => document.getElementById('conn-state').dataset.state) !== 'error') {
                            throw new Error('it retried');
                        }
                    });
                } else {
                    await waitPage(p, () => document.getElementById('conn-state').dataset.state === 'error');
                }
                await p.fill('#password', password);
                await p.click('#connect');
                await check('ACL broker, "' + user + '": connects and sees ' + ACL_NODE + ' online', () =>
                    waitStatus(p, ACL_NODE, 'online'));
                await check('ACL broker, "' + user + '": ' + (mayAsk ? 'gets a streamed answer'
                                                                      : 'Send is refused: not authorized'), async () => {
                    const id = await sendPrompt(p, ACL_NODE, 'Once upon a time', 24, 0);
                    const a = await waitFinished(p, id, 60000);
                    if (mayAsk && !(a.state === 'done' && Number(a.chunks) > 0 && a.streamMatches === 'true')) {
                        throw new Error(a.state + ' (' + a.chunks + ' chunks): ' + a.status);
                    }
                    if (!mayAsk && !(a.state === 'error' && /not authori[sz]ed/i.test(a.status))) {
                        throw new Error(a.state + ': ' + a.status);
                    }
                });
                await ctx.close();
            }
        }

        await check('no errors in the browser console', () => {
            if (consoleErrors.length) throw new Error(consoleErrors.join(' | '));
        });
    } finally {
        await browser.close();
    }
}

main().then(() => {
    console.log('# ' + checks + ' checks, ' + failures + ' failed');
    process.exit(failures ? 1 : 0);
}, (e) => {
    console.log('not ok - the driver itself failed: ' + (e && e.stack ? e.stack : e));
    process.exit(1);
});
