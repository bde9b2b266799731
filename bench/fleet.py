#!/usr/bin/env python3
"""Three replicas behind nginx, on loopback, as docs/deployment.md's "Running a fleet" sets them up (`make fleet`, run by CI).

Three `autoserve serve` processes, each with its own STATE_DIR and port, one shared CACHE_DIR, one models repository
served over file://, PEERS naming the three, and nginx (Debian's) in front with the settings docs/deployment.md recommends ("Running a fleet").
It shows, and fails (exit 1) unless:
  1. a cold start of the three together on MODELS models compiles each model once (autoserve_model_builds_total
     of the three adds up to MODELS) and every replica is ready;
  2. a push and one signed webhook sent through nginx: every replica serves the new commit within 5 s;
  3. wrk through nginx during that push and during a rolling restart of the three (SIGTERM, wait for the exit,
     start again, wait until ready): no answer other than 2xx, no socket error;
  4. a replica killed with SIGKILL while it compiles a pushed version: the others build it, serve it, and a
     replica started afterwards loads the entry without compiling; every cache entry matches its seal.
Prints its figures (the last line is a Markdown table row for BENCHMARKS.md). Usage:
  bench/fleet.py [--bin DIR] [--models 20] [--keep]   (DIR holds autoserve and autoserve-worker; default
  .build/debug; make fleet runs it)
"""
import argparse
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADMIN_TOKEN = "fleet-admin-token"
WEBHOOK_SECRET = "fleet-webhook-secret"
CACHE_KEY = "fleet-cache-key-shared-by-the-replicas"
SHUTDOWN_DELAY = "2s"

NGINX_CONF = """worker_processes 1;
error_log {work}/nginx-error.log warn;
pid {work}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {work}/nginx-body;
    proxy_temp_path {work}/nginx-proxy;
    fastcgi_temp_path {work}/nginx-fastcgi;
    uwsgi_temp_path {work}/nginx-uwsgi;
    scgi_temp_path {work}/nginx-scgi;
    upstream autoserve {{
{servers}
        # Connections to the replicas are kept alive and reused, and closed by nginx before the replica would
        # close them as idle (KEEPALIVE_TIMEOUT, 60 s).
        keepalive 32;
        keepalive_timeout 50s;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://autoserve;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            # A replica that refuses the connection (stopped), closes it (drained) or answers 503 (starting, its
            # models not loaded yet; overloaded) is skipped for the next one. Scoring has no side effect, so a POST
            # may be sent again (non_idempotent); a 504 (a model's timeout) is not retried.
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
            proxy_next_upstream_tries 3;
            proxy_connect_timeout 2s;
        }}
    }}
}}
"""

WRK_SCRIPT = """wrk.method = "POST"
wrk.body = '{"variables": {"x": 1}}'
wrk.headers["Content-Type"] = "application/json"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) others = 0; seen = "" end
function response(status, headers, body)
    if status < 200 or status > 299 then
        others = others + 1
        if #seen < 200 then seen = seen .. status .. " " end
    end
end
function done(summary, latency, requests)
    local total, statuses = 0, ""
    for _, thread in ipairs(threads) do
        total = total + thread:get("others")
        statuses = statuses .. thread:get("seen")
    end
    io.write(string.format("fleet-wrk requests=%d non2xx=%d connect=%d read=%d write=%d timeout=%d p99_ms=%.1f statuses=%s\\n",
        summary.requests, total, summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
        latency:percentile(99) / 1000, statuses))
end
"""


def model_source(name, label, slow=0):
    """A model that answers its name and a label; `slow` adds functions that make swiftc take seconds."""
    extra = "".join(
        f"func slow{i}(_ x: Double) -> Double {{ var y = x; for k in 0..<{i % 7 + 1} {{ y = y * 1.0001 + Double(k) * {i}.5 }}; "
        f"return y > 1e9 ? y / 2 : y }}\n" for i in range(slow))
    return f"""import AutoServeModel

struct {name} {{
    init(path: String) {{}}

    func transform_predict(_ variables: [String: JSON]) -> [String: JSON] {{
        ["model": "{name}", "label": "{label}"]
    }}
}}
{extra}"""


class Fleet:
    def __init__(self, binaries, work, models):
        self.binaries = binaries
        self.work = work
        self.models = [f"M{i:02d}" for i in range(1, models + 1)]
        self.repository = os.path.join(work, "models")
        self.cache = os.path.join(work, "cache")
        self.ports = [free_port() for _ in range(3)]
        self.nginx_port = free_port()
        self.processes = [None, None, None]
        self.logs = []
        self.nginx = None

    # The models repository

    def git(self, *arguments):
        subprocess.run(["git", "-C", self.repository, *arguments], check=True, capture_output=True)

    def write_model(self, name, label, slow=0):
        folder = os.path.join(self.repository, name)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "etls.swift"), "w") as file:
            file.write(model_source(name, label, slow))

    def create_repository(self):
        os.makedirs(self.repository)
        subprocess.run(["git", "init", "-q", "-b", "main", self.repository], check=True)
        self.git("config", "user.email", "fleet@example.com")
        self.git("config", "user.name", "fleet")
        for name in self.models:
            self.write_model(name, "v1")
        return self.commit(f"{len(self.models)} models")

    def commit(self, message):
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return subprocess.run(["git", "-C", self.repository, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()

    # The replicas

    def start(self, index, own_cache=False):
        """Starts replica `index`; with `own_cache`, in a STATE_DIR and CACHE_DIR of its own (the baseline)."""
        environment = dict(os.environ)
        state = os.path.join(self.work, f"{'alone' if own_cache else 'state'}-{index}")
        environment.update({
            "MODELS_REPO": f"file://{self.repository}", "STATE_DIR": state, "CACHE_DIR": os.path.join(state, "cache") if own_cache else self.cache,
            "HOST": "127.0.0.1", "PORT": str(self.ports[index]), "PEERS": ",".join(f"127.0.0.1:{port}" for port in self.ports),
            "ADMIN_TOKEN": ADMIN_TOKEN, "WEBHOOK_SECRET": WEBHOOK_SECRET, "CACHE_KEY": CACHE_KEY, "SHUTDOWN_DELAY": SHUTDOWN_DELAY, "SYNC_INTERVAL": "24h",
        })
        log = open(os.path.join(self.work, f"replica-{index}.log"), "a")
        self.processes[index] = subprocess.Popen([os.path.join(self.binaries, "autoserve"), "serve"], env=environment, stdout=log,
                                                 stderr=subprocess.STDOUT, start_new_session=True)

    def url(self, index, path):
        return f"http://127.0.0.1:{self.ports[index]}{path}"

    def ready(self, index, label=None, commit=None):
        """Whether the replica's /readyz is 200 with every model ready (and `commit` served, `label` answered)."""
        status, body, _ = request(self.url(index, "/readyz"))
        if status != 200:
            return False
        _, index_body, _ = request(self.url(index, "/"))
        document = json.loads(index_body)
        if any(document.get(name, {}).get("state") != "ready" for name in self.models):
            return False
        if commit and document["_server"].get("commit") != commit:
            return False
        if label:
            status, body, headers = request(self.url(index, "/M01"), b'{"variables": {"x": 1}}')
            return status == 200 and json.loads(body).get("label") == label and headers.get("X-Model-Version") == document["M01"]["version"]
        return True

    def builds(self, index):
        _, text, _ = request(self.url(index, "/metrics"))
        return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.decode().splitlines()
                   if line.startswith("autoserve_model_builds_total{") and 'result="success"' in line)

    def stop(self, index, sig=signal.SIGTERM):
        process = self.processes[index]
        process.send_signal(sig)
        return process.wait(timeout=120)

    # nginx

    def start_nginx(self):
        servers = "\n".join(f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=2s;" for port in self.ports)
        configuration = os.path.join(self.work, "nginx.conf")
        with open(configuration, "w") as file:
            file.write(NGINX_CONF.format(work=self.work, servers=servers, port=self.nginx_port))
        self.nginx = subprocess.Popen([nginx_binary(), "-p", self.work, "-c", configuration, "-g", "daemon off;"],
                                      stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.work, "nginx.out"), "w"))
        wait_until("nginx listens", 30, lambda: request(f"http://127.0.0.1:{self.nginx_port}/healthz")[0] == 200)

    def webhook(self, delivery):
        body = json.dumps({"ref": "refs/heads/main", "after": "0" * 40}).encode()
        signature = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        return request(f"http://127.0.0.1:{self.nginx_port}/hooks/git", body, {
            "Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": signature,
        })

    def start_wrk(self, seconds):
        script = os.path.join(self.work, "post.lua")
        with open(script, "w") as file:
            file.write(WRK_SCRIPT)
        output = open(os.path.join(self.work, "wrk.out"), "w")
        return subprocess.Popen(["wrk", "-t2", "-c8", f"-d{seconds}s", "--timeout", "10s", "-s", script,
                                 f"http://127.0.0.1:{self.nginx_port}/M01"], stdout=output, stderr=subprocess.STDOUT)

    def shutdown(self):
        """SIGTERM, as an orchestrator stops a replica (each then removes its workers' temporary folders); SIGKILL for
        whatever has not stopped 30 s later."""
        running = [process for process in self.processes + [self.nginx] if process and process.poll() is None]
        for process in running:
            process.terminate()
        for process in running:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def request(url, body=None, headers=None, timeout=10):
    """(status, body, headers); status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers or {}), timeout=timeout) as answer:
            return answer.status, answer.read(), answer.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers
    except (OSError, urllib.error.URLError):
        return 0, b"", {}


def wait_until(what, seconds, condition, poll=0.05):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(poll)
    raise SystemExit(f"fleet: timed out after {seconds} s waiting until {what}")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def nginx_binary():
    return shutil.which("nginx") or "/usr/sbin/nginx"


def sealed(path):
    """Whether a cache entry matches its seal (size, and HMAC-SHA256 of the identity and the bytes with the fleet's
    CACHE_KEY, in `<entry>.sum`)."""
    try:
        seal = dict(line.split(" ", 1) for line in open(path + ".sum").read().splitlines())
    except OSError:
        return False
    data = open(path, "rb").read()
    key = hashlib.sha256(CACHE_KEY.encode()).digest()
    code = hmac.new(key, seal.get("identity", "").encode() + b"\n" + data, hashlib.sha256).hexdigest()
    return seal.get("size") == str(len(data)) and seal.get("hmac-sha256") == code


def compiling_replica(fleet, module_prefix):
    """The index of the replica whose compiler builds a module starting with `module_prefix`, if one does."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            command = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if not any(argument.startswith(module_prefix.encode()) for argument in command):
            continue
        # Walk up to the replica that started it (nice → swiftc → swift-frontend).
        current = pid
        for _ in range(8):
            try:
                parent = open(f"/proc/{current}/stat").read().rsplit(")", 1)[1].split()[1]
            except OSError:
                break
            for index, process in enumerate(fleet.processes):
                if process and process.poll() is None and int(parent) == process.pid:
                    return index
            current = parent
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default=None)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs) even when everything passed")
    parser.add_argument("--compare", action="store_true", help="first start the three with a cache each, as the baseline of the cold start")
    options = parser.parse_args()
    binaries = os.path.join(ROOT, options.bin or ".build/debug")
    if not os.access(os.path.join(binaries, "autoserve"), os.X_OK):
        raise SystemExit(f"fleet: no autoserve binary in {binaries}; run swift build (or make release and --bin .build/release)")
    for tool in ("wrk", "git"):
        if not shutil.which(tool):
            raise SystemExit(f"fleet: {tool} is missing; make fleet installs it")
    work = tempfile.mkdtemp(prefix="autoserve-fleet-")
    fleet = Fleet(os.path.abspath(binaries), work, options.models)
    failures = []

    def check(condition, message):
        print(("ok   " if condition else "FAIL ") + message, flush=True)
        if not condition:
            failures.append(message)

    try:
        commit = fleet.create_repository()

        # 0. The baseline: the same cold start with a cache per replica.
        alone = None
        if options.compare:
            started = time.monotonic()
            for index in range(3):
                fleet.start(index, own_cache=True)
            for index in range(3):
                wait_until(f"replica {index} (own cache) is ready", 900, lambda: fleet.ready(index, label="v1", commit=commit), poll=0.2)
            alone = (time.monotonic() - started, sum(fleet.builds(index) for index in range(3)))
            print(f"baseline: 3 replicas with a cache each: {alone[1]} builds, every replica ready in {alone[0]:.1f} s", flush=True)
            for index in range(3):
                fleet.stop(index)

        # 1. Cold start of the three together.
        started = time.monotonic()
        for index in range(3):
            fleet.start(index)
        for index in range(3):
            wait_until(f"replica {index} is ready", 900, lambda: fleet.ready(index, label="v1", commit=commit), poll=0.2)
        cold = time.monotonic() - started
        builds = [fleet.builds(index) for index in range(3)]
        check(sum(builds) == len(fleet.models), f"cold start: {len(fleet.models)} models on 3 replicas, {sum(builds)} builds in all "
              f"({'+'.join(map(str, builds))}), every replica ready in {cold:.1f} s")

        fleet.start_nginx()
        wrk = fleet.start_wrk(600)
        wait_until("wrk's first answers reach the replicas", 30, lambda: sum(
            1 for line in request(fleet.url(0, "/metrics"))[1].decode().splitlines() if line.startswith('autoserve_requests_total{model="M01"')) > 0)

        # 2. A push and one webhook through nginx.
        fleet.write_model("M01", "v2")
        pushed = fleet.commit("M01 answers v2")
        sent = time.monotonic()
        status, body, _ = fleet.webhook("delivery-push-1")
        check(status == 202, f"the webhook through nginx is accepted ({status} {body.decode()[:80]})")
        converged = []
        for index in range(3):
            wait_until(f"replica {index} serves the pushed commit", 120, lambda: fleet.ready(index, label="v2", commit=pushed), poll=0.02)
            converged.append(time.monotonic() - sent)
        check(max(converged) <= 5, f"push + one webhook: every replica serves the new commit after {max(converged):.2f} s "
              f"({', '.join(f'{value:.2f}' for value in converged)})")
        check(sum(fleet.builds(index) for index in range(3)) == len(fleet.models) + 1, "the pushed version was compiled once for the fleet")

        # 3. A rolling restart under the same load.
        restart_started = time.monotonic()
        exits = []
        for index in range(3):
            exits.append(fleet.stop(index))
            fleet.start(index)
            wait_until(f"restarted replica {index} is ready", 300, lambda: fleet.ready(index, label="v2", commit=pushed), poll=0.1)
        restart = time.monotonic() - restart_started
        check(exits == [0, 0, 0], f"each replica drained and exited 0 on SIGTERM ({exits})")
        check(sum(fleet.builds(index) for index in range(3)) == 0, "the restarted replicas compiled nothing (the shared cache had every entry)")
        wrk.send_signal(signal.SIGINT)
        wrk.wait(timeout=60)
        report = open(os.path.join(work, "wrk.out")).read()
        figures = dict(re.findall(r"(\w+)=(\S*)", report.split("fleet-wrk", 1)[1])) if "fleet-wrk" in report else {}
        requests = int(figures.get("requests", 0))
        errors = sum(int(figures.get(name, 1)) for name in ("connect", "read", "write", "timeout"))
        duration = time.monotonic() - sent
        check(requests > 0 and int(figures.get("non2xx", 1)) == 0 and errors == 0,
              f"load through nginx during the push and the rolling restart ({restart:.1f} s): {requests} requests in {duration:.0f} s, "
              f"{figures.get('non2xx', '?')} not 2xx {figures.get('statuses', '')}, {errors} socket errors, p99 {figures.get('p99_ms', '?')} ms")

        # 4. A replica killed while it compiles a pushed version.
        fleet.write_model("M02", "slow", slow=1000)
        slow_commit = fleet.commit("M02 compiles for seconds")
        status, _, _ = fleet.webhook("delivery-push-2")
        check(status == 202, "the second webhook is accepted")
        victim = []
        wait_until("a replica compiles M02", 120, lambda: victim.append(compiling_replica(fleet, "AS_M02")) or victim[-1] is not None, poll=0.02)
        killed = victim[-1]
        os.killpg(fleet.processes[killed].pid, signal.SIGKILL)
        fleet.processes[killed].wait()
        survivors = [index for index in range(3) if index != killed]
        for index in survivors:
            wait_until(f"replica {index} serves the slow version", 300, lambda: fleet.ready(index, commit=slow_commit) and request(
                fleet.url(index, "/M02"), b'{"variables": {}}')[0] == 200, poll=0.1)
        fleet.start(killed)
        wait_until("the killed replica, started again, is ready", 300, lambda: fleet.ready(killed, commit=slow_commit), poll=0.1)
        check(sum(fleet.builds(index) for index in survivors) == 1, "after the kill, one of the other replicas compiled M02 (once)")
        check(fleet.builds(killed) == 0, f"replica {killed}, killed while it compiled M02 and started again, loaded every entry without compiling")
        check(json.loads(request(fleet.url(killed, "/M02"), b'{"variables": {}}')[1]).get("label") == "slow", "and serves the new M02")
        plugins = [os.path.join(folder, name) for folder, _, names in os.walk(fleet.cache) for name in names if name.endswith(".so")]
        check(bool(plugins) and all(sealed(path) for path in plugins), f"all {len(plugins)} libraries in CACHE_DIR match their seals")

        baseline = f"{alone[1]} builds, {alone[0]:.1f} s ({cold / alone[0]:.2f}×)" if alone else "not measured"
        print(f"| {time.strftime('%Y-%m-%d')} | {len(fleet.models)} | {sum(builds)} | {cold:.1f} s | {baseline} | {max(converged):.2f} s | "
              f"{restart:.1f} s | {requests} | {figures.get('non2xx')} | {errors} |")
    finally:
        fleet.shutdown()
        if failures or options.keep:
            print(f"fleet: logs in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if failures:
        raise SystemExit(f"fleet: {len(failures)} check(s) failed")


if __name__ == "__main__":
    main()
