# guardrail in one small image: the CLI (`check`, `verify`, `policies`) and the GitHub App (`serve`),
# running as a non-root user, with kubectl (and so `kubectl kustomize`) beside it.
#
#   docker build -t ghcr.io/acme/guardrail:0.1.0 .
#   docker run --rm -v "$PWD:/work" -w /work ghcr.io/acme/guardrail:0.1.0 check deploy/
#   docker run -p 3000:3000 --env-file guardrail-app/guardrail.env ... ghcr.io/acme/guardrail:0.1.0   (serve)
ARG RUST_VERSION=1.87
ARG KUBECTL_VERSION=v1.32.4

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Dependencies in a layer of their own, rebuilt only when Cargo.toml or Cargo.lock change: build them
# once against empty sources, then throw guardrail's own artefacts away.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches tests/it \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && echo 'fn main() {}' > benches/scan.rs && touch tests/it/main.rs \
 && echo 'fn main() {}' > build.rs \
 && cargo build --release --locked --bin guardrail \
 && rm -rf src build.rs target/release/guardrail* target/release/deps/guardrail-* target/release/deps/libguardrail-* \
           target/release/.fingerprint/guardrail-* target/release/build/guardrail-*
COPY build.rs ./
COPY src src
COPY policies policies
COPY templates templates
RUN cargo build --release --locked --bin guardrail \
 && strip --strip-debug target/release/guardrail \
 && mkdir -p /out/data && cp target/release/guardrail /out/

# kubectl from the Kubernetes release, checked against its published checksum.
FROM debian:bookworm-slim AS kubectl
ARG KUBECTL_VERSION
ARG TARGETARCH=amd64
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
 && curl -fsSLo /kubectl "https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/${TARGETARCH}/kubectl" \
 && curl -fsSLo /kubectl.sha256 "https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/${TARGETARCH}/kubectl.sha256" \
 && echo "$(cat /kubectl.sha256)  /kubectl" | sha256sum --check \
 && chmod 0755 /kubectl

# glibc, CA certificates and a `nonroot` user (65532), nothing else: no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/guardrail /usr/local/bin/guardrail
COPY --from=kubectl /kubectl /usr/local/bin/kubectl
# Where the SQLite database lives when nothing else is mounted (deploy/ mounts a volume there).
COPY --from=build --chown=65532:65532 /out/data /var/lib/guardrail
USER 65532:65532
WORKDIR /var/lib/guardrail
ENV GUARDRAIL_LISTEN=0.0.0.0:3000 \
    GUARDRAIL_DATABASE_URL=sqlite:///var/lib/guardrail/guardrail.db
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/guardrail"]
CMD ["serve"]
