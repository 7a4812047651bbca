#!/usr/bin/env python3
"""End-to-end call scenarios through the real broker and controller, with
paho-mqtt devices (rtcdev.py) and the mock RTC service over HTTP.

Usage: call_scenarios.py <scenario> --port P --http-port H [--standard-broker]
Prints PASS lines; exit code 0 when the scenario held.
"""
import argparse
import json
import sys
import time

import rtcdev
from rtcdev import Device

ALICE, BOB_PHONE, BOB_WEB, CAROL, DAVE = (
    "GID_demo@@@alice", "GID_demo@@@bob", "GID_web@@@bob", "GID_demo@@@carol", "GID_demo@@@dave")


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"PASS {what}", flush=True)


def devices(a, *ids):
    return [Device(a.port, i, a.http_port) for i in ids]


def start_call(alice, to, **body):
    r = alice.request("call.start", {"to": to, **body})
    check(r["type"] == "result", f"call.start answered: {r['body']}")
    return r["body"]["call"]["call_id"], r["body"]["join"]


def seed(a):
    """The seed's flow: A asks, the controller registers the channel, A gets
    join parameters, B gets the invite on every device, B accepts and joins."""
    alice, phone, web = devices(a, ALICE, BOB_PHONE, BOB_WEB)
    call_id, join = start_call(alice, "bob", media="video")
    check(join["channel"].startswith("ch") and join["token"] and join["gslb"], "A got join parameters with GSLB")
    status, body = alice.join(join)
    check(status == 200 and "alice" in body["members"], "A joins the RTC channel with its token")
    for d in (phone, web):
        inv = d.wait_type("call.invite")
        check(inv["body"]["call"]["call_id"] == call_id and inv["body"]["from"] == "alice", f"{d.client_id} rings")
    web.request("call.ringing", {"call_id": call_id})
    alice.wait(lambda e: e["type"] == "call.participant" and e["body"]["state"] == "ringing", what="ringing")
    check(True, "A hears B's phone ring")
    acc = phone.request("call.accept", {"call_id": call_id})
    check(acc["type"] == "result" and acc["body"]["join"]["userid"] == "bob", "B accepts and gets join parameters")
    web.wait_type("call.answered_elsewhere", call_id=call_id)
    check(True, "B's other device is told: answered elsewhere")
    alice.wait(lambda e: e["type"] == "call.participant" and e["body"]["state"] == "accepted", what="accepted")
    status, body = phone.join(acc["body"]["join"], single=True)
    check(status == 200 and sorted(body["members"]) == ["alice", "bob"], "B joins with the single-parameter token")
    alice.wait(lambda e: e["type"] == "call.participant" and e["body"]["state"] == "joined" and e["body"]["user"] == "bob",
               what="joined")
    check(True, "the RTC service reported B's join to the controller, A sees it")
    phone.request("call.mute", {"call_id": call_id, "muted": True})
    m = alice.wait_type("call.muted", call_id=call_id)
    check(m["body"]["user"] == "bob" and m["body"]["muted"] is True, "B mutes itself, A sees it")
    alice.request("call.leave", {"call_id": call_id})
    e = phone.wait_type("call.ended", call_id=call_id)
    check(e["body"]["reason"] == "hangup", "A hangs up, B is told the call ended")
    status, _ = phone.join(acc["body"]["join"])
    check(status == 404, "the channel is closed after the call")
    for d in (alice, phone, web):
        d.close()
    print(json.dumps({"call_id": call_id}))


def decline(a):
    alice, phone = devices(a, ALICE, BOB_PHONE)
    call_id, _ = start_call(alice, "bob")
    phone.wait_type("call.invite")
    phone.request("call.decline", {"call_id": call_id})
    e = alice.wait_type("call.ended", call_id=call_id)
    check(e["body"]["reason"] == "declined", "B declines, A's call ends: declined")


def cancel(a):
    alice, phone, web = devices(a, ALICE, BOB_PHONE, BOB_WEB)
    call_id, _ = start_call(alice, "bob")
    phone.wait_type("call.invite")
    r = alice.request("call.cancel", {"call_id": call_id})
    check(r["type"] == "result", "A cancels")
    for d in (phone, web):
        d.wait_type("call.cancelled", call_id=call_id)
        d.wait_type("call.missed", call_id=call_id)
    check(True, "both of B's devices stop ringing and show a missed call")
    late = phone.request("call.accept", {"call_id": call_id})
    check(late["type"] == "error" and late["body"]["code"] == "call_ended", "accepting after the cancel is refused")


def timeout(a):
    alice, phone = devices(a, ALICE, BOB_PHONE)
    call_id, _ = start_call(alice, "bob")
    phone.wait_type("call.invite")
    e = alice.wait_type("call.ended", timeout=15, call_id=call_id)
    check(e["body"]["reason"] == "no_answer", "nobody answers: A's call ends no_answer")
    phone.wait_type("call.missed", call_id=call_id)
    check(True, "B gets a missed call")


def meeting(a):
    alice, bob, carol, dave = devices(a, ALICE, BOB_PHONE, CAROL, DAVE)
    r = alice.request("call.start", {"to": ["bob", "carol"], "kind": "meeting", "title": "standup"})
    call_id = r["body"]["call"]["call_id"]
    alice.join(r["body"]["join"])
    joins = {}
    for d in (bob, carol):
        d.wait_type("call.invite")
        acc = d.request("call.accept", {"call_id": call_id})
        joins[d.client_id] = acc["body"]["join"]
        status, _ = d.join(acc["body"]["join"])
        check(status == 200, f"{d.client_id} joins the meeting")
    inv = alice.request("call.invite", {"call_id": call_id, "to": ["dave"]})
    check(inv["type"] == "result", "A invites D mid-meeting")
    dave.wait_type("call.invite")
    bob.wait(lambda e: e["type"] == "call.participant" and e["body"]["user"] == "dave", what="dave invited")
    check(True, "D rings, the others see D invited")
    dave.request("call.accept", {"call_id": call_id})
    r = bob.request("call.mute", {"call_id": call_id, "target": "carol", "muted": True})
    check(r["type"] == "error" and r["body"]["code"] == "not_host", "only the host mutes others")
    alice.request("call.mute", {"call_id": call_id, "target": "carol", "muted": True, "media": "audio"})
    for d in (carol, bob):
        m = d.wait_type("call.muted", call_id=call_id)
        check(m["body"]["user"] == "carol" and m["body"]["by"] == "alice", f"{d.client_id} sees the host mute carol")
    alice.request("call.remove", {"call_id": call_id, "target": "carol"})
    carol.wait_type("call.removed", call_id=call_id)
    check(True, "carol is told she was removed")
    status, body = carol.join(joins[CAROL])
    check(status == 403 and body["error"] == "revoked", "carol's RTC token is refused after removal")
    alice.request("call.end", {"call_id": call_id})
    for d in (bob, dave):
        e = d.wait_type("call.ended", call_id=call_id)
        check(e["body"]["reason"] == "ended_by_host", f"{d.client_id}: the host ended the meeting")


def offline(a):
    """B is offline when invited and back within the ring time: it rings."""
    bob = Device(a.port, BOB_PHONE, a.http_port)
    # As the SDKs do after connecting: the answer also means the controller
    # knows B (presence from connect events is coalesced and may lag).
    bob.request("sync")
    bob.close()  # the persistent session is created; B is now offline
    alice = Device(a.port, ALICE, a.http_port)
    call_id, _ = start_call(alice, "bob")
    bob = Device(a.port, BOB_PHONE, a.http_port)
    bob.wait_type("call.invite")
    check(True, "B, back within the time to live, gets the invite")
    acc = bob.request("call.accept", {"call_id": call_id})
    check(acc["type"] == "result", "and can accept")


def offline_late(a):
    """B is offline when invited and back after the invite's time to live:
    it does not ring, it sees a missed call instead."""
    bob = Device(a.port, BOB_PHONE, a.http_port)
    bob.request("sync")  # the controller knows B (see offline())
    bob.close()
    alice = Device(a.port, ALICE, a.http_port)
    call_id, _ = start_call(alice, "bob")
    alice.wait_type("call.ended", timeout=15, call_id=call_id)
    time.sleep(0.5)  # the scenario: B comes back after the ring time is over
    bob = Device(a.port, BOB_PHONE, a.http_port)
    missed = bob.wait_type("call.missed", call_id=call_id)
    check(missed["body"]["from"] == "alice", "B, back too late, gets a missed call")
    leftover = [e["type"] for e in bob.drain()]
    check("call.invite" not in leftover, f"and no stale invite rings (got {leftover})")
    s = bob.request("sync")
    check(s["body"]["invites"] == [], "sync shows no pending invite")


def errors(a):
    alice = Device(a.port, ALICE, a.http_port)
    alice.send("", raw=b"{not json")
    e = alice.wait_type("error")
    check(e["body"]["code"] == "bad_json", "malformed JSON gets bad_json")
    r = alice.request("call.fly", {})
    check(r["body"]["code"] == "unknown_type", "unknown type gets unknown_type")
    r = alice.request("call.start", {"to": "bob", "pad": "x" * 20000})
    check(r["body"]["code"] == "too_large", "oversize gets too_large")
    r = alice.request("call.start", {"to": "bob"}, extra={"from": BOB_PHONE})
    check(r["body"]["code"] == "forged_sender", "a forged sender gets forged_sender")
    r = alice.request("call.start", {"to": "bob"}, ts=int(time.time() * 1000) - 600_000, ttl=1000)
    check(r["body"]["code"] == "stale", "a request past its time to live gets stale")
    r = alice.request("call.accept", {})
    check(r["body"]["code"] == "bad_body", "a missing field gets bad_body")
    s = alice.request("sync")
    check(s["body"]["calls"] == [] and s["body"]["invites"] == [], "and nothing changed")
    Device(a.port, BOB_PHONE, a.http_port)  # bob connects once: now he can be called
    first = alice.request("call.start", {"to": "bob"}, req="same-req")
    check(first["type"] == "result", "a good request after the bad ones works")
    again = alice.request("call.start", {"to": "bob"}, req="same-req")
    diff = {k: (first["body"].get(k), again["body"].get(k)) for k in set(first["body"]) | set(again["body"]) if first["body"].get(k) != again["body"].get(k)}
    check(not diff, f"a retry with the same request id gets the same answer {diff}")
    s = alice.request("sync")
    check(len(s["body"]["calls"]) == 1, "and made one call, not two")


def k9_before(a):
    """Phase 1 of the kill -9 test: A calls B (online); then the test kills the box."""
    phone = Device(a.port, BOB_PHONE, a.http_port)
    alice = Device(a.port, ALICE, a.http_port)
    call_id, _ = start_call(alice, "bob")
    phone.wait_type("call.invite")
    print(json.dumps({"call_id": call_id}))


def k9_after(a):
    """Phase 2, after the restart: B's phone reconnects, finds the call by
    sync (nothing rang twice), accepts; A hears it."""
    phone = Device(a.port, BOB_PHONE, a.http_port)
    alice = Device(a.port, ALICE, a.http_port)
    s = phone.request("sync")
    check(len(s["body"]["invites"]) == 1, "the ringing call survived the kill")
    call_id = s["body"]["invites"][0]["call_id"]
    check(a.call_id == call_id, "it is the same call")
    acc = phone.request("call.accept", {"call_id": call_id})
    check(acc["type"] == "result", "B accepts after the restart")
    alice.wait(lambda e: e["type"] == "call.participant" and e["body"]["state"] == "accepted", what="accepted")
    invites = [e for e in phone.drain() if e["type"] == "call.invite"]
    check(len(invites) == 0, "the invite did not ring again")


def k9_timeout(a):
    """Phase 2 variant: nobody answers; the ring timer resumes after the restart."""
    alice = Device(a.port, ALICE, a.http_port)
    e = alice.wait_type("call.ended", timeout=20, call_id=a.call_id)
    check(e["body"]["reason"] == "no_answer", "the ring timer fired after the restart")


SCENARIOS = {f.__name__.replace("_", "-"): f for f in
             (seed, decline, cancel, timeout, meeting, offline, offline_late, errors, k9_before, k9_after, k9_timeout)}

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--http-port", type=int, required=True)
    p.add_argument("--call-id")
    p.add_argument("--standard-broker", action="store_true",
                   help="the controller is behind a standard broker (mqrtc controller)")
    args = p.parse_args()
    rtcdev.STANDARD = args.standard_broker
    try:
        SCENARIOS[args.scenario](args)
    except AssertionError as e:
        print(f"FAIL {e}", flush=True)
        sys.exit(1)
    print("OK")
