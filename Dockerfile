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
# curl is only for the container health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 latch \
 && useradd --system --uid 10001 --gid latch --home-dir /var/lib/latch --create-home --shell /usr/sbin/nologin latch
COPY --from=build /out/latch /usr/local/bin/latch
USER 10001:10001
WORKDIR /var/lib/latch
ENV LATCH_ADDR=0.0.0.0:8080 \
    LATCH_DATA_DIR=/var/lib/latch
EXPOSE 8080
VOLUME ["/var/lib/latch"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz >/dev/null || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["latch"]
CMD ["serve"]
