#!/usr/bin/env python3
"""Generate the Grafana dashboards in dashboards/ from the panel lists below.

    python3 scripts/gen-dashboards.py          # write dashboards/*.json
    python3 scripts/gen-dashboards.py --check  # exit 1 if dashboards/ is out of date

The JSON files in dashboards/ are what users import and what deploy/ ships as
ConfigMaps. This script only writes them, so edit the panels here and
regenerate. The tests check that the files match.

Query idiom, used in every query (see docs/monitoring.md):
    sum by (LABELS) (max without (instance, pod) (METRIC{cluster=~"$cluster", ...}))
`max without (instance, pod)` first merges the identical series that two
replicas of the exporter serve. Only then are the series summed. Ratios put
`or 0 * ...` in the numerator, so that a namespace or control with nothing
failing shows 0 and not a gap.
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
TAGS = ["policyreport-exporter", "kyverno"]


def dd(metric, sel):
    """A metric with replicas merged."""
    return f"max without (instance, pod) ({metric}{{{sel}}})"


def ddr(func, metric, sel, rng):
    """A range function of a metric with replicas merged."""
    return f"max without (instance, pod) ({func}({metric}{{{sel}}}[{rng}]))"


FAIL = 'result="fail", '
PASS = 'result="pass", '
NONCOMPLIANT = 'status="noncompliant", '
BLOCKED = "policyreport_admission_blocked_total"


def ratio(metric, good, bad, sel, by=""):
    """good / (good + bad), 0 when nothing is good, grouped `by` (a label list or "")."""
    group = f" by ({by})" if by else ""
    return (
        f"sum{group} (\n"
        f"    {dd(metric, good + ', ' + sel)}\n"
        f"  or\n"
        f"    0 * {dd(metric, bad + ', ' + sel)}\n"
        f")\n/\n"
        f"sum{group} ({dd(metric, good.split('=')[0] + '=~' + _alts(good, bad) + ', ' + sel)})"
    )


def _alts(good, bad):
    g = good.split("=", 1)[1].strip('"')
    b = bad.split("=", 1)[1].strip('"')
    return '"' + "|".join(sorted([g, b])) + '"'


def violation(sel, by=""):
    return ratio("policyreport_results", 'result="fail"', 'result="pass"', sel, by)


def passratio(sel, by=""):
    return ratio("policyreport_results", 'result="pass"', 'result="fail"', sel, by)


def compliance(sel, by=""):
    return ratio(
        "policyreport_control_resources", 'status="compliant"', 'status="noncompliant"', sel, by
    )


def empty_as(expr, label, text):
    """Show an empty label value as `text` (cluster-scoped reports, Events without a control)."""
    return f'label_replace(\n{expr},\n"{label}", "{text}", "{label}", "")'


# ---------------------------------------------------------------- panel builders


class Board:
    def __init__(self):
        self.panels = []
        self.x = 0
        self.y = 0
        self.row_h = 0

    def add(self, panel, w, h):
        if self.x + w > 24:
            self.x = 0
            self.y += self.row_h
            self.row_h = 0
        panel["id"] = len(self.panels) + 1
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        self.panels.append(panel)

    def newline(self):
        self.x = 24


def target(expr, ref="A", legend="", instant=False, table=False):
    t = {
        "datasource": DS,
        "refId": ref,
        "expr": expr,
        "range": not instant,
        "instant": instant,
        "legendFormat": legend or "__auto",
    }
    if table:
        t["format"] = "table"
    return t


def thresholds(*steps):
    """steps: (color, value) with value None for the base."""
    return {
        "mode": "absolute",
        "steps": [{"color": c, "value": v} for c, v in steps],
    }


GREEN_AT_100 = thresholds(("red", None), ("green", 1))
RED_ABOVE_1PCT = thresholds(("green", None), ("red", 0.01))


def stat(title, expr, desc, unit="none", th=None, legend="", decimals=None, mappings=None, text_mode="auto"):
    p = {
        "type": "stat",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": [target(expr, legend=legend, instant=True)],
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "color": {"mode": "thresholds"},
                "thresholds": th or thresholds(("green", None)),
                "mappings": mappings or [],
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": text_mode,
        },
    }
    if decimals is not None:
        p["fieldConfig"]["defaults"]["decimals"] = decimals
    return p


def timeseries(title, exprs, desc, unit="none", th=None, stack=False, bars=False, max_=None):
    """exprs: list of (expr, legend)."""
    custom = {
        "drawStyle": "bars" if bars else "line",
        "lineWidth": 1,
        "fillOpacity": 60 if bars else 10,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "thresholdsStyle": {"mode": "line" if th else "off"},
    }
    defaults = {
        "unit": unit,
        "color": {"mode": "palette-classic"},
        "custom": custom,
        "thresholds": th or thresholds(("green", None)),
    }
    if max_ is not None:
        defaults["max"] = max_
        defaults["min"] = 0
    return {
        "type": "timeseries",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": [
            target(e, ref=chr(ord("A") + i), legend=l) for i, (e, l) in enumerate(exprs)
        ],
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "table", "placement": "right", "showLegend": True, "calcs": ["lastNotNull"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def table(title, expr, desc, value_name, unit="none", hide=(), rename=None, th=None, sort=None):
    rename = dict(rename or {})
    rename["Value"] = value_name
    exclude = {"Time": True}
    for h in hide:
        exclude[h] = True
    p = {
        "type": "table",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": [target(expr, instant=True, table=True)],
        "transformations": [
            {"id": "organize", "options": {"excludeByName": exclude, "renameByName": rename}}
        ],
        "fieldConfig": {
            "defaults": {
                "unit": "none",
                "thresholds": thresholds(("green", None)),
                "custom": {"align": "auto", "filterable": True},
            },
            "overrides": [
                {
                    "matcher": {"id": "byName", "options": value_name},
                    "properties": [{"id": "unit", "value": unit}]
                    + (
                        [
                            {"id": "thresholds", "value": th},
                            {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                        ]
                        if th
                        else []
                    ),
                }
            ],
        },
        "options": {"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"], "fields": ""}},
    }
    if sort:
        p["options"]["sortBy"] = [{"displayName": sort, "desc": True}]
    return p


def bargauge(title, expr, desc, legend, unit="none", th=None, max_=None):
    defaults = {
        "unit": unit,
        "color": {"mode": "thresholds"},
        "thresholds": th or thresholds(("green", None), ("orange", 1)),
        "min": 0,
    }
    if max_ is not None:
        defaults["max"] = max_
    return {
        "type": "bargauge",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": [target(expr, legend=legend, instant=True)],
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "horizontal",
            "displayMode": "gradient",
            "showUnfilled": True,
            "valueMode": "color",
            "namePlacement": "auto",
            "sizing": "auto",
            "minVizHeight": 16,
            "minVizWidth": 8,
            "maxVizHeight": 300,
        },
    }


# ---------------------------------------------------------------- variables


def datasource_var():
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "options": [],
        "refresh": 1,
        "regex": "",
    }


def query_var(name, label, query, include_all, multi=False, all_value=".*", sort=1):
    v = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "definition": query,
        "query": query,
        "hide": 0,
        "includeAll": include_all,
        "multi": multi,
        "options": [],
        "refresh": 2,
        "regex": "",
        "sort": sort,
    }
    if include_all:
        v["allValue"] = all_value
    return v


# The cluster label comes from Prometheus' external labels. It is only on the
# series in a global view (Thanos, Mimir); a single Prometheus has no values,
# and then "All" (.*) matches the series without the label.
CLUSTER_VAR = query_var(
    "cluster", "Cluster", "label_values(policyreport_exporter_build_info, cluster)", include_all=True
)


def dashboard(uid, title, desc, board, variables, links_tag=True, time_from="now-24h"):
    return {
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
        ],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": desc,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [
            {
                "asDropdown": True,
                "icon": "external link",
                "includeVars": True,
                "keepTime": True,
                "tags": ["policyreport-exporter"],
                "targetBlank": False,
                "title": "Policy reports",
                "tooltip": "",
                "type": "dashboards",
            }
        ]
        if links_tag
        else [],
        "panels": board.panels,
        "refresh": "1m",
        "schemaVersion": 39,
        "tags": TAGS,
        "templating": {"list": [datasource_var()] + variables},
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


# ---------------------------------------------------------------- dashboards


def overview():
    s = 'cluster=~"$cluster", namespace=~"$namespace"'
    b = Board()
    for control, title, what in [
        ("resource-limits", "Pods with resource limits", "pods whose containers set CPU and memory requests and limits"),
        ("approved-registries", "Images from approved registries", "pods whose images all come from approved registries"),
        ("secure-context", "Pods with a secure context", "pods that pass the Pod Security Standards policies"),
    ]:
        b.add(
            stat(
                title,
                compliance(f'control="{control}", {s}'),
                f"Share of {what} (control `{control}`): compliant / (compliant + noncompliant). Target: 100%.",
                unit="percentunit",
                th=GREEN_AT_100,
                decimals=1,
            ),
            5,
            5,
        )
    b.add(
        stat(
            "Violation rate",
            violation(s),
            "Failing results among pass and fail results: fail / (pass + fail). Target after enforcement: below 1%.",
            unit="percentunit",
            th=RED_ABOVE_1PCT,
            decimals=2,
        ),
        5,
        5,
    )
    b.add(
        stat(
            "Pass/fail ratio",
            passratio(s),
            "Passing results among pass and fail results: pass / (pass + fail).",
            unit="percentunit",
            th=thresholds(("red", None), ("green", 0.99)),
            decimals=2,
        ),
        4,
        5,
    )
    b.add(
        table(
            "Violation rate by namespace",
            empty_as(violation(s, "namespace"), "namespace", "(cluster-scoped)"),
            "fail / (pass + fail) per namespace, now. Red above the 1% target.",
            "Violation rate",
            unit="percentunit",
            th=RED_ABOVE_1PCT,
            sort="Violation rate",
        ),
        8,
        10,
    )
    b.add(
        timeseries(
            "Violation rate by namespace",
            [(empty_as(violation(s, "namespace"), "namespace", "(cluster-scoped)"), "{{namespace}}")],
            "fail / (pass + fail) per namespace over time. The line marks the 1% target.",
            unit="percentunit",
            th=RED_ABOVE_1PCT,
        ),
        16,
        10,
    )
    b.add(
        timeseries(
            "Blocked admissions per control",
            [
                (
                    empty_as(
                        f"sum by (control) ({ddr('increase', BLOCKED, s, '$__rate_interval')})",
                        "control",
                        "(none)",
                    ),
                    "{{control}}",
                )
            ],
            "Admissions Kyverno denied in Enforce mode, per control, from its PolicyViolation Events. (none): policies outside every control.",
            bars=True,
            stack=True,
        ),
        12,
        9,
    )
    b.add(
        timeseries(
            "Compliance per control",
            [(compliance(s, "control"), "{{control}}")],
            "compliant / (compliant + noncompliant) per control over time. Target: 100%.",
            unit="percentunit",
            th=thresholds(("red", None), ("green", 1)),
            max_=1,
        ),
        12,
        9,
    )
    b.add(
        bargauge(
            "Top failing policies",
            f"topk(10, sum by (policy) ({dd('policyreport_results', FAIL + s)}))",
            "The 10 policies with the most failing results.",
            "{{policy}}",
        ),
        12,
        9,
    )
    b.add(
        bargauge(
            "Top failing categories",
            "topk(10, "
            + empty_as(
                f"sum by (category) ({dd('policyreport_results', FAIL + s)})", "category", "(none)"
            )
            + ")",
            "The 10 categories (policies.kyverno.io/category, as written) with the most failing results.",
            "{{category}}",
        ),
        12,
        9,
    )
    b.add(
        timeseries(
            "Results by outcome",
            [(f"sum by (result) ({dd('policyreport_results', s)})", "{{result}}")],
            "Report results per outcome (pass, fail, warn, error, skip) over time.",
            stack=True,
        ),
        24,
        8,
    )
    ns = query_var(
        "namespace",
        "Namespace",
        'label_values(policyreport_results{cluster=~"$cluster"}, namespace)',
        include_all=True,
        multi=True,
    )
    return dashboard(
        "policyreport-overview",
        "Policy reports / Compliance overview",
        "The audit-first rollout targets: resource limits, approved registries and secure context at 100%, violation rate below 1%.",
        b,
        [CLUSTER_VAR, ns],
    )


def rollout():
    # Results and blocked admissions can be narrowed to namespaces; policies
    # themselves (policyreport_policy_info) have no namespace label.
    s = 'cluster=~"$cluster", namespace=~"$namespace"'
    sc = 'cluster=~"$cluster"'
    b = Board()
    info = lambda mode: f'policyreport_policy_info{{mode=~"{mode}", {sc}}}'  # noqa: E731
    for mode, title, color in [
        ("audit", "Audit policies", "blue"),
        ("enforce", "Enforced policies", "green"),
        ("mixed", "Mixed policies", "purple"),
    ]:
        b.add(
            stat(
                title,
                f"count(max by (cluster, policy) ({info(mode)})) or vector(0)",
                f"Policies whose validate rules all run in {mode.capitalize()} mode."
                if mode != "mixed"
                else "Policies with rules or namespaces in both Audit and Enforce mode (for example an Enforce override for one namespace).",
                th=thresholds((color, None)),
            ),
            4,
            4,
        )
    # The guide's condition for Enforce: a week in Audit without failures. A
    # policy must also have passing results, so that one matching nothing is
    # not offered.
    ready = (
        f"sum by (cluster, policy) ({dd('policyreport_results', PASS + s)})\n"
        f"  * on (cluster, policy) group_left (title, category, severity)\n"
        f"  max by (cluster, policy, title, category, severity) ({info('audit')})\n"
        f"unless on (cluster, policy)\n"
        f'  max by (cluster, policy) (max_over_time(policyreport_results{{result="fail", {s}}}[7d]) > 0)'
    )
    ready_expr = f"count(\n{ready}\n) or vector(0)"
    b.add(
        stat(
            "Ready to enforce",
            ready_expr,
            "Audit policies with passing results and no failing result in the last 7 days.",
            th=thresholds(("text", None), ("green", 1)),
        ),
        4,
        4,
    )
    b.add(
        stat(
            "Blocked admissions",
            f"sum({ddr('increase', BLOCKED, s, '$__range')})",
            "Admissions Kyverno denied in the selected time range.",
            th=thresholds(("green", None), ("orange", 1)),
            decimals=0,
        ),
        4,
        4,
    )
    b.add(
        stat(
            "Enforced policies still failing",
            f"count(\n  max by (cluster, policy) (policyreport_results{{result=\"fail\", {s}}} > 0)\n"
            f"  and on (cluster, policy)\n  max by (cluster, policy) ({info('enforce|mixed')})\n) or vector(0)",
            "Policies in Enforce (or mixed) mode that still have failing results: resources that predate enforcement or run in a namespace where the policy only audits.",
            th=thresholds(("green", None), ("red", 1)),
        ),
        4,
        4,
    )
    b.add(
        stat(
            "Policies by mode",
            f"count by (mode) (max by (cluster, policy, mode) (policyreport_policy_info{{{sc}}}))",
            "Number of policies per mode: audit, enforce, mixed, or none (no validate rule).",
            legend="{{mode}}",
            text_mode="value_and_name",
        ),
        24,
        4,
    )
    b.add(
        table(
            "Ready to enforce: audit policies with no failure in 7 days",
            ready,
            "Policies in Audit mode that have passing results and no failing result in the last 7 days: the guide's condition for moving to Enforce.",
            "Passing results",
            sort="Passing results",
        ),
        12,
        9,
    )
    b.add(
        table(
            "Enforced policies with failing resources",
            f"sum by (cluster, policy) ({dd('policyreport_results', FAIL + s)})\n"
            f"  * on (cluster, policy) group_left (mode, title)\n"
            f"  max by (cluster, policy, mode, title) ({info('enforce|mixed')})",
            "Policies in Enforce (or mixed) mode with failing results. Enforcement blocks new violations only; these resources existed before it, or run where the policy only audits.",
            "Failing results",
            th=thresholds(("green", None), ("red", 1)),
            sort="Failing results",
        ),
        12,
        9,
    )
    b.add(
        timeseries(
            "Blocked admissions by policy",
            [
                (
                    f"sum by (policy) ({ddr('increase', BLOCKED, s, '$__rate_interval')})",
                    "{{policy}}",
                )
            ],
            "Admissions Kyverno denied, per policy. After a policy moves to Enforce, its blocks should fall to zero as teams fix their manifests.",
            bars=True,
            stack=True,
        ),
        12,
        9,
    )
    b.add(
        timeseries(
            "Failing results of enforced policies",
            [
                (
                    f"sum by (policy) (\n  {dd('policyreport_results', FAIL + s)}\n"
                    f"  * on (cluster, policy) group_left ()\n  max by (cluster, policy) ({info('enforce|mixed')})\n)",
                    "{{policy}}",
                )
            ],
            "Failing results of policies in Enforce (or mixed) mode since enforcement. This should trend to zero.",
        ),
        12,
        9,
    )
    b.add(
        table(
            "All policies",
            f"max by (cluster, policy, mode, title, category, severity, background) ({info('.*')})\n"
            f"  * on (cluster, policy) group_left ()\n(\n"
            f"    sum by (cluster, policy) ({dd('policyreport_results', FAIL + s)})\n"
            f"  or on (cluster, policy)\n"
            f"    0 * max by (cluster, policy) ({info('.*')})\n)",
            "Every Kyverno policy with its mode and annotations, and its failing results now.",
            "Failing results",
            th=thresholds(("green", None), ("red", 1)),
            sort="Failing results",
        ),
        12,
        10,
    )
    b.add(
        table(
            "Blocked admissions by policy and rule",
            empty_as(
                f"sum by (policy, rule, kind, control) ({ddr('increase', BLOCKED, s, '$__range')})",
                "control",
                "(none)",
            ),
            "Admissions Kyverno denied in the selected time range, per policy, rule and kind of the blocked resource.",
            "Blocked",
            sort="Blocked",
        ),
        12,
        10,
    )
    return dashboard(
        "policyreport-rollout",
        "Policy reports / Rollout",
        "Audit-first rollout: which policies are ready for Enforce, which enforced policies still fail, and what enforcement blocks.",
        b,
        [
            CLUSTER_VAR,
            query_var(
                "namespace",
                "Namespace",
                'label_values(policyreport_results{cluster=~"$cluster"}, namespace)',
                include_all=True,
                multi=True,
            ),
        ],
        time_from="now-7d",
    )


def namespace_detail():
    s = 'cluster=~"$cluster", namespace="$namespace"'
    b = Board()
    b.add(
        stat(
            "Violation rate",
            violation(s),
            "fail / (pass + fail) in this namespace. Target after enforcement: below 1%.",
            unit="percentunit",
            th=RED_ABOVE_1PCT,
            decimals=2,
        ),
        4,
        5,
    )
    b.add(
        stat(
            "Pass/fail ratio",
            passratio(s),
            "pass / (pass + fail) in this namespace.",
            unit="percentunit",
            th=thresholds(("red", None), ("green", 0.99)),
            decimals=2,
        ),
        4,
        5,
    )
    b.add(
        stat(
            "Results",
            f"sum by (result) ({dd('policyreport_results', s)})",
            "Report results in this namespace per outcome.",
            legend="{{result}}",
            text_mode="value_and_name",
        ),
        8,
        5,
    )
    b.add(
        stat(
            "Blocked admissions",
            f"sum({ddr('increase', BLOCKED, s, '$__range')})",
            "Admissions Kyverno denied for resources of this namespace in the selected time range.",
            th=thresholds(("green", None), ("orange", 1)),
            decimals=0,
        ),
        8,
        5,
    )
    b.add(
        bargauge(
            "Compliance per control",
            compliance(s, "control"),
            "compliant / (compliant + noncompliant) resources of this namespace per control. Target: 100%.",
            "{{control}}",
            unit="percentunit",
            th=thresholds(("red", None), ("orange", 0.9), ("green", 1)),
            max_=1,
        ),
        12,
        8,
    )
    b.add(
        table(
            "Noncompliant resources per control",
            f"sum by (control, kind) ({dd('policyreport_control_resources', NONCOMPLIANT + s)})",
            "Resources of this namespace that fail a control, per kind.",
            "Noncompliant",
            th=thresholds(("green", None), ("red", 1)),
            sort="Noncompliant",
        ),
        12,
        8,
    )
    b.add(
        table(
            "Failing results by policy",
            empty_as(
                empty_as(
                    f"sum by (policy, category, severity) ({dd('policyreport_results', FAIL + s)})",
                    "category",
                    "(none)",
                ),
                "severity",
                "(none)",
            ),
            "Failing results in this namespace per policy. `kubectl get policyreport -n NAMESPACE -o wide` lists the resources.",
            "Failing results",
            th=thresholds(("green", None), ("red", 1)),
            sort="Failing results",
        ),
        12,
        9,
    )
    b.add(
        table(
            "Blocked admissions by policy and rule",
            f"sum by (policy, rule, kind) ({ddr('increase', BLOCKED, s, '$__range')})",
            "Admissions Kyverno denied in this namespace in the selected time range.",
            "Blocked",
            sort="Blocked",
        ),
        12,
        9,
    )
    b.add(
        timeseries(
            "Violation rate",
            [(violation(s), "violation rate")],
            "fail / (pass + fail) in this namespace over time. The line marks the 1% target.",
            unit="percentunit",
            th=RED_ABOVE_1PCT,
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Results by outcome",
            [(f"sum by (result) ({dd('policyreport_results', s)})", "{{result}}")],
            "Report results in this namespace per outcome over time.",
            stack=True,
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Blocked admissions by policy",
            [
                (
                    f"sum by (policy) ({ddr('increase', BLOCKED, s, '$__rate_interval')})",
                    "{{policy}}",
                )
            ],
            "Admissions Kyverno denied in this namespace, per policy.",
            bars=True,
            stack=True,
        ),
        24,
        8,
    )
    ns = query_var(
        "namespace",
        "Namespace",
        'label_values(policyreport_results{cluster=~"$cluster"}, namespace)',
        include_all=False,
    )
    return dashboard(
        "policyreport-namespace",
        "Policy reports / Namespace detail",
        "One namespace: its violation rate, compliance per control, failing policies and blocked admissions.",
        b,
        [CLUSTER_VAR, ns],
    )


def exporter_health():
    s = 'cluster=~"$cluster", job="$job"'
    b = Board()
    b.add(
        stat(
            "Replicas up",
            f"sum(max by (cluster, instance) (up{{{s}}}))",
            "Exporter targets Prometheus scrapes successfully.",
            th=thresholds(("red", None), ("green", 1)),
        ),
        4,
        5,
    )
    b.add(
        stat(
            "Sync state",
            f"max by (instance, resource) (policyreport_exporter_synced{{{s}}})",
            "Per replica and resource: synced once the initial list is complete. /readyz answers 200 when all are synced.",
            legend="{{instance}} {{resource}}",
            th=thresholds(("red", None), ("green", 1)),
            mappings=[
                {"type": "value", "options": {"0": {"text": "syncing", "index": 0}, "1": {"text": "synced", "index": 1}}}
            ],
            text_mode="value_and_name",
        ),
        14,
        5,
    )
    b.add(
        stat(
            "Uptime",
            f"max by (instance) (time() - process_start_time_seconds{{{s}}})",
            "Time since each replica started.",
            unit="s",
            legend="{{instance}}",
            th=thresholds(("orange", None), ("green", 600)),
        ),
        6,
        5,
    )
    b.add(
        timeseries(
            "Watch errors",
            [
                (
                    f"max by (instance, resource) (rate(policyreport_exporter_watch_errors_total{{{s}}}[$__rate_interval]))",
                    "{{instance}} {{resource}}",
                )
            ],
            "Failed list and watch requests per second. The exporter retries with backoff; a steady rate usually means missing RBAC or an unreachable API server.",
            unit="reqps",
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Invalid objects",
            [
                (
                    f"max by (instance, resource) (increase(policyreport_exporter_invalid_objects_total{{{s}}}[$__rate_interval]))",
                    "{{instance}} {{resource}}",
                )
            ],
            "Reports (or files) refused as invalid. They are logged with the failing field and left out of every number.",
            bars=True,
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Objects held",
            [(f"max by (instance, resource) (policyreport_exporter_objects{{{s}}})", "{{instance}} {{resource}}")],
            "Reports and other objects currently held, per resource.",
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Series served",
            [(f"max by (instance) (policyreport_exporter_series{{{s}}})", "{{instance}}")],
            "Number of policyreport_results series: bounded by policies x namespaces.",
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Resident memory",
            [(f"max by (instance) (process_resident_memory_bytes{{{s}}})", "{{instance}}")],
            "Resident memory of each replica. Compare with the container's memory limit.",
            unit="bytes",
        ),
        8,
        8,
    )
    b.add(
        timeseries(
            "CPU",
            [(f"max by (instance) (rate(process_cpu_seconds_total{{{s}}}[$__rate_interval]))", "{{instance}}")],
            "CPU used by each replica, in cores.",
            unit="short",
        ),
        8,
        8,
    )
    b.add(
        timeseries(
            "Scrape duration",
            [(f"max by (instance) (scrape_duration_seconds{{{s}}})", "{{instance}}")],
            "How long Prometheus takes to scrape each replica.",
            unit="s",
        ),
        8,
        8,
    )
    b.add(
        table(
            "Versions",
            f"max by (instance, version) (policyreport_exporter_build_info{{{s}}})",
            "The exporter version each replica runs.",
            "Running",
        ),
        24,
        5,
    )
    job = query_var(
        "job",
        "Job",
        'label_values(policyreport_exporter_build_info{cluster=~"$cluster"}, job)',
        include_all=False,
    )
    return dashboard(
        "policyreport-exporter-health",
        "Policy reports / Exporter health",
        "policyreport-exporter itself: scrape and sync state, watch errors, invalid objects, memory and CPU.",
        b,
        [CLUSTER_VAR, job],
        time_from="now-6h",
    )


DASHBOARDS = {
    "policyreport-overview.json": overview,
    "policyreport-rollout.json": rollout,
    "policyreport-namespace.json": namespace_detail,
    "policyreport-exporter-health.json": exporter_health,
}


def render(build):
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, build in DASHBOARDS.items():
        path = OUT / name
        text = render(build)
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            OUT.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print(
            "out of date: " + ", ".join(stale) + "\nrun: python3 scripts/gen-dashboards.py",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
