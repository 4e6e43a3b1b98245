#!/usr/bin/env bash
# Render deploy/ with kustomize and check every object (scripts/check-deploy.py):
# Kubernetes schemas (offline), RBAC, Pod Security restricted, the PrometheusRule
# and the dashboard ConfigMaps. Then render deploy/ with the optional component
# deploy/components/networkpolicy, as a user's overlay would, and check that too.
#
# Needs: kubectl (Debian: kubernetes-client) or kustomize; python3 with PyYAML and
# kubernetes-validate (pip install kubernetes-validate); promtool (optional here).
# Exits 3 when a tool is missing, 1 when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v kubectl >/dev/null 2>&1; then
  render=(kubectl kustomize deploy/)
elif command -v kustomize >/dev/null 2>&1; then
  render=(kustomize build deploy/)
else
  echo "missing tool: kubectl (apt-get install kubernetes-client) or kustomize" >&2
  exit 3
fi
python=${PYTHON:-python3}
if ! "$python" -c 'import yaml, kubernetes_validate' >/dev/null 2>&1; then
  echo "missing Python packages: $python -m pip install pyyaml kubernetes-validate" >&2
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
# deploy/ uses `bases:` so that kubectl 1.20 (Debian's kubernetes-client) renders
# it too; newer kustomize warns about it. Show anything else.
grep -v "'bases' is deprecated" "$err" >&2 || true
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
