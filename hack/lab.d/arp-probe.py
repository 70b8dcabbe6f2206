#!/usr/bin/env python3
"""Sends one ARP request for an address on an interface and prints every distinct MAC that answers within a
timeout, one per line. Used by the lab tests to check that exactly one node answers for an external IP.

The request comes from the interface's own IPv4 address, as an ordinary host asks. Not from 0.0.0.0: that is
an RFC 5227 probe, which says "I want this address", and a speaker probing for a new IP at that moment rightly
takes it as a conflict."""
import fcntl
import socket
import struct
import sys
import time

SIOCGIFADDR = 0x8915

iface, target = sys.argv[1], sys.argv[2]
timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
sock.bind((iface, 0))
with open(f"/sys/class/net/{iface}/address") as f:
    mac = bytes.fromhex(f.read().strip().replace(":", ""))
try:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        src_ip = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("256s", iface.encode()[:15]))[20:24]
except OSError:
    src_ip = socket.inet_aton("0.0.0.0")  # no IPv4 address on the interface: a probe is all it can send
frame = b"\xff" * 6 + mac + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + src_ip + b"\x00" * 6 + socket.inet_aton(target)
sock.send(frame.ljust(60, b"\x00"))
seen = set()
deadline = time.time() + timeout
sock.settimeout(0.1)
while time.time() < deadline:
    try:
        data = sock.recv(2048)
    except socket.timeout:
        continue
    # Only replies to this request: unicast to us. Gratuitous ARP replies (broadcast) are not answers.
    if (len(data) >= 42 and data[0:6] == mac and data[12:14] == b"\x08\x06" and data[20:22] == b"\x00\x02"
            and data[28:32] == socket.inet_aton(target) and data[32:38] == mac):
        seen.add(data[22:28].hex(":"))
for m in sorted(seen):
    print(m)
