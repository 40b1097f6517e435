# syntax=docker/dockerfile:1
# The echarging container image. Stage 1 builds the release binary in the official Rust image
# (migrations are embedded at compile time, so the binary is all we ship); stage 2 runs it as an
# unprivileged user on Debian slim. Build: docker build -t echarging:0.1.0 .   (BuildKit: the
# cache mounts keep the cargo registry and compiled dependencies between builds, so a source
# change recompiles only the echarging crate.) See deploy/README.md.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p echarging \
 && install -m 0755 target/release/echarging /usr/local/bin/echarging

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 echarging \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/echarging \
      --shell /usr/sbin/nologin echarging \
 && install -d -m 0750 -o 10001 -g 10001 /var/lib/echarging
COPY --from=build /usr/local/bin/echarging /usr/local/bin/echarging

# Defaults for a container; every ECHARGING_* setting can be overridden with `docker run -e`.
# SQLite in the volume suits one container; several replicas need a shared postgres://… URL.
ENV ECHARGING_LISTEN=0.0.0.0:8080 \
    ECHARGING_DATABASE_URL=sqlite:///var/lib/echarging/echarging.db \
    ECHARGING_LOG_FORMAT=json
WORKDIR /var/lib/echarging
VOLUME ["/var/lib/echarging"]
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8080
# SIGTERM starts the graceful stop (readiness 503, sockets closed with 1001, state flushed).
# It takes up to ECHARGING_DRAIN_DELAY + 2 x ECHARGING_SHUTDOWN_GRACE: use `docker stop -t 30`.
STOPSIGNAL SIGTERM
# No HEALTHCHECK: the slim image has no HTTP client; orchestrators probe /healthz and /readyz.
ENTRYPOINT ["/usr/local/bin/echarging"]
