# AutoServe: docker build -t autoserve . && docker run --env-file env -p 80:80 autoserve
# The runtime image keeps the full Swift toolchain: model plugins are compiled with swiftc at run time.

FROM swift:6.3-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgit2-dev libcurl4-openssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --product autoserve && swift build -c release --product autoserve-worker

FROM swift:6.3-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgit2-dev curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 autoserve \
    && mkdir -p /var/lib/autoserve \
    && chown autoserve /var/lib/autoserve
COPY --from=build /src/.build/release/autoserve /src/.build/release/autoserve-worker /usr/local/bin/
COPY models_serve /srv/models_serve
ENV MODELS_DIR=/srv/models_serve STATE_DIR=/var/lib/autoserve PORT=80
USER autoserve
WORKDIR /home/autoserve
VOLUME /var/lib/autoserve
EXPOSE 80
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${PORT}/healthz" || exit 1
ENTRYPOINT ["autoserve"]
CMD ["serve"]
