# Multi-stage: scripts/release builds the release archive (libpq and OpenSSL linked in, the
# `bundled` feature), and its bin/herald runs on a slim Debian with no libpq5 or libssl3.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# .git is not copied (.dockerignore): pass the commit time to date the archive's files.
ARG SOURCE_DATE_EPOCH=0
RUN archive=$(scripts/release) \
    && mkdir /out && tar -xzf "$archive" -C /out && mv /out/herald-* /out/herald

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home herald
# The binary's OpenSSL trusts /etc/ssl/cert.pem (TLS to a database with sslrootcert=system,
# Web Push). Copied, not installed: the ca-certificates package would bring libssl3 along.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/cert.pem
COPY --from=build /out/herald/bin/herald /usr/local/bin/herald
USER herald
ENV HERALD_BIND=0.0.0.0:8080 RUST_LOG=info
EXPOSE 8080
CMD ["herald", "serve"]
