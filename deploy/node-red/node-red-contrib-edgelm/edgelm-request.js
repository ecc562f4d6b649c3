// edgelm-request.js - the "edgelm request" node: msg.payload (a prompt or a request object) is
// published to edgelm/<target>/request with an MQTT 5 Response Topic (one per node instance) and
// Correlation Data (the request id); the answer is matched by its correlation data and sent on
// THE SAME msg (so msg.res of an "http in" node and every other property survive). Output 1: the
// result; output 2: one msg per streamed token chunk. Every request ends exactly once: result,
// error (edgelmd's, or timeout / no_subscribers / publish_failed made here), or node close.
'use strict';

const protocol = require('./lib/protocol');

// a result arriving before the last chunks of its stream waits this long for them, so output 2
// carries the whole text before output 1 fires (chunks are QoS 0: a lost one is not waited for)
const LATE_CHUNK_GRACE_MS = 250;
// Right after our broker connection came up (Node-RED started, or the broker restarted), edgelmd
// may not have (re)subscribed yet: "no matching subscribers" then means "not yet", and the
// request is sent again every second for this long after the connection came up (edgelmd's own
// reconnect backoff is at most 30 s). Later, no_subscribers fails at once (a wrong target).
const NO_SUBSCRIBERS_GRACE_MS = 35000;
const NO_SUBSCRIBERS_RETRY_MS = 1000;

module.exports = function (RED) {
    function EdgelmRequestNode(config) {
        RED.nodes.createNode(this, config);
        const node = this;
        node.broker = RED.nodes.getNode(config.broker);
        node.target = (config.target || '').trim();
        node.prefix = (config.prefix || 'edgelm').trim() || 'edgelm';
        const maxTokens = parseInt(config.maxTokens, 10);
        node.maxTokens = Number.isInteger(maxTokens) && maxTokens > 0 ? maxTokens : null;
        node.stream = config.stream === true || config.stream === 'true';
        const timeoutMs = Number(config.timeout);
        node.timeoutMs = config.timeout === '' || config.timeout === undefined ? 60000
            : Number.isFinite(timeoutMs) && timeoutMs >= 0 ? timeoutMs : 60000;

        const pending = new Map(); // request id -> entry (made by the input handler)
        let brokerState = { state: 'disconnected', text: 'not connected' };
        let last = null;           // {fill, text} of the last finished request, for the status
        const unsubscribers = [];

        let configError = null;
        let topics = null;
        let replyTopic = null;
        if (!node.broker) {
            configError = 'no edgelm-broker configured';
        } else if (node.broker.configError) {
            configError = node.broker.configError;
        } else if (!protocol.prefixOk(node.prefix)) {
            configError = `topic prefix '${node.prefix}' is not a topic prefix`;
        } else if (!protocol.levelOk(node.target)) {
            configError = `target '${node.target}' must be a node id (no / + #) or "fleet"`;
        } else {
            topics = protocol.topicsFor(node.prefix, node.target);
            replyTopic = protocol.responseTopic(node.broker.replyPrefix, node.broker.clientId,
                node.id, node.target);
            const why = replyTopic &&
                protocol.replyTopicRefusal(replyTopic, { prefix: node.prefix });
            if (!replyTopic) {
                configError = `the broker node's reply prefix '${node.broker.replyPrefix}' ` +
                    'names the target node, which a fleet request does not have: ' +
                    'use another broker node';
            } else if (why) {
                configError = `edgelmd would refuse the reply topic ${replyTopic}: ${why}`;
            }
        }

        function updateStatus() {
            if (configError) {
                node.status({ fill: 'red', shape: 'ring', text: 'configuration error' });
            } else if (pending.size > 0) {
                const streaming = [...pending.values()].filter((e) => e.nChunks > 0).length;
                const queued = pending.size - streaming;
                const parts = [];
                if (queued > 0) {
                    parts.push(`queued${queued > 1 ? ` (${queued})` : ''}`);
                }
                if (streaming > 0) {
                    parts.push(`streaming${streaming > 1 ? ` (${streaming})` : ''}`);
                }
                if (brokerState.state !== 'connected') {
                    parts.push(brokerState.text);
                }
                node.status({
                    fill: brokerState.state === 'connected' ? 'blue' : 'yellow',
                    shape: 'dot',
                    text: parts.join(', '),
                });
            } else if (brokerState.state !== 'connected') {
                node.status({
                    fill: brokerState.state === 'connecting' ? 'yellow' : 'red',
                    shape: 'ring',
                    text: brokerState.text,
                });
            } else if (last) {
                node.status({ fill: last.fill, shape: 'dot', text: last.text });
            } else {
                node.status({ fill: 'green', shape: 'ring', text: 'connected' });
            }
        }

        node.onBrokerState = function (state, text) {
            brokerState = { state, text };
            updateStatus();
        };

        // ---- replies ---------------------------------------------------------------------

        function entryFor(packet, message) {
            const corr = packet && packet.properties && packet.properties.correlationData;
            if (corr) {
                return pending.get(Buffer.from(corr).toString('utf8')) || null;
            }
            return typeof message.id === 'string' ? pending.get(message.id) || null : null;
        }

        function onReply(topic, payload, packet) {
            const reply = protocol.parseReply(payload);
            if (reply.type === 'invalid') {
                node.warn(`ignored a message on ${topic}: ${reply.message}`);
                return;
            }
            const entry = entryFor(packet, reply.message);
            if (!entry) {
                // a late or repeated answer (delivery is at least once), or a chunk after the end
                return;
            }
            if (reply.type === 'token') {
                onChunk(entry, reply.message);
            } else if (reply.type === 'result') {
                onResult(entry, reply.message);
            } else {
                fail(entry, reply.message);
            }
        }

        // <prefix>/<node>/errors: requests edgelmd could not answer on the reply topic (one it
        // refused, e.g. by mqtt.reply_prefixes); matched by id, other clients' errors ignored
        function onErrorsTopic(topic, payload) {
            const reply = protocol.parseReply(payload);
            if (reply.type !== 'error' || typeof reply.message.id !== 'string') {
                return;
            }
            const entry = pending.get(reply.message.id);
            if (entry) {
                fail(entry, reply.message);
            }
        }

        function onChunk(entry, chunk) {
            if (typeof chunk.seq === 'number' && chunk.seq !== entry.nextSeq) {
                entry.gaps += 1; // chunks are QoS 0 and dropped while edgelmd is disconnected
            }
            entry.nextSeq = (typeof chunk.seq === 'number' ? chunk.seq : entry.nextSeq) + 1;
            const text = typeof chunk.text === 'string' ? chunk.text : '';
            entry.streamed += text;
            entry.nChunks += 1;
            if (entry.nChunks === 1) {
                updateStatus();
            }
            if (entry.stream) {
                const m = RED.util.cloneMessage(entry.msg); // same _msgid; msg.req/msg.res shared
                m.payload = text;
                m.edgelm = { v: chunk.v, type: 'token', id: entry.id, seq: chunk.seq };
                entry.send([null, m]);
            }
            if (entry.heldResult && entry.streamed.length >= entry.heldResult.text.length) {
                deliver(entry, entry.heldResult);
            }
        }

        function onResult(entry, result) {
            const text = typeof result.text === 'string' ? result.text : '';
            if (entry.stream && entry.streamed.length < text.length &&
                text.startsWith(entry.streamed) && !entry.heldResult) {
                entry.heldResult = result;
                entry.holdTimer = setTimeout(() => deliver(entry, result), LATE_CHUNK_GRACE_MS);
                return;
            }
            deliver(entry, result);
        }

        function settle(entry) {
            pending.delete(entry.id);
            clearTimeout(entry.timer);
            clearTimeout(entry.holdTimer);
            clearTimeout(entry.retryTimer);
            if (entry.publication) {
                entry.publication.cancel();
            }
        }

        function deliver(entry, result) {
            if (!pending.has(entry.id) || pending.get(entry.id) !== entry) {
                return;
            }
            settle(entry);
            const msg = entry.msg;
            msg.edgelm = result;
            if (entry.stream) {
                msg.edgelm.chunks = { received: entry.nChunks, gaps: entry.gaps };
            }
            if (entry.format) {
                msg.payload = result.json === undefined ? null : result.json;
            } else {
                msg.payload = result.text;
            }
            const usage = result.usage || {};
            const timings = result.timings || {};
            const rate = typeof timings.predicted_per_second === 'number'
                ? `, ${timings.predicted_per_second.toFixed(0)} tok/s` : '';
            last = {
                fill: 'green',
                text: `done: ${usage.completion_tokens} tokens${rate} (${result.finish_reason})`,
            };
            updateStatus();
            entry.send([msg, null]);
            entry.done();
        }

        // end a request with an error message shaped like edgelmd's: msg.edgelm = it, and
        // done(err) so that a Catch node gets the msg (err.code = the error code)
        function fail(entry, errorMessage) {
            if (pending.get(entry.id) !== entry) {
                return;
            }
            settle(entry);
            const e = errorMessage.error ||
                { code: 'internal', message: 'an error without details' };
            const msg = entry.msg;
            msg.edgelm = errorMessage;
            last = { fill: 'red', text: `error: ${e.code}` };
            updateStatus();
            entry.done(edgelmError(e.code, e.message));
        }

        function edgelmError(code, message) {
            const err = new Error(`${code}: ${message}`);
            err.name = 'edgelm';
            err.code = code;
            return err;
        }

        // ---- requests --------------------------------------------------------------------

        function onTimeout(entry) {
            if (pending.get(entry.id) !== entry) {
                return;
            }
            if (entry.noSubscribers) {
                failNoSubscribers(entry); // retried since the connection came up; still nobody
                return;
            }
            let how = 'it was never sent (not connected)';
            if (entry.publication && entry.publication.sent()) {
                publishCancel(entry.id);
                how = `sent a cancel to ${topics.cancel}`;
            }
            fail(entry, protocol.localError(entry.id, 'timeout',
                `no result within ${node.timeoutMs} ms; ${how}`));
        }

        function publishCancel(id) {
            node.broker.publish(topics.cancel, JSON.stringify({ v: protocol.PROTOCOL_VERSION, id }),
                { qos: 1, properties: { contentType: 'application/json' } }, null);
        }

        function failNoSubscribers(entry) {
            fail(entry, protocol.localError(entry.id, 'no_subscribers',
                `no edgelmd subscribes to ${topics.request} (the broker said "No matching ` +
                'subscribers"): check the target node id and that the node ' +
                '(or a fleet node) runs'));
        }

        function sendRequest(entry, payload) {
            const properties = {
                responseTopic: replyTopic,
                correlationData: Buffer.from(entry.id, 'utf8'),
                contentType: 'application/json',
            };
            if (node.timeoutMs > 0) {
                // a request nobody took before the timeout is worthless: let the broker drop it
                const leftMs = Math.max(1, node.timeoutMs - (Date.now() - entry.startedMs));
                properties.messageExpiryInterval = Math.ceil(leftMs / 1000);
            }
            entry.publication = node.broker.publish(topics.request, payload, { qos: 1, properties },
                (err, info) => {
                    if (pending.get(entry.id) !== entry) {
                        return;
                    }
                    if (err) {
                        fail(entry, protocol.localError(entry.id, 'publish_failed',
                            `publishing to ${topics.request} failed: ${err.message}`));
                    } else if (info && info.noSubscribers) {
                        if (node.broker.msSinceReady() < NO_SUBSCRIBERS_GRACE_MS) {
                            entry.noSubscribers = true;
                            entry.retryTimer = setTimeout(() => sendRequest(entry, payload),
                                NO_SUBSCRIBERS_RETRY_MS);
                            return;
                        }
                        failNoSubscribers(entry);
                    } else {
                        entry.noSubscribers = false; // taken this time
                    }
                });
        }

        node.on('input', function (msg, send, done) {
            if (configError) {
                msg.edgelm = protocol.localError(null, 'invalid_request', configError);
                done(edgelmError('invalid_request', configError));
                return;
            }
            let built;
            try {
                built = protocol.buildRequest(msg.payload,
                    { maxTokens: node.maxTokens, stream: node.stream });
            } catch (e) {
                msg.edgelm = protocol.localError(null, e.code || 'invalid_request', e.message);
                done(edgelmError(e.code || 'invalid_request', e.message));
                return;
            }
            const id = built.id;
            if (pending.has(id)) {
                const why = `a request with id '${id}' is already waiting for its answer ` +
                    'on this node';
                msg.edgelm = protocol.localError(id, 'invalid_request', why);
                done(edgelmError('invalid_request', why));
                return;
            }
            const entry = {
                id,
                msg,
                send,
                done,
                stream: built.stream,
                format: built.format,
                nChunks: 0,
                nextSeq: 0,
                gaps: 0,
                streamed: '',
                heldResult: null,
                holdTimer: null,
                timer: null,
                retryTimer: null,
                noSubscribers: false,
                publication: null,
                startedMs: Date.now(),
            };
            pending.set(id, entry);
            if (node.timeoutMs > 0) {
                entry.timer = setTimeout(() => onTimeout(entry), node.timeoutMs);
            }
            sendRequest(entry, JSON.stringify(built.request));
            updateStatus();
        });

        node.on('close', function (removed, done) {
            // pending requests end here: cancel the ones edgelmd has, forget the rest
            for (const entry of [...pending.values()]) {
                const sent = entry.publication && entry.publication.sent();
                settle(entry);
                if (sent && node.broker) {
                    publishCancel(entry.id);
                }
            }
            unsubscribers.forEach((u) => u());
            unsubscribers.length = 0;
            if (node.broker) {
                node.broker.deregister(node);
            }
            done();
        });

        if (configError) {
            node.error(configError);
            updateStatus();
            return;
        }
        unsubscribers.push(node.broker.subscribe(replyTopic, 1, onReply));
        unsubscribers.push(node.broker.subscribe(`${replyTopic}/stream`, 0, onReply));
        unsubscribers.push(node.broker.subscribe(topics.errors, 1, onErrorsTopic));
        node.broker.register(node);
    }

    RED.nodes.registerType('edgelm request', EdgelmRequestNode);
};
