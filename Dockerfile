# syntax=docker/dockerfile:1
#
# Switchyard's container image:
#
#   docker build -t switchyard .
#   docker run --rm -p 4000:4000 --read-only -v switchyard-data:/data switchyard
#
# `builder` compiles the release binary with the Rust toolchain (`cargo build --release --locked`,
# symbols stripped through CARGO_PROFILE_RELEASE_* so Cargo.toml's profile stays as it is).
# `runtime-base` is Debian bookworm-slim with the CA certificates and an unprivileged user (10001)
# that can write nothing but /data, so the container runs with a read-only root filesystem, and
# the image's settings. `runtime`, the last stage and so the default target, is that base plus the
# builder's binary. docs/deploying.md tells the image's facts and how to run it.
#
# `runtime-prebuilt` is the same image with a binary built elsewhere, taken from /out/switchyard
# in the image BINARY_IMAGE names: scripts/image builds the binary with the project's toolchain
# on a Debian bookworm host and runs `--target runtime-prebuilt --build-arg BINARY_IMAGE=...`
# (the builder stage is then not built).

ARG RUST_IMAGE=docker.io/library/rust:1-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim
ARG BINARY_IMAGE=scratch

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
ENV CARGO_PROFILE_RELEASE_DEBUG=false \
    CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_TERM_COLOR=never
COPY . .
# The registry and target/ are cache mounts: a rebuild after a change of the sources compiles
# Switchyard's own crates, not its dependencies.
RUN --mount=type=cache,id=switchyard-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=switchyard-target,target=/src/target \
    cargo build --release --locked --bin switchyard \
 && mkdir -p /out \
 && cp target/release/switchyard /out/switchyard

FROM ${RUNTIME_IMAGE} AS runtime-base
# CA certificates: rediss:// and a TLS PostgreSQL check their servers against them. The user owns
# /data and nothing else.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && groupadd --system --gid 10001 switchyard \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin switchyard \
 && mkdir -p /data \
 && chown 10001:10001 /data \
 && chmod 0750 /data

# The SQLite file lives on the /data volume; the working directory is /data too, so that SQLite's
# temporary files (its last fallback is the working directory) never need a writable root.
ENV HOST=0.0.0.0 \
    PORT=4000 \
    DATABASE_URL="sqlite:///data/switchyard.db?mode=rwc" \
    SHUTDOWN_DRAIN=5s
WORKDIR /data
VOLUME ["/data"]
USER 10001:10001
EXPOSE 4000

# SIGTERM drains: the port closes, /readyz answers 503, connections close spread over
# SHUTDOWN_DRAIN, then the process exits 0. Give the container a stop timeout above SHUTDOWN_DRAIN
# (docker's and podman's default is 10 s, enough for the default 5 s).
STOPSIGNAL SIGTERM

# The image has no curl or wget: bash (in every Debian image) opens the TCP connection itself
# through /dev/tcp and reads the status line of GET /healthz. PORT is read inside the container,
# so the check follows a changed PORT. It speaks plain HTTP: with TLS_CERT_FILE set, override it
# (or rely on the orchestrator's own probe).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PORT:-4000} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && read -r -t 2 _ status _ <&3 && [ \"$status\" = 200 ]"]

ENTRYPOINT ["/usr/local/bin/switchyard"]
CMD ["serve"]

FROM ${BINARY_IMAGE} AS prebuilt-binary

FROM runtime-base AS runtime-prebuilt
COPY --from=prebuilt-binary /out/switchyard /usr/local/bin/switchyard

FROM runtime-base AS runtime
COPY --from=builder /out/switchyard /usr/local/bin/switchyard
