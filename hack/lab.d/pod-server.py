#!/usr/bin/env python3
"""A lab "pod": HTTP on TCP 8080 and a UDP echo on 8081, on IPv4 and IPv6.

Both answer with one line, `pod=<name> client=<address the pod saw>`, so tests can tell which pod answered and
whether the client address survived the path.
"""
import http.server
import socket
import socketserver
import sys
import threading

NAME = sys.argv[1]


def line(addr):
    host = addr[0]
    if host.startswith("::ffff:"):
        host = host[len("::ffff:"):]
    return f"pod={NAME} client={host}\n".encode()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = line(self.client_address)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server4(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The failover benchmark opens 100 connections a second; the default backlog of 5 drops SYNs under load.
    request_queue_size = 256


class Server6(Server4):
    address_family = socket.AF_INET6

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()


def udp_echo(family, addr):
    sock = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind(addr)
    while True:
        _, peer = sock.recvfrom(2048)
        sock.sendto(line(peer), peer)


servers = [Server4(("0.0.0.0", 8080), Handler), Server6(("::", 8080), Handler)]
for s in servers:
    threading.Thread(target=s.serve_forever, daemon=True).start()
threading.Thread(target=udp_echo, args=(socket.AF_INET6, ("::", 8081)), daemon=True).start()
udp_echo(socket.AF_INET, ("0.0.0.0", 8081))
