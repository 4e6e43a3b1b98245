#!/usr/bin/env python3
"""Independent cross-check of the exporter's report, control, admission, policy, namespace-mode and freshness metrics.

Usage:
  python3 tests/crosscheck/crosscheck.py --metrics METRICS_FILE PATH...
  python3 tests/crosscheck/crosscheck.py --print PATH...

PATHs are files or folders (searched recursively for *.yaml, *.yml, *.json).
Nine families, every family `serve` computes from objects under its default
flags, are computed from the objects in them, independently of the Rust
code: policyreport_results, policyreport_control_resources,
policyreport_admission_blocked_total,
policyreport_admission_audit_failures_total, policyreport_policy_info,
policyreport_policy_namespace_mode, policyreport_reports,
policyreport_reports_stale and
policyreport_report_oldest_refresh_timestamp_seconds. With --metrics, the
samples of those families in METRICS_FILE (Prometheus text format; labels in
any order; other metrics ignored) are compared with the expected ones: exit 0
when every series matches, 1 otherwise, 2 on usage or I/O errors. With
--print, the expected series of all nine families are printed in Prometheus
text form, sorted, and nothing is compared.

Objects:
- A YAML file may hold several documents; a document is one object or a list
  wrapper (kind `List` or any kind ending in `List`) with `items`. These
  count: wgpolicyk8s.io/{v1alpha2,v1beta1} PolicyReport, ClusterPolicyReport
  and openreports.io/v1alpha1 Report, ClusterReport (the reports); core `v1`
  and `events.k8s.io/v1` Event; core `v1` Namespace; kyverno.io/v1
  ClusterPolicy and Policy; policies.kyverno.io/{v1,v1beta1,v1alpha1}
  ValidatingPolicy, NamespacedValidatingPolicy, ImageValidatingPolicy and
  NamespacedImageValidatingPolicy. Everything else is ignored. A file that
  fails to parse is skipped whole.
- Identity is (kind, namespace, name), namespace "" for the cluster-scoped
  kinds. The same object in two different files counts twice; within one
  file a later duplicate replaces an earlier one (an invalid later duplicate
  removes the earlier one's contribution).

policyreport_results{namespace, policy, category, severity, source, result}:
- A report is invalid, and skipped whole, if any result lacks a string
  `policy`, has `result` not in pass/fail/warn/error/skip, or has a field of
  the wrong type: source, policy, rule, category, severity, result, message
  (strings), scored (bool), resources (list of objects), properties (map of
  strings). Missing or null `results` means no results. `timestamp` is not
  looked at (a float `seconds` is fine).
- A result counts once per entry of a non-empty `resources`, else once.
- Labels: namespace (metadata.namespace for PolicyReport/Report, "" for the
  cluster kinds), policy, category and severity as written ("" if absent),
  source (the result's, else the report's top-level `source`, else ""),
  result. The value is the sum of counts; zero-valued series are not emitted.

policyreport_reports, policyreport_reports_stale,
policyreport_report_oldest_refresh_timestamp_seconds{namespace, source}:
- Per valid report and each source its results have (as for
  policyreport_results), the refresh time is the newest `timestamp.seconds`
  of that source's results: a number (a float rounded down) above 0, later
  than 2106 read as 2106; anything else is no timestamp.
- reports: how many reports per (namespace, source). stale: how many of them
  were refreshed more than 3h (the default --stale-after) before now, 0 too.
  oldest: the earliest refresh time, absent when none has one.

Controls (the defaults; all three count subjects of kind `Pod` only):
  resource-limits     policy globs require-requests-limits
  approved-registries policy globs restrict-image-registries, advanced-restrict-image-registries
  secure-context      category globs "Pod Security Standards (Baseline)*",
                      "Pod Security Standards (Restricted)*"; policy glob podsecurity-subrule-*
  A (policy, category) matches a control when the policy matches one of its
  policy globs, or one comma-separated, trimmed entry of the category
  matches one of its category globs (fnmatch, case-sensitive; `*` matches
  anything including `/`).

policyreport_control_resources{control, namespace, kind, status}:
- Results of valid reports only; a result belongs to every control it
  matches. Its subjects are its `resources` if non-empty, else the report's
  `scope` (no scope: no subject, ignored); only subjects of kind `Pod` count.
- A resource is its `uid` if non-empty, else (kind, namespace, name); the
  namespace is the subject's if non-empty, else the report's ("" for the
  cluster kinds). Results for one resource are combined across all reports
  and files.
- Per control and resource: pass counts as pass; fail, warn, error as bad;
  skip as skip. `noncompliant` if bad > 0, `compliant` if pass > 0 and
  bad == 0, `excepted` if all its results are skips. Value = number of resources per (control,
  namespace, kind, status), namespace and kind from the first subject seen
  for the resource (per control, skips included, in file order then object
  order). Zero series are not emitted.

policyreport_admission_blocked_total and
policyreport_admission_audit_failures_total{namespace, policy, rule, kind, control}:
- core v1 Events use `message`, `involvedObject`, `reportingComponent`;
  events.k8s.io/v1 Events `note`, `regarding`, `reportingController`.
- An Event counts when `reason` is `PolicyViolation` and the reference names
  a ClusterPolicy or Policy (apiVersion, when given, in kyverno.io/) or one
  of the four CEL kinds (in policies.kyverno.io/). The component is the
  reporting component/controller, else `source.component`; when set and
  not `kyverno-admission`, the Event does not count.
- The message must read `<Kind> <resource>: [<rule>] <fail|error>[ (blocked)][;...]`
  with the `[<rule>] ` part optional (rule "" then): Kind up to the first
  space, resource up to the first `: `, split at its first `/` into
  namespace and name (name non-empty, no spaces), rule up to the first
  `] `. A message that does not parse makes the Event invalid when a
  component is set, else the Event does not count.
- Blocked: `action` == `Resource Blocked` when `action` is non-empty, else
  ` (blocked)` in the message. Without a component, only blocked Events
  count. A missing reference name is invalid.
- Labels: namespace and kind from `related` when it has a non-empty kind
  (namespace "" when absent), else from the message; policy = name for the
  cluster-wide kinds, namespace/name for Policy and the Namespaced kinds
  (the reference's namespace, else the Event's metadata.namespace); the
  rule; control = the first control (in the order above) that (policy,
  category) matches, else "". The category is the
  `policies.kyverno.io/category` annotation of a valid policy object with
  that policy name (the first non-empty one), else the `category` of the
  first result with that `policy` in a valid report that has one, else "".
- Value = sum over counted events of the first of `series.count`, `count`,
  `deprecatedCount` that is above 0, else 1. Blocked Events go to
  ..._blocked_total, the others to ..._audit_failures_total, except that a
  blocked Event about one of the four CEL kinds goes to
  ..._blocked_total only when a valid copy of its policy (the first) has
  mode enforce (Deny in validationActions), to ..._audit_failures_total
  when it has mode audit, and to ..._blocked_total when no copy exists:
  Kyverno marks every failing CEL policy of a webhook call blocked when any
  policy of the call has Deny.
- Malformed events are skipped: `reason`, the message field, `action`, the
  component field are not strings, `series` or `source` not a map,
  `series.count`/`count`/`deprecatedCount` not integers, the object
  reference or `related` not a map or its apiVersion/kind/name/namespace not
  strings.

policyreport_policy_info{policy, mode, category, severity, title, background} = 1:
- policy = name (cluster-wide kinds) or namespace/name (Policy and the
  Namespaced kinds; name alone without a namespace). category, severity,
  title = annotations `policies.kyverno.io/category|severity|title` (""
  if absent). background = `spec.background` (CEL kinds:
  `spec.evaluation.background.enabled`), default true, printed
  "true"/"false".
- kyverno.io kinds: each rule with a `validate` key adds its action
  (`validate.failureAction`, else `spec.validationFailureAction`, else
  `Audit`) and the `action` of each `validate.failureActionOverrides[]`
  entry; when there is at least one validate rule, each
  `spec.validationFailureActionOverrides[].action` adds too. Case-insensitive;
  a collected action other than audit/enforce makes the policy invalid. mode
  = audit/enforce when all collected actions agree, mixed when they differ,
  none without validate rules.
- CEL kinds: `spec.validationActions` containing Deny (any case) -> enforce,
  anything else -> audit.
- Invalid, skipped (also for the category lookup above): metadata.name
  missing or empty, metadata/annotations/spec/rules/validate of the wrong
  shape, override entries of the wrong shape (namespaces not a list of
  strings, a selector operator other than In/NotIn/Exists/DoesNotExist),
  annotation values or background not of their type, or an invalid action.
  Identical label sets (e.g. the same policy in two files) give one series
  with value 1.

policyreport_policy_namespace_mode{policy, namespace, mode} = 1:
- For each policy name whose mode is not none. Several valid policies with
  one name (a ClusterPolicy and a ValidatingPolicy, or copies in several
  files) combine: their modes in N (none left out) agree, or mixed.
  Namespaces: a namespaced policy's own; otherwise every namespace of its
  policyreport_results series plus every override `namespaces` entry
  without `*` or `?`.
- kyverno.io kinds, per validate rule in namespace N: the first override
  entry (with an action) that applies among the rule's
  failureActionOverrides, or the spec's validationFailureActionOverrides
  when the rule has none; else the rule's action as above. An entry applies
  when N is not "", its non-empty `namespaces` has a pattern matching N
  (`*` any run, `?` one character), and its `namespaceSelector`, when
  given, matches the labels of the v1 Namespace N (unknown N: no match).
  mode = audit/enforce when the rules agree, else mixed. CEL kinds: their
  mode everywhere.

Choices where the rules are silent: a field set to null counts as absent; an
invalid object replaces an earlier valid duplicate (and so counts nothing),
as an update to an invalid version removes an object's contribution; scalars
follow YAML 1.2 (`yes`/`no`/dates stay strings, as in Kubernetes and Rust
parsers); files named on the command line are read whatever their extension,
and a file reached twice (e.g. a folder and a file inside it) is read once;
v1 and events.k8s.io/v1 Events with the same namespace and name are the same
object, as are policies (and reports) of one kind at different versions.

Python 3.11, standard library plus PyYAML.
"""
import argparse
import fnmatch
import json
import math
import os
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

try:
    import yaml
except ImportError:
    sys.exit(f"missing Python package PyYAML: {sys.executable} -m pip install pyyaml (or run scripts/test)")

EXTENSIONS = (".yaml", ".yml", ".json")

RESULTS = "policyreport_results"
CONTROLS = "policyreport_control_resources"
BLOCKED = "policyreport_admission_blocked_total"
AUDIT_FAILURES = "policyreport_admission_audit_failures_total"
POLICY_INFO = "policyreport_policy_info"
NAMESPACE_MODE = "policyreport_policy_namespace_mode"
REPORTS = "policyreport_reports"
STALE = "policyreport_reports_stale"
OLDEST = "policyreport_report_oldest_refresh_timestamp_seconds"
# The exporter's default --stale-after, in seconds.
STALE_AFTER = 3 * 3600
# Refresh times are kept as unsigned 32-bit seconds: later ones read as the last of them.
LAST_STAMP = 2**32 - 1
# sample name -> label names, in printing order
FAMILIES = {
    RESULTS: ("namespace", "policy", "category", "severity", "source", "result"),
    CONTROLS: ("control", "namespace", "kind", "status"),
    BLOCKED: ("namespace", "policy", "rule", "kind", "control"),
    AUDIT_FAILURES: ("namespace", "policy", "rule", "kind", "control"),
    POLICY_INFO: ("policy", "mode", "category", "severity", "title", "background"),
    NAMESPACE_MODE: ("policy", "namespace", "mode"),
    REPORTS: ("namespace", "source"),
    STALE: ("namespace", "source"),
    OLDEST: ("namespace", "source"),
}

# The kinds come from the exporter's one table (src/kind.rs, read by scripts/kinds.py); what is counted
# from them is written here independently.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from kinds import read_kinds  # noqa: E402

ROLES = {"Report": "report", "Admission": "event", "NamespaceLabels": "namespace", "Policy": "policy", "CelPolicy": "policy"}
# The CEL policy kinds -> namespaced?
CEL_KINDS = {k["kind"]: k["namespaced"] for k in read_kinds() if k["role"] == "CelPolicy"}
# (apiVersion, kind) -> (role, namespaced?)
KINDS = {
    (f"{k['group']}/{v}" if k["group"] else v, k["kind"]): (ROLES[k["role"]], k["namespaced"])
    for k in read_kinds()
    for v in k["versions"]
}
# Events are read from events.k8s.io/v1 too.
KINDS[("events.k8s.io/v1", "Event")] = ("event", True)
# The kinds an admission Event may be about: kind -> (API group, namespaced?)
POLICY_REFS = {k["kind"]: (k["group"], k["namespaced"]) for k in read_kinds() if k["role"] in ("Policy", "CelPolicy")}
RESULT_VALUES = ("pass", "fail", "warn", "error", "skip")
STRING_FIELDS = ("source", "policy", "rule", "category", "severity", "result", "message")

# name, policy globs, categories; the order decides an event's control.
CONTROL_DEFS = (
    ("resource-limits", ("require-requests-limits",), ()),
    ("approved-registries", ("restrict-image-registries", "advanced-restrict-image-registries"), ()),
    ("secure-context", ("podsecurity-subrule-*",),
     ("Pod Security Standards (Baseline)*", "Pod Security Standards (Restricted)*")),
)
CONTROL_KIND = "Pod"
ANNOTATION = "policies.kyverno.io/"


# --------------------------------------------------------------------------- YAML
class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars.

    PyYAML implements YAML 1.1, where `yes`/`no`/`on`/`off` are booleans and
    unquoted dates become timestamps; Kubernetes tooling (and Rust's YAML
    crates) follow YAML 1.2, where those are plain strings.
    """


_Loader.yaml_implicit_resolvers = {}
for _tag, _regexp, _first in (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
     "-+0123456789."),
):
    _Loader.add_implicit_resolver(_tag, re.compile(_regexp), list(_first))


def _construct_int(loader, node):
    text = loader.construct_scalar(node)
    if text.startswith("0o"):
        return int(text[2:], 8)
    return int(text, 0) if text.startswith("0x") else int(text, 10)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def load_documents(path):
    """All documents of one file, or None when the file does not parse.
    Leading lines that start with `Warning: ` are dropped first: `kyverno
    apply --policy-report` (1.19) prints its deprecation warnings on stdout
    ahead of the report."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        text = data.decode("utf-8")
        while text.startswith("Warning: "):
            text = text.partition("\n")[2]
        if path.endswith(".json"):
            return [json.loads(text)] if text.strip() else []
        return list(yaml.load_all(text, Loader=_Loader))
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError, RecursionError):
        return None


# --------------------------------------------------------------------------- files
def collect_files(paths):
    """Files named on the command line are read whatever their extension;
    folders are walked recursively (not following symlinked folders) for
    *.yaml, *.yml, *.json. A file reached twice is read once."""
    seen, files = set(), []

    def add(p):
        real = os.path.realpath(p)
        if real not in seen:
            seen.add(real)
            files.append(p)

    for p in paths:
        if os.path.isdir(p):
            for root, dirs, names in os.walk(p):
                dirs.sort()
                for name in sorted(names):
                    if name.endswith(EXTENSIONS):
                        full = os.path.join(root, name)
                        if os.path.isfile(full):
                            add(full)
        elif os.path.isfile(p):
            add(p)
        else:
            raise FileNotFoundError(p)
    return files


def objects_in(doc):
    """A document is one object or a list wrapper (kind List or *List) with items."""
    if not isinstance(doc, dict):
        return []
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and "items" in doc:
        items = doc.get("items")
        return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
    return [doc]


# --------------------------------------------------------------------------- objects
def _present(d, key):
    # A field set to null counts as absent, as when Kubernetes decodes JSON.
    return d.get(key) is not None


def _str(d, key):
    """A string field, "" when absent or not a string."""
    v = d.get(key) if isinstance(d, dict) else None
    return v if isinstance(v, str) else ""


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def report_is_valid(obj):
    results = obj.get("results")
    if results is None:
        return True
    if not isinstance(results, list):
        return False
    for r in results:
        if not isinstance(r, dict):
            return False
        if not isinstance(r.get("policy"), str):
            return False
        for key in STRING_FIELDS:
            if _present(r, key) and not isinstance(r[key], str):
                return False
        if r.get("result") not in RESULT_VALUES:
            return False
        if _present(r, "scored") and not isinstance(r["scored"], bool):
            return False
        if _present(r, "resources"):
            res = r["resources"]
            if not isinstance(res, list) or not all(isinstance(x, dict) for x in res):
                return False
        if _present(r, "properties"):
            props = r["properties"]
            if not isinstance(props, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in props.items()):
                return False
    return True


def identity(obj, namespaced):
    md = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return (obj.get("kind"), _str(md, "namespace") if namespaced else "", _str(md, "name"))


def report_namespace(obj, namespaced):
    return _str(obj.get("metadata"), "namespace") if namespaced else ""


def report_series(obj, namespaced):
    """Yield (labels tuple, count) for every result of one valid report."""
    namespace = report_namespace(obj, namespaced)
    top_source = obj.get("source") if isinstance(obj.get("source"), str) else ""
    for r in obj.get("results") or []:
        source = r["source"] if _present(r, "source") else top_source
        labels = (namespace, r["policy"], r.get("category") or "", r.get("severity") or "",
                  source, r["result"])
        resources = r.get("resources") or []
        yield labels, max(1, len(resources))


def _seconds(timestamp):
    """A result's refresh time: `timestamp.seconds` rounded down when it is a number above 0, else None."""
    if not isinstance(timestamp, dict):
        return None
    s = timestamp.get("seconds")
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s):
        return None
    s = math.floor(s)
    return min(s, LAST_STAMP) if s > 0 else None


def refresh_times(obj):
    """{source: newest refresh time of that source's results, or None} of one valid report."""
    top_source = obj.get("source") if isinstance(obj.get("source"), str) else ""
    out = {}
    for r in obj.get("results") or []:
        source = r["source"] if _present(r, "source") else top_source
        t = _seconds(r.get("timestamp"))
        old = out.get(source)
        out[source] = t if old is None else old if t is None else max(old, t)
    return out


# --------------------------------------------------------------------------- controls
def matching_controls(policy, category):
    """Names of the controls (policy, category) belongs to, in CONTROL_DEFS order."""
    entries = {c.strip() for c in category.split(",")} if category else set()
    return [name for name, globs, cats in CONTROL_DEFS
            if any(fnmatch.fnmatchcase(policy, g) for g in globs)
            or any(fnmatch.fnmatchcase(e, c) for e in entries for c in cats)]


def result_subjects(obj, namespaced, r):
    """(resource identity, namespace, kind) of each Pod subject of one result."""
    resources = r.get("resources") or []
    if resources:
        subjects = resources
    elif isinstance(obj.get("scope"), dict):
        subjects = [obj["scope"]]
    else:
        subjects = []
    report_ns = report_namespace(obj, namespaced)
    for s in subjects:
        kind = _str(s, "kind")
        if kind != CONTROL_KIND:
            continue
        ns = _str(s, "namespace") or report_ns
        uid = _str(s, "uid")
        ident = ("uid", uid) if uid else ("ref", kind, ns, _str(s, "name"))
        yield ident, ns, kind


class ControlState:
    def __init__(self):
        self.first = {}                       # (control, resource) -> (namespace, kind)
        self.counts = defaultdict(lambda: [0, 0, 0])  # (control, resource) -> [pass, bad, skip]

    def add_report(self, obj, namespaced):
        for r in obj.get("results") or []:
            controls = matching_controls(r["policy"], r.get("category") or "")
            if not controls:
                continue
            for ident, ns, kind in result_subjects(obj, namespaced, r):
                for control in controls:
                    key = (control, ident)
                    self.first.setdefault(key, (ns, kind))
                    if r["result"] == "pass":
                        self.counts[key][0] += 1
                    elif r["result"] in ("fail", "warn", "error"):
                        self.counts[key][1] += 1
                    elif r["result"] == "skip":
                        self.counts[key][2] += 1

    def series(self):
        out = defaultdict(int)
        for key, (passed, bad, skipped) in self.counts.items():
            status = ("noncompliant" if bad > 0 else "compliant" if passed > 0
                      else "excepted" if skipped > 0 else None)
            if status:
                ns, kind = self.first[key]
                out[(key[0], ns, kind, status)] += 1
        return out


# --------------------------------------------------------------------------- events
_MESSAGE = re.compile(
    r"(?P<kind>[^ ]+) (?P<resource>(?:(?!: ).)*): (?:\[(?P<rule>(?:(?!\] ).)*)\] )?"
    r"(?P<status>fail|error)(?P<blocked> \(blocked\))?(?:;.*)?", re.S)


def parse_admission_message(msg):
    """(kind, namespace, name, rule, blocked) of an admission message, else None."""
    m = _MESSAGE.fullmatch(msg)
    if m is None:
        return None
    namespace, name = m["resource"].split("/", 1) if "/" in m["resource"] else ("", m["resource"])
    if not name or " " in name:
        return None
    return m["kind"], namespace, name, m["rule"] or "", m["blocked"] is not None


def event_is_wellformed(obj):
    core = obj.get("apiVersion") == "v1"
    text_key, ref_key = ("message", "involvedObject") if core else ("note", "regarding")
    component_key = "reportingComponent" if core else "reportingController"
    for key in ("reason", text_key, "action", component_key):
        if _present(obj, key) and not isinstance(obj[key], str):
            return False
    if _present(obj, "series"):
        if not isinstance(obj["series"], dict):
            return False
        if _present(obj["series"], "count") and not _is_int(obj["series"]["count"]):
            return False
    if _present(obj, "source"):
        if not isinstance(obj["source"], dict):
            return False
        if _present(obj["source"], "component") and not isinstance(obj["source"]["component"], str):
            return False
    for key in ("count", "deprecatedCount"):
        if _present(obj, key) and not _is_int(obj[key]):
            return False
    for key in (ref_key, "related"):
        if _present(obj, key):
            ref = obj[key]
            if not isinstance(ref, dict):
                return False
            for k in ("apiVersion", "kind", "name", "namespace"):
                if _present(ref, k) and not isinstance(ref[k], str):
                    return False
    return True


INVALID = "invalid"


def admission_event(obj):
    """(namespace, policy, rule, kind, blocked, count, cel) for a counted,
    well-formed Event; None when it does not count; INVALID for a Kyverno
    admission Event that cannot be read."""
    core = obj.get("apiVersion") == "v1"
    text_key, ref_key = ("message", "involvedObject") if core else ("note", "regarding")
    component_key = "reportingComponent" if core else "reportingController"
    if obj.get("reason") != "PolicyViolation":
        return None
    ref = obj.get(ref_key) if isinstance(obj.get(ref_key), dict) else {}
    known = POLICY_REFS.get(_str(ref, "kind"))
    if known is None:
        return None
    group, namespaced = known
    api_version = _str(ref, "apiVersion")
    if api_version and not api_version.startswith(group + "/"):
        return None
    source = obj.get("source") if isinstance(obj.get("source"), dict) else {}
    component = _str(obj, component_key) or _str(source, "component")
    if component and component != "kyverno-admission":
        return None
    parsed = parse_admission_message(_str(obj, text_key))
    if parsed is None:
        return INVALID if component else None
    kind, namespace, _name, rule, message_blocked = parsed
    action = _str(obj, "action")
    blocked = action == "Resource Blocked" if action else message_blocked
    if not component and not blocked:
        return None
    ref_kind = _str(ref, "kind")
    ref_name = _str(ref, "name")
    if not ref_name:
        return INVALID
    if namespaced:
        md = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        ns = _str(ref, "namespace") or _str(md, "namespace")
        if not ns:
            return INVALID
        policy = f"{ns}/{ref_name}"
    else:
        policy = ref_name
    related = obj.get("related")
    if isinstance(related, dict) and _str(related, "kind"):
        kind, namespace = _str(related, "kind"), _str(related, "namespace")
    series = obj.get("series") if isinstance(obj.get("series"), dict) else {}
    count = next((c for c in (series.get("count"), obj.get("count"), obj.get("deprecatedCount"))
                  if c is not None and c > 0), 1)
    return namespace, policy, rule, kind, blocked, count, ref_kind in CEL_KINDS


# --------------------------------------------------------------------------- policies
def wildcard(pattern, name):
    """Kyverno's namespace patterns: `*` any run, `?` one character, the rest literal."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, re.S) is not None


SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def selector_matches(selector, labels):
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        op, key, values = e["operator"], e["key"], e.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def override_entries(holder, key):
    """The entries with an action, checked; raises ValueError when malformed."""
    entries = holder.get(key) if _present(holder, key) else []
    if not isinstance(entries, list) or not all(isinstance(o, dict) for o in entries):
        raise ValueError(key)
    out = []
    for o in entries:
        if _present(o, "namespaces"):
            ns = o["namespaces"]
            if not isinstance(ns, list) or not all(isinstance(n, str) for n in ns):
                raise ValueError(key)
        if _present(o, "namespaceSelector"):
            sel = o["namespaceSelector"]
            if not isinstance(sel, dict):
                raise ValueError(key)
            ml = sel.get("matchLabels") or {}
            if not isinstance(ml, dict) or not all(isinstance(v, str) for v in ml.values()):
                raise ValueError(key)
            for e in sel.get("matchExpressions") or []:
                if not isinstance(e, dict) or e.get("operator") not in SELECTOR_OPERATORS \
                        or not isinstance(e.get("key"), str):
                    raise ValueError(key)
        if _present(o, "action"):
            out.append(o)
    return out


def policy_info(obj):
    """((policy, mode, category, severity, title, background), routing) of a
    valid policy, else None. routing: ("fixed", mode, own namespace) or
    ("rules", [(overrides, action)], own namespace)."""
    md = obj.get("metadata")
    if not isinstance(md, dict) or not isinstance(md.get("name"), str) or not md["name"]:
        return None
    name = md["name"]
    kind = obj.get("kind")
    own_ns = None
    if kind == "Policy" or CEL_KINDS.get(kind):
        if _present(md, "namespace") and not isinstance(md["namespace"], str):
            return None
        own_ns = md.get("namespace") or None
        policy = f"{own_ns}/{name}" if own_ns else name
    else:
        policy = name
    annotations = md.get("annotations") if _present(md, "annotations") else {}
    if not isinstance(annotations, dict):
        return None
    texts = []
    for key in ("category", "severity", "title"):
        v = annotations.get(ANNOTATION + key)
        if v is not None and not isinstance(v, str):
            return None
        texts.append(v or "")
    spec = obj.get("spec") if _present(obj, "spec") else {}
    if not isinstance(spec, dict):
        return None

    if kind in CEL_KINDS:
        bg = spec.get("evaluation")
        for key in ("background", "enabled"):
            bg = bg.get(key) if isinstance(bg, dict) else None
        actions = spec.get("validationActions") if _present(spec, "validationActions") else []
        if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
            return None
        mode = "enforce" if any(a.lower() == "deny" for a in actions) else "audit"
        routing = ("fixed", mode, own_ns)
    else:
        bg = spec.get("background")
        rules = spec.get("rules") if _present(spec, "rules") else []
        if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
            return None
        collected, routes = [], []
        try:
            validates = [r["validate"] for r in rules if _present(r, "validate")]
            if not all(isinstance(v, dict) for v in validates):
                return None
            spec_overrides = override_entries(spec, "validationFailureActionOverrides") if validates else []
            for validate in validates:
                if _present(validate, "failureAction"):
                    action = validate["failureAction"]
                elif _present(spec, "validationFailureAction"):
                    action = spec["validationFailureAction"]
                else:
                    action = "Audit"
                own = override_entries(validate, "failureActionOverrides")
                collected.append(action)
                collected += [o["action"] for o in own]
                routes.append((own or spec_overrides, action))
            collected += [o["action"] for o in spec_overrides]
        except ValueError:
            return None
        if not all(isinstance(a, str) and a.lower() in ("audit", "enforce") for a in collected):
            return None
        modes = {a.lower() for a in collected}
        mode = "none" if not validates else modes.pop() if len(modes) == 1 else "mixed"
        routing = ("rules", routes, own_ns) if validates else ("fixed", "none", own_ns)
    if bg is None:
        bg = True
    if not isinstance(bg, bool):
        return None
    return (policy, mode, *texts, "true" if bg else "false"), routing


def override_applies(o, namespace, labels):
    """Every condition the entry gives holds; never for "" (cluster-scoped)."""
    if not namespace:
        return False
    names = o.get("namespaces") or []
    if names and not any(wildcard(p, namespace) for p in names):
        return False
    if _present(o, "namespaceSelector"):
        if labels is None or not selector_matches(o["namespaceSelector"], labels):
            return False
    return True


def mode_in(routing, namespace, namespace_labels):
    """The mode of a policy in one namespace (Kyverno 1.14-1.18 policycache order)."""
    if routing[0] == "fixed":
        return routing[1]
    labels = namespace_labels.get(namespace)
    modes = set()
    for overrides, action in routing[1]:
        chosen = next((o["action"] for o in overrides if override_applies(o, namespace, labels)), action)
        modes.add(chosen.lower())
    return modes.pop() if len(modes) == 1 else "mixed"


def literal_namespaces(routing):
    if routing[0] == "fixed":
        return set()
    return {n for overrides, _ in routing[1] for o in overrides for n in (o.get("namespaces") or [])
            if n and "*" not in n and "?" not in n}


# --------------------------------------------------------------------------- all families
def read_objects(paths, stats, log):
    """Yield (role, obj, namespaced, path) for the known objects, file by file, in
    file order; within a file the last of duplicates (kind, namespace, name) only."""
    for path in collect_files(paths):
        docs = load_documents(path)
        if docs is None:
            stats["unparsable files"] += 1
            if log:
                log(f"skipped (does not parse): {path}")
            continue
        stats["files"] += 1
        by_identity = {}  # within one file, a later duplicate replaces an earlier one
        for doc in docs:
            for obj in objects_in(doc):
                known = KINDS.get((obj.get("apiVersion"), obj.get("kind")))
                if known is None:
                    continue
                role, namespaced = known
                key = identity(obj, namespaced)
                if key in by_identity:
                    stats["replaced duplicates"] += 1
                by_identity[key] = (role, obj, namespaced)
        for role, obj, namespaced in by_identity.values():
            yield role, obj, namespaced, path


def expected_series(paths, log=None):
    """{(family, labels tuple): value} for every family in FAMILIES, and counting statistics."""
    stats = defaultdict(int)
    results = defaultdict(int)
    controls = ControlState()
    result_category = {}      # policy -> first non-empty result category
    policy_category = {}      # policy -> first non-empty category annotation
    infos = set()
    routings = {}             # policy -> routing of its first valid copy
    namespace_labels = {}     # namespace -> labels of its first copy
    events = []
    freshness = defaultdict(list)  # (namespace, source) -> refresh time (or None) of each report

    def skipped(what, obj, path):
        stats[f"invalid {what}"] += 1
        if log:
            md = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
            log(f"skipped invalid {obj.get('kind')} {_str(md, 'namespace')}/{_str(md, 'name')} in {path}")

    for role, obj, namespaced, path in read_objects(paths, stats, log):
        if role == "report":
            if not report_is_valid(obj):
                skipped("reports", obj, path)
                continue
            stats["reports"] += 1
            for labels, n in report_series(obj, namespaced):
                results[labels] += n
            for r in obj.get("results") or []:
                if r.get("category"):
                    result_category.setdefault(r["policy"], r["category"])
            controls.add_report(obj, namespaced)
            for source, refreshed in refresh_times(obj).items():
                freshness[(report_namespace(obj, namespaced), source)].append(refreshed)
        elif role == "event":
            if not event_is_wellformed(obj):
                skipped("events", obj, path)
                continue
            admission = admission_event(obj)
            if admission == INVALID:
                skipped("events", obj, path)
                continue
            stats["events"] += 1
            if admission:
                stats["admission events"] += 1
                events.append(admission)
        elif role == "namespace":
            md = obj.get("metadata")
            labels = md.get("labels") if isinstance(md, dict) and _present(md, "labels") else {}
            if not isinstance(md, dict) or not _str(md, "name") or not isinstance(labels, dict) \
                    or not all(isinstance(v, str) for v in labels.values()):
                skipped("namespaces", obj, path)
                continue
            stats["namespaces"] += 1
            namespace_labels.setdefault(md["name"], labels)
        else:
            decoded = policy_info(obj)
            if decoded is None:
                skipped("policies", obj, path)
                continue
            info, routing = decoded
            stats["policies"] += 1
            infos.add(info)
            routings.setdefault(info[0], []).append(routing)
            if info[2]:
                policy_category.setdefault(info[0], info[2])

    out = {}
    for labels, v in results.items():
        out[(RESULTS, labels)] = v
    for labels, v in controls.series().items():
        out[(CONTROLS, labels)] = v
    admissions = defaultdict(int)
    for namespace, policy, rule, kind, blocked, count, cel in events:
        if blocked and cel and policy in routings:
            blocked = routings[policy][0][1] == "enforce"
        category = policy_category.get(policy) or result_category.get(policy) or ""
        control = next(iter(matching_controls(policy, category)), "")
        family = BLOCKED if blocked else AUDIT_FAILURES
        admissions[(family, (namespace, policy, rule, kind, control))] += count
    out.update(admissions)
    for labels in infos:
        out[(POLICY_INFO, labels)] = 1
    result_namespaces = defaultdict(set)
    for labels, v in results.items():
        if v:
            result_namespaces[labels[1]].add(labels[0])
    for policy, copies in routings.items():
        namespaces = set()
        for routing in copies:
            own_ns = routing[2]
            if own_ns is not None:
                namespaces.add(own_ns)
            else:
                namespaces |= result_namespaces[policy] | literal_namespaces(routing)
        for ns in namespaces:
            modes = {mode_in(r, ns, namespace_labels) for r in copies} - {"none"}
            mode = "none" if not modes else modes.pop() if len(modes) == 1 else "mixed"
            if mode != "none":
                out[(NAMESPACE_MODE, (policy, ns, mode))] = 1
    cutoff = time.time() - STALE_AFTER
    for labels, times in freshness.items():
        known = [t for t in times if t is not None]
        out[(REPORTS, labels)] = len(times)
        out[(STALE, labels)] = sum(1 for t in known if t < cutoff)
        if known:
            out[(OLDEST, labels)] = min(known)
    # A stale count of 0 is served (the gauge exists for every namespace and source with reports).
    return {k: v for k, v in out.items() if v != 0 or k[0] == STALE}, stats


# --------------------------------------------------------------------------- Prometheus text
def escape(value):
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_series(family, labels):
    return family + "{" + ",".join(
        f'{name}="{escape(v)}"' for name, v in zip(FAMILIES[family], labels)) + "}"


def format_value(v):
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v)


_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def _parse_labels(text, i, lineno):
    """Parse `{name="value",...}` starting at text[i] == '{'; return (dict, next index)."""
    labels = {}
    i += 1
    while True:
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == "}":
            return labels, i + 1
        m = _LABEL_NAME.match(text, i)
        if not m:
            raise ValueError(f"line {lineno}: bad label name")
        name = m.group(0)
        i = m.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if text[i:i + 2] != '="':
            raise ValueError(f"line {lineno}: expected =\" after {name}")
        i += 2
        out = []
        while True:
            if i >= len(text):
                raise ValueError(f"line {lineno}: unterminated label value")
            c = text[i]
            if c == "\\":
                nxt = text[i + 1:i + 2]
                out.append({"n": "\n", "\\": "\\", '"': '"'}.get(nxt, "\\" + nxt))
                i += 2
            elif c == '"':
                i += 1
                break
            else:
                out.append(c)
                i += 1
        if name in labels:
            raise ValueError(f"line {lineno}: label {name} repeated")
        labels[name] = "".join(out)
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == ",":
            i += 1
        elif i < len(text) and text[i] == "}":
            return labels, i + 1
        else:
            raise ValueError(f"line {lineno}: expected , or }} in labels")


def parse_metrics(text):
    """Return ({(family, frozenset(label items)): value}, [problems]) for the FAMILIES samples."""
    samples, problems = {}, []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _NAME.match(line)
        if not m or m.group(0) not in FAMILIES:
            continue  # other metrics, and longer names such as policyreport_results_total
        family = m.group(0)
        rest = line[m.end():]
        try:
            labels, i = _parse_labels(rest, 0, lineno) if rest.startswith("{") else ({}, 0)
            fields = rest[i:].split()
            if not fields:
                raise ValueError(f"line {lineno}: missing value")
            value = float(fields[0])
        except (ValueError, IndexError) as e:
            problems.append(f"unparsable sample ({e}): {raw}")
            continue
        key = (family, frozenset(labels.items()))
        if key in samples:
            problems.append(f"duplicate series on line {lineno}: {raw}")
        samples[key] = value
    return samples, problems


def describe(key):
    family, items = key
    d = dict(items)
    order = FAMILIES[family]
    names = [n for n in order if n in d] + sorted(n for n in d if n not in order)
    return family + "{" + ",".join(f'{n}="{escape(d[n])}"' for n in names) + "}"


def compare(expected, actual):
    exp = {(family, frozenset(zip(FAMILIES[family], labels))): v
           for (family, labels), v in expected.items()}
    diffs = []
    for key in sorted(set(exp) | set(actual), key=describe):
        e, a = exp.get(key), actual.get(key)
        if e is not None and a is not None and not math.isnan(a) and a == e:
            continue
        if e is None and a is not None and a == 0:
            diffs.append(f"{describe(key)}: expected absent (zero-valued series must not be emitted), actual 0")
            continue
        diffs.append(f"{describe(key)}: expected {format_value(e) if e is not None else 'absent'}, "
                     f"actual {format_value(a) if a is not None else 'absent'}")
    return diffs


# --------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--metrics", metavar="METRICS_FILE", help="exporter output (Prometheus text format)")
    ap.add_argument("--print", dest="print_only", action="store_true",
                    help="print the expected series, sorted, and do not compare")
    ap.add_argument("-v", "--verbose", action="store_true", help="log skipped files and objects to stderr")
    ap.add_argument("paths", nargs="+", metavar="PATH")
    args = ap.parse_args(argv)
    if not args.print_only and not args.metrics:
        ap.error("--metrics METRICS_FILE is required unless --print is given")

    log = (lambda msg: print("crosscheck: " + msg, file=sys.stderr)) if args.verbose else None
    try:
        expected, stats = expected_series(args.paths, log)
    except FileNotFoundError as e:
        print(f"crosscheck: no such file or folder: {e}", file=sys.stderr)
        return 2
    if log:
        log(", ".join(f"{k}: {v}" for k, v in sorted(stats.items())))

    if args.print_only:
        for line in sorted(f"{format_series(family, labels)} {v}" for (family, labels), v in expected.items()):
            print(line)
        return 0

    try:
        with open(args.metrics, encoding="utf-8") as f:
            actual, problems = parse_metrics(f.read())
    except OSError as e:
        print(f"crosscheck: cannot read metrics file: {e}", file=sys.stderr)
        return 2
    diffs = problems + compare(expected, actual)
    if diffs:
        for d in diffs:
            print(d)
        print(f"crosscheck: {len(diffs)} differing series ({len(expected)} expected, {len(actual)} in metrics)")
        return 1
    print(f"crosscheck: {len(expected)} series match")
    return 0


if __name__ == "__main__":
    sys.exit(main())
