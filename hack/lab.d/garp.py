#!/usr/bin/env python3
"""Sends one gratuitous ARP for an address from an interface's MAC (a broadcast request whose sender and
target are both the address), as a host does when it starts using an address it was given (DHCP, a static
configuration). Used by the lab tests to play a host on the LAN that takes an address ferrolb announces.

Usage: garp.py IFACE IP"""
import socket
import struct
import sys

iface, ip = sys.argv[1], socket.inet_aton(sys.argv[2])
with open(f"/sys/class/net/{iface}/address") as f:
    mac = bytes.fromhex(f.read().strip().replace(":", ""))
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
sock.bind((iface, 0))
frame = b"\xff" * 6 + mac + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + ip + b"\x00" * 6 + ip
sock.send(frame.ljust(60, b"\x00"))
