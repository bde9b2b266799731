#!/usr/bin/env python3
"""A push that waits behind a slow model (BENCHMARKS.md, issue 25): the release server on a git repository with Iris
and SlowInit (Tests/Fixtures/models/SlowInit, whose init(path:) takes the seconds in its delay.txt).

1. Push 1: SlowInit's next version loads for 60 s; an admin sync.
2. A second later, push 2 changes Iris; an admin sync. How long until Iris's new version serves, whether /readyz stayed
   200 meanwhile, and whether SlowInit's old version kept answering.

Before issue 25 the second sync queued behind the first, which waited for SlowInit's load: Iris waited a minute.

Usage: python3 bench/push_behind_slow.py [path/to/autoserve]   (default .build/release/autoserve; needs git)
"""
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else f"{ROOT}/.build/release/autoserve"
TOKEN = "bench-admin-token"
SLOW_SECONDS = 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request(method, path, body=body, headers=dict({"Content-Type": "application/json"}, **(headers or {})))
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data


def git(repository, *arguments):
    return subprocess.run(["git", "-C", repository, *arguments], check=True, capture_output=True, text=True).stdout.strip()


def index(port):
    return json.loads(request(port, "GET", "/")[1])


def main():
    work = tempfile.mkdtemp(prefix="autoserve-push-behind-slow-")
    repository = f"{work}/models"
    os.makedirs(repository)
    git(repository, "init", "-q", "-b", "main")
    git(repository, "config", "user.email", "bench@autoserve.invalid")
    git(repository, "config", "user.name", "bench")
    shutil.copytree(f"{ROOT}/models_serve/Iris", f"{repository}/Iris")
    shutil.copytree(f"{ROOT}/Tests/Fixtures/models/SlowInit", f"{repository}/SlowInit")
    with open(f"{repository}/SlowInit/delay.txt", "w") as delay:
        delay.write("0\n")
    git(repository, "add", "-A")
    git(repository, "commit", "-q", "-m", "Iris and SlowInit")
    port = free_port()
    environment = dict(os.environ, MODELS_REPO=f"file://{repository}", STATE_DIR=f"{work}/state", PORT=str(port), HOST="127.0.0.1",
                       ADMIN_TOKEN=TOKEN, SYNC_INTERVAL="24h", LOG_LEVEL="warning")
    server = subprocess.Popen([BIN, "serve"], env=environment, stderr=open(f"{work}/server.log", "w"))
    sync = lambda: request(port, "POST", "/-/sync", headers={"Authorization": f"Bearer {TOKEN}"})[0]
    try:
        deadline = time.time() + 600
        while True:
            try:
                document = index(port)
                if all((document.get(name) or {}).get("state") == "ready" for name in ("Iris", "SlowInit")):
                    break
            except OSError:
                pass
            if time.time() > deadline:
                sys.exit(f"the models did not come up; see {work}/server.log")
            time.sleep(0.1)
        slow_before = index(port)["SlowInit"]["version"]

        with open(f"{repository}/SlowInit/delay.txt", "w") as delay:
            delay.write(f"{SLOW_SECONDS}\n")
        git(repository, "commit", "-q", "-am", "SlowInit loads for a minute")
        assert sync() == 202
        time.sleep(1)
        manifest = open(f"{repository}/Iris/model.yaml").read()
        open(f"{repository}/Iris/model.yaml", "w").write(manifest.replace("description:", "description: (v2)", 1))
        git(repository, "commit", "-q", "-am", "Iris v2")
        iris_new = git(repository, "rev-parse", "HEAD:Iris")
        requested = time.time()
        assert sync() == 202
        readiness, slow_answers = set(), set()
        while True:
            readiness.add(request(port, "GET", "/readyz")[0])
            status, body = request(port, "POST", "/SlowInit", '{"variables": {}}')
            slow_answers.add((status, json.loads(body).get("delay") if status == 200 else None))
            document = index(port)
            if document["Iris"]["version"] == iris_new:
                served = time.time() - requested
                break
            if time.time() - requested > 3 * SLOW_SECONDS:
                sys.exit("Iris's new version never served")
            time.sleep(0.02)
        slow_state = "still loading its new version" if document["SlowInit"]["version"] == slow_before else "already on its new version"
        print(f"machine: {os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {BIN}")
        print(f"Iris's new version served {served:.2f} s after its sync request; SlowInit {slow_state}; "
              f"/readyz statuses meanwhile {sorted(readiness)}; SlowInit's answers meanwhile {sorted(slow_answers)}")
    finally:
        server.terminate()
        server.wait(timeout=120)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
