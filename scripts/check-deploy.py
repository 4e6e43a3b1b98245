#!/usr/bin/env python3
"""Check the rendered deploy/ manifests (a YAML stream on stdin, from
`kubectl kustomize deploy/`). scripts/check-deploy.sh runs it.

- Every built-in object validates against the Kubernetes OpenAPI schemas, offline
  and strict (no unknown fields), with kubernetes-validate for several
  Kubernetes versions.
- ServiceMonitor and PrometheusRule validate against the small schemas below,
  which cover the fields used here. The PrometheusRule's spec must equal
  rules/policyreport.rules.yaml, and promtool must accept it.
- The ClusterRole grants get/list/watch on exactly the resources the exporter
  reads.
- The Deployment meets Kyverno's Pod Security Standards policies (baseline and
  restricted, as in its pod-security policies) and require-requests-limits.
  Kyverno's CLI cannot be installed here, so this script implements their
  conditions.
- The dashboard ConfigMaps carry exactly the files of dashboards/.
- With `--networkpolicy` (deploy/ plus the component
  deploy/components/networkpolicy): the NetworkPolicy selects the exporter's
  pods and admits only the Prometheus namespace, only to the metrics port.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
NS = "policyreport-exporter"
IMAGE = "ghcr.io/policyreport-exporter/policyreport-exporter:0.1.0"
K8S_VERSIONS = ["1.27.0", "1.30.0", "1.33.0"]

EXPECTED_OBJECTS = {
    ("Namespace", NS),
    ("ServiceAccount", NS),
    ("ClusterRole", NS),
    ("ClusterRoleBinding", NS),
    ("Deployment", NS),
    ("Service", NS),
    ("ServiceMonitor", NS),
    ("PrometheusRule", NS),
    ("ConfigMap", "policyreport-dashboard-overview"),
    ("ConfigMap", "policyreport-dashboard-rollout"),
    ("ConfigMap", "policyreport-dashboard-namespace"),
    ("ConfigMap", "policyreport-dashboard-exporter-health"),
}

EXPECTED_RBAC = {
    ("wgpolicyk8s.io", "policyreports"),
    ("wgpolicyk8s.io", "clusterpolicyreports"),
    ("openreports.io", "reports"),
    ("openreports.io", "clusterreports"),
    ("", "events"),
    ("", "namespaces"),
    ("kyverno.io", "clusterpolicies"),
    ("kyverno.io", "policies"),
    ("policies.kyverno.io", "validatingpolicies"),
    ("policies.kyverno.io", "namespacedvalidatingpolicies"),
    ("policies.kyverno.io", "imagevalidatingpolicies"),
    ("policies.kyverno.io", "namespacedimagevalidatingpolicies"),
}

STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
META = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}, "labels": STR_MAP, "annotations": STR_MAP},
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

    with_netpol = "--networkpolicy" in sys.argv[1:]
    expected = EXPECTED_OBJECTS | ({("NetworkPolicy", NS)} if with_netpol else set())
    docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
    found = {(d["kind"], d["metadata"]["name"]) for d in docs}
    if found != expected:
        fail(f"objects: missing {sorted(expected - found)}, unexpected {sorted(found - expected)}")
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
        m = d["metadata"]
        if d["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding") and m.get("namespace") != NS:
            fail(f"{d['kind']} {m['name']}: namespace {m.get('namespace')!r}, expected {NS}")

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
    # bench/tests/real_apiserver.rs).
    for role in by_kind.get("ClusterRole", []):
        granted = set()
        for rule in role.get("rules", []):
            if sorted(rule.get("verbs", [])) != ["list", "watch"]:
                fail(f"ClusterRole: verbs {rule.get('verbs')} (only list, watch)")
            if rule.get("resourceNames") or rule.get("nonResourceURLs"):
                fail("ClusterRole: resourceNames/nonResourceURLs are not expected")
            for g in rule.get("apiGroups", []):
                for r in rule.get("resources", []):
                    granted.add((g, r))
        if granted != EXPECTED_RBAC:
            fail(f"ClusterRole grants {sorted(granted - EXPECTED_RBAC)} too many, {sorted(EXPECTED_RBAC - granted)} missing")
        if any(r in ("*", "secrets") or g == "*" for g, r in granted):
            fail("ClusterRole: no wildcards and no Secrets")
    for b in by_kind.get("ClusterRoleBinding", []):
        if b["roleRef"]["name"] != NS or b["subjects"] != [{"kind": "ServiceAccount", "name": NS, "namespace": NS}]:
            fail(f"ClusterRoleBinding binds {b['roleRef']} to {b['subjects']}")

    # The Deployment.
    for dep in by_kind.get("Deployment", []):
        pod = dep["spec"]["template"]
        spec = pod["spec"]
        if spec.get("serviceAccountName") != NS:
            fail("Deployment: serviceAccountName")
        if dep["spec"]["selector"]["matchLabels"].items() - pod["metadata"]["labels"].items():
            fail("Deployment: the selector does not match the pod labels")
        (c,) = spec["containers"]
        if c["image"] != IMAGE:
            fail(f"Deployment: image {c['image']}")
        if c.get("args") != ["serve", "--log-format", "json"]:
            fail(f"Deployment: args {c.get('args')}")
        if c.get("ports") != [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]:
            fail(f"Deployment: ports {c.get('ports')}")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            got = c.get(probe, {}).get("httpGet", {})
            if got.get("path") != path or got.get("port") not in ("http", 8080):
                fail(f"Deployment: {probe} {got}")
        sc = c.get("securityContext", {})
        if sc.get("runAsUser", spec.get("securityContext", {}).get("runAsUser")) != 65532:
            fail("Deployment: runAsUser 65532")
        pss_and_resources("Deployment", pod)

    for svc in by_kind.get("Service", []):
        ports = svc["spec"]["ports"]
        if [(p["name"], p["port"]) for p in ports] != [("http", 8080)]:
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
            if peers != [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]:
                fail(f"NetworkPolicy: from {peers}: only the Prometheus namespace (monitoring) may be admitted")
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
    if shipped != files:
        fail(f"dashboard ConfigMaps carry {sorted(shipped)}, dashboards/ has {sorted(files)} (or the contents differ)")
    for p in (ROOT / "deploy").rglob("*"):
        if p.is_file() and p.suffix in (".json", ".yaml", ".yml") and '"schemaVersion"' in p.read_text(encoding="utf-8"):
            fail(f"{p.relative_to(ROOT)}: a copied dashboard; generate it from dashboards/ instead")

    if errors:
        for e in errors:
            print(f"FAIL: {e}", file=sys.stderr)
        return 1
    print(
        f"deploy{' + components/networkpolicy' if with_netpol else ''}: {len(docs)} objects OK ({validated} schema validations, Kubernetes {', '.join(K8S_VERSIONS)}; "
        f"RBAC, Pod Security restricted, requests/limits, PrometheusRule, {len(files)} dashboards)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
