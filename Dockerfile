# syntax=docker/dockerfile:1
# Junction's container image: the static binary on an empty base, run as
# a user of its own, its store in the /data volume.
#
#   docker build -t junction .
#   docker run -p 127.0.0.1:7480:7480 -v junction-data:/data junction
#   docker exec CONTAINER junction acl bootstrap    # the first token
# Publish the port beyond loopback once the first token is bootstrapped:
# until then, whoever reaches the port first could take it.
#
# Access control is on (JUNCTION_AUTH=true): the container listens on every
# interface, which Junction refuses to serve open. For a throwaway trial on
# your own machine only: -p 127.0.0.1:7480:7480 -e JUNCTION_AUTH=false
# -e JUNCTION_INSECURE_NO_AUTH=true.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The build context has no .git: the commit and its date come as
# arguments (docker build --build-arg COMMIT=$(git rev-parse HEAD)
# --build-arg DATE=$(git log -1 --format=%cI) --build-arg VERSION=...).
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=unknown
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -buildid= -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.date=${DATE}" \
      -o /out/junction ./cmd/junction \
    && mkdir -p /out/data /out/tmp && chmod 1777 /out/tmp

# The image itself: only the binary. The build stage can be replaced by a
# binary built elsewhere (make release) with --build-context build=DIR,
# DIR holding out/junction, out/data, out/tmp (mode 1777) and
# etc/ssl/certs/ca-certificates.crt.
FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/tmp /tmp
COPY --from=build /out/junction /usr/local/bin/junction
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV JUNCTION_LISTEN=0.0.0.0:7480 \
    JUNCTION_DATA_DIR=/data \
    JUNCTION_AUTH=true \
    JUNCTION_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 7480
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/junction", "ready", "--addr", "127.0.0.1:7480"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/junction"]
CMD ["server"]
