use super::*;

/// A sample writer for `name` into `buf`, as a gauge family's.
fn gauge<'b>(buf: &'b mut String, name: &'static str) -> Samples<'b> {
    Samples {
        buf,
        name,
        suffix: "",
    }
}

#[test]
fn escapes_label_values() {
    let mut s = String::new();
    gauge(&mut s, "m").write([("a", "x\"y\\z\nw"), ("b", "")], 3);
    assert_eq!(s, "m{a=\"x\\\"y\\\\z\\nw\",b=\"\"} 3\n");
    s.clear();
    gauge(&mut s, "m").write([], 0);
    assert_eq!(s, "m 0\n");
}

#[test]
fn floats_are_integers_when_integral() {
    let mut s = String::new();
    let mut w = gauge(&mut s, "f");
    w.float(3.0);
    w.float(0.25);
    w.float(1e20);
    assert_eq!(s, "f 3\nf 0.25\nf 100000000000000000000\n");
}

#[test]
fn counters_differ_only_in_headers() {
    let mut e = Exposition::default();
    let off = Family {
        name: "off",
        help: "Not served.",
        kind: Type::Gauge,
        when: |_: &u64| false,
        samples: |n, s| s.write([], *n),
    };
    let x = Family {
        name: "x",
        help: "Help.",
        kind: Type::Counter,
        when: always,
        samples: |n, s| s.write([("l", "v")], *n),
    };
    e.family(&off, &2);
    e.family(&x, &2);
    let (p, o) = e.finish();
    assert_eq!(
        &p[..],
        b"# HELP x_total Help.\n# TYPE x_total counter\nx_total{l=\"v\"} 2\n"
    );
    assert_eq!(
        &o[..],
        b"# HELP x Help.\n# TYPE x counter\nx_total{l=\"v\"} 2\n"
    );
}
