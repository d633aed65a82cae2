# syntax=docker/dockerfile:1
# Latch: a static Go binary on a slim Debian base, running as a non-root user.

FROM golang:1.26-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOTOOLCHAIN=auto
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags "-s -w -X github.com/latch-dev/latch/buildinfo.linked=${VERSION}" -o /out/latch ./cmd/latch

FROM debian:bookworm-slim
# ca-certificates for outgoing TLS (SMTP, SMS webhook, PostgreSQL). The
# health check is `latch healthcheck`: no curl in the image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 latch \
 && useradd --system --uid 10001 --gid latch --home-dir /var/lib/latch --create-home --shell /usr/sbin/nologin latch
COPY --from=build /out/latch /usr/local/bin/latch
USER 10001:10001
WORKDIR /var/lib/latch
# :8080 listens on every interface; without LATCH_ISSUER the development
# issuer is then http://localhost:8080, the address people browse. The data
# directory holds the development SQLite database and secret key; production
# uses PostgreSQL and LATCH_SECRET_KEY, so no volume is declared: mount one on
# /var/lib/latch only to keep development data.
ENV LATCH_ADDR=:8080 \
    LATCH_DATA_DIR=/var/lib/latch
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["latch", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["latch"]
CMD ["serve"]
