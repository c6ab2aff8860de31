# syntax=docker/dockerfile:1
# snip in a small image: built in a Rust image with the dependencies in a layer of their
# own (cargo-chef), run from a distroless image as a non-root user. `docker build -t snip .`
# The SQLite default keeps its file in the /data volume; `snip healthcheck` asks /readyz.

FROM rust:1.95-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.73
WORKDIR /src

# The dependency recipe changes only when Cargo.toml or Cargo.lock does.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bin snip \
    && install -D -m 0755 target/release/snip /out/snip \
    && install -d -o 65532 -g 65532 /out/data

# glibc, CA certificates (for imports over HTTPS) and a `nonroot` user (uid 65532); no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/snip /usr/local/bin/snip
COPY --from=builder --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
ENV SNIP_LISTEN=0.0.0.0:8080 \
    SNIP_DATABASE_URL=sqlite:///data/snip.db
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/snip", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/snip"]
CMD ["serve"]
