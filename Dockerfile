# AutoServe: docker build -t autoserve . && docker run --env-file env -p 80:8080 -v autoserve-state:/var/lib/autoserve autoserve
# The runtime image keeps the full Swift toolchain: model plugins are compiled with swiftc at run time.

FROM swift:6.3-bookworm AS build
# Package versions come with the base image's Debian release (bookworm); exact pins would break the build at
# Debian's next security update of these libraries, which is the update we want.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgit2-dev libcurl4-openssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --product autoserve && swift build -c release --product autoserve-worker

FROM swift:6.3-bookworm
# The runtime needs libgit2's library only (not its headers); versions as above.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgit2-1.5 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 autoserve \
    && useradd --create-home --uid 10001 --gid 10001 autoserve \
    && mkdir -p /var/lib/autoserve \
    && chown 10001:10001 /var/lib/autoserve
COPY --from=build /src/.build/release/autoserve /src/.build/release/autoserve-worker /usr/local/bin/
COPY models_serve /srv/models_serve
# 8080: an unprivileged user cannot bind ports below 1024 on most hosts; publish it as any port (-p 80:8080).
ENV MODELS_DIR=/srv/models_serve STATE_DIR=/var/lib/autoserve PORT=8080
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
WORKDIR /home/autoserve
VOLUME /var/lib/autoserve
EXPOSE 8080
# `autoserve healthcheck` probes 127.0.0.1:$PORT/healthz itself: exec form, no shell, no curl.
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s --retries=3 CMD ["autoserve", "healthcheck"]
ENTRYPOINT ["autoserve"]
CMD ["serve"]
