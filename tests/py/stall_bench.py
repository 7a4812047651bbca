#!/usr/bin/env python3
"""Event-topic PUBACK and CONNACK latency before and during a stall: another
process holds SQLite's write lock for 10 s while 5,000 uplinks arrive.
For docs/benchmarks.md (run against two appliances to compare builds).

Usage: stall_bench.py MQTT_PORT DATA_DIR/mqrtc.sqlite
"""
import json
import subprocess
import sys
import time
import uuid


import faults
port, db = int(sys.argv[1]), sys.argv[2]
base_pub, base_conn = faults.measure(port, pubs=200, connects=30)
locker = subprocess.Popen([sys.executable, "-c",
 "import sqlite3,sys,time\nc=sqlite3.connect(sys.argv[1],isolation_level=None,timeout=30)\nc.execute('BEGIN EXCLUSIVE')\nprint('locked',flush=True)\ntime.sleep(10)\nc.execute('COMMIT')\n", db], stdout=subprocess.PIPE, text=True)
locker.stdout.readline()
t_lock = time.time()
flood = [faults.V5(port, f"GID_demo@@@flood{i}") for i in range(10)]
for i in range(500):
    for f in flood:
        env = {"v": 1, "id": f"m-{uuid.uuid4().hex}", "type": "sync", "req": f"f-{uuid.uuid4().hex[:16]}",
               "ts": int(time.time() * 1000), "ttl": 120_000, "body": {}}
        f.publish("rtc_up/call", json.dumps(env))
time.sleep(1)
t0 = time.time()
st_pub, st_conn = faults.measure(port, pubs=50, connects=10)
print(json.dumps({"measured_from_lock_s": t0 - t_lock, "took_s": time.time() - t0,
  "baseline": {"pub_p50": faults.pct(base_pub,.5), "pub_p99": faults.pct(base_pub,.99), "conn_p50": faults.pct(base_conn,.5), "conn_p99": faults.pct(base_conn,.99)},
  "stalled": {"pub_p50": faults.pct(st_pub,.5), "pub_p99": faults.pct(st_pub,.99), "conn_p50": faults.pct(st_conn,.5), "conn_p99": faults.pct(st_conn,.99)}}))
locker.wait()
