#!/usr/bin/env python3
"""Rows as wide as real ones (BENCHMARKS.md): what a request costs as its number of variables grows.

For each width (4, 16, 63, 200 and 500 numeric variables) three models are generated into one models folder and served
by one release server in process isolation:
- Any<N>: a trivial Swift model that reads its variables as `[String: JSON]` and answers their count;
- Typed<N>: a Swift model whose `Variables` struct has N `Double` fields (as docs/models.md teaches), answering their sum;
- Tree<N>: a LightGBM model of 100 trees of 31 leaves trained on N features (`kind: lightgbm`).
Each is loaded on its native route (one row per request, wrk -t1 -c32), with a batch of 1,000 rows (wrk -t1 -c4;
rows/s), and the tree model through the Open Inference Protocol v2 (N tensors of shape [1]). Every load of a round
runs once, in turn; ROUNDS rounds; each figure is the median of its rounds. Beside req/s, the CPU the server and the
model's workers spent per request (from /proc: utime + stime of the server and of its worker processes over the
load), in microseconds. Ratios are against the 4-variable row of the same model and route in the same run.

With --profile Typed500-native,Any63-batch,... the loads named are recorded instead with `perf record -e cpu-clock`
(sampling: this VM has no hardware counters), the server and the workers apart, and the functions that took the most
of each process's time are printed, demangled (with PERF_CHILDREN=1, the time of each function with what it called).

Usage: .venv/bin/python bench/width.py [--bin .build/release/autoserve] [--widths 4,63,500] [--rounds 3] [--duration 5]
       [--profile <model><width>-<route>,...] [--only <model>-<route>,...]
(needs lightgbm, numpy and scikit-learn in the interpreter: `make bench-trees` installs them; wrk; swiftc; perf for
--profile)."""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import lightgbm as lgb
import numpy as np
from sklearn.datasets import make_classification

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")


def names(width):
    return ["f%03d" % index for index in range(width)]


def write_models(folder, widths):
    rng = np.random.default_rng(7)
    rows = {}
    for width in widths:
        variables = names(width)
        any_folder = os.path.join(folder, "Any%d" % width)
        os.makedirs(any_folder)
        with open(os.path.join(any_folder, "etls.swift"), "w") as f:
            f.write('import AutoServeModel\n\nstruct Any%d {\n    init(path: String) {}\n\n' % width)
            f.write('    func transform_predict(_ variables: [String: JSON]) -> [String: JSON] {\n')
            f.write('        ["count": .number(Double(variables.count))]\n    }\n}\n')
        typed_folder = os.path.join(folder, "Typed%d" % width)
        os.makedirs(typed_folder)
        with open(os.path.join(typed_folder, "etls.swift"), "w") as f:
            f.write('import AutoServeModel\n\nstruct Variables: Decodable {\n')
            for name in variables:
                f.write('    let %s: Double\n' % name)
            f.write('}\n\nstruct Output: Encodable {\n    let sum: Double\n}\n\n')
            f.write('struct Typed%d {\n    init(path: String) {}\n\n' % width)
            f.write('    func transform_predict(_ variables: Variables) -> Output {\n')
            f.write('        Output(sum: %s)\n    }\n}\n' % " + ".join("variables.%s" % name for name in variables))
        features, labels = make_classification(n_samples=4000, n_features=width, n_informative=min(width, 10), n_redundant=0, random_state=7)
        booster = lgb.train({"objective": "binary", "num_leaves": 31, "verbose": -1, "seed": 7},
                            lgb.Dataset(features, labels, feature_name=variables), num_boost_round=100)
        tree_folder = os.path.join(folder, "Tree%d" % width)
        os.makedirs(tree_folder)
        booster.save_model(os.path.join(tree_folder, "model.txt"))
        with open(os.path.join(tree_folder, "model.yaml"), "w") as f:
            f.write("kind: lightgbm\nfile: model.txt\n")
        rows[width] = [dict(zip(variables, (round(float(value), 4) for value in rng.normal(size=width)))) for _ in range(1000)]
    return rows


def lua(path, url_path, body):
    with open(path, "w") as f:
        f.write('wrk.method = "POST"\nwrk.path = "%s"\nwrk.headers["Content-Type"] = "application/json"\n' % url_path)
        f.write("wrk.body = [==[%s]==]\n" % body)


def process_tree(pid):
    """The server and every process under it (its workers)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = open("/proc/%s/stat" % entry).read().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry))
            except OSError:
                continue
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cpu_seconds(pids):
    """utime + stime of each process, in seconds, by pid (a process that ended is left out)."""
    times = {}
    for pid in pids:
        try:
            fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
            times[pid] = (int(fields[11]) + int(fields[12])) / TICK
        except OSError:
            continue
    return times


def settle(server, limit=60):
    """Waits until the server and its workers are idle (under 5 % of a core over 0.2 s): the requests a load left in
    flight when wrk stopped (whole batches) would otherwise hold the workers while the next load starts, and its first
    requests would find a worker behind (503)."""
    deadline = time.time() + limit
    while time.time() < deadline:
        pids = process_tree(server)
        before = cpu_seconds(pids)
        time.sleep(0.2)
        after = cpu_seconds(pids)
        if sum(after[pid] - before[pid] for pid in after if pid in before) <= 0.01:
            return


def run_wrk(script, port, connections, duration, server):
    settle(server)
    pids = process_tree(server)
    before = cpu_seconds(pids)
    output = subprocess.run(["wrk", "-t1", "-c%d" % connections, "-d%ds" % duration, "-s", script, "http://127.0.0.1:%d" % port],
                            check=True, capture_output=True, text=True).stdout
    after = cpu_seconds(pids)
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    server_cpu = after.get(server, 0) - before.get(server, 0)
    workers_cpu = sum(after[pid] - before[pid] for pid in after if pid != server and pid in before)
    return requests / duration, server_cpu / max(requests, 1) * 1e6, workers_cpu / max(requests, 1) * 1e6, int(errors.group(1)) if errors else 0


def profile(script, port, connections, duration, server, work, top=int(os.environ.get("PERF_TOP", "25"))):
    """The functions that took the most of the server's and of the workers' time under one load (perf, cpu-clock)."""
    workers = [pid for pid in process_tree(server) if pid != server]
    recorders = []
    for label, pids in (("server", [server]), ("workers", workers)):
        data = os.path.join(work, "%s.perf" % label)
        graph = ["-g"] if os.environ.get("PERF_CHILDREN") else []
        recorder = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "4000"] + graph + ["-o", data, "-p", ",".join(map(str, pids))],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        recorders.append((label, data, recorder))
    time.sleep(0.5)  # perf attaches
    rate = run_wrk(script, port, connections, duration, server)[0]
    for _, _, recorder in recorders:
        recorder.send_signal(2)
        recorder.wait(timeout=60)
    report = {}
    for label, data, _ in recorders:
        children = ["--children", "-g", "none"] if os.environ.get("PERF_CHILDREN") else ["--no-children"]
        text = subprocess.run(["perf", "report", "-i", data] + children + ["--sort", "dso,symbol", "--stdio", "--percent-limit", "0.7"],
                              capture_output=True, text=True).stdout
        lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")][:top]
        demangled = subprocess.run(["swift", "demangle", "--simplified"], input="\n".join(lines), capture_output=True, text=True).stdout
        report[label] = demangled
        if os.environ.get("PERF_KEEP"):
            shutil.copy(data, os.path.join(os.environ["PERF_KEEP"], "%s.perf" % label))
    return rate, report


def failed_rows(port, path, body):
    """How many rows of one request of a load failed (a batch's rows answered with `_error`), and the first failure."""
    request = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=body.encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        document = json.loads(answer.read())
    failed = [output for output in document.get("outputs", []) if isinstance(output, dict) and "_error" in output]
    return len(failed), (failed[0] if failed else None)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=os.path.join(ROOT, ".build", "release", "autoserve"))
    parser.add_argument("--widths", default=os.environ.get("WIDTHS", "4,16,63,200,500"))
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("ROUNDS", "3")))
    parser.add_argument("--duration", type=int, default=int(os.environ.get("DURATION", "5")))
    parser.add_argument("--port", type=int, default=18490)
    parser.add_argument("--profile", default="", help="loads to record with perf instead of measuring, e.g. Typed500-native,Any63-batch")
    parser.add_argument("--only", default="", help="the loads to run, as <model>-<route>, e.g. Tree-native,Tree-v2 (all when empty)")
    arguments = parser.parse_args()
    widths = [int(width) for width in arguments.widths.split(",")]
    if 4 not in widths:
        widths.insert(0, 4)
    work = tempfile.mkdtemp(prefix="autoserve-width-")
    server = None
    try:
        models = os.path.join(work, "models")
        os.makedirs(models)
        rows = write_models(models, widths)
        loads = []  # (label, model kind, width, route, path, connections, rows per request)
        for width in widths:
            one = json.dumps({"variables": rows[width][0]})
            batch = json.dumps({"rows": rows[width]})
            v2 = json.dumps({"inputs": [{"name": name, "datatype": "FP64", "shape": [1], "data": [value]} for name, value in rows[width][0].items()]})
            for kind in ("Any", "Typed", "Tree"):
                model = "%s%d" % (kind, width)
                for route, path, body, connections, per in (("native", "/" + model, one, 32, 1), ("batch", "/" + model, batch, 4, 1000)):
                    script = os.path.join(work, "%s-%s.lua" % (model, route))
                    lua(script, path, body)
                    loads.append((kind, width, route, path, script, connections, per, body))
            script = os.path.join(work, "Tree%d-v2.lua" % width)
            lua(script, "/v2/models/Tree%d/infer" % width, v2)
            loads.append(("Tree", width, "v2", "/v2/models/Tree%d/infer" % width, script, 32, 1, v2))
        environment = dict(os.environ, MODELS_DIR=models, STATE_DIR=os.path.join(work, "state"), PORT=str(arguments.port), HOST="127.0.0.1",
                           LOG_LEVEL="warning", MAX_BODY_BYTES=str(32 << 20))
        server = subprocess.Popen([arguments.bin, "serve"], env=environment, stderr=open(os.path.join(work, "server.log"), "w"))
        deadline = time.time() + 900
        while True:
            try:
                index = json.load(urllib.request.urlopen("http://127.0.0.1:%d/" % arguments.port, timeout=5))
                server_part = index.pop("_server", {})
                if (server_part.get("last_sync") or {}).get("result") == "success" and all(m.get("state") != "loading" for m in index.values()):
                    break
            except OSError:
                pass
            if time.time() > deadline or server.poll() is not None:
                sys.exit("the server did not load the models:\n" + open(os.path.join(work, "server.log")).read()[-3000:])
            time.sleep(0.5)
        failed = [name for name, model in index.items() if model.get("state") != "ready"]
        if failed:
            sys.exit("models that failed: %s" % failed)
        if arguments.only:
            wanted = set(arguments.only.split(","))
            loads = [load for load in loads if "%s-%s" % (load[0], load[2]) in wanted]
        # A batch whose rows fail answers fast: its figure would measure the refusals. They are counted and shown.
        refused = {}
        for kind, width, route, path, script, connections, per, body in loads:
            count, first = failed_rows(arguments.port, path, body)
            refused[(kind, width, route)] = count
            if count:
                print("%s: %d of the batch's rows failed, the first: %s" % (path, count, first), file=sys.stderr)
        if arguments.profile:
            wanted = set(arguments.profile.split(","))
            for kind, width, route, path, script, connections, per, body in loads:
                name = "%s%d-%s" % (kind, width, route)
                if name not in wanted:
                    continue
                rate, report = profile(script, arguments.port, connections, arguments.duration, server.pid, work)
                print("## %s: %s rows/s while recorded" % (name, format(int(rate * per), ",")))
                for label, text in report.items():
                    print("### %s\n```\n%s```" % (label, text))
            return
        figures = {}
        for _ in range(arguments.rounds):
            for kind, width, route, path, script, connections, per, body in loads:
                rate, server_us, workers_us, errors = run_wrk(script, arguments.port, connections, arguments.duration, server.pid)
                figures.setdefault((kind, width, route), []).append((rate * per, server_us / per, workers_us / per, errors))
        print("machine: %d cores, %s; %s UTC; %d rounds of %d s; wrk -t1 -c32 (batches of 1,000 rows: -c4)"
              % (os.cpu_count(), os.uname().release, time.strftime("%Y-%m-%d %H:%M", time.gmtime()), arguments.rounds, arguments.duration))
        print()
        print("| model | variables | route | rows/s | × 4 variables | server µs/row | workers µs/row | answers not 2xx | rows failed of a batch |")
        print("|---|---|---|---|---|---|---|---|---|")
        for kind in ("Any", "Typed", "Tree"):
            for route in ("native", "batch", "v2"):
                if (kind, 4, route) not in figures:
                    continue
                base = statistics.median(value[0] for value in figures[(kind, 4, route)])
                for width in widths:
                    values = figures[(kind, width, route)]
                    rate = statistics.median(value[0] for value in values)
                    print("| %s | %d | %s | %s | %.2f | %.1f | %.1f | %d | %s |" % (
                        kind, width, route, format(int(rate), ","), rate / base, statistics.median(value[1] for value in values),
                        statistics.median(value[2] for value in values), sum(value[3] for value in values),
                        "%d of 1,000" % refused[(kind, width, route)] if route == "batch" else ""))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
