# Multi-stage: build with the Rust toolchain, run on a slim Debian with only libpq.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libpq-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin herald

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home herald
COPY --from=build /src/target/release/herald /usr/local/bin/herald
USER herald
ENV HERALD_BIND=0.0.0.0:8080 RUST_LOG=info
EXPOSE 8080
CMD ["herald", "serve"]
