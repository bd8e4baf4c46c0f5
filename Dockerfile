# The processional binary, built from this repository: the worker, the
# server, and the commands (ls, call, …) in one image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /processional ./cmd/processional

FROM debian:bookworm-slim
COPY --from=build /processional /usr/local/bin/processional
ENTRYPOINT ["/usr/local/bin/processional"]
CMD ["help"]
