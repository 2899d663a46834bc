# syntax=docker/dockerfile:1
# The one oxserve image: `serve`, `router`, `controller`, `agent` and `pull` are subcommands
# of its entrypoint. ONNX Runtime comes from the pinned PyPI `onnxruntime` wheel, as
# `cargo xtask setup` installs it (xtask/src/onnxruntime.rs; keep ORT_VERSION equal to its
# VERSION). Built by `cargo xtask kind load` (docker build -t oxserve:dev .).

ARG RUST_VERSION=1.92
ARG ORT_VERSION=1.31.1

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# The controller subcommand needs the cli's `kubernetes` feature (kube's client).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p oxserve-cli --features kubernetes \
    && cp target/release/oxserve /usr/local/bin/oxserve

FROM python:3.12-slim-bookworm AS onnxruntime
ARG ORT_VERSION
RUN pip download --quiet --disable-pip-version-check "onnxruntime==${ORT_VERSION}" \
        --no-deps --only-binary=:all: -d /wheels \
    && python - <<'PY'
import glob, zipfile
wheel = glob.glob("/wheels/onnxruntime-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.startswith("onnxruntime/capi/libonnxruntime.so."))
    with open("/libonnxruntime.so", "wb") as out:
        out.write(z.read(name))
PY

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libstdc++6 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/oxserve /usr/local/bin/oxserve
COPY --from=onnxruntime /libonnxruntime.so /usr/local/lib/libonnxruntime.so
ENV OXSERVE_ONNXRUNTIME_LIB=/usr/local/lib/libonnxruntime.so
# The test fixtures (a few KiB), so a cluster can serve `file:///opt/oxserve/models/…`
# without any object store (the kind e2e tests do).
COPY fixtures/models /opt/oxserve/models
# The distroless "nonroot" uid; the manifests in kind/install run as it too.
USER 65532:65532
# A writable working directory for relative paths (the agent's spill file).
WORKDIR /tmp
ENTRYPOINT ["/usr/local/bin/oxserve"]
