#!/usr/bin/env python3
"""Independent cross-check of the exporter's report, control, admission and policy metrics.

Usage:
  python3 tests/crosscheck/crosscheck.py --metrics METRICS_FILE PATH...
  python3 tests/crosscheck/crosscheck.py --print PATH...

PATHs are files or folders (searched recursively for *.yaml, *.yml, *.json).
Four families are computed from the objects in them, independently of the
Rust code: policyreport_results, policyreport_control_resources,
policyreport_admission_blocked_total and policyreport_policy_info. With
--metrics, the samples of those four families in METRICS_FILE (Prometheus
text format; labels in any order; other metrics ignored) are compared with
the expected ones: exit 0 when every series matches, 1 otherwise, 2 on usage
or I/O errors. With --print, the expected series of all four families are
printed in Prometheus text form, sorted, and nothing is compared.

Objects:
- A YAML file may hold several documents; a document is one object or a list
  wrapper (kind `List` or any kind ending in `List`) with `items`. These
  count: wgpolicyk8s.io/v1alpha2 PolicyReport, ClusterPolicyReport and
  openreports.io/v1alpha1 Report, ClusterReport (the reports); core `v1` and
  `events.k8s.io/v1` Event; kyverno.io/v1 ClusterPolicy and Policy;
  policies.kyverno.io/{v1,v1beta1,v1alpha1} ValidatingPolicy. Everything else
  is ignored. A file that fails to parse is skipped whole.
- Identity is (kind, namespace, name), namespace "" for the cluster-scoped
  kinds (ClusterPolicyReport, ClusterReport, ClusterPolicy, ValidatingPolicy).
  The same object in two different files counts twice; within one file a
  later duplicate replaces an earlier one (an invalid later duplicate removes
  the earlier one's contribution).

policyreport_results{namespace, policy, category, severity, source, result}:
- A report is invalid, and skipped whole, if any result lacks a string
  `policy`, has `result` not in pass/fail/warn/error/skip, or has a field of
  the wrong type: source, policy, rule, category, severity, result, message
  (strings), scored (bool), resources (list of objects), properties (map of
  strings). Missing or null `results` means no results.
- A result counts once per entry of a non-empty `resources`, else once.
- Labels: namespace (metadata.namespace for PolicyReport/Report, "" for the
  cluster kinds), policy, category and severity as written ("" if absent),
  source (the result's, else the report's top-level `source`, else ""),
  result. The value is the sum of counts; zero-valued series are not emitted.

Controls (the defaults; all three count subjects of kind `Pod` only):
  resource-limits     policy globs require-requests-limits
  approved-registries policy globs restrict-image-registries, advanced-restrict-image-registries
  secure-context      categories "Pod Security Standards (Baseline)",
                      "Pod Security Standards (Restricted)"; policy glob podsecurity-subrule-*
  A (policy, category) matches a control when the policy matches one of its
  globs (fnmatch, case-sensitive; `*` matches anything including `/`) or
  one comma-separated, trimmed entry of the category equals one of its
  categories.

policyreport_control_resources{control, namespace, kind, status}:
- Results of valid reports only; a result belongs to every control it
  matches. Its subjects are its `resources` if non-empty, else the report's
  `scope` (no scope: no subject, ignored); only subjects of kind `Pod` count.
- A resource is its `uid` if non-empty, else (kind, namespace, name); the
  namespace is the subject's if non-empty, else the report's ("" for the
  cluster kinds). Results for one resource are combined across all reports
  and files.
- Per control and resource: pass counts as pass; fail, warn, error as bad;
  skip is ignored. `noncompliant` if bad > 0, `compliant` if pass > 0 and
  bad == 0, else not counted. Value = number of resources per (control,
  namespace, kind, status), namespace and kind from the first subject seen
  for the resource (per control, skips included, in file order then object
  order). Zero series are not emitted.

policyreport_admission_blocked_total{namespace, policy, rule, kind, control}:
- An Event counts when `reason` is `PolicyViolation`; its message (`message`
  for v1, `note` for events.k8s.io/v1) parses as `<Kind> <ns>/<name>: [<rule>]
  fail (blocked); ...` or `<Kind> <name>: [<rule>] fail (blocked); ...` (Kind
  up to the first space, non-empty; resource up to the first `: [`, split at
  its first `/` into namespace and name; rule up to the next `] `; the rest
  must start with `fail (blocked)`; name non-empty without spaces); and its
  `involvedObject` (v1) or `regarding` (events.k8s.io/v1) has kind
  ClusterPolicy or ValidatingPolicy (policy = name) or Policy (policy =
  namespace/name, or name without a namespace) and a non-empty name.
- Labels: namespace and kind of the blocked resource (from the message), the
  policy, the rule (from the message), and control = the first control (in
  the order above) that (policy, category) matches, else "". The category
  is the `policies.kyverno.io/category` annotation of a valid policy object
  with that policy name (the first non-empty one), else the `category` of
  the first result with that `policy` in a valid report that has one, else "".
- Value = sum over counted events of `series.count`, else `count`, else
  `deprecatedCount`, else 1, and at least 1.
- Malformed events are skipped: `reason`, the message field are not strings,
  `series` not a map, `series.count`/`count`/`deprecatedCount` not integers,
  the object reference not a map or its kind/name/namespace not strings.

policyreport_policy_info{policy, mode, category, severity, title, background} = 1:
- policy = name (ClusterPolicy, ValidatingPolicy) or namespace/name (Policy;
  name alone without a namespace). category, severity, title = annotations
  `policies.kyverno.io/category|severity|title` ("" if absent). background =
  `spec.background` (ValidatingPolicy: `spec.evaluation.background.enabled`),
  default true, printed "true"/"false".
- kyverno.io kinds: each rule with a `validate` key adds its action
  (`validate.failureAction`, else `spec.validationFailureAction`, else
  `Audit`) and the `action` of each `validate.failureActionOverrides[]`
  entry; when there is at least one validate rule, each
  `spec.validationFailureActionOverrides[].action` adds too. Case-insensitive;
  a collected action other than audit/enforce makes the policy invalid. mode
  = audit/enforce when all collected actions agree, mixed when they differ,
  none without validate rules.
- ValidatingPolicy: `spec.validationActions` containing Deny (any case) ->
  enforce; non-empty without Deny -> audit; empty or missing -> none.
- Invalid, skipped (also for the category lookup above): metadata.name
  missing or empty, metadata/annotations/spec/rules/validate of the wrong
  shape, annotation values or background not of their type, or an invalid
  action. Identical label sets (e.g. the same policy in two files) give one
  series with value 1.

Choices where the rules are silent: a field set to null counts as absent; an
invalid object replaces an earlier valid duplicate (and so counts nothing),
as an update to an invalid version removes an object's contribution; scalars
follow YAML 1.2 (`yes`/`no`/dates stay strings, as in Kubernetes and Rust
parsers); files named on the command line are read whatever their extension,
and a file reached twice (e.g. a folder and a file inside it) is read once;
v1 and events.k8s.io/v1 Events with the same namespace and name are the same
object, as are ValidatingPolicies of different versions.

Python 3.11, standard library plus PyYAML.
"""
import argparse
import fnmatch
import json
import math
import os
import re
import sys
from collections import defaultdict

try:
    import yaml
except ImportError:
    sys.exit(f"missing Python package PyYAML: {sys.executable} -m pip install pyyaml (or run scripts/test)")

EXTENSIONS = (".yaml", ".yml", ".json")

RESULTS = "policyreport_results"
CONTROLS = "policyreport_control_resources"
BLOCKED = "policyreport_admission_blocked_total"
POLICY_INFO = "policyreport_policy_info"
# sample name -> label names, in printing order
FAMILIES = {
    RESULTS: ("namespace", "policy", "category", "severity", "source", "result"),
    CONTROLS: ("control", "namespace", "kind", "status"),
    BLOCKED: ("namespace", "policy", "rule", "kind", "control"),
    POLICY_INFO: ("policy", "mode", "category", "severity", "title", "background"),
}

WGPOLICY = "wgpolicyk8s.io/v1alpha2"
OPENREPORTS = "openreports.io/v1alpha1"
# (apiVersion, kind) -> (role, namespaced?)
KINDS = {
    (WGPOLICY, "PolicyReport"): ("report", True),
    (WGPOLICY, "ClusterPolicyReport"): ("report", False),
    (OPENREPORTS, "Report"): ("report", True),
    (OPENREPORTS, "ClusterReport"): ("report", False),
    ("v1", "Event"): ("event", True),
    ("events.k8s.io/v1", "Event"): ("event", True),
    ("kyverno.io/v1", "ClusterPolicy"): ("policy", False),
    ("kyverno.io/v1", "Policy"): ("policy", True),
    ("policies.kyverno.io/v1", "ValidatingPolicy"): ("policy", False),
    ("policies.kyverno.io/v1beta1", "ValidatingPolicy"): ("policy", False),
    ("policies.kyverno.io/v1alpha1", "ValidatingPolicy"): ("policy", False),
}
RESULT_VALUES = ("pass", "fail", "warn", "error", "skip")
STRING_FIELDS = ("source", "policy", "rule", "category", "severity", "result", "message")

# name, policy globs, categories; the order decides an event's control.
CONTROL_DEFS = (
    ("resource-limits", ("require-requests-limits",), ()),
    ("approved-registries", ("restrict-image-registries", "advanced-restrict-image-registries"), ()),
    ("secure-context", ("podsecurity-subrule-*",),
     ("Pod Security Standards (Baseline)", "Pod Security Standards (Restricted)")),
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
    """All documents of one file, or None when the file does not parse."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        text = data.decode("utf-8")
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


# --------------------------------------------------------------------------- controls
def matching_controls(policy, category):
    """Names of the controls (policy, category) belongs to, in CONTROL_DEFS order."""
    entries = {c.strip() for c in category.split(",")} if category else set()
    return [name for name, globs, cats in CONTROL_DEFS
            if any(fnmatch.fnmatchcase(policy, g) for g in globs) or entries & set(cats)]


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
        self.counts = defaultdict(lambda: [0, 0])  # (control, resource) -> [pass, bad]

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

    def series(self):
        out = defaultdict(int)
        for key, (passed, bad) in self.counts.items():
            status = "noncompliant" if bad > 0 else "compliant" if passed > 0 else None
            if status:
                ns, kind = self.first[key]
                out[(key[0], ns, kind, status)] += 1
        return out


# --------------------------------------------------------------------------- events
def parse_blocked_message(msg):
    """(kind, namespace, name, rule) of a blocked-admission message, else None."""
    sp = msg.find(" ")
    if sp <= 0:
        return None
    kind, rest = msg[:sp], msg[sp + 1:]
    i = rest.find(": [")
    if i < 0:
        return None
    resource, after = rest[:i], rest[i + 3:]
    j = after.find("] ")
    if j < 0:
        return None
    rule, remainder = after[:j], after[j + 2:]
    if not remainder.startswith("fail (blocked)"):
        return None
    namespace, name = resource.split("/", 1) if "/" in resource else ("", resource)
    if not name or " " in name:
        return None
    return kind, namespace, name, rule


def event_is_wellformed(obj):
    core = obj.get("apiVersion") == "v1"
    text_key, ref_key = ("message", "involvedObject") if core else ("note", "regarding")
    for key in ("reason", text_key):
        if _present(obj, key) and not isinstance(obj[key], str):
            return False
    if _present(obj, "series"):
        if not isinstance(obj["series"], dict):
            return False
        if _present(obj["series"], "count") and not _is_int(obj["series"]["count"]):
            return False
    for key in ("count", "deprecatedCount"):
        if _present(obj, key) and not _is_int(obj[key]):
            return False
    if _present(obj, ref_key):
        ref = obj[ref_key]
        if not isinstance(ref, dict):
            return False
        for key in ("kind", "name", "namespace"):
            if _present(ref, key) and not isinstance(ref[key], str):
                return False
    return True


def blocked_event(obj):
    """(namespace, policy, rule, kind, count) for a counted, well-formed Event, else None."""
    core = obj.get("apiVersion") == "v1"
    text_key, ref_key = ("message", "involvedObject") if core else ("note", "regarding")
    if obj.get("reason") != "PolicyViolation":
        return None
    parsed = parse_blocked_message(_str(obj, text_key))
    if parsed is None:
        return None
    kind, namespace, _name, rule = parsed
    ref = obj.get(ref_key) if isinstance(obj.get(ref_key), dict) else {}
    ref_kind, ref_name, ref_ns = _str(ref, "kind"), _str(ref, "name"), _str(ref, "namespace")
    if not ref_name:
        return None
    if ref_kind in ("ClusterPolicy", "ValidatingPolicy"):
        policy = ref_name
    elif ref_kind == "Policy":
        policy = f"{ref_ns}/{ref_name}" if ref_ns else ref_name
    else:
        return None
    series = obj.get("series") if isinstance(obj.get("series"), dict) else {}
    for count in (series.get("count"), obj.get("count"), obj.get("deprecatedCount"), 1):
        if count is not None:
            break
    return namespace, policy, rule, kind, max(1, count)


# --------------------------------------------------------------------------- policies
def policy_info(obj):
    """(policy, mode, category, severity, title, background) of a valid policy, else None."""
    md = obj.get("metadata")
    if not isinstance(md, dict) or not isinstance(md.get("name"), str) or not md["name"]:
        return None
    name = md["name"]
    if obj.get("kind") == "Policy":
        if _present(md, "namespace") and not isinstance(md["namespace"], str):
            return None
        policy = f"{md['namespace']}/{name}" if md.get("namespace") else name
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

    if obj.get("kind") == "ValidatingPolicy":
        bg = spec.get("evaluation")
        for key in ("background", "enabled"):
            bg = bg.get(key) if isinstance(bg, dict) else None
        actions = spec.get("validationActions") if _present(spec, "validationActions") else []
        if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
            return None
        mode = ("enforce" if any(a.lower() == "deny" for a in actions)
                else "audit" if actions else "none")
    else:
        bg = spec.get("background")
        rules = spec.get("rules") if _present(spec, "rules") else []
        if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
            return None
        collected, validate_rules = [], 0

        def overrides(holder, key):
            entries = holder.get(key) if _present(holder, key) else []
            if not isinstance(entries, list) or not all(isinstance(o, dict) for o in entries):
                raise ValueError(key)
            return [o["action"] for o in entries if _present(o, "action")]

        try:
            for rule in rules:
                if not _present(rule, "validate"):
                    continue
                validate = rule["validate"]
                if not isinstance(validate, dict):
                    return None
                validate_rules += 1
                if _present(validate, "failureAction"):
                    collected.append(validate["failureAction"])
                elif _present(spec, "validationFailureAction"):
                    collected.append(spec["validationFailureAction"])
                else:
                    collected.append("Audit")
                collected += overrides(validate, "failureActionOverrides")
            if validate_rules:
                collected += overrides(spec, "validationFailureActionOverrides")
        except ValueError:
            return None
        if not all(isinstance(a, str) and a.lower() in ("audit", "enforce") for a in collected):
            return None
        modes = {a.lower() for a in collected}
        mode = "none" if not validate_rules else modes.pop() if len(modes) == 1 else "mixed"
    if bg is None:
        bg = True
    if not isinstance(bg, bool):
        return None
    return (policy, mode, *texts, "true" if bg else "false")


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
    """{(family, labels tuple): value} for all four families, and counting statistics."""
    stats = defaultdict(int)
    results = defaultdict(int)
    controls = ControlState()
    result_category = {}      # policy -> first non-empty result category
    policy_category = {}      # policy -> first non-empty category annotation
    infos = set()
    events = []

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
        elif role == "event":
            if not event_is_wellformed(obj):
                skipped("events", obj, path)
                continue
            stats["events"] += 1
            blocked = blocked_event(obj)
            if blocked:
                stats["blocked events"] += 1
                events.append(blocked)
        else:
            info = policy_info(obj)
            if info is None:
                skipped("policies", obj, path)
                continue
            stats["policies"] += 1
            infos.add(info)
            if info[2]:
                policy_category.setdefault(info[0], info[2])

    out = {}
    for labels, v in results.items():
        out[(RESULTS, labels)] = v
    for labels, v in controls.series().items():
        out[(CONTROLS, labels)] = v
    blocked = defaultdict(int)
    for namespace, policy, rule, kind, count in events:
        category = policy_category.get(policy) or result_category.get(policy) or ""
        control = next(iter(matching_controls(policy, category)), "")
        blocked[(namespace, policy, rule, kind, control)] += count
    for labels, v in blocked.items():
        out[(BLOCKED, labels)] = v
    for labels in infos:
        out[(POLICY_INFO, labels)] = 1
    return {k: v for k, v in out.items() if v != 0}, stats


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
