"""Checks the rendered manifests (`kubectl kustomize deploy/kubernetes`, on standard input) for what the schemas
cannot: the probes ask the server's own paths on the container's port, the ConfigMap's PORT is that port, and the
grace period outlasts the drain and the stop. Prints what it checked; exits 1 naming each problem."""
import re
import sys

import yaml


def seconds(value):
    """A duration of the server's settings (30s, 1m, 1h30m, 500ms) in seconds."""
    total = 0.0
    for amount, unit in re.findall(r"(\d+)(ms|s|m|h|d)", value):
        total += int(amount) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    return total if value.strip() and not value.strip().isdigit() else float(value or 0)


documents = [document for document in yaml.safe_load_all(sys.stdin) if document]
by_kind = {}
for document in documents:
    by_kind.setdefault(document["kind"], []).append(document)
problems = []

config = by_kind["ConfigMap"][0]["data"]
deployment = by_kind["Deployment"][0]
pod = deployment["spec"]["template"]["spec"]
container = pod["containers"][0]
settings = dict(config)
settings.update({item["name"]: item["value"] for item in container.get("env", [])})

ports = {port["name"]: port["containerPort"] for port in container["ports"]}
if int(settings["PORT"]) != ports["http"]:
    problems.append(f"PORT is {settings['PORT']} but the container port is {ports['http']}")
expected = {"startupProbe": "/readyz", "readinessProbe": "/readyz", "livenessProbe": "/healthz"}
for probe, path in expected.items():
    get = container[probe]["httpGet"]
    if get["path"] != path:
        problems.append(f"{probe} asks {get['path']}, not {path}")
    if ports.get(get["port"], get["port"]) != int(settings["PORT"]):
        problems.append(f"{probe} asks port {get['port']}, not PORT {settings['PORT']}")

grace = pod["terminationGracePeriodSeconds"]
delay = seconds(settings.get("SHUTDOWN_DELAY", "0s"))
timeout = seconds(settings.get("SHUTDOWN_TIMEOUT", "30s"))
model_timeout = int(settings.get("MODEL_TIMEOUT_MS", "10000")) / 1000
if grace <= delay + model_timeout:
    problems.append(f"the grace period ({grace} s) must outlast SHUTDOWN_DELAY + MODEL_TIMEOUT_MS ({delay + model_timeout} s)")
if not delay < timeout < grace:
    problems.append(f"SHUTDOWN_TIMEOUT ({timeout} s) must be longer than SHUTDOWN_DELAY ({delay} s) and shorter than the grace period ({grace} s)")
if "PEERS" in settings and settings["PEERS"]:
    services = {service["metadata"]["name"]: service for service in by_kind["Service"]}
    host, _, port = settings["PEERS"].rpartition(":")
    service = services.get(host.split(".")[0])
    if service is None or service["spec"].get("clusterIP") != "None":
        problems.append(f"PEERS names {host}, which is not a headless Service of these manifests")
    elif int(port) != int(settings["PORT"]):
        problems.append(f"PEERS asks port {port}, not PORT {settings['PORT']}")
# CACHE_DIR is a mounted volume that every replica shares (a ReadWriteMany claim), and STATE_DIR is not on it.
mounts = {mount["mountPath"]: mount["name"] for mount in container.get("volumeMounts", [])}
volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
claims = {claim["metadata"]["name"]: claim for claim in by_kind.get("PersistentVolumeClaim", [])}
cache_dir = settings.get("CACHE_DIR")
if cache_dir:
    volume = volumes.get(mounts.get(cache_dir.rstrip("/"), ""))
    if volume is None:
        problems.append(f"CACHE_DIR {cache_dir} is not a mounted volume")
    elif "persistentVolumeClaim" in volume:
        claim = claims.get(volume["persistentVolumeClaim"]["claimName"])
        if claim is None or "ReadWriteMany" not in claim["spec"]["accessModes"]:
            problems.append(f"CACHE_DIR {cache_dir} is not on a ReadWriteMany claim of these manifests: replicas cannot share it")
    if settings.get("STATE_DIR", "").rstrip("/") == cache_dir.rstrip("/"):
        problems.append("STATE_DIR and CACHE_DIR are the same folder; STATE_DIR is each replica's own")
for service in by_kind["Service"]:
    selector = service["spec"]["selector"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    if any(labels.get(key) != value for key, value in selector.items()):
        problems.append(f"Service {service['metadata']['name']} selects {selector}, which the pods do not carry")

if problems:
    for problem in problems:
        print(f"deploy/kubernetes: {problem}", file=sys.stderr)
    sys.exit(1)
print(f"deploy/kubernetes: {len(documents)} documents; probes on port {ports['http']}; grace {grace} s > drain {delay} s + {model_timeout} s; "
      f"SHUTDOWN_TIMEOUT {timeout} s; CACHE_DIR {cache_dir or 'STATE_DIR/cache'}")
