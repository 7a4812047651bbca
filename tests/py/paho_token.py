#!/usr/bin/env python3
"""Token mode with paho-mqtt (MQTT 5): connect with typed tokens, watch the
broker's $SYS notices, optionally upload a fresh token, and report how the
connection ended.

  --expect expire   the token runs out during the test: the client must get
                    $SYS/tokenExpireNotice, then $SYS/tokenInvalidNotice and a
                    DISCONNECT with reason 0x87.
  --expect refresh  a second token is sent to $SYS/uploadToken before the
                    first expires: the connection must outlive the first token
                    and still publish.
  --expect no-write the token is R only: a publish gets PUBACK 0x87.

Prints one JSON object; exit code 0 when the expectation held.
"""
import argparse
import json
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--key-id", required=True)
    p.add_argument("--instance", default="mqrtc-demo")
    p.add_argument("--client-id", default="GID_demo@@@py-token")
    p.add_argument("--password", required=True, help="e.g. RW|<token>")
    p.add_argument("--refresh-token", help="token to upload (type RW)")
    p.add_argument("--expect", required=True, choices=["expire", "refresh", "no-write"])
    p.add_argument("--wait", type=float, default=15)
    p.add_argument("--publish-topic", default="rtc_event/token-test")
    a = p.parse_args()

    notices, disconnects, acks = [], [], {}
    done = threading.Event()
    connected = threading.Event()
    result = {}

    c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                    client_id=a.client_id, protocol=mqtt.MQTTv5)
    c.username_pw_set(f"Token|{a.key_id}|{a.instance}", a.password)

    def on_connect(client, userdata, flags, rc, props):
        result["connack"] = rc.value
        connected.set()

    def on_message(client, userdata, msg):
        notices.append({"topic": msg.topic, "body": json.loads(msg.payload)})

    def on_disconnect(client, userdata, flags, rc, props):
        disconnects.append({"rc": rc.value, "reason": getattr(props, "ReasonString", None) if props else None})
        done.set()

    def on_publish(client, userdata, mid, rc, props):
        acks[mid] = rc.value

    c.on_connect, c.on_message, c.on_disconnect, c.on_publish = on_connect, on_message, on_disconnect, on_publish
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    c.connect(a.host, a.port, keepalive=30, clean_start=True, properties=props)
    c.loop_start()
    if not connected.wait(10) or result.get("connack") != 0:
        print(json.dumps({"ok": False, "stage": "connect", **result}))
        sys.exit(1)

    def publish(payload):
        info = c.publish(a.publish_topic, payload, qos=1)
        deadline = time.time() + 5
        while info.mid not in acks and time.time() < deadline:
            time.sleep(0.02)
        return acks.get(info.mid)

    ok = False
    if a.expect == "no-write":
        rc = publish(b"should-be-refused")
        result["puback"] = rc
        ok = rc == 135
    elif a.expect == "refresh":
        body = json.dumps({"token": a.refresh_token, "type": "RW"}).encode()
        info = c.publish("$SYS/uploadToken", body, qos=1)
        deadline = time.time() + 5
        while info.mid not in acks and time.time() < deadline:
            time.sleep(0.02)
        result["upload_puback"] = acks.get(info.mid)
        # Outlive the first token, then prove the connection still works.
        done.wait(a.wait)
        rc = publish(b"after-refresh")
        result["puback_after"] = rc
        ok = result["upload_puback"] == 0 and not disconnects and rc == 0
    else:
        done.wait(a.wait)
        topics = [n["topic"] for n in notices]
        ok = ("$SYS/tokenExpireNotice" in topics and "$SYS/tokenInvalidNotice" in topics
              and disconnects and disconnects[0]["rc"] == 135)
    c.loop_stop()
    out = {"ok": bool(ok), "notices": notices, "disconnects": disconnects, **result}
    print(json.dumps(out))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
