#!/usr/bin/env python3
"""Holds idle and slowloris connections to 127.0.0.1:PORT, in a process of its own.

Usage: hold_connections.py PORT IDLE SLOW
Opens IDLE connections that send nothing and SLOW ones that send a request head a byte every 200 ms, prints
"ready" once all are open, then reads each until the server closes it and prints one JSON line:
{"idle": N, "idle_closed_silently": N, "slow": N, "slow_408": N}. Every socket has a 60 s timeout.
The test runner does not hold these thousands of descriptors itself: Foundation's Process.run in Swift 6.3.1
over-reads /proc/self/fd's entries and crashes now and then when there are many
(swiftlang/swift-corelibs-foundation#5472).
"""
import json
import socket
import sys
import threading
import time

port, idle_count, slow_count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
idle = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(idle_count)]
slow = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(slow_count)]
print("ready", flush=True)
head = b"POST /Echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
stop = threading.Event()


def trickle():
    for index in range(len(head)):
        if stop.is_set():
            return
        for s in slow:
            try:
                s.send(head[index:index + 1])
            except OSError:
                pass
        time.sleep(0.2)


thread = threading.Thread(target=trickle, daemon=True)
thread.start()


def read_until_closed(s):
    received = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return received
            received += chunk
    except OSError:
        return None


idle_silent = sum(1 for s in idle if read_until_closed(s) == b"")
slow_408 = sum(1 for s in slow if (read_until_closed(s) or b"").startswith(b"HTTP/1.1 408 "))
stop.set()
print(json.dumps({"idle": len(idle), "idle_closed_silently": idle_silent, "slow": len(slow), "slow_408": slow_408}), flush=True)
