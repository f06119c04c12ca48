# syntax=docker/dockerfile:1
#
# snapswitch: one image with both binaries, `producer` and `worker`.
#
#   docker build -t snapswitch:local .
#   docker run --rm snapswitch:local                 # prints the worker's --help
#   docker run --rm snapswitch:local producer --help
#   docker run ... snapswitch:local worker           # see docker-compose.yml
#   docker run ... snapswitch:local producer watch
#
# Configuration: SNAPSWITCH_<KEY> environment variables and/or a TOML file
# named by SNAPSWITCH_CONFIG (docs/configuration.md).

FROM rust:1-bookworm AS builder
WORKDIR /src
# Only what the build needs: the workspace manifest, the lock file and every
# workspace member (tests/ is a member, so --locked needs it too). Copying
# directory by directory keeps a local target/ out of the image.
COPY Cargo.toml Cargo.lock ./
COPY common common
COPY producer producer
COPY worker worker
COPY tests tests
# Only the two binaries (not the tests' `bench`), without symbols and debug
# information: about 30 MB each instead of about 200 MB.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_PROFILE_RELEASE_DEBUG=0
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --package producer --package worker --bins \
 && mkdir -p /out \
 && cp target/release/producer target/release/worker /out/

FROM debian:bookworm-slim
# ca-certificates: amqps://, rediss:// and neo4j+s:// URLs verify servers
# against the system's trust store.
# curl: container health checks call the process's own HTTP server
# (`curl -fsS http://127.0.0.1:9464/readyz`, see docker-compose.yml).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 snapswitch \
 && useradd --system --uid 10001 --gid snapswitch --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin snapswitch \
 && mkdir /data \
 && chown snapswitch:snapswitch /data
COPY --from=builder /out/producer /out/worker /usr/local/bin/
ENV SNAPSWITCH_DATA_ROOT=/data
# The HTTP server (/healthz, /readyz, /metrics, /status) must listen on every
# interface in a container: the default 127.0.0.1 is unreachable from outside.
ENV SNAPSWITCH_HTTP_LISTEN=0.0.0.0:9464
EXPOSE 9464
WORKDIR /data
USER 10001:10001
# The worker drains on SIGTERM (in-flight loads get shutdown_timeout seconds);
# give the container runtime a stop timeout above that.
STOPSIGNAL SIGTERM
CMD ["worker", "--help"]
