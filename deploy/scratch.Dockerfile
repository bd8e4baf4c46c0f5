# The image of docker-compose.scratch.yml: both binaries and a shell, FROM
# scratch, for a machine that reaches no image registry (CI's). Nothing is
# pulled or built in it: its context is a folder holding static binaries
# built on the host and Debian's static busybox (busybox-static),
#
#   CGO_ENABLED=0 go build -trimpath -o ctx/processional ./cmd/processional
#   CGO_ENABLED=0 go build -trimpath -o ctx/processional-worker ./cmd/processional-worker
#   cp /bin/busybox ctx/busybox
#   DOCKER_BUILDKIT=0 docker build -f deploy/scratch.Dockerfile -t processional-scratch ctx
#
# busybox is /bin/sh, and runs its applets (sleep, …) with no link of
# their own: the compose file's master runs a shell script.
FROM scratch
COPY busybox /bin/sh
COPY processional processional-worker /usr/local/bin/
ENV PATH=/usr/local/bin:/bin
ENTRYPOINT ["/usr/local/bin/processional"]
CMD ["help"]
