#!/usr/bin/env python3
"""Watches who answers ARP for one address, as a client on the LAN sees it: sends an ARP request every
INTERVAL ms from the interface's own address and groups the replies by the request they follow. Prints one
JSON report when the stop file appears (or after MAX seconds):

  rounds, answered     requests sent, and how many got any answer
  max_gap_ms           the longest time between two answered requests
  two_macs_rounds      requests answered by two MACs or more (two hosts claiming the address at once)
  two_macs_windows     up to 20 of those, as {"at_ms": offset from the start, "macs": [...]}
  macs                 replies per MAC

Usage: arp-watch.py IFACE IP [--interval MS] [--max SECONDS] [--start-file F] [--stop-file F]"""
import argparse
import fcntl
import json
import os
import select
import socket
import struct
import time

SIOCGIFADDR = 0x8915

parser = argparse.ArgumentParser()
parser.add_argument("iface")
parser.add_argument("ip")
parser.add_argument("--interval", type=float, default=20.0)
parser.add_argument("--max", type=float, default=600.0)
parser.add_argument("--start-file")
parser.add_argument("--stop-file")
args = parser.parse_args()

sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
sock.bind((args.iface, 0))
sock.setblocking(False)
with open(f"/sys/class/net/{args.iface}/address") as f:
    mac = bytes.fromhex(f.read().strip().replace(":", ""))
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    src_ip = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("256s", args.iface.encode()[:15]))[20:24]
target = socket.inet_aton(args.ip)
request = (b"\xff" * 6 + mac + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + src_ip
           + b"\x00" * 6 + target).ljust(60, b"\x00")

interval = args.interval / 1000.0
start = time.monotonic()
rounds = answered = two_rounds = 0
windows = []
per_mac = {}
last_answered = None
max_gap = 0.0


def close_round(sent_at, macs):
    global answered, two_rounds, last_answered, max_gap
    if not macs:
        return
    answered += 1
    if last_answered is not None:
        max_gap = max(max_gap, sent_at - last_answered)
    last_answered = sent_at
    if len(macs) > 1:
        two_rounds += 1
        if len(windows) < 20:
            windows.append({"at_ms": round((sent_at - start) * 1000), "macs": sorted(macs)})


if args.start_file:
    open(args.start_file, "w").close()
while True:
    now = time.monotonic()
    if now - start > args.max or (args.stop_file and os.path.exists(args.stop_file)):
        break
    sent_at = now
    sock.send(request)
    rounds += 1
    macs = set()
    deadline = sent_at + interval
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            continue
        try:
            data = sock.recv(2048)
        except BlockingIOError:
            continue
        # Replies to us for the watched address; gratuitous (broadcast) replies are not answers.
        if (len(data) >= 42 and data[0:6] == mac and data[12:14] == b"\x08\x06" and data[20:22] == b"\x00\x02"
                and data[28:32] == target and data[32:38] == mac):
            who = data[22:28].hex(":")
            macs.add(who)
            per_mac[who] = per_mac.get(who, 0) + 1
    close_round(sent_at, macs)

# The IP may still be dark when the watch stops: that gap counts too.
if last_answered is not None:
    max_gap = max(max_gap, time.monotonic() - last_answered - interval)
print(json.dumps({
    "rounds": rounds,
    "answered": answered,
    "max_gap_ms": round(max_gap * 1000),
    "two_macs_rounds": two_rounds,
    "two_macs_windows": windows,
    "macs": per_mac,
}))
