# Two images from this repository, both static binaries:
#   docker build .                 the processional binary: the worker, the
#                                  server, and the commands (ls, call, …)
#   docker build --target worker . processional-worker alone: a worker that
#                                  links no nats-server, half the size
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /processional ./cmd/processional && \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /processional-worker ./cmd/processional-worker

# The worker-only image: `docker run IMAGE --nats URL --token T --id ID`,
# or $PROCESSIONAL_NATS, $PROCESSIONAL_TOKEN, … as `processional worker` reads.
FROM debian:bookworm-slim AS worker
COPY --from=build /processional-worker /usr/local/bin/processional-worker
ENTRYPOINT ["/usr/local/bin/processional-worker"]

# The default image, last so that a plain `docker build` makes it.
FROM debian:bookworm-slim
COPY --from=build /processional /usr/local/bin/processional
ENTRYPOINT ["/usr/local/bin/processional"]
CMD ["help"]
