#!/usr/bin/env python3
"""What the worker's sandbox costs (BENCHMARKS.md; docs/operations.md, "The sandbox").

1. Throughput: POST /Iris (wrk -t1 -c32) on one release server with MODEL_SANDBOX=strict and one with off, in the
   order strict, off, off, strict, ... (ROUNDS pairs), so that a drift of the machine falls on both; the median
   of each, and their ratio.
2. A worker's start: `autoserve-worker` spawned directly on Iris's built plugin, from spawn to its hello (the
   sandbox applied, `init(path:)` run), STARTS times for each mode in turn; the median in milliseconds.
3. The hostile model (Tests/Fixtures/models/Hostile) served beside Echo in each mode: each escape it tries (a key
   outside, another model's source, /proc/<server>/cmdline, CACHE_DIR, a folder outside, its own folder, chmod, the
   server's port, signals, a shell, fork, another worker's memory) and how it went.

Usage: python3 bench/sandbox.py [--bin .build/release/autoserve] [--rounds 3] [--duration 10] [--starts 40]
(needs wrk and swiftc)."""
import argparse
import fcntl
import glob
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IRIS = '{"variables": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}}'


def ready(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def serve(binary, work, mode, port, models=None):
    """A server on `models` (default: the Iris copy) once /readyz says every model's first load has ended."""
    environment = dict(os.environ, MODELS_DIR=models or f"{work}/models", STATE_DIR=f"{work}/state", PORT=str(port), HOST="127.0.0.1",
                       LOG_LEVEL="warning", MODEL_SANDBOX=mode)
    server = subprocess.Popen([binary, "serve"], env=environment)
    deadline = time.time() + 600
    while not ready(port):
        if time.time() > deadline or server.poll() is not None:
            server.kill()
            sys.exit(f"the server ({mode}) did not become ready")
        time.sleep(0.2)
    return server


def throughput(binary, work, mode, port, duration):
    server = serve(binary, work, mode, port)
    try:
        url = f"http://127.0.0.1:{port}/Iris"
        script = f"{work}/post.lua"
        subprocess.run(["wrk", "-t1", "-c32", "-d2s", "-s", script, url], check=True, capture_output=True)
        output = subprocess.run(["wrk", "-t1", "-c32", f"-d{duration}s", "-s", script, url], check=True, capture_output=True,
                                text=True).stdout
        return float(next(line.split()[1] for line in output.splitlines() if line.startswith("Requests/sec")))
    finally:
        server.terminate()
        server.wait()


def hostile(binary, work, mode, port):
    """The Hostile fixture's answer (escape -> outcome) when served in `mode` beside Echo, with targets outside."""
    models, targets = f"{work}/hostile-{mode}", f"{work}/targets-{mode}"
    os.makedirs(f"{targets}/outside")
    with open(f"{targets}/id_ed25519", "w") as secret:
        secret.write("not a real key\n")
    for name, source in [("Hostile", f"{ROOT}/Tests/Fixtures/models/Hostile"), ("Echo", f"{ROOT}/Tests/Fixtures/models/Echo"),
                         ("Iris", f"{ROOT}/models_serve/Iris")]:
        shutil.copytree(source, f"{models}/{name}")
    server = serve(binary, work, mode, port, models=models)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as answer:
            index = json.load(answer)
        if not all(index.get(name, {}).get("state") == "ready" for name in ("Hostile", "Echo", "Iris")):
            sys.exit(f"the hostile model and its neighbours did not all come up ({mode})")
        row = {"variables": {"secret": f"{targets}/id_ed25519", "neighbour_source": f"{models}/Iris/etls.swift", "cache": f"{work}/state/cache",
                             "outside": f"{targets}/outside", "port": port, "neighbour_pid": index["Echo"]["workers"]["pids"][0]}}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/Hostile", data=json.dumps(row).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=30) as answer:
            outcomes = json.load(answer)
        return {name: value for name, value in outcomes.items() if name not in ("environment", "tmpdir")}
    finally:
        server.terminate()
        server.wait()
        try:
            os.unlink(f"{work}/state/cache/planted.so")
        except OSError:
            pass


def start_time(worker, plugin, symbol, folder, mode):
    """Milliseconds from spawning a worker to its hello."""
    server_end, worker_end = socket.socketpair()
    temporary = tempfile.mkdtemp(prefix="autoserve-worker-")
    arguments = [worker, "--library", plugin, "--entry-symbol", symbol, "--folder", folder, "--sandbox", mode]
    if mode != "off":
        arguments += ["--tmp", temporary]
    begin = time.perf_counter()
    def descriptors():  # the socket on fds 3 and 4, as the server hands it over (moved up first: it may be 3 itself)
        moved = fcntl.fcntl(worker_end.fileno(), fcntl.F_DUPFD, 10)
        os.dup2(moved, 3)
        os.dup2(moved, 4)
    process = subprocess.Popen(arguments, close_fds=False, preexec_fn=descriptors,
                               env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TMPDIR": temporary}, stdout=subprocess.DEVNULL)
    worker_end.close()
    header = b""
    while len(header) < 13:
        chunk = server_end.recv(13 - len(header))
        if not chunk:
            sys.exit(f"the worker ({mode}) ended before its hello")
        header += chunk
    elapsed = (time.perf_counter() - begin) * 1000
    length, _, code = struct.unpack("<IQB", header)
    payload = server_end.recv(length - 9) if length > 9 else b""
    if code != 0:
        sys.exit(f"the worker ({mode}) failed to start: {payload.decode(errors='replace')}")
    server_end.close()
    process.wait()
    shutil.rmtree(temporary, ignore_errors=True)
    return elapsed, payload.decode()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default=f"{ROOT}/.build/release/autoserve")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--starts", type=int, default=40)
    parser.add_argument("--port", type=int, default=18433)
    options = parser.parse_args()
    binary = os.path.abspath(options.bin)
    worker = os.path.join(os.path.dirname(binary), "autoserve-worker")
    work = tempfile.mkdtemp(prefix="autoserve-bench-sandbox-")
    try:
        os.makedirs(f"{work}/models")
        shutil.copytree(f"{ROOT}/models_serve/Iris", f"{work}/models/Iris")
        with open(f"{work}/post.lua", "w") as script:
            script.write(f"wrk.method = 'POST'\nwrk.body = '{IRIS}'\nwrk.headers['Content-Type'] = 'application/json'\n")
        figures = {"strict": [], "off": []}
        for round in range(options.rounds):
            for mode in (["strict", "off"] if round % 2 == 0 else ["off", "strict"]):
                figures[mode].append(throughput(binary, work, mode, options.port, options.duration))
                print(f"round {round + 1}: {mode} {figures[mode][-1]:.0f} req/s", flush=True)
        plugin = glob.glob(f"{work}/state/cache/*/plugins/AS_Iris_*.so")[0]
        module = os.path.basename(plugin)[:-3]
        folder = glob.glob(f"{work}/state/versions/Iris/*")[0]
        starts = {"strict": [], "off": []}
        layers = ""
        for _ in range(options.starts):
            for mode in ("strict", "off"):
                elapsed, hello = start_time(worker, plugin, f"autoserve_v1_{module}", folder, mode)
                starts[mode].append(elapsed)
                if mode == "strict":
                    layers = hello
        escapes = {mode: hostile(binary, work, mode, options.port) for mode in ("strict", "off")}
        strict, off = statistics.median(figures["strict"]), statistics.median(figures["off"])
        print(f"machine: {os.cpu_count()} cores, {os.uname().sysname} {os.uname().release}; {time.strftime('%Y-%m-%d', time.gmtime())}")
        print(f"POST /Iris, wrk -t1 -c32 -d{options.duration}s, median of {options.rounds}: strict ({layers}) {strict:.0f} req/s, "
              f"off {off:.0f} req/s, strict / off {strict / off:.3f}")
        print(f"worker start (spawn to hello), median of {options.starts}: strict {statistics.median(starts['strict']):.1f} ms, "
              f"off {statistics.median(starts['off']):.1f} ms")
        print("the hostile model's escapes: strict / off")
        for name in sorted(escapes["strict"]):
            print(f"  {name}: {escapes['strict'][name]} / {escapes['off'].get(name)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
