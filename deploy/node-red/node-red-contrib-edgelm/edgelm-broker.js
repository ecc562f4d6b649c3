// edgelm-broker.js - the "edgelm-broker" config node: one MQTT 5 connection (MQTT.js) shared by
// every "edgelm request" node that uses it. Owns the subscriptions (reference-counted, renewed
// after a reconnect that lost the session) and holds publishes until the connection is up and
// subscribed, so a reply can never arrive before its subscription. Not here: the protocol
// (lib/protocol.js) and the request bookkeeping (edgelm-request.js).
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const mqtt = require('mqtt');
const protocol = require('./lib/protocol');

// Broker-side session kept across short outages, so QoS 1 results published while we reconnect
// are queued for us (ended with session expiry 0 when the node closes).
const SESSION_EXPIRY_S = 300;
const PUBACK_NO_MATCHING_SUBSCRIBERS = 16;
const END_TIMEOUT_MS = 2000;

module.exports = function (RED) {
    function EdgelmBrokerNode(config) {
        RED.nodes.createNode(this, config);
        const node = this;
        node.url = (config.url || 'mqtt://localhost:1883').trim();
        node.clientId = (config.clientId || '').trim() ||
            `nodered-edgelm-${crypto.randomBytes(4).toString('hex')}`;
        node.replyPrefix = (config.replyPrefix || 'nodered').trim().replace(/\/+$/, '');
        node.keepaliveS = parseInt(config.keepalive, 10) > 0 ? parseInt(config.keepalive, 10) : 30;
        node.caFile = (config.caFile || '').trim();
        node.verify = config.verify !== false && config.verify !== 'false';
        node.configError = protocol.prefixOk(node.replyPrefix) ? null
            : `reply prefix '${node.replyPrefix}' is not a topic prefix ` +
              '(no wildcards, no empty level, no leading $)';

        const users = new Set();          // request nodes: onBrokerState(state, text)
        const subs = new Map();           // topic filter -> {qos, handlers: Set}
        const onBroker = new Set();       // filters the broker acknowledged in this session
        let held = [];                    // publishes waiting for ready: {topic, payload, opts, cb}
        const noSubscribers = new Set();  // message ids whose PUBACK said "no matching subscribers"
        let client = null;
        let ready = false;                // connected and every subscription acknowledged
        let readySinceMs = 0;             // Date.now() when it last became ready
        let closing = false;
        let lastError = '';
        node.state = { state: 'disconnected', text: 'not connected' };

        function setState(state, text) {
            node.state = { state, text };
            users.forEach((u) => u.onBrokerState(state, text));
        }

        function connect() {
            const creds = node.credentials || {};
            const options = {
                protocolVersion: 5,
                clientId: node.clientId,
                clean: true,               // the first connection starts clean; see 'connect'
                keepalive: node.keepaliveS,
                reconnectPeriod: 1000,
                connectTimeout: 15000,
                resubscribe: false,        // we resubscribe ourselves, before releasing publishes
                properties: { sessionExpiryInterval: SESSION_EXPIRY_S },
            };
            if (creds.user) {
                options.username = creds.user;
            }
            if (creds.password) {
                options.password = creds.password;
            }
            if (/^(mqtts|wss|ssl|tls):/.test(node.url)) {
                options.rejectUnauthorized = node.verify;
                if (node.caFile) {
                    try {
                        options.ca = fs.readFileSync(node.caFile);
                    } catch (e) {
                        node.error(`CA file ${node.caFile}: ${e.message}`);
                        setState('error', 'CA file unreadable');
                        return;
                    }
                }
            }
            setState('connecting', 'connecting');
            client = mqtt.connect(node.url, options);
            client.on('connect', onConnect);
            client.on('message', onMessage);
            client.on('packetreceive', (packet) => {
                if (packet.cmd === 'puback' &&
                    packet.reasonCode === PUBACK_NO_MATCHING_SUBSCRIBERS) {
                    noSubscribers.add(packet.messageId);
                }
            });
            client.on('reconnect', () => setState('connecting', 'reconnecting'));
            client.on('close', () => {
                if (!closing && (ready || node.state.state === 'connected')) {
                    node.warn(`disconnected from ${node.url}`);
                }
                ready = false;
                if (!closing) {
                    setState('disconnected', lastError || 'disconnected');
                }
            });
            client.on('error', (err) => {
                // refused connects repeat every reconnect: log each distinct cause once
                if (err.message !== lastError) {
                    lastError = err.message;
                    node.error(`${node.url}: ${err.message}`);
                }
            });
        }

        function onConnect(connack) {
            lastError = '';
            // later reconnects resume the session (subscriptions and queued QoS 1 replies)
            client.options.clean = false;
            node.log(`connected to ${node.url} as ${node.clientId} (MQTT 5` +
                `${connack.sessionPresent ? ', session resumed' : ''})`);
            if (!connack.sessionPresent) {
                onBroker.clear();
            }
            const stale = [...onBroker].filter((f) => !subs.has(f));
            if (stale.length > 0) {
                stale.forEach((f) => onBroker.delete(f));
                client.unsubscribe(stale);
            }
            const missing = {};
            subs.forEach((s, filter) => {
                if (!onBroker.has(filter)) {
                    missing[filter] = { qos: s.qos };
                }
            });
            if (Object.keys(missing).length === 0) {
                becomeReady();
                return;
            }
            client.subscribe(missing, (err, granted, suback) => {
                reportSubscribe(err, granted, suback);
                if (client && client.connected) {
                    becomeReady();
                }
            });
        }

        function becomeReady() {
            ready = true;
            readySinceMs = Date.now();
            setState('connected', 'connected');
            const queue = held;
            held = [];
            queue.forEach((p) => publishNow(p));
        }

        // MQTT.js calls back (err, [{topic, qos}], suback): err when any filter was refused;
        // the SUBACK's reason codes then tell which
        function reportSubscribe(err, granted, suback) {
            const codes = suback && Array.isArray(suback.granted) ? suback.granted : [];
            (granted || []).forEach((g, i) => {
                const code = codes[i] !== undefined ? codes[i] : g.qos;
                if (code >= 0x80) {
                    node.error(`the broker refused the subscription to ${g.topic} ` +
                        `(reason ${code}): check its ACL for this account`);
                } else if (subs.has(g.topic)) {
                    onBroker.add(g.topic);
                }
            });
            if (err && codes.length === 0) {
                node.error(`subscribe failed: ${err.message}`);
            }
        }

        function onMessage(topic, payload, packet) {
            subs.forEach((s, filter) => {
                if (filter === topic || protocol.topicMatches(filter, topic)) {
                    s.handlers.forEach((h) => h(topic, payload, packet));
                }
            });
        }

        function publishNow(p) {
            if (p.cancelled) {
                return;
            }
            client.publish(p.topic, p.payload, p.opts, (err, packet) => {
                let noSubs = false;
                if (packet && noSubscribers.has(packet.messageId)) {
                    noSubscribers.delete(packet.messageId);
                    noSubs = true;
                }
                if (p.cb) {
                    p.cb(err || null, { noSubscribers: noSubs });
                }
            });
        }

        // ---- the interface of the request nodes ------------------------------------------------

        node.register = function (user) {
            users.add(user);
            if (!client && !closing && !node.configError) {
                connect();
            }
            user.onBrokerState(node.state.state, node.state.text);
        };

        node.deregister = function (user) {
            users.delete(user);
        };

        // subscribe(filter, qos, handler): returns a function that undoes it
        node.subscribe = function (filter, qos, handler) {
            let s = subs.get(filter);
            if (!s) {
                s = { qos, handlers: new Set() };
                subs.set(filter, s);
                if (client && client.connected) {
                    client.subscribe({ [filter]: { qos } }, reportSubscribe);
                }
            }
            s.handlers.add(handler);
            return function unsubscribe() {
                s.handlers.delete(handler);
                if (s.handlers.size === 0 && subs.get(filter) === s) {
                    subs.delete(filter);
                    if (client && client.connected) {
                        onBroker.delete(filter);
                        client.unsubscribe(filter);
                    }
                }
            };
        };

        // publish(topic, payload, opts, cb(err, {noSubscribers})): sent once ready, held until
        // then. Returns a handle whose cancel() drops it if it is still held.
        node.publish = function (topic, payload, opts, cb) {
            const p = { topic, payload, opts, cb, cancelled: false };
            if (ready && client && client.connected) {
                publishNow(p);
            } else {
                held.push(p);
            }
            return {
                cancel() {
                    p.cancelled = true;
                    held = held.filter((q) => q !== p);
                },
                sent() {
                    return !held.includes(p);
                },
            };
        };

        // milliseconds since the connection last became ready (Infinity while it is not)
        node.msSinceReady = () => (ready ? Date.now() - readySinceMs : Infinity);

        node.on('close', function (done) {
            closing = true;
            held = [];
            users.clear();
            if (!client) {
                done();
                return;
            }
            const c = client;
            client = null;
            let finished = false;
            const finish = () => {
                if (!finished) {
                    finished = true;
                    done();
                }
            };
            const timer = setTimeout(() => {
                c.end(true);
                finish();
            }, END_TIMEOUT_MS);
            if (c.connected) {
                // our session ends with us: nothing is queued for a client id that is gone
                c.end(false, { properties: { sessionExpiryInterval: 0 } }, () => {
                    clearTimeout(timer);
                    finish();
                });
            } else {
                clearTimeout(timer);
                c.end(true, () => finish());
            }
        });
    }

    RED.nodes.registerType('edgelm-broker', EdgelmBrokerNode, {
        credentials: {
            user: { type: 'text' },
            password: { type: 'password' },
        },
    });
};
