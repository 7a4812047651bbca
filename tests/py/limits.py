#!/usr/bin/env python3
"""The [limits] of an appliance started with max_connections_per_address = 2,
max_publish_rate = 5, max_subscriptions = 3 and max_retained_messages = 2,
reached from a non-loopback address of this machine (loopback is exempt).

Usage: limits.py --host LAN_ADDRESS --port P
"""
import argparse
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

V2 = mqtt.CallbackAPIVersion.VERSION2


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"PASS {what}", flush=True)


def connect(a, client_id, protocol=mqtt.MQTTv5):
    """Returns (client, CONNACK code)."""
    code = []
    done = threading.Event()
    c = mqtt.Client(callback_api_version=V2, client_id=client_id, protocol=protocol)

    def on_connect(cl, u, flags, rc, props=None):
        code.append(rc.value if hasattr(rc, "value") else int(rc))
        done.set()

    c.on_connect = on_connect
    c.on_connect_fail = lambda *x: done.set()
    c.connect(a.host, a.port, keepalive=60)
    c.loop_start()
    done.wait(10)
    return c, (code[0] if code else None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    a = ap.parse_args()

    c1, r1 = connect(a, "GID_demo@@@lim1")
    c2, r2 = connect(a, "GID_demo@@@lim2")
    check(r1 == 0 and r2 == 0, "two connections from one address")
    c3, r3 = connect(a, "GID_demo@@@lim3")
    check(r3 == 0x97, f"a third from that address: CONNACK 0x97 quota exceeded (got {r3})")
    c3.loop_stop()
    c4, r4 = connect(a, "GID_demo@@@lim4", mqtt.MQTTv311)
    # paho reports 3.1.1 code 3 as the MQTT 5 equivalent, 136.
    check(r4 in (3, 136), f"MQTT 3.1.1: CONNACK 3 server unavailable (got {r4})")
    c4.loop_stop()
    c2.disconnect()
    c2.loop_stop()
    time.sleep(0.3)
    c5, r5 = connect(a, "GID_demo@@@lim5")
    check(r5 == 0, f"after one leaves, another gets in (got {r5})")

    # Publish rate: 5 a second, bursts of 10.
    codes = {}
    lock = threading.Condition()

    def on_publish(cl, u, mid, rc, props):
        with lock:
            codes[mid] = rc.value
            lock.notify_all()

    c1.on_publish = on_publish
    mids = [c1.publish("rtc_event/rate", f"m{i}", qos=1).mid for i in range(30)]
    with lock:
        lock.wait_for(lambda: all(m in codes for m in mids), 10)
    ok = sum(1 for m in mids if codes.get(m) == 0)
    refused = sum(1 for m in mids if codes.get(m) == 0x97)
    check(ok + refused == 30 and 10 <= ok < 30, f"30 at once: {ok} accepted, {refused} refused with 0x97")

    # Subscriptions: three per client.
    granted = []
    subacked = threading.Event()

    def on_subscribe(cl, u, mid, rcs, props):
        granted.append(rcs[0].value if hasattr(rcs[0], "value") else int(rcs[0]))
        subacked.set()

    c5.on_subscribe = on_subscribe
    for i in range(4):
        subacked.clear()
        c5.subscribe(f"rtc_event/s{i}", qos=1)
        subacked.wait(10)
    check(granted[:3] == [1, 1, 1] and granted[3] >= 0x80, f"a fourth subscription is refused: {granted}")

    # Retained messages: two topics in all.
    for i in range(3):
        c5.publish(f"rtc_event/keep{i}", f"r{i}", qos=1, retain=True).wait_for_publish(10)
    got = []
    c1.on_message = lambda cl, u, m: got.append(m.topic)
    c1.subscribe("rtc_event/+", qos=1)
    time.sleep(1.0)
    kept = sorted(t for t in got if t.startswith("rtc_event/keep"))
    check(kept == ["rtc_event/keep0", "rtc_event/keep1"], f"two retained, the third not: {kept}")
    for c in (c1, c5):
        c.disconnect()
        c.loop_stop()


if __name__ == "__main__":
    main()
