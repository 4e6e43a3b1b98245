#!/usr/bin/env python3
"""The kinds the exporter reads, taken from their one table: `ROWS` in src/kind.rs.

    python3 scripts/kinds.py                # one line per kind: kind group plural namespaced role versions
    python3 scripts/kinds.py --json         # the same as a JSON list
    python3 scripts/kinds.py --crds DIR...  # the CRD file of each kind with an API group, found below DIRs

The Python and shell tools that need the list (scripts/check-deploy.py's RBAC, the cross-check's kinds,
scripts/cluster's CRDs) read it here instead of writing it again, so a new row in src/kind.rs reaches them
all. tests/kinds.rs checks that this reads exactly `Kind::ALL`.
"""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "kind.rs"

# row("Kind", "group", VERSIONS or &["v1", …], "plural", "resource", namespaced, Role::X): the `row` calls of
# ROWS, one per line (rustfmt leaves the table alone: #[rustfmt::skip]).
ROW = re.compile(
    r'row\("(?P<kind>\w+)", "(?P<group>[\w.]*)", (?P<versions>\w+|&\[[^\]]*\]), '
    r'"(?P<plural>\w+)", "(?P<resource>[\w.]+)", (?P<namespaced>true|false), Role::(?P<role>\w+)\)'
)
VERSIONS = re.compile(r'const (\w+): &\[&str\] = (&\[[^\]]*\]);')
TABLE = re.compile(r'const ROWS: \[Row; (\d+)\] = \[(.*?)\n\];', re.S)


def _versions(text, consts):
    literal = consts.get(text, text)
    return re.findall(r'"(\w+)"', literal)


def read_kinds(source=SOURCE):
    """Every row of the table, in order: dicts with kind, group, versions, plural, resource, namespaced, role."""
    text = Path(source).read_text()
    table = TABLE.search(text)
    if not table:
        sys.exit(f"{source}: no `const ROWS: [Row; N] = [ … ];` table")
    consts = dict(VERSIONS.findall(text))
    rows = []
    for line in table.group(2).splitlines():
        if not line.strip():
            continue
        m = ROW.search(line)
        if not m:
            sys.exit(f"{source}: a row of ROWS that scripts/kinds.py cannot read: {line.strip()}")
        rows.append(
            {
                "kind": m["kind"],
                "group": m["group"],
                "versions": _versions(m["versions"], consts),
                "plural": m["plural"],
                "resource": m["resource"],
                "namespaced": m["namespaced"] == "true",
                "role": m["role"],
            }
        )
    if len(rows) != int(table.group(1)):
        sys.exit(f"{source}: ROWS declares {table.group(1)} rows, scripts/kinds.py read {len(rows)}")
    return rows


def crd_files(dirs, kinds=None):
    """The CRD file `<group>_<plural>.yaml` of each kind with an API group, searched below `dirs`."""
    out = []
    for k in kinds or read_kinds():
        if not k["group"]:
            continue
        name = f"{k['group']}_{k['plural']}.yaml"
        found = sorted(p for d in dirs for p in Path(d).rglob(name))
        if not found:
            sys.exit(
                f"no CRD {name} for {k['kind']} below {', '.join(map(str, dirs))}: "
                "add the module that ships it to scripts/cluster (KYVERNO_MODULE, OPENREPORTS_MODULE, …)"
            )
        out.append(found[0])
    return out


def main(args):
    if args[:1] == ["--json"]:
        print(json.dumps(read_kinds(), indent=2))
    elif args[:1] == ["--crds"] and len(args) > 1:
        for path in crd_files(args[1:]):
            print(path)
    elif not args:
        for k in read_kinds():
            print(k["kind"], k["group"] or '""', k["plural"], k["namespaced"], k["role"], ",".join(k["versions"]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
