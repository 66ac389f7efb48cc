#!/usr/bin/env bash
# Container images of CellCelly: the services' image and the operator's.
#   scripts/images.sh base         podman only: a local Debian bookworm + Python 3.11 base from debootstrap
#                                  (for machines that cannot pull python:3.11-slim-bookworm)
#   scripts/images.sh build        build both images (docker when an engine answers, else podman)
#   scripts/images.sh kind-load    docker + kind: load both images into the kind cluster $KIND_CLUSTER
#   scripts/images.sh names        print the two image references
#   scripts/images.sh build-backends  podman: localhost/cellcelly-{kafka,voltdb,hazelcast}:<server version> on
#                                  localhost/cellcelly-jre:17 (the debootstrap base + Debian's headless Java 17),
#                                  holding the jars scripts/{kafka,voltdb,hazelcast}.sh fetch cached (no download
#                                  in the build); podman's layer cache rebuilds only what changed
#   scripts/images.sh build-postgresql  podman: localhost/cellcelly-postgresql:15 (the debootstrap base + Debian's
#                                  postgresql-15, the official postgres image's env contract); build-backends makes it too
#   scripts/images.sh backend-names   print the back-end image references (the three JVM ones and PostgreSQL)
# Environment: VERSION (tag, default from pyproject), REGISTRY (default ghcr.io/cellcelly),
#   BASE (build-arg; default: the official slim image with docker, localhost/python-bookworm:3.11 with podman),
#   ENGINE (docker | podman; default: docker if `docker info` answers), KIND_CLUSTER (default cellcelly-e2e).
set -euo pipefail
ME=images.sh
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

VERSION="${VERSION:-$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n1)}"
REGISTRY="${REGISTRY:-ghcr.io/cellcelly}"
SERVICES_IMAGE="$REGISTRY/cellcelly:$VERSION"
OPERATOR_IMAGE="$REGISTRY/cellcelly-operator:$VERSION"
LOCAL_DEBIAN=localhost/debian-bookworm
LOCAL_BASE=localhost/python-bookworm:3.11
WORK="${CELLCELLY_IMAGES_WORK:-/var/tmp/cellcelly-images}"
# podman here: runc (crun fails), higher ulimits, host networking (see images/podman/containers.conf)
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/images/podman/containers.conf}"

engine() {
  if [ -n "${ENGINE:-}" ]; then
    echo "$ENGINE"
  elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    echo docker
  elif command -v podman >/dev/null 2>&1; then
    echo podman
  else
    die "neither a Docker engine nor podman: apt-get install podman buildah runc debootstrap"
  fi
}

has_image() { # ENGINE REF
  "$1" image inspect "$2" >/dev/null 2>&1
}

cmd_base() {
  need podman "apt-get install podman buildah runc"
  need debootstrap "apt-get install debootstrap"
  if ! has_image podman "$LOCAL_DEBIAN"; then
    mkdir -p "$WORK"
    if [ ! -x "$WORK/rootfs/usr/bin/apt-get" ]; then
      rm -rf "$WORK/rootfs"
      debootstrap --variant=minbase bookworm "$WORK/rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" \
        >"$WORK/debootstrap.log" 2>&1 || die "debootstrap failed (see $WORK/debootstrap.log)"
    fi
    rm -rf "$WORK/rootfs/var/cache/apt/archives/"*.deb "$WORK/rootfs/var/lib/apt/lists/"*
    tar -C "$WORK/rootfs" -c . | podman import - "$LOCAL_DEBIAN"
  fi
  if ! has_image podman "$LOCAL_BASE"; then
    local ctx
    ctx="$(mktemp -d)"
    cp images/base/Containerfile "$ctx/"
    cp "${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}" "$ctx/ca-certificates.crt"
    podman build --format docker -t "$LOCAL_BASE" --build-arg "DEBIAN=$LOCAL_DEBIAN" "$ctx"
    rm -rf "$ctx"
  fi
  echo "$ME: base $LOCAL_BASE ready"
}

build_one() { # ENGINE DOCKERFILE REF BASE
  local eng="$1" file="$2" ref="$3" base="$4" revision
  revision="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  local args=(-f "$file" -t "$ref" --build-arg "BASE=$base" --build-arg "VERSION=$VERSION"
    --build-arg "REVISION=$revision")
  if [ "$eng" = podman ]; then
    # docker format keeps HEALTHCHECK (OCI has none); buildah 1.28 needs the ignore file named
    podman build --format docker --ignorefile "$file.dockerignore" "${args[@]}" .
  else
    DOCKER_BUILDKIT=1 docker build "${args[@]}" .
  fi
}

cmd_build() {
  local eng base
  eng="$(engine)"
  if [ "$eng" = podman ]; then
    base="${BASE:-$LOCAL_BASE}"
    [ "$base" != "$LOCAL_BASE" ] || has_image podman "$LOCAL_BASE" || cmd_base
  else
    base="${BASE:-python:3.11-slim-bookworm}"
  fi
  # the stored procedures, compiled, go into the package: a service loads them into a VoltDB that has
  # no schema yet (the operator's managed VoltDB starts empty)
  bash scripts/voltdb.sh fetch >&2 || die "the VoltDB jars (scripts/voltdb.sh fetch: java, javac, mvn) are needed"
  bash scripts/voltdb.sh jar services/cellcelly/adapters/voltdb/procedures.jar >&2 ||
    die "compiling the VoltDB procedures failed"
  build_one "$eng" images/cellcelly/Dockerfile "$SERVICES_IMAGE" "$base"
  build_one "$eng" images/operator/Dockerfile "$OPERATOR_IMAGE" "$base"
  echo "$ME: built $SERVICES_IMAGE and $OPERATOR_IMAGE with $eng (base $base)"
}

DOWNLOADS="${CELLCELLY_DOWNLOADS:-$HOME/.cache/cellcelly}"
LOCAL_JRE=localhost/cellcelly-jre:17
KAFKA_VERSION=4.4.0
VOLTDB_VERSION=10.1.1
HAZELCAST_VERSION=5.7.0
POSTGRESQL_IMAGE=localhost/cellcelly-postgresql:15
BACKEND_IMAGES="localhost/cellcelly-kafka:$KAFKA_VERSION localhost/cellcelly-voltdb:$VOLTDB_VERSION localhost/cellcelly-hazelcast:$HAZELCAST_VERSION $POSTGRESQL_IMAGE"

backend_one() { # NAME VERSION DIR:JARS_DIR (a build context: images/NAME's files plus the cached jars)
  local name="$1" version="$2" jars_to="$3" ctx
  shift 3
  ctx="$(mktemp -d)"
  cp -a "images/$name/." "$ctx/"
  mkdir -p "$ctx/$jars_to"
  cp -p "$@" "$ctx/$jars_to/"
  podman build --format docker -t "localhost/cellcelly-$name:$version" --build-arg "BASE=$LOCAL_JRE" \
    --build-arg "VERSION=$version" -f "$ctx/Containerfile" "$ctx"
  rm -rf "$ctx"
}

cmd_build_backends() {
  need podman "apt-get install podman buildah runc"
  local kafka="$DOWNLOADS/kafka-$KAFKA_VERSION" volt="$DOWNLOADS/voltdb-$VOLTDB_VERSION/lib"
  local hz="$DOWNLOADS/hazelcast-$HAZELCAST_VERSION/hazelcast-$HAZELCAST_VERSION.jar"
  [ -f "$kafka/lib/.complete" ] && [ -f "$kafka/tools/.complete" ] ||
    die "Kafka jars not cached: scripts/kafka.sh fetch && scripts/kafka.sh fetch-tools"
  [ -f "$volt/.complete" ] || die "VoltDB jars not cached: scripts/voltdb.sh fetch"
  [ -s "$hz" ] || die "Hazelcast jar not cached: scripts/hazelcast.sh fetch"
  has_image podman "$LOCAL_DEBIAN" || cmd_base
  podman build --format docker -t "$LOCAL_JRE" --build-arg "DEBIAN=$LOCAL_DEBIAN" -f images/jre/Containerfile images/jre
  backend_one kafka "$KAFKA_VERSION" libs "$kafka"/lib/*.jar "$kafka"/tools/*.jar
  backend_one voltdb "$VOLTDB_VERSION" lib "$volt"/*.jar
  backend_one hazelcast "$HAZELCAST_VERSION" lib "$hz"
  cmd_build_postgresql
  echo "$ME: built $BACKEND_IMAGES"
}

cmd_build_postgresql() { # no jars: Debian's own server on the debootstrap base, not on the JRE
  need podman "apt-get install podman buildah runc"
  has_image podman "$LOCAL_DEBIAN" || cmd_base
  podman build --format docker -t "$POSTGRESQL_IMAGE" --build-arg "DEBIAN=$LOCAL_DEBIAN" \
    -f images/postgresql/Containerfile images/postgresql
}

cmd_kind_load() {
  need kind "https://kind.sigs.k8s.io"
  kind load docker-image --name "${KIND_CLUSTER:-cellcelly-e2e}" "$SERVICES_IMAGE" "$OPERATOR_IMAGE"
}

case "${1:-}" in
  base | build | build-backends | build-postgresql)
    # one build at a time on this machine: a second waits, then finds the first's layers cached (CI
    # builds the images in the background beside the first test tiers; the tests' own calls wait here)
    mkdir -p "$WORK"
    exec 8>"$WORK/.lock"
    flock 8
    ;;
esac
case "${1:-}" in
  base) cmd_base ;;
  build) cmd_build ;;
  kind-load) cmd_kind_load ;;
  names) echo "$SERVICES_IMAGE $OPERATOR_IMAGE" ;;
  build-backends) cmd_build_backends ;;
  build-postgresql) cmd_build_postgresql ;;
  backend-names) echo "$BACKEND_IMAGES" ;;
  *) die "usage: $0 base|build|kind-load|names|build-backends|build-postgresql|backend-names" ;;
esac
