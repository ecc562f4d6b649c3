/* dashboard.js - the edgelm fleet page's logic: one MQTT 5 connection over websockets (MQTT.js 5,
 * the global `mqtt` from mqtt.min.js), a table of nodes built from the retained topics
 * <prefix>/+/status|health|metrics, and requests sent with an MQTT 5 Response Topic and
 * Correlation Data whose token chunks and result are shown as they arrive (docs/protocol.md).
 * Not a client library: no retries of requests, no history beyond the last few answers.
 * Invariant: text from the network reaches the page only through textContent, attribute values
 * set with setAttribute (title, data-*) and <option> text; never innerHTML. */
(function () {
    'use strict';

    const STORAGE_KEY = 'edgelm-dashboard';
    // Metrics arrive every metrics.interval_s (30 s by default); a node whose newest report is
    // older than STALE_INTERVALS of them is marked stale.
    const DEFAULT_METRICS_INTERVAL_S = 30;
    const STALE_INTERVALS = 3;
    const MAX_REQUEST_CARDS = 12;

    const $ = (id) => document.getElementById(id);
    const el = {
        conn: $('conn-state'),
        connDetails: $('conn-details'),
        connForm: $('conn-form'),
        connError: $('conn-error'),
        broker: $('broker'),
        prefix: $('prefix'),
        username: $('username'),
        password: $('password'),
        replyPrefix: $('reply-prefix'),
        rememberPassword: $('remember-password'),
        connect: $('connect'),
        disconnect: $('disconnect'),
        nodeCount: $('node-count'),
        noNodes: $('no-nodes'),
        table: $('nodes'),
        rows: $('node-rows'),
        askForm: $('ask-form'),
        prompt: $('prompt'),
        target: $('target'),
        maxTokens: $('max-tokens'),
        temperature: $('temperature'),
        stream: $('stream'),
        chat: $('chat'),
        send: $('send'),
        requests: $('requests'),
        requestTemplate: $('request-template'),
    };

    const state = {
        client: null,
        clientId: '',
        broker: '',
        prefix: 'edgelm',
        replyTopic: '',
        connectedAtMs: 0,
        nodes: new Map(),    // node id -> node record (see nodeRecord)
        requests: new Map(), // request id -> request record (see sendRequest)
        noSubscribers: new Set(), // message ids of PUBACKs with reason 16, until their callback
    };

    const decoder = new TextDecoder('utf-8'); // invalid bytes become U+FFFD, never an exception

    // ---- small helpers ------------------------------------------------------------------------

    function randomHex(n_bytes) {
        const bytes = new Uint8Array(n_bytes);
        crypto.getRandomValues(bytes);
        return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
    }

    function bytesToText(bytes) {
        if (bytes == null) return '';
        if (typeof bytes === 'string') return bytes;
        return decoder.decode(bytes);
    }

    function parseObject(text) {
        try {
            const value = JSON.parse(text);
            return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : null;
        } catch (e) {
            return null;
        }
    }

    const isNum = (x) => typeof x === 'number' && Number.isFinite(x);
    const firstNum = (...xs) => xs.find(isNum);
    const str = (x) => (typeof x === 'string' ? x : '');

    function fmtNum(x, digits) {
        return isNum(x) ? x.toFixed(digits) : '—';
    }

    function fmtBytes(n) {
        if (!isNum(n)) return '—';
        if (n >= 1024 * 1024 * 1024) return (n / (1024 * 1024 * 1024)).toFixed(2) + ' GiB';
        return (n / (1024 * 1024)).toFixed(1) + ' MiB';
    }

    function fmtDuration(s) {
        if (!isNum(s)) return '';
        s = Math.max(0, Math.round(s));
        if (s < 90) return s + ' s';
        if (s < 90 * 60) return Math.round(s / 60) + ' min';
        if (s < 48 * 3600) return (s / 3600).toFixed(1) + ' h';
        return (s / 86400).toFixed(1) + ' d';
    }

    function fmtAgo(ms) {
        if (!isNum(ms)) return '—';
        const s = (Date.now() - ms) / 1000;
        if (s < -5) return 'in the future (clock?)';
        return s < 1.5 ? 'just now' : fmtDuration(s) + ' ago';
    }

    // A topic level given in the form: no wildcards, not empty, no leading '$'.
    function validTopicPrefix(p) {
        return p !== '' && !/[+#\u0000]/.test(p) && !p.startsWith('$') && !p.startsWith('/') &&
            !p.endsWith('/');
    }

    function setConn(stateName, text) {
        el.conn.dataset.state = stateName;
        el.conn.textContent = text;
    }

    // ---- settings: defaults < localStorage < URL query -----------------------------------------

    function defaultBroker() {
        const host = location.hostname || 'localhost';
        const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
        return scheme + '://' + (host.includes(':') ? '[' + host + ']' : host) + ':9001';
    }

    function loadSettings() {
        const s = { broker: defaultBroker(), prefix: 'edgelm', username: '', password: '',
                    replyPrefix: 'dashboard', rememberPassword: false };
        try {
            const saved = parseObject(localStorage.getItem(STORAGE_KEY) || '');
            if (saved) {
                for (const key of ['broker', 'prefix', 'username', 'password', 'replyPrefix']) {
                    if (typeof saved[key] === 'string') s[key] = saved[key];
                }
                s.rememberPassword = saved.rememberPassword === true;
            }
        } catch (e) { /* storage disabled (private mode, file://): defaults */ }
        const q = new URLSearchParams(location.search);
        if (q.get('broker')) s.broker = q.get('broker');
        if (q.get('prefix')) s.prefix = q.get('prefix');
        if (q.get('username')) s.username = q.get('username');
        return s;
    }

    function saveSettings(s) {
        const copy = { broker: s.broker, prefix: s.prefix, username: s.username,
                       replyPrefix: s.replyPrefix, rememberPassword: s.rememberPassword };
        if (s.rememberPassword) copy.password = s.password;
        try {
            localStorage.setItem(STORAGE_KEY, JSON.stringify(copy));
        } catch (e) { /* not kept: fine */ }
    }

    function readForm() {
        return {
            broker: el.broker.value.trim(),
            prefix: el.prefix.value.trim(),
            username: el.username.value,
            password: el.password.value,
            replyPrefix: el.replyPrefix.value.trim(),
            rememberPassword: el.rememberPassword.checked,
        };
    }

    function fillForm(s) {
        el.broker.value = s.broker;
        el.prefix.value = s.prefix;
        el.username.value = s.username;
        el.password.value = s.password;
        el.replyPrefix.value = s.replyPrefix;
        el.rememberPassword.checked = s.rememberPassword;
    }

    // ---- the connection ------------------------------------------------------------------------

    function connect() {
        const s = readForm();
        el.connError.textContent = '';
        if (!/^wss?:\/\/[^\s]+$/i.test(s.broker)) {
            el.connError.textContent =
                'The broker URL must start with ws:// or wss:// (MQTT over websockets).';
            return;
        }
        if (!validTopicPrefix(s.prefix) || !validTopicPrefix(s.replyPrefix)) {
            el.connError.textContent = 'Topic prefixes must not be empty, start or end with "/", ' +
                'start with "$" or contain + or #.';
            return;
        }
        if (s.replyPrefix === s.prefix || s.replyPrefix.startsWith(s.prefix + '/')) {
            el.connError.textContent = 'The reply topic prefix must not be under the topic prefix ' +
                '(edgelmd refuses such reply topics).';
            return;
        }
        disconnect();
        // a new client id means a new reply topic: answers to earlier requests cannot arrive
        for (const req of state.requests.values()) {
            if (!req.finished) finish(req, 'error', 'reconnected as a new client: this answer is lost');
        }
        saveSettings(s);
        state.prefix = s.prefix;
        state.broker = s.broker;
        state.clientId = 'dashboard-' + randomHex(6);
        state.replyTopic = s.replyPrefix + '/' + state.clientId + '/reply';
        clearNodes();
        state.noSubscribers.clear();
        setConn('connecting', 'connecting…');
        let client;
        try {
            client = mqtt.connect(s.broker, {
                protocolVersion: 5,
                clientId: state.clientId,
                username: s.username || undefined,
                password: s.password || undefined,
                clean: true,
                keepalive: 30,
                connectTimeout: 10000,
                reconnectPeriod: 3000,
                resubscribe: false, // done in onConnect, every (re)connect
            });
        } catch (e) {
            setConn('error', 'not connected');
            el.connError.textContent = 'Cannot connect: ' + (e && e.message ? e.message : String(e));
            return;
        }
        state.client = client;
        el.disconnect.disabled = false;
        client.on('connect', () => onConnect(client));
        client.on('reconnect', () => {
            if (client === state.client) setConn('reconnecting', 'reconnecting…');
        });
        client.on('close', () => {
            if (client !== state.client) return;
            if (el.conn.dataset.state === 'connected') {
                setConn('reconnecting', 'connection lost');
            } else if (el.connError.textContent === '') {
                // browsers tell scripts nothing about why a websocket failed
                el.connError.textContent = 'Cannot reach ' + s.broker + ' (no MQTT websockets ' +
                    'listener answered there); retrying every few seconds.';
            }
            el.send.disabled = true;
        });
        client.on('error', (err) => onError(client, err));
        // MQTT.js hands a publish's callback its own stored packet, not the PUBACK: note the
        // message ids acknowledged with reason 16 here (emitted before the callback runs)
        client.on('packetreceive', (packet) => {
            if (packet.cmd !== 'puback') return;
            if (packet.reasonCode === 16) state.noSubscribers.add(packet.messageId);
            else state.noSubscribers.delete(packet.messageId); // an id reused after a cancel's 16
        });
        client.on('message', (topic, payload, packet) => {
            if (client === state.client) onMessage(topic, payload, packet);
        });
    }

    function disconnect() {
        const client = state.client;
        state.client = null;
        if (client) client.end(true);
        el.disconnect.disabled = true;
        el.send.disabled = true;
        setConn('idle', 'not connected');
    }

    function onConnect(client) {
        if (client !== state.client) return;
        state.connectedAtMs = Date.now();
        setConn('connected', 'connected');
        el.conn.title = state.broker + ' as ' + state.clientId;
        el.connError.textContent = '';
        const p = state.prefix;
        const topics = [p + '/+/status', p + '/+/health', p + '/+/metrics', p + '/+/errors',
                        state.replyTopic, state.replyTopic + '/stream'];
        client.subscribe(topics, { qos: 1 }, (err, granted) => {
            if (client !== state.client) return;
            const refused = (granted || []).filter((g) => g.qos >= 128).map((g) => g.topic);
            if (err || refused.length) {
                el.connError.textContent = 'The broker refused a subscription: ' +
                    (err ? err.message : refused.join(', '));
            }
        });
        el.send.disabled = false;
        el.connDetails.open = false;
    }

    function onError(client, err) {
        if (client !== state.client) return;
        const code = err && typeof err.code === 'number' ? err.code : null;
        el.connError.textContent = 'Broker: ' + (err && err.message ? err.message : String(err));
        // CONNACK refusals that a retry cannot fix (bad user name or password, not authorized,
        // banned, bad client id): stop instead of retrying every few seconds.
        if ([4, 5, 134, 135, 138, 133].includes(code)) {
            state.client = null;
            client.end(true);
            el.disconnect.disabled = true;
            el.send.disabled = true;
            el.connDetails.open = true;
            setConn('error', 'refused');
        } else {
            setConn('error', 'error');
        }
    }

    // ---- nodes ---------------------------------------------------------------------------------

    function nodeRecord(id) {
        let node = state.nodes.get(id);
        if (node) return node;
        node = { id, status: '', health: null, metrics: null, lastSeenMs: null, metricsAtMs: null,
                 row: null, option: null };
        state.nodes.set(id, node);
        createRow(node);
        return node;
    }

    // When a report was made: its ts (Unix ms) when it has one, else the arrival of a live (not
    // retained) message; null for a retained message without ts, which may be of any age.
    function reportTime(ts, retained) {
        return isNum(ts) ? ts : retained ? null : Date.now();
    }

    // "last seen": the newest report of any kind
    function seen(node, t) {
        if (t !== null && (node.lastSeenMs === null || t > node.lastSeenMs)) node.lastSeenMs = t;
    }

    function onNodeMessage(id, kind, text, retained) {
        if (id === 'fleet') return; // edgelm/fleet/... is the fleet's queue, not a node
        if (text === '' && !state.nodes.has(id)) return;
        const node = nodeRecord(id);
        if (kind === 'status') {
            node.status = text;
            if (text !== '') seen(node, reportTime(null, retained));
        } else {
            const doc = text === '' ? null : parseObject(text);
            if (text !== '' && !doc) return; // not a JSON object: keep what we had
            if (doc && typeof doc.node === 'string' && doc.node !== '' && doc.node !== id) return;
            const t = doc ? reportTime(doc.ts, retained) : null;
            if (kind === 'health') {
                node.health = doc;
            } else {
                node.metrics = doc;
                node.metricsAtMs = t;
            }
            seen(node, t);
        }
        if (node.status === '' && !node.health && !node.metrics) { // all retained messages cleared
            removeNode(node);
            return;
        }
        renderNode(node);
    }

    const COLUMNS = [
        ['c-node', 'node'], ['c-status', 'status'], ['c-model', 'model'], ['c-state', 'state'],
        ['c-queue num', 'queue'], ['c-tps num', 'tokens/s'], ['c-temp num', 'CPU'],
        ['c-rss num', 'RSS'], ['c-requests num', 'requests'], ['c-error', 'last error'],
        ['c-seen', 'last seen'], ['c-ask', ''],
    ];

    function createRow(node) {
        const tr = document.createElement('tr');
        tr.dataset.node = node.id;
        for (const [cls, label] of COLUMNS) {
            const td = document.createElement('td');
            td.className = cls;
            td.dataset.label = label;
            tr.appendChild(td);
        }
        const nameCell = tr.querySelector('.c-node');
        const name = document.createElement('strong');
        name.textContent = node.id;
        const sub = document.createElement('span');
        sub.className = 'sub';
        nameCell.append(name, sub);
        const ask = document.createElement('button');
        ask.type = 'button';
        ask.className = 'secondary';
        ask.textContent = 'Ask';
        ask.title = 'Send the next prompt to this node';
        ask.addEventListener('click', () => {
            el.target.value = node.id;
            el.prompt.focus();
        });
        tr.querySelector('.c-ask').appendChild(ask);
        node.row = tr;

        const option = document.createElement('option');
        option.value = node.id;
        node.option = option;

        // keep rows and options sorted by node id
        const ids = Array.from(state.nodes.keys()).sort();
        const next = ids[ids.indexOf(node.id) + 1];
        const nextNode = next === undefined ? null : state.nodes.get(next);
        el.rows.insertBefore(tr, nextNode && nextNode.row ? nextNode.row : null);
        el.target.insertBefore(option, nextNode && nextNode.option ? nextNode.option : null);
        updateNodeCount();
    }

    function removeNode(node) {
        if (node.row) node.row.remove();
        if (node.option) {
            if (el.target.value === node.id) el.target.value = 'fleet';
            node.option.remove();
        }
        state.nodes.delete(node.id);
        updateNodeCount();
    }

    function clearNodes() {
        for (const node of Array.from(state.nodes.values())) removeNode(node);
    }

    function updateNodeCount() {
        const n = state.nodes.size;
        let online = 0;
        for (const node of state.nodes.values()) if (node.status === 'online') online++;
        el.nodeCount.textContent = n ? '(' + online + ' of ' + n + ' online)' : '';
        el.noNodes.hidden = n > 0;
        el.table.hidden = n === 0;
    }

    function pill(text, stateName, title) {
        const span = document.createElement('span');
        span.className = 'pill';
        span.dataset.state = stateName;
        span.textContent = text;
        if (title) span.title = title;
        return span;
    }

    // Metrics are the periodic report: an online node whose newest metrics are older than
    // STALE_INTERVALS intervals is stale (hung, or its clock is off). Health is sent only on
    // changes, so its age says nothing.
    function staleness(node) {
        if (node.status !== 'online') return null;
        const m = node.metrics || {};
        const interval_s = isNum(m.interval_s) && m.interval_s > 0 ? m.interval_s
                                                                   : DEFAULT_METRICS_INTERVAL_S;
        const limit_ms = STALE_INTERVALS * interval_s * 1000;
        // unknown age (retained metrics without ts, or none): count from when the dashboard connected
        const since_ms = node.metricsAtMs !== null ? node.metricsAtMs : state.connectedAtMs;
        const age_ms = Date.now() - since_ms;
        if (age_ms <= limit_ms) return null;
        return 'no metrics for ' + fmtDuration(age_ms / 1000) + ' (expected every ' +
            fmtDuration(interval_s) + ')';
    }

    function setCell(row, cls, text, title) {
        const td = row.querySelector('.' + cls);
        td.textContent = text;
        if (title) td.title = title; else td.removeAttribute('title');
        return td;
    }

    function renderNode(node) {
        const row = node.row;
        const h = node.health || {};
        const m = node.metrics || {};
        const status = node.status || 'unknown';
        row.dataset.status = status;

        const version = str(h.version) || str(m.version);
        const uptime = firstNum(m.uptime_s, h.uptime_s);
        const sub = row.querySelector('.c-node .sub');
        sub.textContent = [version && 'v' + version, isNum(uptime) && 'up ' + fmtDuration(uptime)]
            .filter(Boolean).join(' · ');

        const statusCell = row.querySelector('.c-status');
        statusCell.replaceChildren(pill(status, status === 'online' ? 'online' :
                                        status === 'offline' ? 'offline' : 'unknown'));
        const stale = staleness(node);
        row.dataset.stale = stale ? 'true' : 'false';
        if (stale) statusCell.appendChild(pill('stale', 'stale', stale));

        setCell(row, 'c-model', str(h.model) || str(m.model) || '—');
        setCell(row, 'c-state', str(h.state) || '—');
        // llama.cpp's names first (requests_deferred, last_predicted_tokens_seconds), then ours
        const queue = firstNum(m.requests_deferred, h.queue_depth, m.queue_depth);
        setCell(row, 'c-queue', isNum(queue) ? String(queue) : '—');
        const tps = firstNum(m.last_predicted_tokens_seconds, m.predicted_tokens_per_second);
        const tpsAvg = firstNum(m.predicted_tokens_per_second_avg);
        // 0 until the node has finished a request
        setCell(row, 'c-tps', tps ? fmtNum(tps, 1) : '—',
                isNum(tpsAvg) ? 'last request; average ' + tpsAvg.toFixed(1) + ' tokens/s' : 'last request');
        setCell(row, 'c-temp', isNum(m.cpu_temp_c) ? m.cpu_temp_c.toFixed(1) + ' °C' : '—');
        setCell(row, 'c-rss', fmtBytes(m.rss_bytes));
        const r = m.requests_total && typeof m.requests_total === 'object' ? m.requests_total : null;
        if (r) {
            const n = (k) => (isNum(r[k]) ? r[k] : 0);
            setCell(row, 'c-requests', n('ok') + ' ok' + (n('error') ? ' · ' + n('error') + ' err' : ''),
                    'ok ' + n('ok') + ', error ' + n('error') + ', cancelled ' + n('cancelled') +
                    ', rejected ' + n('rejected'));
        } else {
            setCell(row, 'c-requests', '—');
        }
        setCell(row, 'c-error', str(m.last_error));
        renderSeen(node);
        node.option.textContent = node.id + (status === 'online' ? '' : ' (' + status + ')');
        updateNodeCount();
    }

    function renderSeen(node) {
        const t = node.lastSeenMs;
        setCell(node.row, 'c-seen', fmtAgo(t),
                isNum(t) ? new Date(t).toISOString() : 'no dated report yet');
    }

    // once a second: ages, and stale marks that appear without any new message
    function tick() {
        for (const node of state.nodes.values()) {
            const wasStale = node.row.dataset.stale === 'true';
            if (wasStale !== (staleness(node) !== null)) renderNode(node);
            else renderSeen(node);
        }
    }

    // ---- requests ------------------------------------------------------------------------------

    function sendRequest() {
        const client = state.client;
        if (!client || !client.connected) return;
        const prompt = el.prompt.value;
        const maxTokens = Number(el.maxTokens.value);
        if (prompt === '' || !Number.isInteger(maxTokens) || maxTokens < 1) return;
        const target = el.target.value || 'fleet';
        const id = 'dash-' + randomHex(8);
        const body = { v: 1, id };
        if (el.chat.checked) body.messages = [{ role: 'user', content: prompt }];
        else body.prompt = prompt;
        body.max_tokens = maxTokens;
        if (el.temperature.value !== '') body.temperature = Number(el.temperature.value);
        body.stream = el.stream.checked;

        const req = {
            id, target, stream: body.stream, card: makeCard(id, target, prompt),
            chunks: [], nextSeq: 0, gaps: 0, nChunks: 0, finished: false, correlated: false,
        };
        state.requests.set(id, req);
        setStatus(req, 'sent', 'sent to ' + topicFor(target, 'request') + ', waiting…');
        client.publish(topicFor(target, 'request'), JSON.stringify(body), {
            qos: 1,
            properties: { responseTopic: state.replyTopic, correlationData: id },
        }, (err, packet) => {
            if (req.finished) return;
            if (err) {
                finish(req, 'error', 'the broker refused the request: ' + err.message);
            } else if (packet && state.noSubscribers.delete(packet.messageId)) {
                // MQTT 5 PUBACK "No matching subscribers": no node listens on that topic
                finish(req, 'error', 'no node is subscribed to ' + topicFor(target, 'request') +
                       ' (broker: no matching subscribers); nothing will answer');
            } else if (req.card.dataset.state === 'sent') {
                setStatus(req, 'sent', 'accepted by the broker, waiting for ' +
                          (target === 'fleet' ? 'a node' : target) + '…');
            }
        });
    }

    function topicFor(target, kind) {
        return state.prefix + '/' + target + '/' + kind;
    }

    function makeCard(id, target, prompt) {
        const card = el.requestTemplate.content.firstElementChild.cloneNode(true);
        card.dataset.requestId = id;
        card.querySelector('.req-target').textContent = '→ ' + (target === 'fleet' ? 'fleet' : target);
        card.querySelector('.req-id').textContent = id;
        card.querySelector('.req-prompt').textContent = prompt;
        card.querySelector('.cancel').addEventListener('click', () => cancelRequest(id));
        el.requests.prepend(card);
        // keep the newest few; forget finished ones that scroll off
        const cards = el.requests.querySelectorAll('.request');
        for (let i = MAX_REQUEST_CARDS; i < cards.length; i++) {
            const old = state.requests.get(cards[i].dataset.requestId);
            if (old && !old.finished) continue;
            state.requests.delete(cards[i].dataset.requestId);
            cards[i].remove();
        }
        return card;
    }

    function setStatus(req, stateName, text) {
        req.card.dataset.state = stateName;
        req.card.querySelector('.answer-status').textContent = text;
    }

    function finish(req, stateName, text) {
        req.finished = true;
        req.card.querySelector('.cancel').disabled = true;
        setStatus(req, stateName, text);
    }

    function cancelRequest(id) {
        const req = state.requests.get(id);
        const client = state.client;
        if (!req || req.finished || !client) return;
        req.card.querySelector('.cancel').disabled = true;
        const topic = topicFor(req.target, 'cancel');
        client.publish(topic, JSON.stringify({ v: 1, id }), { qos: 1 }, (err) => {
            if (req.finished) return;
            setStatus(req, req.card.dataset.state, err ? 'the broker refused the cancel: ' + err.message
                                                         : 'cancel sent to ' + topic + '…');
        });
    }

    function onReply(isStream, text, packet) {
        const msg = parseObject(text);
        if (!msg) return;
        const props = packet && packet.properties ? packet.properties : {};
        const corr = props.correlationData != null ? bytesToText(props.correlationData) : '';
        const req = state.requests.get(corr) || state.requests.get(str(msg.id));
        if (!req || req.finished) return; // not ours, or a repeated answer (at least once)
        if (corr !== '' && corr === req.id) req.correlated = true;
        req.card.dataset.correlated = String(req.correlated);

        if (isStream) {
            if (msg.type !== 'token' || !isNum(msg.seq) || typeof msg.text !== 'string') return;
            if (msg.seq < req.nextSeq) return; // a duplicate
            if (msg.seq > req.nextSeq) req.gaps += msg.seq - req.nextSeq; // lost chunks (QoS 0)
            req.nextSeq = msg.seq + 1;
            req.nChunks++;
            req.chunks.push(msg.text);
            req.card.querySelector('.answer-text').append(msg.text);
            req.card.dataset.chunks = String(req.nChunks);
            setStatus(req, 'streaming', 'streaming… ' + req.nChunks + ' chunks' +
                      (req.gaps ? ', ' + req.gaps + ' lost' : ''));
            return;
        }
        if (msg.type === 'result') {
            const answer = req.card.querySelector('.answer-text');
            const streamed = req.chunks.join('');
            const finalText = str(msg.text);
            // the result's text is the whole answer: it replaces chunks if any were lost
            if (finalText !== streamed) answer.textContent = finalText;
            req.card.dataset.streamMatches = String(req.stream && req.nChunks > 0 && finalText === streamed);
            const t = msg.timings && typeof msg.timings === 'object' ? msg.timings : {};
            const u = msg.usage && typeof msg.usage === 'object' ? msg.usage : {};
            const finishReason = str(msg.finish_reason) || '?';
            req.card.dataset.finishReason = finishReason;
            const parts = [str(msg.node) || req.target];
            if (str(msg.model)) parts.push(str(msg.model));
            parts.push('finish_reason: ' + finishReason);
            if (isNum(u.completion_tokens)) parts.push(u.completion_tokens + ' tokens');
            if (isNum(t.predicted_per_second)) parts.push(t.predicted_per_second.toFixed(1) + ' tokens/s');
            if (isNum(t.ttft_ms)) parts.push('first token ' + t.ttft_ms.toFixed(1) + ' ms');
            if (req.nChunks) {
                parts.push(req.nChunks + ' chunks streamed' + (req.gaps ? ', ' + req.gaps + ' lost' : ''));
            }
            finish(req, finishReason === 'cancelled' ? 'cancelled' : 'done', parts.join(' · '));
        } else if (msg.type === 'error') {
            showError(req, msg, '');
        }
    }

    function showError(req, msg, where) {
        const e = msg.error && typeof msg.error === 'object' ? msg.error : {};
        const code = str(e.code) || 'error';
        req.card.dataset.errorCode = code;
        finish(req, code === 'cancelled' ? 'cancelled' : 'error',
               'error ' + code + ': ' + str(e.message) + where);
    }

    // ---- incoming messages ---------------------------------------------------------------------

    function onMessage(topic, payload, packet) {
        const text = bytesToText(payload);
        if (topic === state.replyTopic || topic === state.replyTopic + '/stream') {
            onReply(topic !== state.replyTopic, text, packet);
            return;
        }
        const p = state.prefix + '/';
        if (!topic.startsWith(p)) return;
        const levels = topic.slice(p.length).split('/');
        if (levels.length !== 2 || levels[0] === '') return;
        const [node, kind] = levels;
        if (kind === 'errors') {
            // requests that could not be answered on our reply topic (a refused reply topic)
            const msg = parseObject(text);
            const req = msg && state.requests.get(str(msg.id));
            if (req && !req.finished && msg.type === 'error') showError(req, msg, ' (on ' + topic + ')');
            return;
        }
        if (kind === 'status' || kind === 'health' || kind === 'metrics') {
            onNodeMessage(node, kind, text, packet ? packet.retain === true : false);
        }
    }

    // ---- start ---------------------------------------------------------------------------------

    function start() {
        fillForm(loadSettings());
        el.connForm.addEventListener('submit', (ev) => { ev.preventDefault(); connect(); });
        el.disconnect.addEventListener('click', () => { disconnect(); el.connDetails.open = true; });
        el.askForm.addEventListener('submit', (ev) => { ev.preventDefault(); sendRequest(); });
        el.prompt.addEventListener('keydown', (ev) => { // Ctrl+Enter (Cmd+Enter) sends
            if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey) && !el.send.disabled) {
                ev.preventDefault();
                el.askForm.requestSubmit();
            }
        });
        if (typeof window.mqtt === 'undefined' || typeof window.mqtt.connect !== 'function') {
            $('no-mqtt').hidden = false;
            el.connect.disabled = true;
            setConn('error', 'mqtt.min.js missing');
            return;
        }
        setInterval(tick, 1000);
        connect();
    }

    start();
})();
