#!/usr/bin/env python3
"""Fault scenarios for tests/it/faults.rs, with paho-mqtt clients.

Usage: faults.py stall --port P --http-port H --db PATH [--stall-secs N]
       faults.py flood --port P --http-port H [--rate N] [--secs N]
       faults.py clock --port P --http-port H --shift-ms MS
       faults.py diskfull --port P --http-port H --fill FILE

stall: another process holds SQLite's write lock while devices keep
publishing on an event topic, connecting and sending requests.
flood: failed logins from 127.0.0.2 at --rate per second while good devices
connect from 127.0.0.1.
clock: the appliance's wall clock jumps by --shift-ms while a call rings
(its ring timeout must be 3 s).
diskfull: FILE (on the data dir's file system) is grown until the disk
is full while calls are made, then removed.
Each prints PASS lines and, last, one JSON line of figures; exit code 0 when
it held.
"""
import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

import paho.mqtt.client as mqtt

from rtcdev import Device

V2 = mqtt.CallbackAPIVersion.VERSION2
QUOTA_EXCEEDED = 0x97


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"PASS {what}", flush=True)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else 0.0


class V5:
    """An MQTT 5 client that records PUBACK reason codes and what arrives."""

    def __init__(self, port, client_id):
        self.acks = {}
        self.acked = threading.Condition()
        self.inbox = []
        self.c = mqtt.Client(callback_api_version=V2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.c.max_inflight_messages_set(100)
        ok = threading.Event()
        self.c.on_connect = lambda *a: ok.set()
        self.c.on_publish = self._on_publish
        self.c.on_message = lambda c, u, m: self.inbox.append(json.loads(m.payload))
        self.c.connect("127.0.0.1", port, keepalive=60)
        self.c.loop_start()
        if not ok.wait(10):
            raise RuntimeError(f"{client_id}: no CONNACK")

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        with self.acked:
            self.acks[mid] = reason_code.value if hasattr(reason_code, "value") else int(reason_code)
            self.acked.notify_all()

    def publish(self, topic, payload):
        return self.c.publish(topic, payload, qos=1).mid

    def wait_acks(self, mids, timeout=30):
        deadline = time.time() + timeout
        with self.acked:
            while not all(m in self.acks for m in mids) and time.time() < deadline:
                self.acked.wait(0.1)
        return [self.acks.get(m) for m in mids]

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def measure(port, pubs=200, connects=30):
    """PUBACK latency on an event topic and CONNACK latency, in ms."""
    p = V5(port, "GID_demo@@@probe-pub")
    pub_ms = []
    for i in range(pubs):
        t = time.perf_counter()
        info = p.c.publish("rtc_event/stall", f"e{i}", qos=1)
        info.wait_for_publish(30)
        pub_ms.append((time.perf_counter() - t) * 1000)
    p.close()
    conn_ms = []
    for i in range(connects):
        ok = threading.Event()
        c = mqtt.Client(callback_api_version=V2, client_id=f"GID_demo@@@probe-conn{i % 3}", protocol=mqtt.MQTTv5)
        c.on_connect = lambda *a: ok.set()
        t = time.perf_counter()
        c.connect("127.0.0.1", port, keepalive=60)
        c.loop_start()
        got = ok.wait(30)
        conn_ms.append((time.perf_counter() - t) * 1000 if got else 30_000.0)
        c.disconnect()
        c.loop_stop()
    return pub_ms, conn_ms


def request(dev, kind, body, req, within=60):
    """Sends `kind` with a fixed `req` until it gets a final answer, as the
    SDKs do (every 3 s, and at once after `unavailable`); returns (answer,
    how many `unavailable` came first)."""
    deadline = time.time() + within
    unavailable = 0
    while time.time() < deadline:
        dev.send(kind, body, req=req)
        try:
            a = dev.wait(lambda e: e.get("req") == req and e["type"] in ("result", "error"), 3, what=kind)
        except AssertionError:
            continue
        if a["type"] == "error" and a["body"]["code"] == "unavailable":
            unavailable += 1
            continue
        return a, unavailable
    raise AssertionError(f"{kind} {req}: no final answer within {within}s")


def stall(a):
    alice = Device(a.port, "GID_demo@@@alice", a.http_port)
    bob = Device(a.port, "GID_demo@@@bob", a.http_port)
    check(alice.request("sync")["type"] == "result", "the controller answers before the stall")
    base_pub, base_conn = measure(a.port)

    locker = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3,sys,time\n"
         "c=sqlite3.connect(sys.argv[1],isolation_level=None,timeout=30)\n"
         "c.execute('BEGIN EXCLUSIVE')\n"
         "print('locked',flush=True)\n"
         "time.sleep(float(sys.argv[2]))\n"
         "c.execute('COMMIT')\n",
         a.db, str(a.stall_secs)],
        stdout=subprocess.PIPE, text=True)
    check(locker.stdout.readline().strip() == "locked", "another process holds the database's write lock")
    t0 = time.time()
    # A request that changes state, sent during the stall.
    call_req = f"r-{uuid.uuid4().hex[:12]}"
    alice.send("call.start", {"to": "bob", "media": "audio"}, req=call_req)
    # Enough uplinks to fill the controller's queue.
    flood = [V5(a.port, f"GID_demo@@@flood{i}") for i in range(10)]
    sent = []
    for i in range(500):
        for f in flood:
            env = {"v": 1, "id": f"m-{uuid.uuid4().hex}", "type": "sync", "req": f"f-{uuid.uuid4().hex[:16]}",
                   "ts": int(time.time() * 1000), "ttl": 120_000, "body": {}}
            sent.append((f, f.publish("rtc_up/call", json.dumps(env)), env["req"]))
    codes = {}
    for f in flood:
        mids = [m for (g, m, _) in sent if g is f]
        for m, code in zip(mids, f.wait_acks(mids)):
            codes[(f, m)] = code
    stall_pub, stall_conn = measure(a.port)
    during = time.time() - t0
    check(during < a.stall_secs, f"measured during the stall ({during:.1f}s of {a.stall_secs}s)")
    check(all(c is not None for c in codes.values()), "every uplink got its PUBACK during the stall")
    accepted = [(f, r) for (f, m, r) in sent if codes[(f, m)] == 0]
    busy = [r for (f, m, r) in sent if codes[(f, m)] == QUOTA_EXCEEDED]
    check(len(accepted) + len(busy) == len(sent), "each uplink was accepted or refused with 0x97 (quota exceeded)")
    check(len(busy) > 0, f"a full controller queue refuses with 0x97 ({len(busy)} of {len(sent)})")
    locker.wait(60)

    # Every accepted uplink is answered once the database is free again.
    deadline = time.time() + 60
    want = {(id(f), r) for (f, r) in accepted}
    while time.time() < deadline:
        got = {(id(f), e.get("req")) for f in flood for e in list(f.inbox) if e.get("req")}
        if want <= got:
            break
        time.sleep(0.2)
    got = {(id(f), e.get("req")) for f in flood for e in list(f.inbox) if e.get("req")}
    missing = want - got
    check(not missing, f"all {len(accepted)} accepted uplinks were answered ({len(missing)} missing)")
    kinds = {}
    for f in flood:
        for e in f.inbox:
            code = e["body"].get("code") if e["type"] == "error" else e["type"]
            kinds[code] = kinds.get(code, 0) + 1
    check(set(kinds) <= {"result", "unavailable"}, f"answers are results or `unavailable`: {kinds}")

    answer, unavailable = request(alice, "call.start", {"to": "bob", "media": "audio"}, call_req)
    check(answer["type"] == "result", f"the call started during the stall is answered ({unavailable} x unavailable first)")
    call_id = answer["body"]["call"]["call_id"]
    bob.wait(lambda e: e["type"] == "call.invite" and e["body"]["call"]["call_id"] == call_id, 30, what="invite")
    check(True, "the callee rings")
    acc = bob.request("call.accept", {"call_id": call_id}, timeout=30)
    check(acc["type"] == "result", "the callee accepts")
    alice.request("call.leave", {"call_id": call_id}, timeout=30)
    e = bob.wait_type("call.ended", timeout=30, call_id=call_id)
    check(e["body"]["reason"] == "hangup", "the call ends normally")
    s = alice.request("sync", timeout=30)
    check(s["type"] == "result" and not s["body"]["calls"], "after the call nothing is left live")
    for f in flood:
        f.close()
    alice.close()
    bob.close()
    fig = {
        "baseline": {"pub_p50": pct(base_pub, .5), "pub_p99": pct(base_pub, .99),
                     "conn_p50": pct(base_conn, .5), "conn_p99": pct(base_conn, .99)},
        "stalled": {"pub_p50": pct(stall_pub, .5), "pub_p99": pct(stall_pub, .99),
                    "conn_p50": pct(stall_conn, .5), "conn_p99": pct(stall_conn, .99)},
        "uplinks": len(sent), "accepted": len(accepted), "refused_0x97": len(busy), "answers": kinds,
        "call_start_unavailable": unavailable,
    }
    print(json.dumps(fig), flush=True)


def connect_packet(client_id, username, password):
    """An MQTT 3.1.1 CONNECT with a username and password."""
    def s(x):
        b = x.encode()
        return len(b).to_bytes(2, "big") + b
    body = s("MQTT") + bytes([4, 0xC2]) + (60).to_bytes(2, "big") + s(client_id) + s(username) + s(password)
    n, rl = len(body), b""
    while True:
        d, n = n % 128, n // 128
        rl += bytes([d | (0x80 if n else 0)])
        if not n:
            break
    return bytes([0x10]) + rl + body


async def attacker(port, rate, secs, codes):
    """Failed logins from 127.0.0.2, `rate` a second for `secs` seconds."""
    packet = connect_packet("GID_demo@@@guess", "Signature|AKNONE|mqrtc-demo", "wrong")

    async def one():
        try:
            r, w = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0)), 5)
            w.write(packet)
            ack = await asyncio.wait_for(r.readexactly(4), 10)
            codes[ack[3]] = codes.get(ack[3], 0) + 1
            w.close()
        except Exception as e:  # counted: an attempt that got no CONNACK
            codes[type(e).__name__] = codes.get(type(e).__name__, 0) + 1

    tasks, start = [], time.perf_counter()
    for i in range(int(rate * secs)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    return time.perf_counter() - start


def good_connects(port, n, stop=None):
    out = []
    for i in range(n):
        if stop is not None and stop.is_set():
            break
        ok = threading.Event()
        c = mqtt.Client(callback_api_version=V2, client_id=f"GID_demo@@@good{i % 5}", protocol=mqtt.MQTTv5)
        c.on_connect = lambda cl, u, f, rc, p: ok.set() if not rc.is_failure else None
        t = time.perf_counter()
        c.connect("127.0.0.1", port, keepalive=60)
        c.loop_start()
        got = ok.wait(30)
        out.append((time.perf_counter() - t) * 1000 if got else 30_000.0)
        c.disconnect()
        c.loop_stop()
        time.sleep(0.02)
    return out


def flood(a):
    base = good_connects(a.port, 100)
    codes = {}
    during = []
    stop = threading.Event()
    t = threading.Thread(target=lambda: during.extend(good_connects(a.port, 100_000, stop)))
    t.start()
    took = asyncio.run(attacker(a.port, a.rate, a.secs, codes))
    stop.set()
    t.join()
    attempts = sum(codes.values())
    check(len(during) >= 20, f"{len(during)} good connects during the flood")
    check(max(during) < 30_000, "every good connect got its CONNACK")
    check(codes.get(4, 0) == attempts, f"every failed login got CONNACK 4: {codes}")
    fig = {"attempts": attempts, "rate": attempts / took, "codes": {str(k): v for k, v in codes.items()},
           "baseline": {"p50": pct(base, .5), "p99": pct(base, .99), "n": len(base)},
           "flood": {"p50": pct(during, .5), "p99": pct(during, .99), "max": max(during), "n": len(during)}}
    print(json.dumps(fig), flush=True)


def shift_clock(a, ms):
    req = urllib.request.Request(f"http://127.0.0.1:{a.http_port}/debug/faults/clock-shift",
                                 data=json.dumps({"ms": ms}).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        check(r.status == 202, f"the wall clock jumps by {ms} ms")


def clock(a):
    alice = Device(a.port, "GID_demo@@@alice", a.http_port)
    bob = Device(a.port, "GID_demo@@@bob", a.http_port)
    r = alice.request("call.start", {"to": "bob", "media": "audio"})
    t0 = time.monotonic()
    check(r["type"] == "result", "a call rings (ring timeout 3 s)")
    call_id = r["body"]["call"]["call_id"]
    bob.wait_type("call.invite", timeout=10)
    shift_clock(a, a.shift_ms)
    e = alice.wait_type("call.ended", timeout=20, call_id=call_id)
    took = time.monotonic() - t0
    check(e["body"]["reason"] == "no_answer", f"the ring timeout ends it: {e['body']['reason']}")
    check(2.5 <= took <= 10, f"on time: after {took:.1f} s, not at once and not an hour off")
    shift_clock(a, -a.shift_ms)
    r = alice.request("call.start", {"to": "bob", "media": "audio"})
    check(r["type"] == "result", "with the clock set right again, a call starts")
    call_id = r["body"]["call"]["call_id"]
    acc = bob.request("call.accept", {"call_id": call_id})
    check(acc["type"] == "result", "and is answered")
    alice.request("call.leave", {"call_id": call_id})
    bob.wait_type("call.ended", timeout=10, call_id=call_id)
    check(True, "and ends normally")
    print(json.dumps({"ring_timeout_fired_after_s": took, "shift_ms": a.shift_ms}), flush=True)


def diskfull(a):
    alice = Device(a.port, "GID_demo@@@alice", a.http_port)
    bob = Device(a.port, "GID_demo@@@bob", a.http_port)
    check(alice.request("sync")["type"] == "result", "the controller answers before the disk fills")
    filled = 0
    # Unbuffered: nothing is left to flush (and fail) on close.
    with open(a.fill, "wb", buffering=0) as f:
        chunk = b"\0" * 65536
        try:
            while True:
                filled += f.write(chunk)
        except OSError:
            pass
    check(filled > 0, f"the disk is full ({filled // 1024} KiB written)")
    req = f"r-{uuid.uuid4().hex[:12]}"
    seen = 0
    for _ in range(3):
        alice.send("call.start", {"to": "bob", "media": "audio"}, req=req)
        ans = alice.wait(lambda e: e.get("req") == req and e["type"] in ("result", "error"), 15, what="answer")
        check(ans["type"] == "error" and ans["body"]["code"] == "unavailable",
              f"a request that cannot be stored is answered `unavailable`: {ans['body']}")
        seen += 1
    os.remove(a.fill)
    check(True, "space is freed")
    answer, unavailable = request(alice, "call.start", {"to": "bob", "media": "audio"}, req, within=60)
    check(answer["type"] == "result", f"the same request succeeds once there is space ({unavailable} more unavailable)")
    call_id = answer["body"]["call"]["call_id"]
    bob.wait(lambda e: e["type"] == "call.invite" and e["body"]["call"]["call_id"] == call_id, 30, what="invite")
    acc = bob.request("call.accept", {"call_id": call_id}, timeout=30)
    check(acc["type"] == "result", "the callee accepts")
    alice.request("call.leave", {"call_id": call_id}, timeout=30)
    bob.wait_type("call.ended", timeout=30, call_id=call_id)
    check(True, "the call ends normally")
    s = bob.request("sync", timeout=30)
    check(s["type"] == "result" and not s["body"]["calls"], "nothing is left live")
    print(json.dumps({"filled_kib": filled // 1024, "unavailable_answers": seen + unavailable}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=["stall", "flood", "clock", "diskfull"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--http-port", type=int, required=True)
    ap.add_argument("--db")
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--secs", type=float, default=5)
    ap.add_argument("--shift-ms", type=int, default=3_600_000)
    ap.add_argument("--fill")
    ap.add_argument("--stall-secs", type=float, default=10.0)
    a = ap.parse_args()
    {"stall": stall, "flood": flood, "clock": clock, "diskfull": diskfull}[a.scenario](a)


if __name__ == "__main__":
    main()
