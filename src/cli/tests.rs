use super::*;
use clap::CommandFactory;

#[test]
fn cli_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn log_filter_defaults_per_command() {
    let f = |args: &[&str]| Cli::try_parse_from(args).expect("valid").log_filter();
    assert_eq!(f(&["x", "serve"]), "info,kube_client=error");
    assert_eq!(f(&["x", "summary"]), "warn,kube_client=error");
    assert_eq!(
        f(&["x", "--log-level", "debug", "serve"]),
        "debug,kube_client=error"
    );
    assert_eq!(
        f(&["x", "--log-level", "kube_client=debug", "serve"]),
        "kube_client=debug"
    );
}

#[test]
fn parses_sizes() {
    assert_eq!(parse_size("64Mi"), Ok(64 << 20));
    assert_eq!(parse_size("500M"), Ok(500_000_000));
    assert_eq!(parse_size("12"), Ok(12));
    assert!(parse_size("1Ti").is_err());
    assert!(parse_size("Mi").is_err());
}

#[test]
fn parses_durations() {
    assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
    assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    assert!(parse_duration("10").is_err());
    assert!(parse_duration("-5s").is_err());
    let serve = |args: &[&str]| match Cli::try_parse_from(args).expect("valid").command {
        Command::Serve(s) => s.source.relist_interval,
        _ => panic!("serve"),
    };
    assert_eq!(serve(&["x", "serve"]), Duration::from_secs(600));
    assert_eq!(
        serve(&["x", "serve", "--relist-interval", "10s"]),
        Duration::from_secs(10)
    );
    let stale_after = |args: &[&str]| match Cli::try_parse_from(args).expect("valid").command {
        Command::Serve(s) => s.source.stale_after,
        Command::Summary(s) => s.source.stale_after,
    };
    assert_eq!(stale_after(&["x", "serve"]), aggregate::DEFAULT_STALE_AFTER);
    assert_eq!(
        parse_duration(&duration_text(aggregate::DEFAULT_STALE_AFTER)),
        Ok(aggregate::DEFAULT_STALE_AFTER)
    );
    assert_eq!(
        stale_after(&["x", "summary", "--stale-after", "90m"]),
        Duration::from_secs(5400)
    );
    assert_eq!(
        stale_after(&["x", "serve", "--stale-after", "0"]),
        Duration::ZERO
    );
}

#[test]
fn parses_summary_targets() {
    let cli = Cli::try_parse_from([
        "x",
        "summary",
        "--files",
        "a",
        "--target",
        "resource-limits=95",
        "--fail-on-targets",
    ])
    .expect("valid flags");
    let Command::Summary(s) = cli.command else {
        panic!("summary")
    };
    assert_eq!(s.targets, vec![("resource-limits".to_string(), 95.0)]);
    assert!(s.fail_on_targets);
    assert!(Cli::try_parse_from(["x", "summary", "--target", "x=101"]).is_err());
    assert!(Cli::try_parse_from(["x", "summary", "--target", "x"]).is_err());
}

#[test]
fn parses_serve_flags() {
    let cli = Cli::try_parse_from([
        "x",
        "serve",
        "--files",
        "a",
        "--files",
        "b",
        "--extra-labels",
        "rule,kind",
        "--listen",
        "127.0.0.1:9",
        "--compat",
        "policy-reporter",
    ])
    .expect("valid flags");
    let Command::Serve(s) = cli.command else {
        panic!("serve")
    };
    assert_eq!(s.compat, Some(Compat::PolicyReporter));
    assert_eq!(s.source.files, vec![PathBuf::from("a"), PathBuf::from("b")]);
    assert_eq!(s.extra_labels, vec![ExtraLabel::Rule, ExtraLabel::Kind]);
    assert_eq!(s.listen.port(), 9);
}

#[test]
fn maps_flags_onto_each_modules_configuration() {
    let serve = Cli::try_parse_from([
        "x",
        "serve",
        "--files",
        "a",
        "--request-timeout",
        "7",
        "--discovery-interval",
        "0",
        "--relist-interval",
        "0",
        "--namespace-exclude",
        ",kube-*",
        "--stale-after",
        "90m",
        "--extra-labels",
        "kind",
        "--compat",
        "policy-reporter",
        "--metrics-auth",
        "kubernetes",
    ])
    .expect("valid flags");
    let Command::Serve(s) = serve.command else {
        panic!("serve")
    };
    let c = app::ServeConfig::from(s);
    assert_eq!(c.start.source.files, [PathBuf::from("a")]);
    assert_eq!(c.start.source.request_timeout, Duration::from_secs(7));
    assert_eq!(c.start.source.discovery_interval, Duration::ZERO);
    assert_eq!(c.start.source.relist_interval, Duration::ZERO);
    assert_eq!(c.start.source.quiet_recovery, Duration::from_secs(45));
    assert_eq!(c.start.source.max_file_size, 1 << 30);
    assert_eq!(c.start.namespace_exclude, ["", "kube-*"]);
    assert_eq!(c.start.stale_after, Duration::from_secs(5400));
    assert_eq!(c.metrics_auth, app::MetricsAuth::Kubernetes);
    assert!(c.outputs.policy_reporter);
    assert!(c.outputs.labels.has(aggregate::ExtraLabel::Kind));
    assert!(!c.outputs.labels.has(aggregate::ExtraLabel::Rule));

    let summary = Cli::try_parse_from([
        "x",
        "--log-format",
        "json",
        "summary",
        "--output",
        "markdown",
        "--failing",
        "--kind",
        "Pod",
        "--limit",
        "3",
        "--timeout",
        "9",
        "--allow-invalid",
    ])
    .expect("valid flags");
    assert_eq!(
        logging::Format::from(summary.log_format),
        logging::Format::Json
    );
    let Command::Summary(s) = summary.command else {
        panic!("summary")
    };
    let o = summary::Options::from(s);
    assert_eq!(o.output, summary::Output::Markdown);
    assert!(o.failing.failing && o.allow_invalid && !o.fail_on_targets);
    assert_eq!(o.failing.kinds, ["Pod"]);
    assert_eq!(o.failing.limit, Some(3));
    assert_eq!(o.timeout, Duration::from_secs(9));
}
