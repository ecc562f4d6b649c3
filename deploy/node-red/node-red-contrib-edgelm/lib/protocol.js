// protocol.js - the parts of edgelmd's wire contract (docs/protocol.md, version 1) that the
// Node-RED nodes need, as plain functions: request ids, the request built from msg.payload,
// topic names, the reply-topic rules edgelmd enforces, and the meaning of a reply.
// Not here: MQTT and Node-RED (edgelm-broker.js, edgelm-request.js). No state but the id counter;
// unit-tested by tests/integrations/node_red_protocol.test.js (node --test).
'use strict';

const crypto = require('crypto');

const PROTOCOL_VERSION = 1;
const ID_MAX_BYTES = 128; // edgelmd: 1..128 bytes, printable, without / + #
// topics below <prefix>/<node>/ that edgelmd never publishes an answer to
const NODE_OWNED_KINDS = ['request', 'cancel', 'status', 'health', 'metrics', 'errors'];

// Ids: "nr-<12 hex, random per process>-<counter>". Unique across Node-RED restarts and
// instances, so a request never reuses an id edgelmd still remembers (it answers a finished id
// again from its result cache, and ignores an id that is queued or running).
const idPrefix = `nr-${crypto.randomBytes(6).toString('hex')}`;
let idCounter = 0;
function newRequestId() {
    idCounter += 1;
    return `${idPrefix}-${idCounter}`;
}

// an id edgelmd accepts: 1..128 bytes of printable UTF-8 without / + #
function idOk(id) {
    return typeof id === 'string' && id.length > 0 && Buffer.byteLength(id) <= ID_MAX_BYTES &&
        !/[/+#\u0000-\u001f\u007f]/.test(id);
}

// one topic level (node id, client id): non-empty, no / + # or NUL
function levelOk(s) {
    return typeof s === 'string' && s.length > 0 && !/[/+#\u0000]/.test(s);
}

// a topic prefix of one or more levels: no wildcards, no empty level, not a $ topic
function prefixOk(s) {
    return typeof s === 'string' && s.length > 0 && !/[+#\u0000]/.test(s) && s[0] !== '$' &&
        s.split('/').every((level) => level.length > 0);
}

// a string usable as one topic level: anything but letters, digits, _ . - becomes _
function sanitizeLevel(s) {
    const out = String(s).replace(/[^A-Za-z0-9_.-]/g, '_');
    return out.length > 0 ? out : '_';
}

// Topics of a target: a node id, or "fleet" for the fleet queue (edgelm/fleet/request, whose
// cancels every fleet node hears). A fleet error can come from any node: <prefix>/+/errors.
function topicsFor(prefix, target) {
    return {
        request: `${prefix}/${target}/request`,
        cancel: `${prefix}/${target}/cancel`,
        errors: target === 'fleet' ? `${prefix}/+/errors` : `${prefix}/${target}/errors`,
    };
}

// The Response Topic of one request node: one per node instance, under the broker node's reply
// prefix and client id so that two Node-RED instances never share one. "{target}" in the prefix
// stands for the target node id: "edgelm/{target}/response/nodered" puts the answers below the
// node's own response topic, which edgelmd always allows (whatever its mqtt.reply_prefixes) and
// deploy/mosquitto/acl.conf lets nodes write and clients read; not for the fleet, whose answering
// node is not known in advance (returns null then).
function responseTopic(replyPrefix, clientId, nodeId, target) {
    if (replyPrefix.includes('{target}')) {
        if (target === undefined || target === 'fleet') {
            return null;
        }
        replyPrefix = replyPrefix.split('{target}').join(target);
    }
    return `${replyPrefix}/${sanitizeLevel(clientId)}/edgelm/${sanitizeLevel(nodeId)}`;
}

function topicUnder(topic, root) {
    return root.length > 0 && topic.startsWith(root) &&
        (topic.length === root.length || topic[root.length] === '/');
}

// Why edgelmd would refuse `topic` as a reply topic (its topics_reply_allowed()), or null.
// opts: prefix (mqtt.topic_prefix, "edgelm"), haPrefix (homeassistant.prefix), replyPrefixes
// (mqtt.reply_prefixes; [] = no list), node (the answering node's id, when known). A refused
// request is answered on <prefix>/<node>/errors, never on the reply topic, so the request node
// checks its own topic up front.
function replyTopicRefusal(topic, opts) {
    const o = opts || {};
    const prefix = o.prefix || 'edgelm';
    const haPrefix = o.haPrefix || 'homeassistant';
    const replyPrefixes = o.replyPrefixes || [];
    if (typeof topic !== 'string' || topic.length === 0 || /[+#\u0000]/.test(topic)) {
        return 'a reply topic must be a topic name without wildcards';
    }
    if (topic[0] === '$') {
        return "topics starting with '$' belong to the broker";
    }
    if (topicUnder(topic, haPrefix)) {
        return `'${haPrefix}' is Home Assistant's discovery prefix`;
    }
    if (topic.startsWith(`${prefix}/`)) {
        const rest = topic.slice(prefix.length + 1);
        const slash = rest.indexOf('/');
        if (slash >= 0) {
            const kind = rest.slice(slash + 1);
            const owned = NODE_OWNED_KINDS.find((k) => topicUnder(kind, k));
            if (owned) {
                return `it is a node's ${owned} topic`;
            }
        }
    }
    if (o.node && topicUnder(topic, `${prefix}/${o.node}/response`)) {
        return null; // the node's own response topics: always allowed
    }
    if (replyPrefixes.length > 0 && !replyPrefixes.some((p) => topic.startsWith(p))) {
        return 'it starts with none of mqtt.reply_prefixes';
    }
    return null;
}

function isPlainObject(v) {
    return v !== null && typeof v === 'object' && !Array.isArray(v) && !Buffer.isBuffer(v);
}

// The request for msg.payload: a prompt string (or Buffer of UTF-8), or a request object with
// docs/protocol.md's fields (copied, never modified). Adds "v" and a fresh "id" when missing,
// the node's default max_tokens and stream when the object does not set them; drops "reply_to"
// (the node's MQTT 5 Response Topic is where the answer must go).
// opts: maxTokens (integer or null), stream (bool). Returns {request, id, stream, format};
// throws an Error with code "invalid_request" for a payload that cannot be a request.
function buildRequest(payload, opts) {
    const o = opts || {};
    let fields;
    if (typeof payload === 'string') {
        fields = { prompt: payload };
    } else if (Buffer.isBuffer(payload)) {
        fields = { prompt: payload.toString('utf8') };
    } else if (isPlainObject(payload)) {
        fields = Object.assign({}, payload);
    } else {
        const got = payload === null ? 'null'
            : Array.isArray(payload) ? 'an array' : typeof payload;
        throw invalid(`msg.payload must be a prompt string or a request object (got ${got})`);
    }
    let id = fields.id;
    if (id === undefined) {
        id = newRequestId();
    } else if (!idOk(id)) {
        throw invalid("field 'id': expected a string of 1..128 bytes without / + # " +
            'or control characters');
    }
    delete fields.reply_to;
    const request = { v: fields.v === undefined ? PROTOCOL_VERSION : fields.v, id };
    delete fields.v;
    delete fields.id;
    Object.assign(request, fields);
    if (request.max_tokens === undefined && Number.isInteger(o.maxTokens) && o.maxTokens > 0) {
        request.max_tokens = o.maxTokens;
    }
    if (request.stream === undefined && o.stream) {
        request.stream = true;
    }
    return { request, id, stream: request.stream === true, format: request.format !== undefined };
}

function invalid(message) {
    const err = new Error(message);
    err.code = 'invalid_request';
    return err;
}

// A reply payload (Buffer or string) as {type, message}: type "token", "result", "error", or
// "invalid" (not JSON, not an object, or an unknown type; message then holds why).
function parseReply(payload) {
    let message;
    try {
        message = JSON.parse(Buffer.isBuffer(payload) ? payload.toString('utf8') : payload);
    } catch (e) {
        return { type: 'invalid', message: `not JSON: ${e.message}` };
    }
    if (!isPlainObject(message)) {
        return { type: 'invalid', message: 'not a JSON object' };
    }
    if (message.type === 'token' || message.type === 'result' || message.type === 'error') {
        return { type: message.type, message };
    }
    return { type: 'invalid', message: `unknown type ${JSON.stringify(message.type)}` };
}

// An error made by the Node-RED node itself, shaped like edgelmd's ("timeout", "no_subscribers",
// "publish_failed", "invalid_request", "closed").
function localError(id, code, message) {
    return {
        v: PROTOCOL_VERSION,
        type: 'error',
        id: id === undefined ? null : id,
        error: { code, message },
    };
}

// MQTT topic filter matching (+ one level, # the rest), for the fleet's <prefix>/+/errors
function topicMatches(filter, topic) {
    const f = filter.split('/');
    const t = topic.split('/');
    for (let i = 0; i < f.length; i++) {
        if (f[i] === '#') {
            return true;
        }
        if (i >= t.length || (f[i] !== '+' && f[i] !== t[i])) {
            return false;
        }
    }
    return f.length === t.length;
}

module.exports = {
    PROTOCOL_VERSION,
    newRequestId,
    idOk,
    levelOk,
    prefixOk,
    sanitizeLevel,
    topicsFor,
    responseTopic,
    replyTopicRefusal,
    buildRequest,
    parseReply,
    localError,
    topicMatches,
};
