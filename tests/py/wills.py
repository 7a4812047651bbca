#!/usr/bin/env python3
"""Wills with a delay (MQTT 5), for tests/it/conventions.rs.

  wills.py owner --port P --delay D [--vanish]
      connects GID_demo@@@dies with a will on the victim's event inbox;
      prints "ready"; with --vanish drops the socket without DISCONNECT and
      exits, otherwise stays connected until killed.
  wills.py victim --port P --wait S
      connects GID_web@@@victim (clean session off), prints "ready", and
      exits 0 once the will arrives within S seconds (1 otherwise).
"""
import argparse
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

V2 = mqtt.CallbackAPIVersion.VERSION2
VICTIM = "GID_web@@@victim"


def owner(a):
    c = mqtt.Client(callback_api_version=V2, client_id="GID_demo@@@dies", protocol=mqtt.MQTTv5)
    will = Properties(PacketTypes.WILLMESSAGE)
    will.WillDelayInterval = a.delay
    c.will_set(f"rtc_event/p2p/{VICTIM}", "owner-gone", qos=1, properties=will)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 300
    ok = threading.Event()
    c.on_connect = lambda *x: ok.set()
    c.connect("127.0.0.1", a.port, keepalive=60, clean_start=False, properties=props)
    c.loop_start()
    if not ok.wait(10):
        sys.exit("no CONNACK")
    print("ready", flush=True)
    if a.vanish:
        c.loop_stop()
        c.socket().close()
        return
    while True:
        time.sleep(1)


def victim(a):
    got = threading.Event()
    ok = threading.Event()
    c = mqtt.Client(callback_api_version=V2, client_id=VICTIM, protocol=mqtt.MQTTv311, clean_session=False)
    c.on_connect = lambda *x: ok.set()
    c.on_message = lambda cl, u, m: got.set() if m.payload == b"owner-gone" else None
    c.connect("127.0.0.1", a.port, keepalive=60)
    c.loop_start()
    if not ok.wait(10):
        sys.exit("no CONNACK")
    print("ready", flush=True)
    if not got.wait(a.wait):
        sys.exit(f"no will within {a.wait}s")
    print("will received", flush=True)
    c.disconnect()
    c.loop_stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=["owner", "victim"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--delay", type=int, default=0)
    ap.add_argument("--vanish", action="store_true")
    ap.add_argument("--wait", type=float, default=10)
    a = ap.parse_args()
    owner(a) if a.role == "owner" else victim(a)


if __name__ == "__main__":
    main()
