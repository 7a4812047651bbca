"""A minimal device for mqrtc's signaling protocol, written from
docs/protocol.md with paho-mqtt only (not mqrtc's SDK): it sends requests
on the uplink topic, reads its P2P inbox, and joins the mock RTC service
over HTTP with the join parameters it is given."""
import json
import queue
import threading
import time
import urllib.error
import urllib.request
import uuid

import paho.mqtt.client as mqtt


# On a standard broker (mqrtc controller behind mosquitto or EMQX) a device
# names itself as the uplink topic's last level, subscribes to its inbox and
# syncs on connect (the controller learns it is online from that request);
# the appliance needs none of it. call_scenarios.py --standard-broker sets it.
STANDARD = False


class Device:
    def __init__(self, port, client_id, http_port=None, host="127.0.0.1", uplink="rtc_up/call", clean=False):
        self.client_id = client_id
        self.uplink = f"{uplink}/{client_id}" if STANDARD else uplink
        self.http_port = http_port
        self.host = host
        self.inbox = queue.Queue()
        self.seen = set()
        self.c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                             client_id=client_id, protocol=mqtt.MQTTv311, clean_session=clean)
        connected = threading.Event()
        subscribed = threading.Event()

        def on_connect(client, *a):
            if STANDARD:
                client.subscribe(f"rtc_down/p2p/{client_id}", qos=1)
            else:
                connected.set()
        self.c.on_connect = on_connect
        self.c.on_subscribe = lambda *a: (subscribed.set(), connected.set())
        self.c.on_message = self._on_message
        self.c.connect(host, port, keepalive=30)
        self.c.loop_start()
        if not connected.wait(10):
            raise RuntimeError(f"{client_id}: no CONNACK")
        if STANDARD:
            self.request("sync")

    def _on_message(self, client, userdata, msg):
        env = json.loads(msg.payload)
        if env["id"] in self.seen:  # duplicates are dropped by message id
            return
        self.seen.add(env["id"])
        self.inbox.put(env)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()

    def send(self, kind, body=None, req=None, ts=None, ttl=30000, raw=None, extra=None):
        """Publishes a request (or `raw` bytes); returns its request id."""
        req = req or f"r-{uuid.uuid4().hex[:12]}"
        if raw is None:
            env = {"v": 1, "id": f"m-{uuid.uuid4().hex}", "type": kind, "req": req,
                   "ts": ts if ts is not None else int(time.time() * 1000), "ttl": ttl, "body": body or {}}
            env.update(extra or {})
            raw = json.dumps(env).encode()
        self.c.publish(self.uplink, raw, qos=1).wait_for_publish(10)
        return req

    def wait(self, pred, timeout=10, what="message"):
        """Waits for a message satisfying pred; messages skipped stay unread."""
        deadline = time.time() + timeout
        kept = []
        try:
            while time.time() < deadline:
                try:
                    env = self.inbox.get(timeout=max(0.01, deadline - time.time()))
                except queue.Empty:
                    break
                if pred(env):
                    return env
                kept.append(env)
        finally:
            for e in kept:
                self.inbox.put(e)
        raise AssertionError(f"{self.client_id}: no {what} within {timeout}s; unread: {[e['type'] for e in kept]}")

    def wait_type(self, kind, timeout=10, **body):
        return self.wait(lambda e: e["type"] == kind and all(e["body"].get(k) == v for k, v in body.items()),
                         timeout, what=kind)

    def request(self, kind, body=None, timeout=10, **kw):
        """Sends a request and returns its answer (result or error envelope)."""
        req = self.send(kind, body, **kw)
        return self.wait(lambda e: e.get("req") == req and e["type"] in ("result", "error"), timeout,
                         what=f"answer to {kind}")

    def drain(self):
        out = []
        while True:
            try:
                out.append(self.inbox.get_nowait())
            except queue.Empty:
                return out

    def rtc(self, path, body):
        req = urllib.request.Request(f"http://{self.host}:{self.http_port}/rtc/v1/{path}",
                                     data=json.dumps(body).encode(), headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def join(self, join_params, single=False):
        """Joins the RTC channel with the given parameters (ARTC fields or the single-parameter token)."""
        if single:
            return self.rtc("join", {"token": join_params["token_b64"]})
        fields = {k: join_params[k] for k in ("appid", "channel", "userid", "nonce", "timestamp", "token")}
        return self.rtc("join", fields)
