#!/usr/bin/env python3
"""test_home_assistant.py - edgelmd's Home Assistant discovery against a real mosquitto.

Takes the retained discovery document a real edgelmd publishes and checks it the way Home
Assistant's MQTT device discovery would (homeassistant/components/mqtt: discovery.py and the
platform schemas): topic node id, device and origin blocks, component ids, platforms, required
and allowed keys per platform, unique ids, availability, device and state classes. Then renders
every template with Jinja2 the way Home Assistant does (value_json, to_json, as_timestamp, now)
against the JSON the node really publishes on the entity's topic, with StrictUndefined so a
template naming a field the state JSON lacks fails. Finally the conversation round trip: the Ask
text entity's command template is rendered with a typed question and published to its command
topic; the node's retained answer topic must then hold the answer, and the Last answer sensor's
templates must render it (state = the first 255 characters, the whole text in the attributes).
An error answer and a second question (a new id: no replay of the first answer) too, then
availability (offline on shutdown) and the node-id check that keeps HA from ignoring a node.

Usage: test_home_assistant.py  (env: EDGELMD; model: the repository's models/stories260K.gguf)
Exit 77 = skipped (mosquitto or Jinja2 missing).
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

NAME = "test_home_assistant"
HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, "..", ".."))

try:
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment
except ImportError:  # a pyenv/venv python without Debian's python3-jinja2 on its path
    sys.path.append("/usr/lib/python3/dist-packages")
    try:
        import jinja2
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        print(f"{NAME}: SKIPPED: Jinja2 is not installed (Debian: apt-get install python3-jinja2)",
              file=sys.stderr)
        sys.exit(77)

try:
    import yaml  # Debian: python3-yaml (a dependency of many; checked below)
except ImportError:
    yaml = None

checks = 0
failures = 0


def check(cond, what):
    global checks, failures
    checks += 1
    if not cond:
        failures += 1
        print(f"FAIL: {what}", file=sys.stderr)
    return cond


# ---- what Home Assistant accepts (homeassistant/components/mqtt, 2024.11+) ---------------------
NODE_ID = re.compile(r"^[a-zA-Z0-9_-]+$")  # discovery topic levels and component ids
ENTITY_COMMON = {
    "platform", "name", "unique_id", "object_id", "default_entity_id", "icon", "entity_category",
    "enabled_by_default", "entity_picture", "json_attributes_topic", "json_attributes_template",
    "availability", "availability_topic", "availability_template", "availability_mode",
    "payload_available", "payload_not_available", "qos", "encoding", "device", "origin",
}
PLATFORMS = {
    "sensor": ({"state_topic"}, {"state_topic", "value_template", "unit_of_measurement",
                                 "device_class", "state_class", "suggested_display_precision",
                                 "expire_after", "force_update", "last_reset_value_template",
                                 "options"}),
    "binary_sensor": ({"state_topic"}, {"state_topic", "value_template", "payload_on",
                                        "payload_off", "device_class", "expire_after",
                                        "force_update", "off_delay"}),
    "text": ({"command_topic"}, {"command_topic", "command_template", "state_topic",
                                 "value_template", "max", "min", "mode", "pattern", "retain"}),
    "button": ({"command_topic"}, {"command_topic", "command_template", "payload_press",
                                   "retain", "device_class"}),
}
SENSOR_DEVICE_CLASSES = {"temperature", "data_size", "duration", "power", "energy", "enum",
                         "timestamp", "frequency", "voltage", "current", "humidity"}
BINARY_DEVICE_CLASSES = {"connectivity", "running", "problem", "power", "update", "plug"}
STATE_CLASSES = {"measurement", "total", "total_increasing"}
ROOT_KEYS = {"device", "origin", "components", "availability", "availability_topic",
             "availability_mode", "availability_template", "payload_available",
             "payload_not_available", "qos", "encoding", "state_topic", "command_topic"}


def ha_environment():
    """Jinja2 as Home Assistant's template engine sets it up, for the parts these templates use."""
    env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    env.filters["to_json"] = lambda v: json.dumps(v, ensure_ascii=False)
    env.globals["now"] = lambda: datetime.now(timezone.utc)
    env.globals["as_timestamp"] = lambda dt: dt.timestamp()
    return env


def render(env, template, value):
    """A value template with value / value_json, as Home Assistant renders it (returns text)."""
    try:
        value_json = json.loads(value)
    except ValueError:
        value_json = None
    return env.from_string(template).render(value=value, value_json=value_json).strip()


# ---- processes -------------------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_mosquitto():
    for c in (shutil.which("mosquitto"), "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if c and os.access(c, os.X_OK):
            return c
    return None


class Broker:
    def __init__(self, tmp):
        self.port = free_port()
        conf = os.path.join(tmp, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                    "set_tcp_nodelay true\npersistence false\n")
        self.log = open(os.path.join(tmp, "mosquitto.log"), "w")
        self.proc = subprocess.Popen([find_mosquitto(), "-c", conf], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def retained(self, topic, want=None, timeout=20.0):
        """The retained message on topic (a fresh subscription, so only a retained one comes),
        waiting until it contains `want` when given; None if none came in time."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            r = subprocess.run(["mosquitto_sub", "-p", str(self.port), "-h", "127.0.0.1",
                                "-t", topic, "-C", "1", "-W", "1", "--retained-only"],
                               capture_output=True, text=True)
            if r.returncode == 0 and r.stdout and (want is None or want in r.stdout):
                return r.stdout.rstrip("\n")
            time.sleep(0.1)
        return None

    def publish(self, topic, payload):
        subprocess.run(["mosquitto_pub", "-p", str(self.port), "-h", "127.0.0.1", "-q", "1",
                        "-t", topic, "-m", payload], check=True)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def start_node(edgelmd, broker, tmp, node_id, model):
    conf = os.path.join(tmp, f"{node_id}.conf")
    with open(conf, "w") as f:
        f.write("metrics = { interval_s = 1; };\n")
    log = open(os.path.join(tmp, f"{node_id}.log"), "w")
    return subprocess.Popen([edgelmd, "--config", conf, "--model", model, "--node", node_id,
                             "--broker", f"tcp://127.0.0.1:{broker.port}", "--threads", "1"],
                            stdout=log, stderr=subprocess.STDOUT)


# ---- the checks ------------------------------------------------------------------------------
def check_document(doc, node_id):
    check(NODE_ID.match(node_id) is not None, f"node id {node_id!r} is a valid discovery node id")
    check(set(doc) <= ROOT_KEYS, f"unknown root keys {sorted(set(doc) - ROOT_KEYS)}")
    dev = doc.get("device", {})
    check(bool(dev.get("identifiers") or dev.get("connections")), "device has identifiers")
    check(isinstance(dev.get("name"), str) and dev["name"] != "", "device has a name")
    check(dev.get("model") not in (None, "", "llama"), f"device model {dev.get('model')!r} names the model")
    check(isinstance(doc.get("origin", {}).get("name"), str), "origin has a name (required)")
    check(isinstance(doc.get("availability_topic"), str), "availability on the status topic")
    cmps = doc.get("components", {})
    check(isinstance(cmps, dict) and len(cmps) > 0, "components present")
    uids = [c.get("unique_id") for c in cmps.values()]
    check(len(uids) == len(set(uids)) and None not in uids, "unique ids present and unique")
    for key, c in cmps.items():
        check(NODE_ID.match(key) is not None, f"component id {key!r}")
        platform = c.get("platform")
        if not check(platform in PLATFORMS, f"{key}: platform {platform!r} known"):
            continue
        required, allowed = PLATFORMS[platform]
        check(required <= set(c), f"{key}: required {sorted(required - set(c))} missing")
        extra = set(c) - allowed - ENTITY_COMMON
        check(not extra, f"{key}: keys {sorted(extra)} not in the {platform} schema")
        if "entity_category" in c:
            check(c["entity_category"] in ("config", "diagnostic"), f"{key}: entity_category")
        if "state_class" in c:
            check(c["state_class"] in STATE_CLASSES, f"{key}: state_class")
        if "device_class" in c:
            classes = SENSOR_DEVICE_CLASSES if platform == "sensor" else BINARY_DEVICE_CLASSES
            check(c["device_class"] in classes, f"{key}: device_class {c['device_class']}")
        if platform == "text":
            check(0 <= c.get("max", 255) <= 255, f"{key}: text max within Home Assistant's 255")
        if platform == "binary_sensor":
            check(c.get("state_topic") != doc.get("availability_topic"),
                  f"{key}: a binary sensor on the availability topic is only ever unavailable")


def check_templates(env, doc, states, before_errors=True):
    """Every state template renders against the JSON on its topic; numeric sensors give numbers."""
    for key, c in doc["components"].items():
        topic = c.get("state_topic")
        if topic is None or topic not in states:
            continue
        for tkey in ("value_template", "json_attributes_template"):
            if tkey not in c:
                continue
            try:
                out = render(env, c[tkey], states[topic])
            except jinja2.TemplateError as e:
                check(False, f"{key}.{tkey} fails on {topic}: {e}")
                continue
            check(out != "", f"{key}.{tkey} renders empty")
            numeric = "unit_of_measurement" in c or "state_class" in c
            if tkey == "value_template" and numeric and out != "None":
                try:
                    float(out)
                    check(True, "")
                except ValueError:
                    check(False, f"{key}: numeric sensor renders {out!r}")
            if tkey == "json_attributes_template":
                try:
                    check(isinstance(json.loads(out), dict), f"{key}: attributes are an object")
                except ValueError:
                    check(False, f"{key}: attributes are not JSON: {out!r}")
            if key.endswith("_last_error") and before_errors:
                check(out == "none", f"Last error shows {out!r} before any error, want 'none'")


def ask(env, broker, doc, question):
    """Type a question into the Ask entity: render its command template, publish it."""
    ask_entity = next(c for c in doc["components"].values() if c["platform"] == "text")
    payload = render(env, ask_entity["command_template"], question)
    request = json.loads(payload)
    broker.publish(ask_entity["command_topic"], payload)
    return request



# ---- the example scripts and automations of deploy/homeassistant/ ---------------------------
SAMPLE_STATES = {"sensor.living_room_temperature": "21.5", "sensor.outside_temperature": "7.0",
                 "binary_sensor.front_door": "off", "sensor.washing_machine_status": "done"}


class Home:
    """Just enough of Home Assistant's state machine and script engine to run the examples'
    steps: variables, mqtt.publish, wait_template, input_text.set_value and stop. The Last
    answer sensor's state and attributes are what its discovery templates make of the node's
    retained answer, as in Home Assistant."""

    def __init__(self, env, broker, doc):
        self.env, self.broker, self.doc = env, broker, doc
        self.last = next(c for c in doc["components"].values() if c["name"] == "Last answer")
        node = doc["device"]["name"].split(" ", 1)[1]
        self.answer_entity = f"sensor.edgelm_{node.lower().replace('-', '_')}_last_answer"
        self.answer_raw = None
        self.input_text = {}
        env.globals["states"] = self.states
        env.globals["state_attr"] = self.state_attr

    def _answer(self):
        if self.answer_raw is None:
            return None, {}
        state = render(self.env, self.last["value_template"], self.answer_raw)
        attributes = json.loads(render(self.env, self.last["json_attributes_template"],
                                       self.answer_raw))
        return state, attributes

    def states(self, entity_id):
        if entity_id == self.answer_entity:
            return self._answer()[0] or "unknown"
        return SAMPLE_STATES.get(entity_id, "unknown")

    def state_attr(self, entity_id, name):
        return self._answer()[1].get(name) if entity_id == self.answer_entity else None

    def value(self, template, variables):
        """Render a step's template (nested in lists and dicts) with the script's variables;
        like Home Assistant, a result that reads as a number, bool or None becomes one."""
        if isinstance(template, dict):
            return {k: self.value(v, variables) for k, v in template.items()}
        if isinstance(template, list):
            return [self.value(v, variables) for v in template]
        if not isinstance(template, str):
            return template
        out = self.env.from_string(template).render(**variables).strip()
        for parse in (int, float):
            try:
                return parse(out)
            except ValueError:
                pass
        return {"True": True, "False": False, "None": None}.get(out, out)

    def run(self, where, steps, variables):
        """Run steps; returns (variables, response, the request sent, the answer received)."""
        response = request = answer = None
        for step in steps:
            if "variables" in step:
                for k, v in step["variables"].items():
                    variables[k] = self.value(v, variables)
            elif step.get("action") == "mqtt.publish":
                data = step["data"]
                topic = self.value(data["topic"], variables)
                payload = self.env.from_string(data["payload"]).render(**variables).strip()
                request = json.loads(payload)
                self.broker.publish(topic, payload)
            elif "wait_template" in step:
                answer = self.broker.retained(request.get("reply_to", ""),
                                              f'"id":"{request.get("id")}"', 120)
                check(answer is not None, f"{where}: no answer on the answer topic")
                self.answer_raw = answer
                check(self.value(step["wait_template"], variables) is True,
                      f"{where}: wait_template stays false after the answer came")
            elif step.get("action") == "input_text.set_value":
                value = self.value(step["data"]["value"], variables)
                self.input_text[step["target"]["entity_id"]] = value
                check(isinstance(value, str) and 0 < len(value) <= 255,
                      f"{where}: input_text value {value!r}")
            elif "stop" in step:
                response = variables.get(step.get("response_variable"))
            else:
                check(False, f"{where}: a step this test cannot run: {step}")
        return variables, response, request, answer


def check_examples(env, broker, doc):
    if yaml is None:
        check(False, "PyYAML is missing (Debian: python3-yaml): the examples were not run")
        return
    home = Home(env, broker, doc)
    folder = os.path.join(SOURCE, "deploy", "homeassistant")
    with open(os.path.join(folder, "scripts.yaml")) as f:
        scripts = yaml.safe_load(f)
    for name, script in scripts.items():
        fields = {k: v.get("default") for k, v in script.get("fields", {}).items()}
        fields["question"] = "Once upon a time"
        _, response, request, answer = home.run(f"script {name}", script["sequence"], fields)
        check(request is not None and request["id"].startswith("ha-"), f"{name}: request {request}")
        check(isinstance(response, dict) and response.get("text") and
              response.get("finish_reason") in ("stop", "length", "stop_word") and
              response.get("error") is None, f"{name}: response {response}")
        if answer is not None and isinstance(response, dict):
            check(response["text"] == json.loads(answer)["text"].strip(),
                  f"{name}: response text is the whole answer")
    with open(os.path.join(folder, "automations.yaml")) as f:
        automations = yaml.safe_load(f)
    for automation in automations:
        name = automation["id"]
        check({"triggers", "actions"} <= set(automation) and "trigger" not in automation,
              f"{name}: current syntax (triggers:/actions:, HA 2024.10+)")
        _, _, request, answer = home.run(f"automation {name}", automation["actions"], {})
        if answer is not None:
            result = json.loads(answer)
            check(result.get("type") == "result", f"{name}: {answer[:300]}")
            value = home.input_text.get("input_text.house_summary")
            print(f"{NAME}: {name}: input_text.house_summary = {value!r} "
                  f"(finish {result.get('finish_reason')}, json {result.get('json')!r:.120})",
                  file=sys.stderr)
            if result.get("finish_reason") == "stop":
                check(isinstance(result.get("json"), dict) and
                      {"summary", "needs_attention"} <= set(result["json"]),
                      f"{name}: the answer follows the schema: {result.get('json')}")
                check(value == result["json"]["summary"][:255], f"{name}: input_text is the summary")

def main():
    edgelmd = os.environ.get("EDGELMD", "")
    model = os.path.join(SOURCE, "models", "stories260K.gguf")
    if find_mosquitto() is None or shutil.which("mosquitto_sub") is None:
        print(f"{NAME}: SKIPPED: mosquitto and mosquitto-clients are not installed", file=sys.stderr)
        return 77
    if not os.access(edgelmd, os.X_OK):
        print(f"{NAME}: SKIPPED: edgelmd not found ($EDGELMD)", file=sys.stderr)
        return 77
    tmp = tempfile.mkdtemp(prefix=NAME + ".")
    broker = Broker(tmp)
    node_id = "kitchen"
    node = start_node(edgelmd, broker, tmp, node_id, model)
    env = ha_environment()
    try:
        raw = broker.retained(f"homeassistant/device/{node_id}/config")
        if not check(raw is not None, "no discovery document"):
            return 1
        doc = json.loads(raw)
        print(json.dumps(doc, indent=1), file=sys.stderr)
        check_document(doc, node_id)
        cmps = doc["components"]
        names = {c["name"]: c for c in cmps.values()}
        check("Ask" in names and "Last answer" in names, "Ask and Last answer entities")
        check("Online" not in names, "no Online binary_sensor (it could only be unavailable)")
        for n in ("Tokens per second", "Prompt tokens per second"):
            check(names.get(n, {}).get("suggested_display_precision") == 1, f"{n}: precision")
        status = broker.retained(doc["availability_topic"], "online")
        check(status == doc.get("payload_available"), f"availability says {status!r}")

        # the templates against what the node publishes (health, metrics; answer below)
        states = {}
        for c in cmps.values():
            t = c.get("state_topic")
            if t and t not in states and not t.endswith("/answer"):
                states[t] = broker.retained(t)
                check(states[t] is not None, f"nothing retained on {t}")
        check_templates(env, doc, {t: v for t, v in states.items() if v is not None})

        # the conversation: Ask -> the retained answer topic -> Last answer
        last = names["Last answer"]
        request = ask(env, broker, doc, "Once upon a time")
        check(request.get("id", "").startswith("ha-") and request.get("prompt") == "Once upon a time",
              f"Ask renders a request with a fresh id: {request}")
        check(request.get("reply_to") == last["state_topic"], "Ask replies to Last answer's topic")
        answer = broker.retained(last["state_topic"], f'"id":"{request["id"]}"', 60)
        if check(answer is not None, "no retained answer for the Ask request"):
            result = json.loads(answer)
            check(result.get("type") == "result", f"answer: {answer[:200]}")
            state = render(env, last["value_template"], answer)
            attributes = json.loads(render(env, last["json_attributes_template"], answer))
            check(state != "" and state == result["text"][:255].strip(),
                  f"Last answer state {state!r}")
            check(len(state) <= 255, "Last answer state fits Home Assistant's 255 characters")
            check(attributes.get("text") == result["text"] and attributes.get("id") == request["id"]
                  and attributes.get("finish_reason") in ("stop", "length", "stop_word"),
                  f"Last answer attributes {attributes}")
            print(f"{NAME}: Ask 'Once upon a time' -> Last answer {state[:60]!r}... "
                  f"({len(result['text'])} characters, attributes {sorted(attributes)})",
                  file=sys.stderr)

        # a second question: a new id, a new answer (never the first one replayed)
        time.sleep(0.01)
        second = ask(env, broker, doc, "The dog ran")
        check(second["id"] != request["id"], "each Ask has its own id")
        answer2 = broker.retained(last["state_topic"], f'"id":"{second["id"]}"', 60)
        check(answer2 is not None and json.loads(answer2).get("type") == "result",
              "the second question got its own answer")

        # an error on the answer topic shows as the Last answer state, not as a template error
        bad = json.dumps({"v": 1, "id": "ha-bad", "prompt": "x", "max_tokens": -1,
                          "reply_to": last["state_topic"]})
        broker.publish(doc["components"][next(k for k, c in cmps.items()
                                              if c["platform"] == "text")]["command_topic"], bad)
        err = broker.retained(last["state_topic"], '"id":"ha-bad"', 30)
        if check(err is not None, "no retained error on the answer topic"):
            state = render(env, last["value_template"], err)
            attributes = json.loads(render(env, last["json_attributes_template"], err))
            check(state.startswith("error: ") and "max_tokens" in state, f"error state {state!r}")
            check(attributes.get("error") and attributes.get("text") is None,
                  f"error attributes {attributes}")

        # metrics after requests: the sensors' templates still render, with numbers
        metrics_topic = names["Tokens per second"]["state_topic"]
        states[metrics_topic] = broker.retained(metrics_topic, '"ok":2')
        check(states[metrics_topic] is not None, "metrics after two requests")
        if states[metrics_topic] is not None:
            check_templates(env, doc, {metrics_topic: states[metrics_topic]}, False)

        # the examples in deploy/homeassistant/, as Home Assistant would run them
        check_examples(env, broker, doc)

        # availability: a clean shutdown leaves the retained "offline"
        node.send_signal(signal.SIGTERM)
        check(node.wait(30) == 0, "edgelmd exit status")
        check(broker.retained(doc["availability_topic"], "offline") ==
              doc.get("payload_not_available"), "offline after shutdown")

        # node ids Home Assistant would refuse in a discovery topic are refused up front
        for bad_id in ("pi.kitchen", "küche", "pi 4"):
            r = subprocess.run([edgelmd, "--check-config", "--model", model, "--node", bad_id],
                               capture_output=True, text=True)
            check(r.returncode == 1 and "Home Assistant" in r.stderr,
                  f"node id {bad_id!r}: exit {r.returncode}, {r.stderr.strip()[:200]}")
        r = subprocess.run([edgelmd, "--check-config", "--model", model, "--node", "pi_kitchen-4"],
                           capture_output=True, text=True)
        check(r.returncode == 0, f"node id pi_kitchen-4 accepted: {r.stderr.strip()[:200]}")
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
        broker.stop()
        if os.environ.get("EDGELM_KEEP_TEST_FILES") != "1":
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"{NAME}: files kept in {tmp}", file=sys.stderr)
    print(f"{NAME}: {checks} checks, {failures} failed", file=sys.stderr)
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
