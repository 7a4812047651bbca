#!/usr/bin/env python3
"""P2P through mqrtc with Python paho-mqtt, a client nobody here wrote.

The receiver connects once with a persistent session and goes away; the
sender publishes a QoS 1 P2P message to it; the receiver comes back and
must get the message on its own inbox topic with no subscription.

The Signature (and DeviceCredential) password is computed here from the
documented formula, Base64(HMAC-SHA1(Secret, ClientId)), with hmac/hashlib
only. A DeviceCredential is bound to one client id, so with --mode
DeviceCredential use --connect-only (the sender connects and reports).

Prints one JSON object; exit code 0 when the message arrived.
"""
import argparse
import base64
import hashlib
import hmac
import json
import ssl
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes


def signature(secret, client_id):
    mac = hmac.new(secret.encode(), client_id.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()


def make_client(a, client_id, password_override=None):
    proto = mqtt.MQTTv5 if a.version == 5 else mqtt.MQTTv311
    kwargs = dict(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                  client_id=client_id, protocol=proto, transport=a.transport)
    if a.version != 5:
        kwargs["clean_session"] = False
    c = mqtt.Client(**kwargs)
    if a.transport == "websockets":
        c.ws_set_options(path="/mqtt")
    if a.ca:
        c.tls_set(ca_certs=a.ca, cert_reqs=ssl.CERT_REQUIRED)
    if a.key_id:
        c.username_pw_set(f"{a.mode}|{a.key_id}|{a.instance}",
                          password_override if password_override is not None else signature(a.secret, client_id))
    return c


def connect(a, c, timeout=10):
    done = threading.Event()
    result = {}

    def on_connect(client, userdata, flags, reason_code, properties):
        result["rc"] = reason_code.value if hasattr(reason_code, "value") else int(reason_code)
        result["session_present"] = bool(flags.session_present)
        done.set()

    c.on_connect = on_connect
    if a.version == 5:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        c.connect(a.host, a.port, keepalive=30, clean_start=False, properties=props)
    else:
        c.connect(a.host, a.port, keepalive=30)
    c.loop_start()
    if not done.wait(timeout):
        raise SystemExit(json.dumps({"ok": False, "error": "no CONNACK"}))
    return result


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="localhost")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--transport", default="tcp", choices=["tcp", "websockets"])
    p.add_argument("--version", type=int, default=4, choices=[4, 5])
    p.add_argument("--ca")
    p.add_argument("--key-id")
    p.add_argument("--secret")
    p.add_argument("--instance", default="mqrtc-demo")
    p.add_argument("--mode", default="Signature", choices=["Signature", "DeviceCredential"])
    p.add_argument("--sender", default="GID_demo@@@py-alice")
    p.add_argument("--receiver", default="GID_web@@@py-bob")
    p.add_argument("--bad-password", action="store_true",
                   help="only try to connect with a wrong password and report the CONNACK code")
    p.add_argument("--connect-only", action="store_true",
                   help="only connect as --sender and report the CONNACK code")
    a = p.parse_args()

    if a.bad_password or a.connect_only:
        c = make_client(a, a.sender, password_override="d3Jvbmc=" if a.bad_password else None)
        r = connect(a, c)
        c.loop_stop()
        ok = (r["rc"] != 0) if a.bad_password else (r["rc"] == 0)
        print(json.dumps({"ok": ok, "rc": r["rc"]}))
        sys.exit(0 if ok else 1)

    topic = f"rtc_event/p2p/{a.receiver}"
    # 1. The receiver creates its persistent session, then leaves.
    rx = make_client(a, a.receiver)
    r = connect(a, rx)
    if r["rc"] != 0:
        print(json.dumps({"ok": False, "stage": "receiver connect", "rc": r["rc"]}))
        sys.exit(1)
    rx.disconnect()
    rx.loop_stop()

    # 2. The sender publishes QoS 1 P2P while the receiver is offline.
    tx = make_client(a, a.sender)
    r = connect(a, tx)
    if r["rc"] != 0:
        print(json.dumps({"ok": False, "stage": "sender connect", "rc": r["rc"]}))
        sys.exit(1)
    info = tx.publish(topic, b"offer-from-python", qos=1)
    info.wait_for_publish(10)
    tx.disconnect()
    tx.loop_stop()

    # 3. The receiver returns, subscribes to nothing, and gets the message.
    got = threading.Event()
    received = {}
    rx = make_client(a, a.receiver)

    def on_message(client, userdata, msg):
        received["topic"] = msg.topic
        received["payload"] = msg.payload.decode()
        got.set()

    rx.on_message = on_message
    r = connect(a, rx)
    ok = got.wait(10)
    rx.disconnect()
    rx.loop_stop()
    out = {"ok": ok and received.get("topic") == topic, "session_present": r["session_present"], **received}
    print(json.dumps(out))
    sys.exit(0 if out["ok"] else 1)


if __name__ == "__main__":
    main()
