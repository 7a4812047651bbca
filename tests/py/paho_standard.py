#!/usr/bin/env python3
"""mqrtc --standard-mqtt against plain MQTT expectations, with paho-mqtt.

Each check prints a line; the last line is a JSON summary. Exit code 0
only if every check passed.
"""
import argparse
import json
import socket
import struct
import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt

RESULTS = {}


class Client:
    """A connected paho client that records what it receives."""

    def __init__(self, a, client_id=None, keepalive=30, version=mqtt.MQTTv311):
        self.msgs = []
        self.cond = threading.Condition()
        self.c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                             client_id=client_id or f"std-{uuid.uuid4().hex[:8]}", protocol=version)
        self.c.on_message = self._on_message
        connected = threading.Event()
        self.rc = None

        def on_connect(client, userdata, flags, rc, props):
            self.rc = rc.value
            connected.set()

        self.c.on_connect = on_connect
        self.c.connect(a.host, a.port, keepalive=keepalive)
        self.c.loop_start()
        if not connected.wait(10):
            raise RuntimeError("no CONNACK")

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.msgs.append((msg.topic, msg.payload.decode(), msg.retain, msg.qos))
            self.cond.notify_all()

    def sub(self, topic, qos=1):
        done = threading.Event()
        self.c.on_subscribe = lambda *args: done.set()
        self.c.subscribe(topic, qos)
        if not done.wait(10):
            raise RuntimeError("no SUBACK")

    def pub(self, topic, payload, qos=1, retain=False):
        self.c.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(10)

    def wait_count(self, n, timeout=5):
        end = time.time() + timeout
        with self.cond:
            while len(self.msgs) < n and time.time() < end:
                self.cond.wait(end - time.time())
            return list(self.msgs)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def check(name, ok, detail=""):
    RESULTS[name] = bool(ok)
    print(f"{'PASS' if ok else 'FAIL'} {name} {detail}")


def raw_connect_with_will(a, client_id, will_topic, will_payload):
    """Opens a raw MQTT 3.1.1 connection with a will, to be closed abruptly."""
    def s(x):
        b = x.encode()
        return struct.pack("!H", len(b)) + b
    var = s("MQTT") + bytes([4, 0x02 | 0x04 | 0x08]) + struct.pack("!H", 60)  # clean, will, will QoS 1
    payload = s(client_id) + s(will_topic) + s(will_payload)
    body = var + payload
    sock = socket.create_connection((a.host, a.port), timeout=10)
    sock.sendall(bytes([0x10, len(body)]) + body)
    ack = sock.recv(4)
    return sock, ack


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    a = p.parse_args()

    # Any client id, anonymous, keepalive 0.
    c = Client(a, client_id="plain-device-1", keepalive=0)
    check("any_client_id_and_keepalive_0", c.rc == 0)
    c.close()

    # Wildcards and retained messages.
    pub = Client(a)
    pub.pub("home/kitchen/temp", "21", retain=True)
    s1 = Client(a)
    s1.sub("home/+/temp")
    got = s1.wait_count(1)
    check("retained_delivered_to_new_subscriber", got[:1] == [("home/kitchen/temp", "21", True, 1)], got)
    pub.pub("home/kitchen/temp", "22")
    got = s1.wait_count(2)
    check("live_message_not_flagged_retained", len(got) == 2 and got[1][1:3] == ("22", False), got)
    pub.pub("home/kitchen/temp", "", retain=True)  # clears the retained message
    s2 = Client(a)
    s2.sub("home/#")
    got = s2.wait_count(1, timeout=1.5)
    check("empty_retained_clears", got == [], got)

    # $-topics are not matched by a leading wildcard.
    s3 = Client(a)
    s3.sub("#")
    s4 = Client(a)
    s4.sub("$app/#")
    pub.pub("$app/status", "up")
    pub.pub("plain/after", "x")
    got3 = s3.wait_count(10, timeout=1.5)
    got4 = s4.wait_count(1)
    check("dollar_topic_not_matched_by_hash", all(not t.startswith("$") for t, *_ in got3), got3)
    check("dollar_topic_matched_explicitly", got4[:1] == [("$app/status", "up", False, 1)], got4)

    # Shared subscriptions split the messages, none twice.
    w1, w2 = Client(a), Client(a)
    w1.sub("$share/workers/jobs/#")
    w2.sub("$share/workers/jobs/#")
    for i in range(10):
        pub.pub(f"jobs/{i}", str(i))
    deadline = time.time() + 5
    while len(w1.msgs) + len(w2.msgs) < 10 and time.time() < deadline:
        w1.wait_count(len(w1.msgs) + 1, timeout=0.2)
    all_msgs = sorted(int(m[1]) for m in w1.msgs + w2.msgs)
    check("shared_subscription_each_message_once", all_msgs == list(range(10)),
          f"w1={len(w1.msgs)} w2={len(w2.msgs)}")
    check("shared_subscription_spreads_load", len(w1.msgs) > 0 and len(w2.msgs) > 0)

    # QoS 2 end to end.
    q2 = Client(a)
    q2.sub("q2/t", qos=2)
    pub.pub("q2/t", "exactly-once", qos=2)
    got = q2.wait_count(1)
    check("qos2_delivered_once", got == [("q2/t", "exactly-once", False, 2)], got)

    # A will is published when a client vanishes without DISCONNECT.
    ws = Client(a)
    ws.sub("wills/#")
    sock, ack = raw_connect_with_will(a, "will-client", "wills/will-client", "gone")
    check("will_connect_accepted", ack[:2] == b"\x20\x02" and ack[3] == 0, ack)
    sock.close()
    got = ws.wait_count(1)
    check("will_published_on_abrupt_close", got[:1] == [("wills/will-client", "gone", False, 1)], got)

    # MQTT 5: session present and message expiry.
    v5 = Client(a, version=mqtt.MQTTv5)
    check("v5_connect", v5.rc == 0)

    for cl in (pub, s1, s2, s3, s4, w1, w2, q2, ws, v5):
        cl.close()
    ok = all(RESULTS.values())
    print(json.dumps({"ok": ok, "results": RESULTS}))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
