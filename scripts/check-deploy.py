#!/usr/bin/env python3
"""Check rendered manifests (a YAML stream on stdin): deploy/ as
`kubectl kustomize deploy/` renders it, or, with --helm, the chart
charts/policyreport-exporter as `helm template` renders it. scripts/check-deploy.sh
runs it on both, with the values it rendered them with.

- Every built-in object validates against the Kubernetes OpenAPI schemas, offline
  and strict (no unknown fields), with kubernetes-validate for several
  Kubernetes versions.
- ServiceMonitor and PrometheusRule validate against the small schemas below,
  which cover the fields used here. The PrometheusRule's spec must equal
  rules/policyreport.rules.yaml, and promtool must accept it.
- The ClusterRole grants list/watch on exactly the resources the exporter
  reads.
- The Deployment meets Kyverno's Pod Security Standards policies (baseline and
  restricted, as in its pod-security policies) and require-requests-limits.
  Kyverno's CLI cannot be installed here, so this script implements their
  conditions.
- The dashboard ConfigMaps carry exactly the files of dashboards/.
- With `--networkpolicy` (deploy/ plus the component
  deploy/components/networkpolicy): the NetworkPolicy selects the exporter's
  pods and admits only the Prometheus namespace, only to the metrics port.
- With `--web-config` (deploy/components/web-config, or the chart's
  webConfig): the Secret NAME-web-config holds a web config file the exporter
  can read, which serves TLS; the Deployment mounts it and the TLS Secret
  read-only, passes --web-config-file, and probes with HTTPS; the
  ServiceMonitor scrapes with https and the expected tlsConfig, and with
  basicAuth exactly when the file has basic_auth_users.
- With `--metrics-auth` (deploy/components/metrics-auth, or the chart's
  metricsAuth: kubernetes): the ClusterRole NAME-metrics-auth grants exactly
  create on tokenreviews and subjectaccessreviews, bound to the exporter's
  ServiceAccount; NAME-metrics-reader grants exactly get on /metrics, bound to
  the expected scrapers; the Deployment passes --metrics-auth kubernetes; the
  ServiceMonitor sends its ServiceAccount token.
- With `--same-as FILE` (a render of deploy/): the Deployment, ServiceAccount,
  ClusterRole, ClusterRoleBinding and PrometheusRule equal FILE's, but for the
  labels Helm adds to every object (HELM_LABELS). With `--rbac-same-as FILE`:
  the exporter's own ClusterRole and ClusterRoleBinding equal FILE's.
"""

import argparse
import base64
import difflib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from kinds import read_kinds  # scripts/kinds.py: the table of src/kind.rs

ROOT = Path(__file__).resolve().parent.parent
NS = "policyreport-exporter"
IMAGE = "ghcr.io/policyreport-exporter/policyreport-exporter:0.1.0"
ARGS = ["serve", "--log-format", "json"]
K8S_VERSIONS = ["1.27.0", "1.30.0", "1.33.0"]
DASHBOARDS = ["overview", "rollout", "namespace", "exporter-health"]
# Labels Helm's chart adds to every object (and the instance to its selectors),
# which deploy/ does not have.
HELM_LABELS = {"app.kubernetes.io/instance", "app.kubernetes.io/managed-by", "helm.sh/chart"}
# What --same-as compares: the exporter, its RBAC and its rules.
SAME_KINDS = ("Deployment", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "PrometheusRule")
# Where the web config file and the TLS Secret are mounted, and the flag that
# names the file.
WEB_DIR = "/etc/policyreport-exporter/web"
WEB_FILE = "web-config.yml"
TLS_DIR = "/etc/policyreport-exporter/tls"
# The keys of a kubernetes.io/tls Secret as cert-manager writes it.
TLS_KEYS = {"tls.crt", "tls.key", "ca.crt"}
# The top-level sections of an exporter-toolkit web config file, and the
# tls_server_config fields that turn TLS on (exporter-toolkit's IsEnabled).
WEB_SECTIONS = {"tls_server_config", "http_server_config", "rate_limit", "basic_auth_users"}
TLS_ON = ("cert_file", "cert", "key_file", "key", "client_ca_file", "client_ca", "client_auth_type")
# The Prometheus pod's own ServiceAccount token, which the ServiceMonitor sends
# with --metrics-auth kubernetes.
TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
METRICS_AUTH_RULES = {
    ("authentication.k8s.io", "tokenreviews", "create"),
    ("authorization.k8s.io", "subjectaccessreviews", "create"),
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--networkpolicy", action="store_true", help="expect the NetworkPolicy")
    p.add_argument("--helm", action="store_true", help="rendered by the chart: no Namespace; dashboards named NAME-dashboard-*")
    p.add_argument("--only-exporter", action="store_true", help="no ServiceMonitor, PrometheusRule or dashboards")
    p.add_argument("--name", default=NS, help="the name of the exporter's objects")
    p.add_argument("--namespace", default=NS)
    p.add_argument("--service-account", help="default: --name")
    p.add_argument("--dashboards-namespace", help="default: --namespace")
    p.add_argument("--image", default=IMAGE)
    p.add_argument("--args", type=json.loads, default=ARGS, help="the container's args, as JSON")
    p.add_argument("--service-port", type=int, default=8080)
    p.add_argument("--prometheus-namespace", default="monitoring")
    p.add_argument("--same-as", type=Path, help="a render of deploy/ whose exporter, RBAC and rules must be the same")
    p.add_argument("--rbac-same-as", type=Path, help="a render of deploy/ whose exporter's ClusterRole and binding must be the same")
    p.add_argument("--web-config", action="store_true", help="expect the web config Secret, its mounts, and TLS")
    p.add_argument("--tls-secret", default="policyreport-exporter-tls", help="the Secret with tls.crt, tls.key and ca.crt")
    p.add_argument("--sm-tls-config", type=json.loads, help="the ServiceMonitor's tlsConfig, as JSON; default: "
                   "the CA from --tls-secret and serverName NAME.NAMESPACE.svc")
    p.add_argument("--basic-auth", action="store_true", help="expect basic_auth_users and the ServiceMonitor's basicAuth")
    p.add_argument("--metrics-auth", action="store_true", help="expect --metrics-auth kubernetes and its RBAC")
    p.add_argument("--metrics-readers", type=json.loads, default=[],
                   help='the ServiceAccounts bound to NAME-metrics-reader, as JSON: [{"name": ..., "namespace": ...}]')
    a = p.parse_args()
    a.service_account = a.service_account or a.name
    a.dashboards_namespace = a.dashboards_namespace or a.namespace
    a.sm_tls_config = a.sm_tls_config or {
        "ca": {"secret": {"name": a.tls_secret, "key": "ca.crt"}},
        "serverName": f"{a.name}.{a.namespace}.svc",
    }
    return a


def expected_objects(a):
    out = {(kind, a.name) for kind in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "Service")}
    out = {(k, a.service_account if k == "ServiceAccount" else n) for k, n in out}
    if not a.helm:
        out.add(("Namespace", a.namespace))
    if not a.only_exporter:
        out |= {("ServiceMonitor", a.name), ("PrometheusRule", a.name)}
        prefix = f"{a.name}-dashboard-" if a.helm else "policyreport-dashboard-"
        out |= {("ConfigMap", prefix + d) for d in DASHBOARDS}
    if a.networkpolicy:
        out.add(("NetworkPolicy", a.name))
    if a.web_config:
        out.add(("Secret", f"{a.name}-web-config"))
    if a.metrics_auth:
        out |= {(k, f"{a.name}-metrics-auth") for k in ("ClusterRole", "ClusterRoleBinding")}
        out.add(("ClusterRole", f"{a.name}-metrics-reader"))
        if a.metrics_readers:
            out.add(("ClusterRoleBinding", f"{a.name}-metrics-reader"))
    return out


def without_helm_labels(obj):
    """The object without the labels Helm adds, wherever labels or selectors are."""
    if isinstance(obj, dict):
        return {
            k: {lk: lv for lk, lv in without_helm_labels(v).items() if lk not in HELM_LABELS}
            if k in ("labels", "matchLabels") and isinstance(v, dict)
            else without_helm_labels(v)
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [without_helm_labels(v) for v in obj]
    return obj


def compare_with(docs, path, kinds=SAME_KINDS, name=None):
    """The objects of these kinds (named `name`, if given) equal those of another render."""
    theirs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d}
    compared = 0
    for d in docs:
        if d["kind"] not in kinds or (name is not None and d["metadata"]["name"] != name):
            continue
        other = theirs.get((d["kind"], d["metadata"]["name"]))
        if other is None:
            fail(f"{d['kind']} {d['metadata']['name']}: not in {path}")
            continue
        mine, other = without_helm_labels(d), without_helm_labels(other)
        if mine != other:
            diff = difflib.unified_diff(
                yaml.safe_dump(other).splitlines(), yaml.safe_dump(mine).splitlines(), str(path), "this", lineterm="", n=1
            )
            fail(f"{d['kind']} {d['metadata']['name']} differs:\n" + "\n".join(list(diff)[:40]))
        compared += 1
    if compared != len(kinds):
        fail(f"compared {compared} objects with {path}, expected {len(kinds)} ({', '.join(kinds)})")
    return compared

# What the ClusterRole must grant, list and watch only: every kind of the table in src/kind.rs.
EXPECTED_RBAC = {(k["group"], k["plural"]) for k in read_kinds()}

STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
META = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}, "labels": STR_MAP, "annotations": STR_MAP},
}
SECRET_KEY = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "key"],
    "properties": {"name": {"type": "string", "minLength": 1}, "key": {"type": "string", "minLength": 1}, "optional": {"type": "boolean"}},
}
SECRET_OR_CONFIGMAP = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "maxProperties": 1,
    "properties": {"secret": SECRET_KEY, "configMap": SECRET_KEY},
}
PROMETHEUS_RULE = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": META,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["groups"],
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": DURATION,
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["expr"],
                                    "oneOf": [{"required": ["record"]}, {"required": ["alert"]}],
                                    "properties": {
                                        "record": {"type": "string"},
                                        "alert": {"type": "string"},
                                        "expr": {"type": "string", "minLength": 1},
                                        "for": DURATION,
                                        "labels": STR_MAP,
                                        "annotations": STR_MAP,
                                    },
                                },
                            },
                        },
                    },
                }
            },
        },
    },
}
SERVICE_MONITOR = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": META,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "jobLabel": {"type": "string"},
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"matchLabels": STR_MAP, "matchExpressions": {"type": "array"}},
                },
                "namespaceSelector": {"type": "object"},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": DURATION,
                            "scrapeTimeout": DURATION,
                            "honorLabels": {"type": "boolean"},
                            "tlsConfig": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "ca": SECRET_OR_CONFIGMAP,
                                    "cert": SECRET_OR_CONFIGMAP,
                                    "keySecret": SECRET_KEY,
                                    "caFile": {"type": "string"},
                                    "certFile": {"type": "string"},
                                    "keyFile": {"type": "string"},
                                    "serverName": {"type": "string", "minLength": 1},
                                    "insecureSkipVerify": {"type": "boolean"},
                                    "minVersion": {"enum": ["TLS10", "TLS11", "TLS12", "TLS13"]},
                                    "maxVersion": {"enum": ["TLS10", "TLS11", "TLS12", "TLS13"]},
                                },
                            },
                            "bearerTokenFile": {"type": "string", "minLength": 1},
                            "basicAuth": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["username", "password"],
                                "properties": {"username": SECRET_KEY, "password": SECRET_KEY},
                            },
                            "relabelings": {"type": "array"},
                            "metricRelabelings": {"type": "array"},
                        },
                    },
                },
            },
        },
    },
}

# Kyverno's pod-security baseline allows these added capabilities; restricted
# allows only NET_BIND_SERVICE and requires dropping ALL.
BASELINE_CAPS = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range",
}

errors = []


def fail(msg):
    errors.append(msg)


def flag_value(args, flag):
    """The value after `flag` in a container's args, or None."""
    return args[args.index(flag) + 1] if flag in args[:-1] else None


def pss_and_resources(name, pod):
    """Kyverno's pod-security (baseline + restricted) and require-requests-limits on a pod spec."""
    spec = pod["spec"]
    meta = pod.get("metadata", {})
    psc = spec.get("securityContext", {})
    containers = spec.get("containers", []) + spec.get("initContainers", []) + spec.get("ephemeralContainers", [])
    where = f"{name}: pod"
    # baseline
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            fail(f"{where}: {field} is not allowed (baseline)")
    for v in spec.get("volumes", []):
        if "hostPath" in v:
            fail(f"{where}: hostPath volume {v.get('name')} (baseline)")
        kinds = set(v) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            fail(f"{where}: volume {v.get('name')} of type {sorted(kinds)} (restricted)")
    for k, val in meta.get("annotations", {}).items():
        if k.startswith("container.apparmor.security.beta.kubernetes.io/") and val not in ("runtime/default",) and not val.startswith("localhost/"):
            fail(f"{where}: AppArmor {val} (baseline)")
    for s in psc.get("sysctls", []):
        if s.get("name") not in SAFE_SYSCTLS:
            fail(f"{where}: sysctl {s.get('name')} (baseline)")
    if psc.get("seccompProfile", {}).get("type") == "Unconfined":
        fail(f"{where}: seccompProfile Unconfined (baseline)")
    if psc.get("runAsUser") == 0:
        fail(f"{where}: runAsUser 0 (restricted)")
    for c in containers:
        cw = f"{name}: container {c.get('name')}"
        sc = c.get("securityContext", {})
        if sc.get("privileged"):
            fail(f"{cw}: privileged (baseline)")
        for p in c.get("ports", []):
            if p.get("hostPort"):
                fail(f"{cw}: hostPort (baseline)")
        if sc.get("procMount", "Default") != "Default":
            fail(f"{cw}: procMount (baseline)")
        se = {**psc.get("seLinuxOptions", {}), **sc.get("seLinuxOptions", {})}
        if se.get("user") or se.get("role") or se.get("type", "container_t") not in ("container_t", "container_init_t", "container_kvm_t"):
            fail(f"{cw}: seLinuxOptions (baseline)")
        caps = sc.get("capabilities", {})
        added = set(caps.get("add", []))
        if not added <= BASELINE_CAPS:
            fail(f"{cw}: capabilities.add {sorted(added)} (baseline)")
        # restricted
        if sc.get("allowPrivilegeEscalation") is not False:
            fail(f"{cw}: allowPrivilegeEscalation must be false (restricted)")
        if "ALL" not in caps.get("drop", []):
            fail(f"{cw}: capabilities.drop must contain ALL (restricted)")
        if not added <= {"NET_BIND_SERVICE"}:
            fail(f"{cw}: capabilities.add beyond NET_BIND_SERVICE (restricted)")
        non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if non_root is not True:
            fail(f"{cw}: runAsNonRoot must be true (restricted)")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            fail(f"{cw}: runAsUser 0 (restricted)")
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            fail(f"{cw}: seccompProfile must be RuntimeDefault or Localhost (restricted), is {seccomp}")
    # require-requests-limits (Kyverno sample policy), plus a CPU limit and a
    # read-only root file system, which this project asks for.
    for c in spec.get("containers", []):
        cw = f"{name}: container {c.get('name')}"
        res = c.get("resources", {})
        for path in (("requests", "memory"), ("requests", "cpu"), ("limits", "memory"), ("limits", "cpu")):
            if not res.get(path[0], {}).get(path[1]):
                fail(f"{cw}: resources.{path[0]}.{path[1]} is required")
        if c.get("securityContext", {}).get("readOnlyRootFilesystem") is not True:
            fail(f"{cw}: readOnlyRootFilesystem must be true")


def main():
    try:
        import jsonschema
        import kubernetes_validate
    except ImportError as e:
        print(f"missing Python package: {e.name} (pip install kubernetes-validate)", file=sys.stderr)
        return 3

    a = parse_args()
    expected = expected_objects(a)
    docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
    found = {(d["kind"], d["metadata"]["name"]) for d in docs}
    if found != expected:
        fail(f"objects: missing {sorted(expected - found)}, unexpected {sorted(found - expected)}")
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
        m = d["metadata"]
        ns = a.dashboards_namespace if d["kind"] == "ConfigMap" else a.namespace
        if d["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding") and m.get("namespace") != ns:
            fail(f"{d['kind']} {m['name']}: namespace {m.get('namespace')!r}, expected {ns}")

    # Schemas.
    validated = 0
    for d in docs:
        name = f"{d['kind']} {d['metadata']['name']}"
        if d["kind"] == "PrometheusRule":
            schema = PROMETHEUS_RULE
        elif d["kind"] == "ServiceMonitor":
            schema = SERVICE_MONITOR
        else:
            schema = None
        if schema is not None:
            try:
                jsonschema.validate(d, schema)
                validated += 1
            except jsonschema.ValidationError as e:
                fail(f"{name}: {e.message} at {'/'.join(map(str, e.absolute_path))}")
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(d, version, strict=True)
                validated += 1
            except kubernetes_validate.ValidationError as e:
                fail(f"{name} (Kubernetes {version}): {e.message} at {'/'.join(map(str, e.path))}")
            except Exception as e:  # noqa: BLE001 - report any schema problem
                fail(f"{name} (Kubernetes {version}): {type(e).__name__}: {e}")

    # RBAC: list and watch on exactly the resources the exporter reads (the
    # real API server's audit log shows it never gets one object:
    # bench/tests/real_apiserver.rs). With --metrics-auth, two more roles:
    # the exporter's reviews, and the scrapers' get on /metrics.
    for role in by_kind.get("ClusterRole", []):
        name = role["metadata"]["name"]
        rules = role.get("rules", [])
        if name == f"{a.name}-metrics-auth":
            granted = {
                (g, r, v) for rule in rules for g in rule.get("apiGroups", []) for r in rule.get("resources", [])
                for v in rule.get("verbs", [])
            }
            if granted != METRICS_AUTH_RULES or any(rule.get("resourceNames") or rule.get("nonResourceURLs") for rule in rules):
                fail(f"ClusterRole {name}: {rules}; expected exactly create on tokenreviews and subjectaccessreviews")
            continue
        if name == f"{a.name}-metrics-reader":
            if rules != [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]:
                fail(f"ClusterRole {name}: {rules}; expected exactly get on the non-resource URL /metrics")
            continue
        granted = set()
        for rule in rules:
            if sorted(rule.get("verbs", [])) != ["list", "watch"]:
                fail(f"ClusterRole: verbs {rule.get('verbs')} (only list, watch)")
            if rule.get("resourceNames") or rule.get("nonResourceURLs"):
                fail("ClusterRole: resourceNames/nonResourceURLs are not expected")
            for g in rule.get("apiGroups", []):
                for r in rule.get("resources", []):
                    granted.add((g, r))
        if granted != EXPECTED_RBAC:
            missing = "".join(
                f'\n  - apiGroups: ["{g}"]\n    resources: ["{r}"]\n    verbs: ["list", "watch"]'
                for g, r in sorted(EXPECTED_RBAC - granted)
            )
            extra = sorted(granted - EXPECTED_RBAC)
            fail(
                f"ClusterRole {name}:"
                + (f" grants {extra}, which no kind of src/kind.rs needs;" if extra else "")
                + (f" missing, for the kinds of src/kind.rs, add to its rules:{missing}" if missing else "")
            )
        if any(r in ("*", "secrets") or g == "*" for g, r in granted):
            fail("ClusterRole: no wildcards and no Secrets")
    exporter_sa = [{"kind": "ServiceAccount", "name": a.service_account, "namespace": a.namespace}]
    readers = [{"kind": "ServiceAccount", "name": r["name"], "namespace": r["namespace"]} for r in a.metrics_readers]
    for b in by_kind.get("ClusterRoleBinding", []):
        name = b["metadata"]["name"]
        subjects = readers if name == f"{a.name}-metrics-reader" else exporter_sa
        if b["roleRef"] != {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name} or b["subjects"] != subjects:
            fail(f"ClusterRoleBinding {name} binds {b['roleRef']} to {b['subjects']}, expected ClusterRole {name} to {subjects}")

    # The web config file: what the exporter reads, and whether it serves TLS.
    web = None
    for secret in by_kind.get("Secret", []):
        name = secret["metadata"]["name"]
        if secret.get("type", "Opaque") != "Opaque" or set(secret.get("data", {})) != {WEB_FILE} or secret.get("stringData"):
            fail(f"Secret {name}: an Opaque Secret with data {WEB_FILE} only")
            continue
        try:
            web = yaml.safe_load(base64.b64decode(secret["data"][WEB_FILE]).decode("utf-8")) or {}
        except (ValueError, yaml.YAMLError) as e:
            fail(f"Secret {name}: {WEB_FILE} is not YAML: {e}")
            continue
        if not isinstance(web, dict) or set(web) - WEB_SECTIONS:
            fail(f"Secret {name}: {WEB_FILE} has sections {sorted(web)}; the exporter reads only {sorted(WEB_SECTIONS)}")
            web = {}
    web_tls = web and (web.get("tls_server_config") or {})
    tls = bool(web_tls) and any(web_tls.get(k) for k in TLS_ON)
    users = bool(web and web.get("basic_auth_users"))
    if a.web_config and not tls:
        fail(f"the web config file does not serve TLS: {web}")
    if users != a.basic_auth:
        fail(f"basic_auth_users in the web config file: {users}, expected {a.basic_auth}")
    if users and a.metrics_auth:
        fail("basic_auth_users and --metrics-auth kubernetes both need the Authorization header; the exporter refuses them together")

    # The Deployment.
    for dep in by_kind.get("Deployment", []):
        pod = dep["spec"]["template"]
        spec = pod["spec"]
        if spec.get("serviceAccountName") != a.service_account:
            fail("Deployment: serviceAccountName")
        if dep["spec"]["selector"]["matchLabels"].items() - pod["metadata"]["labels"].items():
            fail("Deployment: the selector does not match the pod labels")
        (c,) = spec["containers"]
        if c["image"] != a.image:
            fail(f"Deployment: image {c['image']}")
        if c.get("args") != a.args:
            fail(f"Deployment: args {c.get('args')}")
        args = c.get("args", [])
        metrics_auth = flag_value(args, "--metrics-auth")
        if (metrics_auth == "kubernetes") != a.metrics_auth:
            fail(f"Deployment: --metrics-auth {metrics_auth}, expected {'kubernetes' if a.metrics_auth else 'none'}")
        want_file = f"{WEB_DIR}/{WEB_FILE}" if a.web_config else None
        if flag_value(args, "--web-config-file") != want_file:
            fail(f"Deployment: --web-config-file {flag_value(args, '--web-config-file')}, expected {want_file}")
        # The web config Secret and the TLS Secret, read-only, where the file
        # and its certificate paths point; nothing else.
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
        want = {WEB_DIR: f"{a.name}-web-config", TLS_DIR: a.tls_secret} if a.web_config else {}
        got = {path: volumes.get(m["name"], {}).get("secret", {}).get("secretName") for path, m in mounts.items()}
        if got != want or len(volumes) != len(want):
            fail(f"Deployment: mounts {got} of volumes {sorted(volumes)}, expected the Secrets {want}")
        for path, m in mounts.items():
            if m.get("readOnly") is not True or m.get("subPath"):
                fail(f"Deployment: the mount at {path} must be readOnly, without subPath")
        if a.web_config and web_tls:
            for field in ("cert_file", "key_file", "client_ca_file"):
                if not web_tls.get(field):
                    continue
                path = os.path.normpath(os.path.join(WEB_DIR, web_tls[field]))
                if os.path.dirname(path) != TLS_DIR or os.path.basename(path) not in TLS_KEYS:
                    fail(f"web config: tls_server_config.{field} {web_tls[field]} is not a key of the TLS Secret ({TLS_DIR}/{{{','.join(sorted(TLS_KEYS))}}})")
        if c.get("ports") != [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]:
            fail(f"Deployment: ports {c.get('ports')}")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            got = c.get(probe, {}).get("httpGet", {})
            if got.get("path") != path or got.get("port") not in ("http", 8080):
                fail(f"Deployment: {probe} {got}")
            # With TLS the port serves HTTPS only; the kubelet does not check
            # the certificate.
            if got.get("scheme", "HTTP") != ("HTTPS" if tls else "HTTP"):
                fail(f"Deployment: {probe} scheme {got.get('scheme', 'HTTP')}, the port serves {'HTTPS' if tls else 'HTTP'}")
        sc = c.get("securityContext", {})
        if sc.get("runAsUser", spec.get("securityContext", {}).get("runAsUser")) != 65532:
            fail("Deployment: runAsUser 65532")
        pss_and_resources("Deployment", pod)

    for svc in by_kind.get("Service", []):
        ports = svc["spec"]["ports"]
        if [(p["name"], p["port"], p.get("targetPort")) for p in ports] != [("http", a.service_port, "http")]:
            fail(f"Service: ports {ports}")
        dep_labels = by_kind["Deployment"][0]["spec"]["template"]["metadata"]["labels"]
        if svc["spec"]["selector"].items() - dep_labels.items():
            fail("Service: the selector does not match the pods")
    for sm in by_kind.get("ServiceMonitor", []):
        svc_labels = by_kind["Service"][0]["metadata"]["labels"]
        if sm["spec"]["selector"]["matchLabels"].items() - svc_labels.items():
            fail("ServiceMonitor: the selector does not match the Service")
        for ep in sm["spec"]["endpoints"]:
            if ep.get("port") != "http" or ep.get("honorLabels") is not True:
                fail(f"ServiceMonitor: endpoint {ep} (port http, honorLabels true)")
            if ep.get("scheme", "http") != ("https" if tls else "http"):
                fail(f"ServiceMonitor: scheme {ep.get('scheme', 'http')}, the port serves {'https' if tls else 'http'}")
            want_tls = a.sm_tls_config if tls else None
            if ep.get("tlsConfig") != want_tls:
                fail(f"ServiceMonitor: tlsConfig {ep.get('tlsConfig')}, expected {want_tls}")
            if ep.get("bearerTokenFile") != (TOKEN_FILE if a.metrics_auth else None):
                fail(f"ServiceMonitor: bearerTokenFile {ep.get('bearerTokenFile')} (the scraper's token with --metrics-auth kubernetes only)")
            if ("basicAuth" in ep) != users:
                fail(f"ServiceMonitor: basicAuth {ep.get('basicAuth')}, but basic_auth_users in the web config file: {users}")
        # The rules and dashboards expect job="policyreport-exporter": the
        # Service's name, or the value of the Service label named by jobLabel.
        job_label = sm["spec"].get("jobLabel")
        job = svc_labels.get(job_label) if job_label else by_kind["Service"][0]["metadata"]["name"]
        if job != NS:
            fail(f"ServiceMonitor: the scrape job would be {job!r}, the rules expect {NS}")

    # The NetworkPolicy: the exporter's pods, ingress only, from the Prometheus
    # namespace only, to the metrics port only.
    for np in by_kind.get("NetworkPolicy", []):
        spec = np["spec"]
        pod = by_kind["Deployment"][0]["spec"]["template"]
        selector = spec.get("podSelector", {})
        labels = selector.get("matchLabels") or {}
        if not labels or labels.items() - pod["metadata"]["labels"].items() or selector.get("matchExpressions"):
            fail(f"NetworkPolicy: podSelector {selector} does not select the exporter's pods")
        if spec.get("policyTypes") != ["Ingress"]:
            fail(f"NetworkPolicy: policyTypes {spec.get('policyTypes')} (Ingress only)")
        rules = spec.get("ingress", [])
        if len(rules) != 1:
            fail(f"NetworkPolicy: {len(rules)} ingress rules, expected one")
        container_ports = pod["spec"]["containers"][0]["ports"]
        metrics = {(p["name"], p.get("protocol", "TCP")) for p in container_ports} | {
            (p["containerPort"], p.get("protocol", "TCP")) for p in container_ports
        }
        for rule in rules:
            peers = rule.get("from", [])
            want = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": a.prometheus_namespace}}}]
            if peers != want:
                fail(f"NetworkPolicy: from {peers}: only the Prometheus namespace ({a.prometheus_namespace}) may be admitted")
            ports = [(p.get("port"), p.get("protocol", "TCP")) for p in rule.get("ports", [])]
            if not ports or any(p not in metrics for p in ports):
                fail(f"NetworkPolicy: ports {rule.get('ports')} must be the metrics port only ({container_ports})")

    # The PrometheusRule is the rules file, and promtool accepts it.
    source = yaml.safe_load((ROOT / "rules" / "policyreport.rules.yaml").read_text(encoding="utf-8"))
    for pr in by_kind.get("PrometheusRule", []):
        if pr["spec"] != {"groups": source["groups"]}:
            fail("PrometheusRule: spec differs from rules/policyreport.rules.yaml (run scripts/gen-prometheusrule.py)")
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            yaml.safe_dump(pr["spec"], f)
        try:
            out = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True)
            if out.returncode != 0:
                fail(f"PrometheusRule: promtool check rules: {out.stdout}{out.stderr}")
        except FileNotFoundError:
            print("note: promtool not found; the PrometheusRule's expressions were not parsed", file=sys.stderr)
        finally:
            os.unlink(f.name)

    # Dashboards: generated from dashboards/, not copies.
    files = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "dashboards").glob("*.json")}
    shipped = {}
    for cm in by_kind.get("ConfigMap", []):
        labels = cm["metadata"].get("labels", {})
        if labels.get("grafana_dashboard") != "1":
            fail(f"ConfigMap {cm['metadata']['name']}: label grafana_dashboard: \"1\"")
        for key, text in cm.get("data", {}).items():
            shipped[key] = text
            json.loads(text)
        size = len(json.dumps(cm))
        if size > 262144:
            fail(f"ConfigMap {cm['metadata']['name']}: {size} bytes, over kubectl apply's annotation limit")
    if shipped != ({} if a.only_exporter else files):
        fail(f"dashboard ConfigMaps carry {sorted(shipped)}, dashboards/ has {sorted(files)} (or the contents differ)")
    # Links (the chart's files/ links to dashboards/ and rules/) are not copies.
    own = [Path(d, f) for top in ("deploy", "charts") for d, _, fs in os.walk(ROOT / top) for f in fs]
    for p in own:
        if not p.is_symlink() and p.suffix in (".json", ".yaml", ".yml") and '"schemaVersion"' in p.read_text(encoding="utf-8"):
            fail(f"{p.relative_to(ROOT)}: a copied dashboard; generate it from dashboards/ instead")

    same = compare_with(docs, a.same_as) if a.same_as else 0
    if a.rbac_same_as:
        same += compare_with(docs, a.rbac_same_as, ("ClusterRole", "ClusterRoleBinding"), a.name)
    same_file = a.same_as or a.rbac_same_as

    if errors:
        for e in errors:
            print(f"FAIL: {e}", file=sys.stderr)
        return 1
    what = "chart" if a.helm else "deploy"
    print(
        f"{what}{' + networkpolicy' if a.networkpolicy else ''}{' + web-config' if a.web_config else ''}"
        f"{' + basic auth' if a.basic_auth else ''}{' + metrics-auth' if a.metrics_auth else ''}"
        f"{' (exporter only)' if a.only_exporter else ''}: "
        f"{len(docs)} objects OK ({validated} schema validations, Kubernetes {', '.join(K8S_VERSIONS)}; "
        f"RBAC, Pod Security restricted, requests/limits"
        f"{'' if a.only_exporter else f', PrometheusRule, {len(shipped)} dashboards'}"
        f"{f'; {same} objects the same as {same_file.name}' if same else ''})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
