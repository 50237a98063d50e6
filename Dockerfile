# syntax=docker/dockerfile:1
# replaylink's image: a static binary (CGO_ENABLED=0) on distroless/static,
# running as the non-root user 65532. No shell, no package manager.
#   docker build -t replaylink/replaylink:local .
#   docker run --rm replaylink/replaylink:local version

FROM golang:1.26-alpine AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/replaylink ./cmd/replaylink && \
    mkdir -p /out/data/spool

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/replaylink /usr/local/bin/replaylink
# The spool needs a directory the non-root user can write; mount a volume at
# /var/lib/replaylink to keep unsent documents across restarts.
COPY --from=build --chown=65532:65532 /out/data /var/lib/replaylink
WORKDIR /var/lib/replaylink
ENV REPLAYLINK_SPOOL_DIR=/var/lib/replaylink/spool
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/replaylink"]
CMD ["serve"]
