#!/usr/bin/env python3
"""What bounds a batch (docs/http-api.md, "HTTP API"; BENCHMARKS.md): the release server, one run, loopback.

1. A model that answers 5 MB a row, and a 16 KB request of 1,200 rows: the answer's size, its rows kept and refused
   (413 answer_too_large past MAX_ANSWER_BYTES), and the server's peak resident memory (VmHWM) against its memory
   before the request.
2. A model that takes 200 ms a row (timeout_ms: 5000) and a batch of 2,000 rows; a second later another client sends
   a 1 ms row to the same model: that row's latency, the batch's rows answered 504, and the worker restarts.

Usage: python3 bench/batch_bounds.py [path/to/autoserve]   (default .build/release/autoserve; standard library only)
"""
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else f"{ROOT}/.build/release/autoserve"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, method, path, body=None, timeout=600):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data


def memory(pid, field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    work = tempfile.mkdtemp(prefix="autoserve-batch-bounds-")
    models = f"{work}/models"
    os.makedirs(models)
    shutil.copytree(f"{ROOT}/Tests/Fixtures/models/Huge", f"{models}/Huge")
    os.makedirs(f"{models}/Slow")
    shutil.copy(f"{ROOT}/Tests/Fixtures/models/Slow/etls.swift", f"{models}/Slow/etls.swift")
    with open(f"{models}/Slow/model.yaml", "w") as manifest:
        manifest.write("timeout_ms: 5000\n")
    port = free_port()
    environment = dict(os.environ, MODELS_DIR=models, STATE_DIR=f"{work}/state", PORT=str(port), HOST="127.0.0.1", LOG_LEVEL="warning")
    server = subprocess.Popen([BIN, "serve"], env=environment, stderr=open(f"{work}/server.log", "w"))
    try:
        deadline = time.time() + 300
        while True:
            try:
                status, body = request(port, "GET", "/")
                index = json.loads(body)
                server_state = index.pop("_server", {})
                synced = (server_state.get("last_sync") or {}).get("result") == "success"
                if synced and all(model.get("state") != "loading" for model in index.values()):
                    break
            except OSError:
                pass
            if time.time() > deadline:
                sys.exit("the server did not finish its first sync; see " + f"{work}/server.log")
            time.sleep(0.1)

        print(f"machine: {os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {BIN}\n")
        before = memory(server.pid, "VmRSS")
        rows = json.dumps({"rows": [{"megabytes": 5}] * 1200})
        start = time.time()
        status, body = request(port, "POST", "/Huge", rows)
        seconds = time.time() - start
        outputs = json.loads(body)["outputs"]
        kept = sum(1 for output in outputs if "blob" in output)
        refused = sum(1 for output in outputs if output.get("_error", {}).get("code") == "answer_too_large")
        peak = memory(server.pid, "VmHWM")
        print("| 1,200 rows of 5 MB answers (request 16 KB) | value |")
        print("|---|---|")
        print(f"| status, answer size | {status}, {len(body) / 2**20:.1f} MiB |")
        print(f"| rows kept / refused 413 answer_too_large | {kept} / {refused} |")
        print(f"| time to the answer | {seconds:.2f} s |")
        print(f"| server resident memory before / peak (VmHWM) | {before / 2**20:.0f} MiB / {peak / 2**20:.0f} MiB |")
        print()

        request(port, "POST", "/Slow", json.dumps({"variables": {"seconds": 0.001}}))
        batch_result = {}

        def batch():
            started = time.time()
            batch_result["status"], batch_result["body"] = request(port, "POST", "/Slow", json.dumps({"rows": [{"seconds": 0.2}] * 2000}))
            batch_result["seconds"] = time.time() - started

        thread = threading.Thread(target=batch)
        thread.start()
        time.sleep(1)
        started = time.time()
        other_status, _ = request(port, "POST", "/Slow", json.dumps({"variables": {"seconds": 0.001}}))
        other = time.time() - started
        thread.join()
        outputs = json.loads(batch_result["body"])["outputs"]
        timeouts = sum(1 for output in outputs if output.get("_error", {}).get("status") == 504)
        failed = sum(1 for output in outputs if "_error" in output)
        _, index = request(port, "GET", "/")
        restarts = json.loads(index)["Slow"]["workers"]["restarts"]
        print("| 2,000 rows of 200 ms (timeout 5 s), and another client's 1 ms row a second later | value |")
        print("|---|---|")
        print(f"| the other row: status, latency | {other_status}, {other * 1000:.0f} ms |")
        print(f"| the batch: status, time, rows failed (504) | {batch_result['status']}, {batch_result['seconds']:.1f} s, {failed} ({timeouts}) |")
        print(f"| worker restarts | {restarts} |")
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
