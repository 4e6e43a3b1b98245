//! A real control plane for the tests and the benchmark: etcd and
//! kube-apiserver started by `scripts/cluster` (built from their Go modules),
//! an admin client that loads and changes objects, snapshots for the
//! independent Python count, the API server's audit log, and a TCP proxy that
//! can cut the exporter's connections.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Config};
use policyreport_test_support::http::get_once;
use policyreport_test_support::metrics::samples;
use serde_json::Value;

use policyreport_exporter::kind::Kind;

use crate::exporter::workspace_root;

/// A running control plane; stopped (`scripts/cluster stop`) on drop.
pub struct RealCluster {
    dir: PathBuf,
    /// The temporary folder holding `dir`, when this process started it.
    owned: Option<tempfile::TempDir>,
    rt: tokio::runtime::Runtime,
    client: Client,
    resources: Mutex<BTreeMap<String, (ApiResource, bool)>>,
    /// The API server's address.
    pub server: SocketAddr,
}

impl RealCluster {
    /// Runs `scripts/cluster start DIR OPTIONS` in a new temporary folder.
    /// Fails with the install line when Go is missing.
    pub fn start(options: &[&str]) -> Result<RealCluster> {
        Self::start_with(options, &[])
    }

    /// [`RealCluster::start`] with environment variables for `scripts/cluster`
    /// (such as `CLUSTER_COMPACTION_INTERVAL`).
    pub fn start_with(options: &[&str], env: &[(&str, &str)]) -> Result<RealCluster> {
        let tmp = tempfile::Builder::new()
            .prefix("real-cluster")
            .tempdir()
            .context("tempdir")?;
        let dir = tmp.path().join("cluster");
        let out = Command::new(workspace_root().join("scripts/cluster"))
            .arg("start")
            .arg(&dir)
            .args(options)
            .envs(env.iter().copied())
            .output()
            .context("running scripts/cluster start")?;
        if !out.status.success() {
            bail!(
                "scripts/cluster start failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        match Self::attach(&dir) {
            Ok(mut cluster) => {
                cluster.owned = Some(tmp);
                Ok(cluster)
            }
            Err(e) => {
                let _ = Command::new(workspace_root().join("scripts/cluster"))
                    .arg("stop")
                    .arg(&dir)
                    .output();
                Err(e)
            }
        }
    }

    /// Connects to a control plane that `scripts/cluster start DIR` left
    /// running; it keeps running after this is dropped.
    pub fn attach(dir: &Path) -> Result<RealCluster> {
        let dir = dir.to_path_buf();
        let env = std::fs::read_to_string(dir.join("env")).context("reading DIR/env")?;
        let port: u16 = env
            .lines()
            .find_map(|l| l.strip_prefix("API_PORT="))
            .ok_or_else(|| anyhow!("no API_PORT in DIR/env"))?
            .parse()
            .context("API_PORT")?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("real-cluster")
            .enable_all()
            .build()
            .context("tokio runtime")?;
        let client = rt.block_on(client_for(&dir.join("admin.kubeconfig")))?;
        Ok(RealCluster {
            dir,
            owned: None,
            rt,
            client,
            resources: Mutex::default(),
            server: SocketAddr::from(([127, 0, 0, 1], port)),
        })
    }

    /// The cluster's folder (`scripts/cluster`'s DIR).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The admin kubeconfig (system:masters).
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir.join("admin.kubeconfig")
    }

    /// The exporter's kubeconfig: its ServiceAccount's token, bound to the
    /// ClusterRole of `deploy/`.
    pub fn exporter_kubeconfig(&self) -> PathBuf {
        self.dir.join("exporter.kubeconfig")
    }

    /// A copy of the exporter's kubeconfig that reaches the API server
    /// through `addr` (a [`Proxy`]); the certificate names 127.0.0.1, so TLS
    /// still verifies.
    pub fn exporter_kubeconfig_via(&self, addr: SocketAddr) -> Result<PathBuf> {
        let text = std::fs::read_to_string(self.exporter_kubeconfig())?;
        let from = format!("server: https://{}", self.server);
        if !text.contains(&from) {
            bail!("exporter.kubeconfig does not name {from}");
        }
        let path = self
            .dir
            .join(format!("exporter-via-{}.kubeconfig", addr.port()));
        std::fs::write(
            &path,
            text.replace(&from, &format!("server: https://{addr}")),
        )?;
        Ok(path)
    }

    /// `kubectl --kubeconfig admin ARGS`; its stdout.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(kubectl_binary())
            .arg("--kubeconfig")
            .arg(self.admin_kubeconfig())
            .args(args)
            .output()
            .context("running kubectl")?;
        if !out.status.success() {
            bail!(
                "kubectl {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `kubectl --kubeconfig admin apply -f -` with `input` on stdin.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Result<String> {
        let mut child = Command::new(kubectl_binary())
            .arg("--kubeconfig")
            .arg(self.admin_kubeconfig())
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("running kubectl")?;
        child
            .stdin
            .take()
            .ok_or_else(|| anyhow!("kubectl stdin"))?
            .write_all(input.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "kubectl {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The API resource of an object's `apiVersion` and `kind`, from
    /// discovery (cached), and whether it is namespaced.
    fn resource(&self, object: &Value) -> Result<(ApiResource, bool)> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let key = format!("{api_version}/{kind}");
        if let Some(found) = self.resources.lock().expect("lock").get(&key) {
            return Ok(found.clone());
        }
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (ar, caps) = self
            .rt
            .block_on(kube::discovery::pinned_kind(&self.client, &gvk))
            .with_context(|| format!("discovering {key}"))?;
        let found = (ar, caps.scope == kube::discovery::Scope::Namespaced);
        self.resources
            .lock()
            .expect("lock")
            .insert(key, found.clone());
        Ok(found)
    }

    fn api(&self, object: &Value) -> Result<Api<DynamicObject>> {
        let (ar, namespaced) = self.resource(object)?;
        let ns = object["metadata"]["namespace"].as_str();
        Ok(match (namespaced, ns) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &ar),
            (true, None) => Api::default_namespaced_with(self.client.clone(), &ar),
            (false, _) => Api::all_with(self.client.clone(), &ar),
        })
    }

    /// Creates `objects`, `concurrency` requests at a time.
    pub fn create_all(&self, objects: &[Value], concurrency: usize) -> Result<()> {
        self.create(objects, concurrency, false)
    }

    /// Sends a create for each of `objects`, `concurrency` at a time, as
    /// server-side dry runs with `dry_run`; for each, in order, `None` when the
    /// API server accepted it, or the message of its refusal (an admission
    /// webhook's denial, say). Fails only when a request gets no answer.
    pub fn try_create_each(
        &self,
        objects: &[Value],
        concurrency: usize,
        dry_run: bool,
    ) -> Result<Vec<Option<String>>> {
        let mut jobs = Vec::with_capacity(objects.len());
        for o in objects {
            let api = self.api(o)?;
            let obj: DynamicObject = serde_json::from_value(o.clone())?;
            jobs.push((api, obj));
        }
        let params = PostParams {
            dry_run,
            ..PostParams::default()
        };
        let params = &params;
        self.rt.block_on(
            futures::stream::iter(jobs)
                .map(|(api, obj)| async move {
                    match api.create(params, &obj).await {
                        Ok(_) => Ok(None),
                        Err(kube::Error::Api(s)) => Ok(Some(s.message)),
                        Err(e) => Err(anyhow!(e))
                            .with_context(|| format!("creating {:?}", obj.metadata.name)),
                    }
                })
                .buffered(concurrency.max(1))
                .try_collect(),
        )
    }

    /// Creates `objects`; with `existing_ok`, one that exists already is left
    /// as it is.
    fn create(&self, objects: &[Value], concurrency: usize, existing_ok: bool) -> Result<()> {
        let mut jobs = Vec::with_capacity(objects.len());
        for o in objects {
            let api = self.api(o)?;
            let obj: DynamicObject = serde_json::from_value(o.clone())?;
            jobs.push((api, obj));
        }
        self.rt.block_on(
            futures::stream::iter(jobs)
                .map(|(api, obj)| async move {
                    // A connection the server closes under load (seen at 50k
                    // creates) is retried; an answer from the API is not.
                    let mut attempt = 0;
                    loop {
                        attempt += 1;
                        match api.create(&PostParams::default(), &obj).await {
                            Err(kube::Error::Api(s)) if existing_ok && s.code == 409 => {
                                return Ok(());
                            }
                            Err(kube::Error::Api(s)) if s.code == 409 && attempt > 1 => {
                                return Ok(());
                            }
                            Err(e) if attempt < 5 && !matches!(e, kube::Error::Api(_)) => {
                                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                            }
                            other => {
                                return other
                                    .map(drop)
                                    .with_context(|| format!("creating {:?}", obj.metadata.name));
                            }
                        }
                    }
                })
                .buffer_unordered(concurrency.max(1))
                .try_for_each(|()| async { Ok(()) }),
        )
    }

    /// Creates `objects` as a controller would (without the metadata the
    /// server sets), after the Namespaces they live in.
    pub fn load(&self, mut objects: Vec<Value>, concurrency: usize) -> Result<()> {
        let mut namespaces: Vec<&str> = objects
            .iter()
            .filter_map(|o| o["metadata"]["namespace"].as_str())
            .filter(|n| !matches!(*n, "default" | "kube-system"))
            .collect();
        namespaces.sort_unstable();
        namespaces.dedup();
        let namespaces: Vec<Value> = namespaces
            .iter()
            .map(|n| serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}))
            .collect();
        self.create(&namespaces, concurrency, true)?;
        // In place: at 50k reports each copy of the set is gigabytes.
        objects.iter_mut().for_each(without_server_fields);
        self.create_all(&objects, concurrency)
    }

    /// Creates `object`, or replaces the one of that name (as controllers
    /// write: fields the schema does not declare are pruned, not refused).
    pub fn apply(&self, object: &Value) -> Result<()> {
        let api = self.api(object)?;
        let name = object["metadata"]["name"]
            .as_str()
            .ok_or_else(|| anyhow!("object without a name"))?
            .to_owned();
        let mut obj: DynamicObject = serde_json::from_value(object.clone())?;
        self.rt
            .block_on(async {
                match api.create(&PostParams::default(), &obj).await {
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        let current = api.get(&name).await?;
                        obj.metadata.resource_version = current.metadata.resource_version;
                        api.replace(&name, &PostParams::default(), &obj)
                            .await
                            .map(drop)
                    }
                    other => other.map(drop),
                }
            })
            .with_context(|| format!("applying {name}"))
    }

    /// Deletes `object` (found by its apiVersion, kind, namespace and name).
    pub fn delete(&self, object: &Value) -> Result<()> {
        let api = self.api(object)?;
        let name = object["metadata"]["name"]
            .as_str()
            .ok_or_else(|| anyhow!("object without a name"))?;
        self.rt
            .block_on(api.delete(name, &DeleteParams::default()))
            .with_context(|| format!("deleting {name}"))?;
        Ok(())
    }

    /// `scripts/cluster restart DIR etcd|apiserver`.
    pub fn restart(&self, component: &str) -> Result<()> {
        self.script(&["restart", component])
    }

    /// `scripts/cluster kill DIR etcd|apiserver` (restart brings it back).
    pub fn kill(&self, component: &str) -> Result<()> {
        self.script(&["kill", component])
    }

    fn script(&self, args: &[&str]) -> Result<()> {
        let (verb, rest) = args.split_first().ok_or_else(|| anyhow!("no verb"))?;
        let out = Command::new(workspace_root().join("scripts/cluster"))
            .arg(verb)
            .arg(&self.dir)
            .args(rest)
            .output()?;
        if !out.status.success() {
            bail!(
                "scripts/cluster {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Writes what the server holds now, as `kubectl get -A -o json` gives
    /// it, into `dir`: the report and policy kinds the server serves,
    /// Namespaces, and the Events with reason PolicyViolation.
    pub fn snapshot(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        // Every kind the exporter reads (`kubectl get` names), Events apart:
        // only Kyverno's are listed, below.
        let kinds = Kind::ALL.into_iter().filter(|k| *k != Kind::Event);
        for kind in kinds.map(Kind::resource) {
            match self.kubectl(&["get", kind, "-A", "-o", "json"]) {
                Ok(list) => std::fs::write(dir.join(format!("{kind}.json")), list)?,
                // A kind whose CRD is gone holds nothing.
                Err(e) if e.to_string().contains("doesn't have a resource type") => {
                    let _ = std::fs::remove_file(dir.join(format!("{kind}.json")));
                }
                Err(e) => return Err(e),
            }
        }
        let events = self.kubectl(&[
            "get",
            "events",
            "-A",
            "--field-selector",
            "reason=PolicyViolation",
            "-o",
            "json",
        ])?;
        std::fs::write(dir.join("events.json"), events)?;
        Ok(())
    }

    /// Every request of the exporter's ServiceAccount the API server has
    /// audited so far.
    pub fn audit(&self) -> Result<Vec<AuditEntry>> {
        let text = std::fs::read_to_string(self.dir.join("audit.log")).unwrap_or_default();
        let mut out = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).context("audit line")?;
            out.push(AuditEntry {
                stage: v["stage"].as_str().unwrap_or_default().to_owned(),
                verb: v["verb"].as_str().unwrap_or_default().to_owned(),
                group: v["objectRef"]["apiGroup"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                resource: v["objectRef"]["resource"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                uri: v["requestURI"].as_str().unwrap_or_default().to_owned(),
                code: v["responseStatus"]["code"].as_u64().unwrap_or(0),
            });
        }
        Ok(out)
    }
}

impl Drop for RealCluster {
    fn drop(&mut self) {
        if self.owned.is_none() {
            return;
        }
        let _ = Command::new(workspace_root().join("scripts/cluster"))
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

/// Drops the metadata the server sets (a uid in an update must match).
pub fn without_server_fields(o: &mut Value) {
    if let Some(m) = o["metadata"].as_object_mut() {
        for k in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "managedFields",
            "generation",
        ] {
            m.remove(k);
        }
    }
}

/// The kubectl that `scripts/cluster` builds beside the API server.
pub fn kubectl_binary() -> PathBuf {
    workspace_root().join("target/harness/bin/kubectl")
}

async fn client_for(kubeconfig: &Path) -> Result<Client> {
    let kc = Kubeconfig::read_from(kubeconfig).context("reading the admin kubeconfig")?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .context("admin kubeconfig")?;
    Client::try_from(config).context("admin client")
}

/// One audited request stage: a watch appears when it starts
/// (`ResponseStarted`) and when it ends (`ResponseComplete`), anything else
/// once, complete.
#[derive(Clone, Debug)]
pub struct AuditEntry {
    /// `ResponseStarted`, `ResponseComplete` or `Panic`.
    pub stage: String,
    /// get, list, watch, …
    pub verb: String,
    /// The API group ("" for core).
    pub group: String,
    /// The resource (plural); "" for discovery and other non-resource URLs.
    pub resource: String,
    /// The request URI, with its query.
    pub uri: String,
    /// The response code.
    pub code: u64,
}

/// Runs the independent Python count over a snapshot folder and compares it
/// with `metrics`; the script's report either way.
pub fn crosscheck(snapshot: &Path, metrics: &str) -> Result<String, String> {
    let file = snapshot.join("metrics.txt");
    std::fs::write(&file, metrics).map_err(|e| e.to_string())?;
    let out = Command::new("python3")
        .arg(workspace_root().join("tests/crosscheck/crosscheck.py"))
        .arg("--metrics")
        .arg(&file)
        .arg(snapshot)
        .output()
        .map_err(|e| format!("running python3 (PyYAML needed: scripts/test --install): {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// A TCP proxy on loopback whose connections can be cut and refused, and
/// then allowed again: the exporter's network to the API server.
pub struct Proxy {
    /// Where it listens.
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Starts forwarding a free loopback port to `upstream`.
    pub fn start(upstream: SocketAddr) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (c, o, s) = (cut.clone(), open.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let client = match listener.accept() {
                    Ok((client, _)) => client,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                if c.load(Ordering::Relaxed) {
                    drop(client);
                    continue;
                }
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let mut open = o.lock().expect("lock");
                open.retain(|s| s.peer_addr().is_ok());
                for s in [&client, &server] {
                    if let Ok(clone) = s.try_clone() {
                        open.push(clone);
                    }
                }
                drop(open);
                pipe(&client, &server);
                pipe(&server, &client);
            }
        });
        Ok(Proxy {
            addr,
            cut,
            open,
            stop,
        })
    }

    /// Closes every open connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::Relaxed);
        for s in self.open.lock().expect("lock").drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Accepts connections again.
    pub fn resume(&self) {
        self.cut.store(false, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut();
    }
}

/// Copies `from` into `to` on a thread until either side closes.
fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = [0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

/// Polls `check` every `every` until it returns `Ok`, or fails with its last
/// error after `timeout`.
pub fn eventually<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> Result<T> {
    let start = Instant::now();
    loop {
        match check() {
            Ok(v) => return Ok(v),
            Err(e) if start.elapsed() >= timeout => {
                bail!("{what}: not so after {timeout:?}: {e}")
            }
            Err(_) => std::thread::sleep(every),
        }
    }
}

impl RealCluster {
    /// A value of the cluster's `DIR/env` (`API_PORT`, `KYVERNO_VERSION`, …).
    pub fn env(&self, key: &str) -> Result<String> {
        let env = std::fs::read_to_string(self.dir.join("env")).context("reading DIR/env")?;
        env.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no {key} in DIR/env"))
    }

    /// Waits until Kyverno's admission controller reports each ClusterPolicy
    /// or Policy of `policies` (name, `enforce` or `audit`) ready in that
    /// mode (`kyverno_policy_rule_info_total`), then 2 s more: the webhook
    /// handlers read that cache at each request.
    pub fn kyverno_has_modes(&self, policies: &[(&str, &str)]) -> Result<()> {
        let port: u16 = self.env("KYVERNO_ADMISSION_METRICS_PORT")?.parse()?;
        eventually(
            "Kyverno's policy cache",
            Duration::from_secs(180),
            Duration::from_millis(500),
            || {
                let (_, body) = get_once(([127, 0, 0, 1], port).into(), "/metrics")
                    .map_err(|e| e.to_string())?;
                let text = String::from_utf8_lossy(&body);
                let rules = samples(&text, "kyverno_policy_rule_info_total");
                for (name, mode) in policies {
                    let is = |l: &BTreeMap<String, String>, k: &str, v: &str| {
                        l.get(k).is_some_and(|x| x == v)
                    };
                    if !rules.iter().any(|(l, v)| {
                        *v == 1.0
                            && is(l, "policy_name", name)
                            && is(l, "policy_validation_mode", mode)
                            && is(l, "status_ready", "true")
                    }) {
                        return Err(format!("{name} is not {mode} and ready"));
                    }
                }
                Ok(())
            },
        )?;
        std::thread::sleep(Duration::from_secs(2));
        Ok(())
    }

    /// `scripts/kyverno gc DIR`: deletes the reports whose owner is gone, as
    /// kube-controller-manager's garbage collector (which this control plane
    /// does not run) would.
    pub fn kyverno_gc(&self) -> Result<()> {
        let out = Command::new(workspace_root().join("scripts/kyverno"))
            .arg("gc")
            .arg(&self.dir)
            .output()
            .context("running scripts/kyverno gc")?;
        let why = String::from_utf8_lossy(&out.stderr);
        anyhow::ensure!(out.status.success(), "scripts/kyverno gc failed: {why}");
        Ok(())
    }
}
