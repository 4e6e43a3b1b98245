#!/usr/bin/env python3
"""Independent cross-check of the exporter's `policyreport_results` gauge.

Usage:
  python3 tests/crosscheck/crosscheck.py --metrics METRICS_FILE PATH...
  python3 tests/crosscheck/crosscheck.py --print PATH...

PATHs are report files or folders (searched recursively for *.yaml, *.yml,
*.json). The expected gauge is computed from the reports, independently of the
Rust code. With --metrics, the `policyreport_results{...} value` samples in
METRICS_FILE (Prometheus text format; labels in any order; other metrics
ignored) are compared with the expected ones: exit 0 when every series
matches, 1 otherwise, 2 on usage or I/O errors. With --print, the expected
series are printed in Prometheus text form, sorted, and nothing is compared.

Counting rules:
- A YAML file may hold several documents; a document is one object or a list
  wrapper (kind `List` or any kind ending in `List`) with `items`. Only
  wgpolicyk8s.io/v1alpha2 PolicyReport, ClusterPolicyReport and
  openreports.io/v1alpha1 Report, ClusterReport count; everything else is
  ignored. A file that fails to parse is skipped whole.
- A report is invalid, and skipped whole, if any result lacks a string
  `policy`, has `result` not in pass/fail/warn/error/skip, or has a field of
  the wrong type: source, policy, rule, category, severity, result, message
  (strings), scored (bool), resources (list of objects), properties (map of
  strings). Missing or null `results` means no results.
- The same object (kind, namespace, name) in two different files counts
  twice; within one file a later duplicate replaces an earlier one.
- A result counts once per entry of a non-empty `resources`, else once.
- Labels: namespace (metadata.namespace for PolicyReport/Report, "" for the
  cluster kinds), policy, category and severity as written ("" if absent),
  source (the result's, else the report's top-level `source`, else ""),
  result. The value is the sum of counts; zero-valued series are not emitted.

Choices where the rules are silent: a field set to null counts as absent; an
invalid report replaces an earlier valid duplicate (and so counts nothing),
as an update to an invalid version removes a report's contribution; scalars follow
YAML 1.2 (`yes`/`no`/dates stay strings, as in Kubernetes and Rust parsers);
files named on the command line are read whatever their extension, and a file
reached twice (e.g. a folder and a file inside it) is read once.

Python 3.11, standard library plus PyYAML.
"""
import argparse
import json
import math
import os
import re
import sys
from collections import defaultdict

import yaml

METRIC = "policyreport_results"
EXTENSIONS = (".yaml", ".yml", ".json")
LABELS = ("namespace", "policy", "category", "severity", "source", "result")

WGPOLICY = "wgpolicyk8s.io/v1alpha2"
OPENREPORTS = "openreports.io/v1alpha1"
# (apiVersion, kind) -> namespaced?
REPORT_KINDS = {
    (WGPOLICY, "PolicyReport"): True,
    (WGPOLICY, "ClusterPolicyReport"): False,
    (OPENREPORTS, "Report"): True,
    (OPENREPORTS, "ClusterReport"): False,
}
RESULT_VALUES = ("pass", "fail", "warn", "error", "skip")
STRING_FIELDS = ("source", "policy", "rule", "category", "severity", "result", "message")


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


# --------------------------------------------------------------------------- reports
def _present(d, key):
    # A field set to null counts as absent, as when Kubernetes decodes JSON.
    return d.get(key) is not None


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


def report_identity(obj, namespaced):
    md = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    ns = md.get("namespace") if namespaced else ""
    return (obj.get("apiVersion"), obj.get("kind"), ns if isinstance(ns, str) else "",
            md.get("name") if isinstance(md.get("name"), str) else "")


def report_series(obj, namespaced):
    """Yield (labels tuple, count) for every result of one valid report."""
    md = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    namespace = md.get("namespace", "") if namespaced else ""
    if not isinstance(namespace, str):
        namespace = ""
    top_source = obj.get("source") if isinstance(obj.get("source"), str) else ""
    for r in obj.get("results") or []:
        source = r["source"] if _present(r, "source") else top_source
        labels = (namespace, r["policy"], r.get("category") or "", r.get("severity") or "",
                  source, r["result"])
        resources = r.get("resources") or []
        yield labels, max(1, len(resources))


def expected_series(paths, log=None):
    totals = defaultdict(int)
    stats = defaultdict(int)
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
                namespaced = REPORT_KINDS.get((obj.get("apiVersion"), obj.get("kind")))
                if namespaced is None:
                    continue
                key = report_identity(obj, namespaced)
                if key in by_identity:
                    stats["replaced duplicates"] += 1
                if not report_is_valid(obj):
                    stats["invalid reports"] += 1
                    if log:
                        md = obj.get("metadata") or {}
                        log(f"skipped invalid {obj.get('kind')} {md.get('namespace', '')}/{md.get('name', '')} in {path}")
                    by_identity[key] = None
                    continue
                by_identity[key] = (obj, namespaced)
        for entry in by_identity.values():
            if entry is None:
                continue
            obj, namespaced = entry
            stats["reports"] += 1
            for labels, n in report_series(obj, namespaced):
                totals[labels] += n
    return {k: v for k, v in totals.items() if v != 0}, stats


# --------------------------------------------------------------------------- Prometheus text
def escape(value):
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_series(labels):
    return METRIC + "{" + ",".join(f'{name}="{escape(v)}"' for name, v in zip(LABELS, labels)) + "}"


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
    """Return ({frozenset(label items): value}, [problems]) for the METRIC samples."""
    samples, problems = {}, []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _NAME.match(line)
        if not m or m.group(0) != METRIC:
            continue
        rest = line[m.end():]
        if rest and rest[0] not in "{ \t":
            continue  # a longer name such as policyreport_results_total
        try:
            labels, i = _parse_labels(rest, 0, lineno) if rest.startswith("{") else ({}, 0)
            fields = rest[i:].split()
            if not fields:
                raise ValueError(f"line {lineno}: missing value")
            value = float(fields[0])
        except (ValueError, IndexError) as e:
            problems.append(f"unparsable sample ({e}): {raw}")
            continue
        key = frozenset(labels.items())
        if key in samples:
            problems.append(f"duplicate series on line {lineno}: {raw}")
        samples[key] = value
    return samples, problems


def describe(key):
    d = dict(key)
    names = [n for n in LABELS if n in d] + sorted(n for n in d if n not in LABELS)
    return METRIC + "{" + ",".join(f'{n}="{escape(d[n])}"' for n in names) + "}"


def compare(expected, actual):
    exp = {frozenset(zip(LABELS, labels)): v for labels, v in expected.items()}
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
    ap.add_argument("-v", "--verbose", action="store_true", help="log skipped files and reports to stderr")
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
        for line in sorted(f"{format_series(labels)} {v}" for labels, v in expected.items()):
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
