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
# A failing result, as `summary` counts it: fail, and warn (an unscored failure)
# and error.
FAILING = 'result=~"error|fail|warn", '
NONCOMPLIANT = 'status="noncompliant", '
EXCEPTED = 'status="excepted", '
BLOCKED = "policyreport_admission_blocked_total"
AUDIT_FAILURES = "policyreport_admission_audit_failures_total"
CONTROLS = "policyreport_control_resources"
NAMESPACE_MODE = "policyreport_policy_namespace_mode"
REPORTS = "policyreport_reports"
STALE = "policyreport_reports_stale"
OLDEST_REFRESH = "policyreport_report_oldest_refresh_timestamp_seconds"


def counted(metric, sel, rng):
    """How much a counter rose over `rng`, replicas merged. A series born within
    `rng` counts with its whole value: increase() skips a series' first sample,
    and the exporter creates a series with its first Event."""
    return (
        f"(\n"
        f"    {dd(metric, sel)}\n"
        f"  unless\n"
        f"    max without (instance, pod) ({metric}{{{sel}}} offset {rng})\n"
        f"  or\n"
        f"    {ddr('increase', metric, sel, rng)}\n"
        f")"
    )


# Kyverno's own count of failed rules at admission, relabelled per Kyverno
# instance by the recording rule of the same name (rules/policyreport.rules.yaml).
KYVERNO_FAILURES = "instance_policy_rule:kyverno_admission_failures_total:sum"
INFO = "policyreport_policy_info"


def admissions(metric, sel, rng):
    """Blocked admissions (metric BLOCKED) or audit admission failures
    (AUDIT_FAILURES) over `rng`, per cluster, policy, namespace, kind, rule and
    control: from Kyverno's own counters where Prometheus scrapes them (they see
    every request, and leave out the dry runs of ClusterPolicy and Policy), else
    from the exporter's Events. Policies in mode mixed take the Events, whose
    outcome is per rule and namespace. Kyverno's replicas each count the
    requests they served, so they add up; the exporter's replicas are merged.
    The control comes from the policy's Events (none when it has none)."""
    mode = "enforce" if metric == BLOCKED else "audit"
    mixed = dd(INFO, 'mode="mixed", ' + sel.split(",")[0])
    k = f'{KYVERNO_FAILURES}{{mode="{mode}", dry_run!="true", {sel}}}'
    kyverno = (
        f"(\n"
        f"    sum by (cluster, policy, namespace, kind, rule) (\n"
        f"        {k}\n"
        f"      unless\n"
        f"        {k} offset {rng}\n"
        f"      or\n"
        f"        increase({k}[{rng}])\n"
        f"    )\n"
        f"  unless on (cluster, policy)\n"
        f"    {mixed}\n"
        f")"
    )
    control = (
        f"topk by (cluster, policy) (1, group by (cluster, policy, control) (\n"
        f"  {dd(BLOCKED, sel)} or {dd(AUDIT_FAILURES, sel)}\n"
        f"))"
    )
    return (
        f"(\n"
        f"    {kyverno} * on (cluster, policy) group_left (control) {control}\n"
        f"  or on (cluster, policy, namespace, kind, rule)\n"
        f"    {kyverno}\n"
        f"  or on (cluster, policy, namespace, kind, rule)\n"
        f"    {counted(metric, sel, rng)}\n"
        f")"
    )


def excepted(sel, by):
    """Resources whose results for a control are all skip (a PolicyException), 0
    where there are none. Not part of the compliance percentage."""
    scored = 'status=~"compliant|noncompliant", ' + sel
    group = f" by ({by})" if by else ""
    return (
        f"sum{group} (\n"
        f"    {dd(CONTROLS, EXCEPTED + sel)}\n"
        f"  or\n"
        f"    0 * {dd(CONTROLS, scored)}\n"
        f")"
    )


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


def no_pass_results(sel):
    """Per cluster and source: 1 when it has fail results and not a single
    pass result (the rule of PolicyReportNoPassResults), else 0."""
    def per_source(result):
        return f"sum by (cluster, source) ({dd('policyreport_results', result + sel)})"

    scored = 'result=~"fail|pass", '
    return (
        f"(\n    {per_source(FAIL)} > bool 0\n"
        f"  unless on (cluster, source)\n    {per_source(PASS)} > 0\n)\n"
        f"or on (cluster, source)\n"
        f"0 * {per_source(scored)}"
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


def count_override(ref, name):
    """A count shown beside a percentage: its own unit and a neutral color."""
    return {
        "matcher": {"id": "byFrameRefID", "options": ref},
        "properties": [
            {"id": "unit", "value": "none"},
            {"id": "decimals", "value": 0},
            {"id": "displayName", "value": name},
            {"id": "color", "value": {"mode": "fixed", "fixedColor": "text"}},
        ],
    }


def stat(title, expr, desc, unit="none", th=None, legend="", decimals=None, mappings=None, text_mode="auto", excepted_expr=None):
    targets = [target(expr, legend=legend, instant=True)]
    overrides = []
    if excepted_expr is not None:
        # "97.5% — 3 excepted": the control's percentage, then its excepted count.
        targets.append(target(excepted_expr, ref="B", legend="excepted", instant=True))
        overrides.append(count_override("B", "excepted"))
        text_mode = "value_and_name"
    p = {
        "type": "stat",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "color": {"mode": "thresholds"},
                "thresholds": th or thresholds(("green", None)),
                "mappings": mappings or [],
            },
            "overrides": overrides,
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


def timeseries(title, exprs, desc, unit="none", th=None, stack=False, bars=False, max_=None, counts=()):
    """exprs: list of (expr, legend). counts: refIds of targets that are counts,
    drawn dashed on a right axis of their own (excepted resources beside a
    percentage)."""
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
        "fieldConfig": {
            "defaults": defaults,
            "overrides": [
                {
                    "matcher": {"id": "byFrameRefID", "options": ref},
                    "properties": [
                        {"id": "unit", "value": "none"},
                        {"id": "decimals", "value": 0},
                        {"id": "min", "value": 0},
                        {"id": "max"},
                        {"id": "custom.axisPlacement", "value": "right"},
                        {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                    ],
                }
                for ref in counts
            ],
        },
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


def multitable(title, columns, desc, sort=None, hide=(), mappings=None):
    """A table of several instant queries joined on their labels (Grafana's
    merge). columns: (expr, name, unit, thresholds or None, cell type or None);
    a column named None is hidden (a query that only brings labels)."""
    exclude = {"Time": True}
    for h in hide:
        exclude[h] = True
    rename = {}
    overrides = []
    targets = []
    for i, (expr, name, unit, th, cell) in enumerate(columns):
        ref = chr(ord("A") + i)
        targets.append(target(expr, ref=ref, instant=True, table=True))
        col = f"Value #{ref}"
        if name is None:
            exclude[col] = True
            continue
        rename[col] = name
        props = [{"id": "unit", "value": unit}]
        if th:
            props.append({"id": "thresholds", "value": th})
        if cell:
            props.append({"id": "custom.cellOptions", "value": {"type": cell}})
        overrides.append({"matcher": {"id": "byName", "options": name}, "properties": props})
    for label, maps in (mappings or {}).items():
        overrides.append(
            {
                "matcher": {"id": "byName", "options": label},
                "properties": [
                    {"id": "mappings", "value": maps},
                    {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                ],
            }
        )
    p = {
        "type": "table",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": targets,
        "transformations": [
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": exclude, "renameByName": rename}},
        ],
        "fieldConfig": {
            "defaults": {
                "unit": "none",
                "thresholds": thresholds(("green", None)),
                "custom": {"align": "auto", "filterable": True},
            },
            "overrides": overrides,
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
                f"Share of {what} (control `{control}`): compliant / (compliant + noncompliant). Target: 100%. "
                "Excepted: resources whose results for this control are all skip (a PolicyException); they are not in the percentage.",
                unit="percentunit",
                th=GREEN_AT_100,
                decimals=1,
                legend="compliant",
                excepted_expr=excepted(f'control="{control}", {s}', ""),
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
    # Per cluster and source, whatever the namespace filter: a namespace with
    # only failures is normal, a source with only failures is not.
    c = 'cluster=~"$cluster"'
    b.add(
        stat(
            "Sources without pass results",
            no_pass_results(c),
            "Per source: 1 when its results in the cluster include fail results and not a single pass result. "
            "Kyverno 1.17+ writes only the results its reports controller's --allowedResults lists (default "
            "pass,fail,error,warn,skip); without pass, every compliance percentage on this dashboard reads 0% and every "
            "violation rate 100%, whatever the resources: they are not measurable. Alert: PolicyReportNoPassResults.",
            legend="{{cluster}} {{source}}",
            th=thresholds(("green", None), ("orange", 1)),
            mappings=[
                {
                    "type": "value",
                    "options": {
                        "0": {"text": "pass results present", "index": 0},
                        "1": {"text": "no pass results: --allowedResults?", "index": 1},
                    },
                }
            ],
            text_mode="value_and_name",
        ),
        8,
        4,
    )
    b.add(
        stat(
            "Stale reports",
            f"sum by (cluster, source) ({dd(STALE, s)})\n/\nsum by (cluster, source) ({dd(REPORTS, s)})",
            "Per source: the share of reports whose newest result is older than the exporter's --stale-after (3h by "
            "default). Kyverno's background scan refreshes every result each --backgroundScanInterval (1h by default), "
            "so stale reports mean the reports controller stopped updating them, and every number here is frozen. "
            "Results of background: false policies keep their admission time and turn stale on their own. "
            "Alert: PolicyReportsStale, above 5%.",
            unit="percentunit",
            legend="{{cluster}} {{source}}",
            th=thresholds(("green", None), ("orange", 0.05)),
            decimals=1,
            text_mode="value_and_name",
        ),
        8,
        4,
    )
    b.add(
        stat(
            "Oldest report refresh",
            f"time() - min by (cluster, source) ({dd(OLDEST_REFRESH, s)})",
            "Per source: how long ago the least recently refreshed report got its newest result.",
            unit="s",
            legend="{{cluster}} {{source}}",
            th=thresholds(("green", None), ("orange", 3 * 3600)),
            text_mode="value_and_name",
        ),
        8,
        4,
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
                        f"sum by (control) {admissions(BLOCKED, s, '$__rate_interval')}",
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
            [
                (compliance(s, "control"), "{{control}}"),
                (excepted(s, "control"), "{{control}} excepted"),
            ],
            "compliant / (compliant + noncompliant) per control over time. Target: 100%. "
            "Dashed, on the right axis: the control's excepted resources (all results skip), which the percentage leaves out.",
            unit="percentunit",
            th=thresholds(("red", None), ("green", 1)),
            max_=1,
            counts=("B",),
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
    # Results, admissions and per-namespace modes can be narrowed to
    # namespaces; policies themselves (policyreport_policy_info) have no
    # namespace label.
    s = 'cluster=~"$cluster", namespace=~"$namespace"'
    sc = 'cluster=~"$cluster"'
    b = Board()
    info = lambda mode: f'policyreport_policy_info{{mode=~"{mode}", {sc}}}'  # noqa: E731
    policy_mode = lambda mode: f"max by (cluster, policy, mode) ({info(mode)})"  # noqa: E731
    # Enforced in a namespace: the policy's mode there (overrides applied) is
    # enforce, or mixed (some of its rules enforced there).
    enforced_here = f'max by (cluster, namespace, policy) ({NAMESPACE_MODE}{{mode=~"enforce|mixed", {s}}})'
    failing_here = f"max by (cluster, namespace, policy) (policyreport_results{{{FAILING}{s}}} > 0)"

    # The verdict per policy, with `summary`'s rules. Failing: fail + warn +
    # error results now; audit admission failures: in the selected range.
    failing = f"sum by (cluster, policy) ({dd('policyreport_results', FAILING + s)}) > 0"
    audited = f"sum by (cluster, policy) {admissions(AUDIT_FAILURES, s, '$__range')} > 0"
    needs_work = f"(\n    {failing}\n  or\n    {audited}\n)"
    verdicts = [
        ("ready", f"{policy_mode('audit')}\nunless on (cluster, policy)\n{needs_work}"),
        ("fix-first", f"{policy_mode('audit')}\nand on (cluster, policy)\n{needs_work}"),
        ("enforced", f"{policy_mode('enforce')}\nunless on (cluster, policy)\n({failing})"),
        ("enforced-failing", f"{policy_mode('enforce')}\nand on (cluster, policy)\n({failing})"),
        ("partly-enforced", policy_mode("mixed")),
        ("none", policy_mode("none")),
    ]
    verdict = "\nor\n".join(
        f'label_replace(\n{expr},\n"verdict", "{name}", "", "")' for name, expr in verdicts
    )
    per_policy = lambda expr: f"{expr}\nor on (cluster, policy)\n0 * max by (cluster, policy) ({info('.*')})"  # noqa: E731

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
            3,
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
        f"  max by (cluster, policy) (max_over_time(policyreport_results{{{FAILING}{s}}}[7d]) > 0)\n"
        f"unless on (cluster, policy)\n"
        f"  sum by (cluster, policy) {admissions(AUDIT_FAILURES, s, '7d')} > 0"
    )
    b.add(
        stat(
            "Ready to enforce",
            f"count(\n{ready}\n) or vector(0)",
            "Audit policies with passing results, and no fail, warn or error result and no audit admission failure in the last 7 days.",
            th=thresholds(("text", None), ("green", 1)),
        ),
        3,
        4,
    )
    b.add(
        stat(
            "Fix first",
            f'count(\n{verdicts[1][1]}\n) or vector(0)',
            "Audit policies with failing results now, or with audit admission failures in the selected range: "
            "the verdict fix-first. Enforcing them would refuse real deploys.",
            th=thresholds(("green", None), ("orange", 1)),
        ),
        3,
        4,
    )
    b.add(
        stat(
            "Blocked admissions",
            f"sum{admissions(BLOCKED, s, '$__range')}",
            "Admissions Kyverno denied in the selected time range.",
            th=thresholds(("green", None), ("orange", 1)),
            decimals=0,
        ),
        3,
        4,
    )
    b.add(
        stat(
            "Would have been blocked",
            f"sum {admissions(AUDIT_FAILURES, s, '$__range')} or vector(0)",
            "Admission requests that failed a policy in Audit mode in the selected time range (Kyverno let them through): "
            "what Enforce would have refused.",
            th=thresholds(("green", None), ("orange", 1)),
            decimals=0,
        ),
        3,
        4,
    )
    b.add(
        stat(
            "Enforced policies still failing",
            f"count(\n  max by (cluster, policy) (\n    {failing_here}\n"
            f"    and on (cluster, namespace, policy)\n    {enforced_here}\n  )\n) or vector(0)",
            "Policies with fail, warn or error results in a namespace where they are enforced (their mode there is enforce or mixed, "
            "after overrides): resources that predate enforcement, or got in around it.",
            th=thresholds(("green", None), ("red", 1)),
        ),
        3,
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
    verdict_colors = [
        {
            "type": "value",
            "options": {
                "ready": {"text": "ready", "color": "green", "index": 0},
                "fix-first": {"text": "fix-first", "color": "orange", "index": 1},
                "enforced": {"text": "enforced", "color": "blue", "index": 2},
                "enforced-failing": {"text": "enforced-failing", "color": "red", "index": 3},
                "partly-enforced": {"text": "partly-enforced", "color": "purple", "index": 4},
                "none": {"text": "none", "color": "text", "index": 5},
            },
        }
    ]
    red_from_1 = thresholds(("green", None), ("red", 1))
    orange_from_1 = thresholds(("green", None), ("orange", 1))
    b.add(
        multitable(
            "Rollout plan: verdict per policy",
            [
                (verdict, None, "none", None, None),
                (
                    per_policy(f"sum by (cluster, policy) ({dd('policyreport_results', FAILING + s)})"),
                    "Failing results",
                    "none",
                    red_from_1,
                    "color-text",
                ),
                (
                    per_policy(f"sum by (cluster, policy) {admissions(AUDIT_FAILURES, s, '$__range')}"),
                    "Audit admission failures",
                    "none",
                    orange_from_1,
                    "color-text",
                ),
                (
                    per_policy(f"sum by (cluster, policy) {admissions(BLOCKED, s, '$__range')}"),
                    "Blocked admissions",
                    "none",
                    None,
                    None,
                ),
            ],
            "One row per policy known from its policy object, with the verdict of `summary`: ready (Audit, no failing result and "
            "no audit admission failure), fix-first (Audit, with either), enforced (Enforce, no failing result), enforced-failing "
            "(Enforce, with failing results: resources the admission check never saw), partly-enforced (mixed), none (no validate "
            "rule). Failing results are fail + warn + error now; audit admission failures (what Enforce would have refused) and "
            "blocked admissions are counted over the selected time range, where `summary` counts them since the exporter started.",
            mappings={"verdict": verdict_colors},
        ),
        16,
        10,
    )
    b.add(
        multitable(
            "Controls: compliance and exceptions",
            [
                (
                    compliance(s, "control"),
                    "Compliance",
                    "percentunit",
                    thresholds(("red", None), ("orange", 0.9), ("green", 1)),
                    "color-background",
                ),
                (
                    f"sum by (control) ({dd(CONTROLS, NONCOMPLIANT + s)})\nor\n"
                    f"0 * sum by (control) ({dd(CONTROLS, s)})",
                    "Noncompliant",
                    "none",
                    red_from_1,
                    "color-text",
                ),
                (excepted(s, "control"), "Excepted", "none", None, None),
            ],
            "Per control: compliant / (compliant + noncompliant) resources, the noncompliant ones, and the excepted ones "
            "(all their results for the control are skip, through a PolicyException), which the percentage leaves out.",
        ),
        8,
        10,
    )
    would_block = f"sum by (cluster, policy) {admissions(AUDIT_FAILURES, s, '$__range')} > 0"
    b.add(
        table(
            "Would have been blocked: audit admission failures by policy",
            f"(\n  {would_block}\n)\n"
            f"  * on (cluster, policy) group_left (mode)\n  {policy_mode('.*')}\n"
            f"or on (cluster, policy)\n"
            f'label_replace(\n  {would_block},\n"mode", "(no policy object)", "", "")',
            "Admission requests that failed each policy while Kyverno only audited them (PolicyViolation Events with "
            "`action: Resource Passed`), in the selected time range, with the policy's mode. For an Audit policy this is "
            "what switching it to Enforce would have refused; for a mixed or enforced one, its rules or namespaces that "
            "still audit. `(no policy object)`: the exporter has Events of a policy it cannot read.",
            "Would have been blocked",
            th=orange_from_1,
            sort="Would have been blocked",
        ),
        12,
        9,
    )
    b.add(
        table(
            "Would have been blocked by namespace and rule",
            empty_as(
                empty_as(
                    f"sum by (namespace, policy, rule, kind, control) {admissions(AUDIT_FAILURES, s, '$__range')} > 0",
                    "control",
                    "(none)",
                ),
                "namespace",
                "(cluster-scoped)",
            ),
            "Audit admission failures in the selected time range, per namespace, policy, rule and kind of the admitted "
            "resource: who to talk to before a policy moves to Enforce.",
            "Would have been blocked",
            th=orange_from_1,
            sort="Would have been blocked",
        ),
        12,
        9,
    )
    b.add(
        timeseries(
            "Would have been blocked, by policy",
            [
                (
                    f"sum by (policy) {admissions(AUDIT_FAILURES, s, '$__rate_interval')}",
                    "{{policy}}",
                )
            ],
            "Audit admission failures per policy over time: admissions Enforce would have refused. Before a switch to "
            "Enforce this should be zero.",
            bars=True,
            stack=True,
        ),
        12,
        9,
    )
    b.add(
        timeseries(
            "Blocked admissions by policy",
            [
                (
                    f"sum by (policy) {admissions(BLOCKED, s, '$__rate_interval')}",
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
        table(
            "Ready to enforce: audit policies with no failure in 7 days",
            ready,
            "Policies in Audit mode that have passing results, and no fail, warn or error result and no audit admission "
            "failure in the last 7 days: the guide's condition for moving to Enforce.",
            "Passing results",
            sort="Passing results",
        ),
        12,
        9,
    )
    b.add(
        table(
            "Enforced policies with failing resources",
            empty_as(
                f"sum by (cluster, namespace, policy) ({dd('policyreport_results', FAILING + s)})\n"
                f'  * on (cluster, namespace, policy) group_left (mode)\n'
                f'  max by (cluster, namespace, policy, mode) ({NAMESPACE_MODE}{{mode=~"enforce|mixed", {s}}})',
                "namespace",
                "(cluster-scoped)",
            ),
            "Policies with fail, warn or error results in namespaces where they are enforced: their mode there "
            "(policyreport_policy_namespace_mode, overrides applied) is enforce or mixed. Enforcement blocks new violations "
            "only; these resources existed before it, or got in around it.",
            "Failing results",
            th=red_from_1,
            sort="Failing results",
        ),
        12,
        9,
    )
    b.add(
        timeseries(
            "Failing results of enforced policies",
            [
                (
                    f"sum by (policy) (\n  {dd('policyreport_results', FAILING + s)}\n"
                    f"  * on (cluster, namespace, policy) group_left ()\n  {enforced_here}\n)",
                    "{{policy}}",
                )
            ],
            "Fail, warn and error results of policies in the namespaces where they are enforced (enforce or mixed there), "
            "since enforcement. This should trend to zero.",
        ),
        12,
        9,
    )
    b.add(
        table(
            "Blocked admissions by policy and rule",
            empty_as(
                f"sum by (policy, rule, kind, control) {admissions(BLOCKED, s, '$__range')}",
                "control",
                "(none)",
            ),
            "Admissions Kyverno denied in the selected time range, per policy, rule and kind of the blocked resource.",
            "Blocked",
            sort="Blocked",
        ),
        12,
        9,
    )
    b.add(
        timeseries(
            "Admission results without an Event",
            [
                (
                    f'sum by (policy) (policy:policyreport_admission_events_missing:increase1h{{{s.split(",")[0]}}}) > 0',
                    "{{policy}}",
                ),
                (
                    f'sum (increase(kyverno_events_dropped_total{{{s.split(",")[0]}}}[1h])) > 0',
                    "dropped by Kyverno",
                ),
            ],
            "Per policy, over the hour before each point: failed rules Kyverno counted at admission "
            "(kyverno_policy_results_total, kyverno_validating_policy_results_total) that no PolicyViolation Event "
            "reached the exporter for, and Events Kyverno counted as dropped. Empty when Prometheus does not scrape "
            "Kyverno. Blocked counts on these dashboards come from Kyverno's counters and stay right; the exporter's "
            "own families and `summary` read low (alert PolicyReportAdmissionEventsMissing).",
            bars=True,
        ),
        24,
        8,
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
            th=red_from_1,
            sort="Failing results",
        ),
        24,
        10,
    )
    return dashboard(
        "policyreport-rollout",
        "Policy reports / Rollout",
        "The audit-first rollout as a plan: a verdict per policy (ready, fix-first, enforced, enforced-failing, partly-enforced, "
        "none), what Enforce would have blocked, what it blocks, and the enforced policies that still fail where they are enforced.",
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
            f"sum{admissions(BLOCKED, s, '$__range')}",
            "Admissions Kyverno denied for resources of this namespace in the selected time range.",
            th=thresholds(("green", None), ("orange", 1)),
            decimals=0,
        ),
        8,
        5,
    )
    b.add(
        multitable(
            "Compliance per control",
            [
                (
                    compliance(s, "control"),
                    "Compliance",
                    "percentunit",
                    thresholds(("red", None), ("orange", 0.9), ("green", 1)),
                    "color-background",
                ),
                (excepted(s, "control"), "Excepted", "none", None, None),
            ],
            "compliant / (compliant + noncompliant) resources of this namespace per control (target: 100%), and the "
            "excepted resources next to it: all their results for the control are skip (a PolicyException), so the "
            "percentage leaves them out.",
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
            f"sum by (policy, rule, kind) {admissions(BLOCKED, s, '$__range')}",
            "Admissions Kyverno denied in this namespace in the selected time range.",
            "Blocked",
            sort="Blocked",
        ),
        12,
        9,
    )
    mode_here = f"max by (cluster, policy, mode) ({dd(NAMESPACE_MODE, s)})"
    b.add(
        table(
            "Policy modes in this namespace",
            f"(\n    sum by (cluster, policy) ({dd('policyreport_results', FAILING + s)})\n"
            f"  or on (cluster, policy)\n    0 * {mode_here}\n)\n"
            f"  * on (cluster, policy) group_left (mode)\n  {mode_here}",
            "Each policy's mode in this namespace after its overrides (policyreport_policy_namespace_mode): enforce, "
            "audit, or mixed (some rules enforced here). With its fail, warn and error results here.",
            "Failing results",
            th=thresholds(("green", None), ("red", 1)),
            sort="Failing results",
        ),
        12,
        9,
    )
    b.add(
        table(
            "Would have been blocked by policy and rule",
            f"sum by (policy, rule, kind) {admissions(AUDIT_FAILURES, s, '$__range')} > 0",
            "Admissions in this namespace that failed a policy Kyverno only audits here, in the selected time range: "
            "what Enforce would have refused.",
            "Would have been blocked",
            th=thresholds(("green", None), ("orange", 1)),
            sort="Would have been blocked",
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
                    f"sum by (policy) {admissions(BLOCKED, s, '$__rate_interval')}",
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
            f"max by (cluster, instance, resource) (policyreport_exporter_synced{{{s}}})",
            "Per replica and resource: synced once the initial list is complete. /readyz answers 200 when all are synced.",
            legend="{{cluster}} {{instance}} {{resource}}",
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
            f"max by (cluster, instance) (time() - process_start_time_seconds{{{s}}})",
            "Time since each replica started.",
            unit="s",
            legend="{{cluster}} {{instance}}",
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
                    f"max by (cluster, instance, resource) (rate(policyreport_exporter_watch_errors_total{{{s}}}[$__rate_interval]))",
                    "{{cluster}} {{instance}} {{resource}}",
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
                    f"max by (cluster, instance, resource) (increase(policyreport_exporter_invalid_objects_total{{{s}}}[$__rate_interval]))",
                    "{{cluster}} {{instance}} {{resource}}",
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
            [(f"max by (cluster, instance, resource) (policyreport_exporter_objects{{{s}}})", "{{cluster}} {{instance}} {{resource}}")],
            "Reports and other objects currently held, per resource.",
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Series served",
            [(f"max by (cluster, instance) (policyreport_exporter_series{{{s}}})", "{{cluster}} {{instance}}")],
            "Number of policyreport_results series: bounded by policies x namespaces.",
        ),
        12,
        8,
    )
    b.add(
        timeseries(
            "Resident memory",
            [(f"max by (cluster, instance) (process_resident_memory_bytes{{{s}}})", "{{cluster}} {{instance}}")],
            "Resident memory of each replica. Compare with the container's memory limit.",
            unit="bytes",
        ),
        8,
        8,
    )
    b.add(
        timeseries(
            "CPU",
            [(f"max by (cluster, instance) (rate(process_cpu_seconds_total{{{s}}}[$__rate_interval]))", "{{cluster}} {{instance}}")],
            "CPU used by each replica, in cores.",
            unit="short",
        ),
        8,
        8,
    )
    b.add(
        timeseries(
            "Scrape duration",
            [(f"max by (cluster, instance) (scrape_duration_seconds{{{s}}})", "{{cluster}} {{instance}}")],
            "How long Prometheus takes to scrape each replica.",
            unit="s",
        ),
        8,
        8,
    )
    b.add(
        table(
            "Versions",
            f"max by (cluster, instance, version) (policyreport_exporter_build_info{{{s}}})",
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
