#!/usr/bin/env python3
"""Reconnects a persistent MQTT 3.1.1 session with a raw socket, reads N
QoS 1 PUBLISH packets without acknowledging them, and drops the connection:
a phone whose link dies while its backlog is being delivered."""
import argparse
import socket
import struct
import sys


def read_packet(sock):
    head = sock.recv(1)
    if not head:
        raise SystemExit("connection closed")
    mult, length = 1, 0
    while True:
        b = sock.recv(1)[0]
        length += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            break
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            raise SystemExit("connection closed")
        body += chunk
    return head[0], body


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--client-id", required=True)
    p.add_argument("--count", type=int, default=2)
    a = p.parse_args()
    cid = a.client_id.encode()
    var = struct.pack("!H", 4) + b"MQTT" + bytes([4, 0x00]) + struct.pack("!H", 60)  # clean session off
    body = var + struct.pack("!H", len(cid)) + cid
    sock = socket.create_connection((a.host, a.port), timeout=10)
    sock.sendall(bytes([0x10, len(body)]) + body)
    kind, ack = read_packet(sock)
    if kind != 0x20 or ack[1] != 0:
        raise SystemExit(f"refused: {kind:#x} {ack!r}")
    got = 0
    while got < a.count:
        kind, _ = read_packet(sock)
        if kind >> 4 == 3:
            got += 1
    sock.close()
    print(f"took {got} without acknowledging")
    sys.exit(0)


if __name__ == "__main__":
    main()
