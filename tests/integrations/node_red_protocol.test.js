// node_red_protocol.test.js - unit tests of node-red-contrib-edgelm's lib/protocol.js with
// node's built-in runner (node --test; no npm packages). The reply-topic cases mirror edgelmd's
// topics_reply_allowed() (service/topics.c), which test_node_red.sh then meets for real.
'use strict';

const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');

const protocol = require(path.join(__dirname, '..', '..', 'deploy', 'node-red',
    'node-red-contrib-edgelm', 'lib', 'protocol.js'));

test('ids are unique, nr-<hex>-<n>, and accepted by edgelmd', () => {
    const ids = new Set();
    for (let i = 0; i < 1000; i++) {
        const id = protocol.newRequestId();
        assert.match(id, /^nr-[0-9a-f]{12}-[0-9]+$/);
        assert.ok(protocol.idOk(id));
        ids.add(id);
    }
    assert.strictEqual(ids.size, 1000);
});

test('idOk follows docs/protocol.md (1..128 bytes, no / + #)', () => {
    assert.ok(protocol.idOk('kitchen-42'));
    assert.ok(protocol.idOk('x'.repeat(128)));
    assert.ok(!protocol.idOk('x'.repeat(129)));
    assert.ok(!protocol.idOk('é'.repeat(65))); // 130 bytes
    assert.ok(!protocol.idOk(''));
    assert.ok(!protocol.idOk('a/b'));
    assert.ok(!protocol.idOk('a+b'));
    assert.ok(!protocol.idOk('a#b'));
    assert.ok(!protocol.idOk('a\u0000b'));
    assert.ok(!protocol.idOk(42));
});

test('a prompt string becomes a request with v, a fresh id and the node defaults', () => {
    const b = protocol.buildRequest('Once upon a time', { maxTokens: 32, stream: true });
    assert.deepStrictEqual(Object.keys(b.request), ['v', 'id', 'prompt', 'max_tokens', 'stream']);
    assert.strictEqual(b.request.v, 1);
    assert.strictEqual(b.request.prompt, 'Once upon a time');
    assert.strictEqual(b.request.max_tokens, 32);
    assert.strictEqual(b.request.stream, true);
    assert.strictEqual(b.id, b.request.id);
    assert.strictEqual(b.stream, true);
    assert.strictEqual(b.format, false);
    const c = protocol.buildRequest(Buffer.from('héllo'), {});
    assert.strictEqual(c.request.prompt, 'héllo');
    assert.strictEqual(c.request.max_tokens, undefined);
    assert.strictEqual(c.request.stream, undefined);
    assert.notStrictEqual(c.id, b.id);
});

test('a request object is copied, its fields win over the node defaults, reply_to dropped', () => {
    const payload = {
        id: 'mine-1', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5,
        stream: false, format: 'json', reply_to: 'app/answers',
    };
    const frozen = JSON.stringify(payload);
    const b = protocol.buildRequest(payload, { maxTokens: 64, stream: true });
    assert.strictEqual(JSON.stringify(payload), frozen, 'msg.payload is not modified');
    assert.strictEqual(b.id, 'mine-1');
    assert.strictEqual(b.request.max_tokens, 5);
    assert.strictEqual(b.request.stream, false);
    assert.strictEqual(b.stream, false);
    assert.strictEqual(b.format, true);
    assert.ok(!('reply_to' in b.request));
    // invalid values are edgelmd's to refuse (with its own message), not silently fixed here
    assert.strictEqual(protocol.buildRequest({ prompt: 'x', max_tokens: -1 }, { maxTokens: 8 })
        .request.max_tokens, -1);
    assert.strictEqual(protocol.buildRequest({ prompt: 'x', v: 2 }, {}).request.v, 2);
});

test('payloads that cannot be a request throw invalid_request', () => {
    for (const p of [undefined, null, 42, true, ['a'], () => 1]) {
        assert.throws(() => protocol.buildRequest(p, {}), (e) => e.code === 'invalid_request');
    }
    assert.throws(() => protocol.buildRequest({ prompt: 'x', id: 'a/b' }, {}),
        (e) => e.code === 'invalid_request' && /field 'id'/.test(e.message));
    assert.throws(() => protocol.buildRequest({ prompt: 'x', id: 7 }, {}),
        (e) => e.code === 'invalid_request');
});

test('topics of a node and of the fleet', () => {
    assert.deepStrictEqual(protocol.topicsFor('edgelm', 'pi4-kitchen'), {
        request: 'edgelm/pi4-kitchen/request',
        cancel: 'edgelm/pi4-kitchen/cancel',
        errors: 'edgelm/pi4-kitchen/errors',
    });
    assert.deepStrictEqual(protocol.topicsFor('site/edgelm', 'fleet'), {
        request: 'site/edgelm/fleet/request',
        cancel: 'site/edgelm/fleet/cancel',
        errors: 'site/edgelm/+/errors',
    });
});

test('the response topic: one level each for client id and node id', () => {
    assert.strictEqual(protocol.responseTopic('nodered', 'nodered-edgelm-1a2b', 'a1b2c3d4e5f60718'),
        'nodered/nodered-edgelm-1a2b/edgelm/a1b2c3d4e5f60718');
    assert.strictEqual(protocol.responseTopic('app/answers', 'my client/+#', 'x:y'),
        'app/answers/my_client___/edgelm/x_y');
    assert.strictEqual(protocol.sanitizeLevel(''), '_');
    // {target}: below the node's own response topic, which edgelmd always allows
    const own = protocol.responseTopic('edgelm/{target}/response/nodered', 'c1', 'n1', 'kitchen');
    assert.strictEqual(own, 'edgelm/kitchen/response/nodered/c1/edgelm/n1');
    assert.strictEqual(protocol.replyTopicRefusal(own), null);
    assert.strictEqual(protocol.replyTopicRefusal(own, { node: 'kitchen', replyPrefixes: ['app/'] }), null);
    assert.match(protocol.replyTopicRefusal(own, { node: 'garage', replyPrefixes: ['app/'] }),
        /reply_prefixes/);
    assert.strictEqual(protocol.responseTopic('edgelm/{target}/response', 'c1', 'n1', 'fleet'), null);
    assert.strictEqual(protocol.responseTopic('edgelm/{target}/response', 'c1', 'n1'), null);
});

test('reply topics edgelmd refuses, as service/topics.c', () => {
    const refused = (t, o) => protocol.replyTopicRefusal(t, o);
    assert.strictEqual(refused('nodered/c/edgelm/n'), null);
    assert.strictEqual(refused('edgelm/n1/response/abc'), null);
    assert.strictEqual(refused('edgelm/n1/requests'), null); // not the request topic
    assert.strictEqual(refused('edgelm'), null);
    assert.match(refused('$SYS/x'), /\$/);
    assert.match(refused('homeassistant'), /Home Assistant/);
    assert.match(refused('homeassistant/x'), /Home Assistant/);
    assert.strictEqual(refused('homeassistantx/y'), null);
    for (const kind of ['request', 'cancel', 'status', 'health', 'metrics', 'errors']) {
        assert.match(refused(`edgelm/n1/${kind}`), new RegExp(kind));
        assert.match(refused(`edgelm/n1/${kind}/below`), new RegExp(kind));
        assert.match(refused(`edgelm/fleet/${kind}`), new RegExp(kind));
    }
    assert.match(refused('edgelm/n1/status', { prefix: 'edgelm' }), /status/);
    assert.strictEqual(refused('edgelm/n1/status', { prefix: 'site' }), null);
    assert.match(refused('ha/x', { haPrefix: 'ha' }), /Home Assistant/);
    assert.match(refused('a/+/b'), /wildcards/);
    assert.match(refused(''), /wildcards/);
    // mqtt.reply_prefixes: a plain string prefix, as edgelmd compares it
    assert.strictEqual(refused('nodered/c/edgelm/n', { replyPrefixes: ['app/', 'nodered/'] }), null);
    assert.match(refused('nodered/c/edgelm/n', { replyPrefixes: ['app/answers/'] }), /reply_prefixes/);
});

test('prefixes and levels', () => {
    assert.ok(protocol.prefixOk('edgelm'));
    assert.ok(protocol.prefixOk('site/edgelm'));
    for (const bad of ['', '$x', 'a//b', 'a/', '/a', 'a/+', 'a#']) {
        assert.ok(!protocol.prefixOk(bad), bad);
    }
    assert.ok(protocol.levelOk('pi4-kitchen'));
    for (const bad of ['', 'a/b', '+', '#']) {
        assert.ok(!protocol.levelOk(bad), bad);
    }
});

test('replies are classified; anything else is invalid, never thrown', () => {
    assert.strictEqual(protocol.parseReply(Buffer.from('{"v":1,"type":"token","id":"a","seq":0,"text":"x"}')).type, 'token');
    assert.strictEqual(protocol.parseReply('{"v":1,"type":"result","id":"a","text":"x"}').type, 'result');
    const e = protocol.parseReply('{"v":1,"type":"error","id":null,"error":{"code":"busy","message":"m"}}');
    assert.strictEqual(e.type, 'error');
    assert.strictEqual(e.message.error.code, 'busy');
    for (const bad of ['', 'online', '[1]', '"x"', '{"type":"other"}', '{"v":1}', '{']) {
        assert.strictEqual(protocol.parseReply(bad).type, 'invalid', bad);
    }
});

test('topic filters', () => {
    assert.ok(protocol.topicMatches('edgelm/+/errors', 'edgelm/n1/errors'));
    assert.ok(!protocol.topicMatches('edgelm/+/errors', 'edgelm/n1/errors/x'));
    assert.ok(!protocol.topicMatches('edgelm/+/errors', 'edgelm/errors'));
    assert.ok(protocol.topicMatches('a/#', 'a/b/c'));
    assert.ok(protocol.topicMatches('a/b', 'a/b'));
    assert.ok(!protocol.topicMatches('a/b', 'a/c'));
});

test('local errors look like edgelmd errors', () => {
    assert.deepStrictEqual(protocol.localError('x', 'timeout', 'm'),
        { v: 1, type: 'error', id: 'x', error: { code: 'timeout', message: 'm' } });
    assert.strictEqual(protocol.localError(undefined, 'c', 'm').id, null);
});

// The editor side (edgelm-*.html): the registration scripts compile, and every form input of a
// template is one of the node's defaults or credentials (a typo there silently loses a setting).
test('the editor HTML: scripts compile, inputs match the defaults', () => {
    const fs = require('node:fs');
    const dir = path.join(__dirname, '..', '..', 'deploy', 'node-red', 'node-red-contrib-edgelm');
    for (const [file, type, inputPrefix] of [['edgelm-request.html', 'edgelm request', 'node-input-'],
        ['edgelm-broker.html', 'edgelm-broker', 'node-config-input-']]) {
        const html = fs.readFileSync(path.join(dir, file), 'utf8');
        const scripts = [...html.matchAll(/<script type="text\/javascript">([\s\S]*?)<\/script>/g)];
        assert.strictEqual(scripts.length, 1, file);
        let registered = null;
        const RED = {
            nodes: { registerType: (t, def) => { registered = { t, def }; } },
            validators: { number: () => (v) => !isNaN(Number(v)) },
        };
        new Function('RED', scripts[0][1])(RED);
        assert.strictEqual(registered.t, type);
        const props = new Set([...Object.keys(registered.def.defaults),
            ...Object.keys(registered.def.credentials || {})]);
        const template = html.match(new RegExp(`data-template-name="${type}">([\\s\\S]*?)</script>`))[1];
        const inputs = [...template.matchAll(new RegExp(`id="${inputPrefix}([A-Za-z]+)"`, 'g'))].map((m) => m[1]);
        assert.ok(inputs.length > 0);
        for (const name of inputs) {
            assert.ok(props.has(name), `${file}: input ${name} is not a default or credential`);
        }
        for (const name of props) {
            assert.ok(inputs.includes(name), `${file}: ${name} has no input`);
        }
        assert.ok(html.includes(`data-help-name="${type}"`), `${file}: help text`);
        // the runtime side reads the same property names
        const js = fs.readFileSync(path.join(dir, file.replace('.html', '.js')), 'utf8');
        for (const name of Object.keys(registered.def.defaults)) {
            if (name !== 'name') {
                assert.ok(js.includes(`config.${name}`), `${file}: ${name} is not read by the runtime`);
            }
        }
    }
});
