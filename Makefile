# The two commands of README.md: `make serve` and `make test`. Each installs what it needs.
SWIFT ?= swift
PORT ?= 8080
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: serve test build release deps test-deps clean

## Serve the example models of models_serve/ on port $(PORT).
serve: deps release
	MODELS_DIR=models_serve PORT=$(PORT) .build/release/autoserve serve

## Build once, then run the whole suite from that build.
test: test-deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --product autoserve

## System packages: libgit2 (git sync), libcurl (the tests' HTTP client), pkg-config.
deps:
	@if ! pkg-config --exists libgit2 2>/dev/null || [ ! -e /usr/include/x86_64-linux-gnu/curl/curl.h -a ! -e /usr/include/curl/curl.h ]; then \
		echo "Installing libgit2-dev libcurl4-openssl-dev pkg-config (apt-get)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq libgit2-dev libcurl4-openssl-dev pkg-config; \
	fi

## The tests also run git daemon and a throwaway sshd on loopback (SSH remotes).
test-deps: deps
	@if [ ! -x /usr/sbin/sshd ] || ! command -v git >/dev/null; then \
		echo "Installing openssh-server git (apt-get)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends openssh-server git; \
	fi

clean:
	rm -rf .build .autoserve
