//! The table of kinds (`src/kind.rs`) is the one list: `scripts/kinds.py`
//! reads it for the Python and shell tools (the RBAC that
//! `scripts/check-deploy.py` expects of `deploy/` and the chart, the
//! cross-check's kinds, the CRDs `scripts/cluster` installs), and must read
//! exactly `Kind::ALL`.

use policyreport_exporter::kind::Kind;
use serde_json::{Value, json};

#[test]
fn scripts_read_the_kinds_table_exactly() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("python3")
        .arg(root.join("scripts/kinds.py"))
        .arg("--json")
        .output()
        .expect("python3 (apt-get install python3)");
    assert!(
        out.status.success(),
        "scripts/kinds.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let want: Vec<Value> = Kind::ALL
        .into_iter()
        .map(|k| {
            json!({
                "kind": k.kind(),
                "group": k.group(),
                "versions": k.versions(),
                "plural": k.plural(),
                "resource": k.resource(),
                "namespaced": k.namespaced(),
                "role": format!("{:?}", k.role()),
            })
        })
        .collect();
    assert_eq!(
        read,
        Value::from(want),
        "scripts/kinds.py against Kind::ALL"
    );
}
