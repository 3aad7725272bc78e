# syntax=docker/dockerfile:1
# One image for every rsvp binary; the container's command picks the binary:
#   docker build -t rsvp:local .
#   docker run --rm rsvp:local command-api --help
#   docker run --rm rsvp:local rsvp-admin migrate        (DATABASE_URL in the environment)
# Binaries: command-api, query-api, projector, dispatcher, rsvp-admin, rsvp-reseal and, once the
# workspace has the `audit` crate, rsvp-audit. deploy/compose.yaml and deploy/k8s/ run this image.
# README, "Deploy: images, compose, Kubernetes".

# --- build: the workspace's release binaries (librdkafka is compiled from source by rdkafka-sys,
# statically; zlib is the system's) ---
FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# The cache mounts keep the registry and the target folder between builds (BuildKit); the binaries
# are copied out of the cached target folder into /out, which the next stage takes.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    set -eux; \
    cargo build --release --locked --workspace --bins --exclude rsvp-tests --exclude rsvp-bench; \
    mkdir -p /out; \
    for bin in command-api query-api projector dispatcher rsvp-admin rsvp-reseal; do \
      cp "target/release/$bin" /out/; \
    done; \
    if [ -d audit ]; then cp target/release/rsvp-audit /out/; fi

# --- runtime: Debian slim, which has all the binaries link (glibc, libgcc_s, zlib); nothing
# installed on top (TLS roots are compiled in: webpki-roots); a non-root user ---
FROM debian:bookworm-slim AS runtime
RUN groupadd --system --gid 10001 rsvp \
    && useradd --system --uid 10001 --gid rsvp --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin rsvp
COPY --from=builder /out/ /usr/local/bin/
# Every binary starts and finds its libraries (a missing one fails the build, not the deploy).
RUN set -eux; for bin in /usr/local/bin/*; do "$bin" --help >/dev/null; done
# The container health checks of deploy/compose.yaml (bash alone: no curl in the image).
COPY --chmod=0755 deploy/docker/rsvp-probe /usr/local/bin/rsvp-probe
USER 10001:10001
ENV RUST_LOG=info \
    RSVP_LOG_FORMAT=json \
    COMMAND_API_HOST=0.0.0.0 \
    QUERY_API_HOST=0.0.0.0 \
    PROJECTOR_HOST=0.0.0.0 \
    DISPATCHER_HOST=0.0.0.0
# command-api, query-api, projector, dispatcher (each only its own).
EXPOSE 8081 8082 8083 8084
# No ENTRYPOINT: the command is the binary and its arguments.
CMD ["command-api", "--help"]
