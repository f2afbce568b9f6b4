//! The admin API's contract, driven over real HTTP on loopback with the real `Client`
//! against a fake host that records every call: the full authorization matrix (a tenant
//! cannot read, deploy to, roll back, pause or resume another tenant, and a refused request
//! never reaches the host), the mapping of host errors to statuses, the 64 MiB body limit,
//! and that tokens never reach the log.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use weir::admin::{self, Client, ClientError, ErrorBody, MAX_PLUGIN_BYTES};
use weir::serve::PipelineId;
use weir::serve::control::{
    ControlError, HostControl, PipelineState, PipelineView, Principal, TenantView, VersionStatus,
    VersionView,
};

const OPERATOR: &str = "op-7f3a9c1e";
const ACME: &str = "acme-91c2d4b8";
const GLOBEX: &str = "globex-44d0e6a2";
/// A token nobody owns.
const BAD: &str = "nobody-0000";

/// A minimal valid-looking component: the wasm magic and the component-model version.
const COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0fake component";

// ---------------------------------------------------------------------------------------
// The fake host
// ---------------------------------------------------------------------------------------

/// One call the API made into the host (authentication is not recorded).
#[derive(Debug, Clone, PartialEq)]
enum Call {
    Tenants,
    Pipelines(String),
    Deploy(String, String, usize),
    Rollback(String, String),
    Pause(String, String),
    Resume(String, String),
    Metrics,
}

/// Two tenants, `acme` (pipeline `stocks`, two versions, the second live) and `globex`
/// (pipeline `rides`, one version). Deploys are accepted when they start with the wasm
/// magic, rejected otherwise.
struct FakeHost {
    calls: Mutex<Vec<Call>>,
    pipelines: Mutex<Vec<PipelineView>>,
}

fn version(id: &str, live: bool) -> VersionView {
    VersionView {
        id: id.to_string(),
        sha256: "ab".repeat(32),
        origin: "config".to_string(),
        deployed_at: "2025-01-01T00:00:00Z".to_string(),
        live,
        status: if live {
            VersionStatus::Live
        } else {
            VersionStatus::Previous
        },
        status_reason: None,
    }
}

fn pipeline(tenant: &str, name: &str, versions: Vec<VersionView>) -> PipelineView {
    PipelineView {
        tenant: tenant.to_string(),
        name: name.to_string(),
        state: PipelineState::Running,
        reason: None,
        versions,
        last_rejected: None,
        last_plugin_error: None,
        sink_retrying: None,
        counters: weir::counters::Counters {
            events_read: 100,
            rows_written: 7,
            plugin_errors: 0,
            ..Default::default()
        },
    }
}

impl FakeHost {
    fn new() -> Self {
        Self {
            calls: Mutex::new(Vec::new()),
            pipelines: Mutex::new(vec![
                pipeline(
                    "acme",
                    "stocks",
                    vec![
                        version("vwap@0.1.0+aaaaaaaaaaaa", false),
                        version("vwap@0.2.0+bbbbbbbbbbbb", true),
                    ],
                ),
                pipeline(
                    "globex",
                    "rides",
                    vec![version("fares@1.0.0+cccccccccccc", true)],
                ),
            ]),
        }
    }

    fn record(&self, call: Call) {
        self.calls.lock().unwrap().push(call);
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Runs `f` on one pipeline, or `NotFound`.
    fn with_pipeline<T>(
        &self,
        tenant: &str,
        name: &str,
        f: impl FnOnce(&mut PipelineView) -> Result<T, ControlError>,
    ) -> Result<T, ControlError> {
        let mut pipelines = self.pipelines.lock().unwrap();
        match pipelines
            .iter_mut()
            .find(|p| p.tenant == tenant && p.name == name)
        {
            Some(p) => f(p),
            None => Err(ControlError::NotFound(format!(
                "no pipeline {tenant}/{name}"
            ))),
        }
    }
}

impl HostControl for FakeHost {
    fn authenticate(&self, token: &str) -> Option<Principal> {
        match token {
            OPERATOR => Some(Principal::Operator),
            ACME => Some(Principal::Tenant("acme".into())),
            GLOBEX => Some(Principal::Tenant("globex".into())),
            _ => None,
        }
    }

    fn tenants(&self) -> Vec<TenantView> {
        self.record(Call::Tenants);
        let pipelines = self.pipelines.lock().unwrap();
        ["acme", "globex"]
            .iter()
            .map(|t| TenantView {
                name: t.to_string(),
                pipelines: pipelines
                    .iter()
                    .filter(|p| p.tenant == *t)
                    .map(|p| p.name.clone())
                    .collect(),
            })
            .collect()
    }

    fn pipelines(&self, tenant: &str) -> Result<Vec<PipelineView>, ControlError> {
        self.record(Call::Pipelines(tenant.into()));
        let found: Vec<_> = self
            .pipelines
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.tenant == tenant)
            .cloned()
            .collect();
        if found.is_empty() {
            return Err(ControlError::NotFound(format!("no tenant {tenant}")));
        }
        Ok(found)
    }

    fn deploy(&self, id: &PipelineId, wasm: Vec<u8>) -> Result<VersionView, ControlError> {
        let (tenant, name) = (&*id.tenant, &*id.pipeline);
        self.record(Call::Deploy(tenant.into(), name.into(), wasm.len()));
        self.with_pipeline(tenant, name, |p| {
            if !wasm.starts_with(b"\0asm") {
                return Err(ControlError::Rejected(
                    "not a WebAssembly component: bad magic".into(),
                ));
            }
            for v in &mut p.versions {
                v.live = false;
            }
            let new = VersionView {
                origin: "api".into(),
                ..version(
                    &format!("new@{}.0.0+{:012x}", p.versions.len() + 1, wasm.len()),
                    true,
                )
            };
            p.versions.push(new.clone());
            Ok(new)
        })
    }

    fn rollback(&self, id: &PipelineId) -> Result<VersionView, ControlError> {
        let (tenant, name) = (&*id.tenant, &*id.pipeline);
        self.record(Call::Rollback(tenant.into(), name.into()));
        self.with_pipeline(tenant, name, |p| {
            let live = p.versions.iter().position(|v| v.live).unwrap_or(0);
            if live == 0 {
                return Err(ControlError::Conflict(format!(
                    "{tenant}/{name} has no version before the live one"
                )));
            }
            p.versions[live].live = false;
            p.versions[live - 1].live = true;
            Ok(p.versions[live - 1].clone())
        })
    }

    fn pause(&self, id: &PipelineId) -> Result<PipelineView, ControlError> {
        let (tenant, name) = (&*id.tenant, &*id.pipeline);
        self.record(Call::Pause(tenant.into(), name.into()));
        self.with_pipeline(tenant, name, |p| {
            p.state = PipelineState::Paused;
            Ok(p.clone())
        })
    }

    fn resume(&self, id: &PipelineId) -> Result<PipelineView, ControlError> {
        let (tenant, name) = (&*id.tenant, &*id.pipeline);
        self.record(Call::Resume(tenant.into(), name.into()));
        self.with_pipeline(tenant, name, |p| {
            p.state = PipelineState::Running;
            Ok(p.clone())
        })
    }

    fn metrics(&self) -> String {
        self.record(Call::Metrics);
        "# TYPE weir_events_read_total counter\n\
         weir_events_read_total{tenant=\"acme\",pipeline=\"stocks\"} 100\n"
            .to_string()
    }
}

// ---------------------------------------------------------------------------------------
// A served API
// ---------------------------------------------------------------------------------------

/// The admin API over a fresh `FakeHost`, on 127.0.0.1 with an OS-chosen port, in its own
/// runtime; stopped when dropped.
struct Server {
    url: String,
    host: Arc<FakeHost>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    runtime: tokio::runtime::Runtime,
}

impl Server {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let host = Arc::new(FakeHost::new());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let control: Arc<dyn HostControl> = host.clone();
        let task = runtime.spawn(admin::serve(listener, control, async move {
            let _ = stopped.await;
        }));
        Self {
            url,
            host,
            stop: Some(stop),
            task: Some(task),
            runtime,
        }
    }

    fn client(&self, token: &str) -> Client {
        Client::new(&self.url, token)
    }

    fn calls(&self) -> Vec<Call> {
        self.host.calls()
    }

    /// Signals shutdown and waits (at most 10 s) for `serve` to return.
    fn stop(&mut self) -> Option<std::io::Result<()>> {
        let _ = self.stop.take()?.send(());
        let task = self.task.take()?;
        let joined = self
            .runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(10), task).await });
        Some(
            joined
                .expect("serve did not return within 10 s of shutdown")
                .expect("serve panicked"),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A raw request without the client's help: status, `WWW-Authenticate`, content type, body.
fn raw(
    method: &str,
    url: &str,
    authorization: Option<&str>,
) -> (u16, Option<String>, Option<String>, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let response = match (method, authorization) {
        ("GET", None) => agent.get(url).call(),
        ("GET", Some(auth)) => agent.get(url).header("Authorization", auth).call(),
        ("POST", None) => agent.post(url).send(COMPONENT),
        ("POST", Some(auth)) => agent
            .post(url)
            .header("Authorization", auth)
            .send(COMPONENT),
        _ => unreachable!("{method}"),
    };
    let mut response = response.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let (www, content_type) = (header("www-authenticate"), header("content-type"));
    let body = response.body_mut().read_to_string().unwrap();
    (response.status().as_u16(), www, content_type, body)
}

fn status(result: Result<impl Sized, ClientError>) -> u16 {
    match result {
        Ok(_) => 200,
        Err(error) => error
            .status()
            .unwrap_or_else(|| panic!("no HTTP status: {error}")),
    }
}

// ---------------------------------------------------------------------------------------
// The authorization matrix
// ---------------------------------------------------------------------------------------

/// Every action of the matrix; all but listing tenants and metrics target `acme/stocks`.
#[derive(Debug, Clone, Copy)]
enum Action {
    ListTenants,
    ListAcme,
    DeployAcme,
    RollbackAcme,
    PauseAcme,
    ResumeAcme,
    Metrics,
}

const ACTIONS: [Action; 7] = [
    Action::ListTenants,
    Action::ListAcme,
    Action::DeployAcme,
    Action::RollbackAcme,
    Action::PauseAcme,
    Action::ResumeAcme,
    Action::Metrics,
];

impl Action {
    fn attempt(self, client: &Client) -> u16 {
        match self {
            Action::ListTenants => status(client.tenants()),
            Action::ListAcme => status(client.pipelines("acme")),
            Action::DeployAcme => status(client.deploy("acme", "stocks", COMPONENT.to_vec())),
            Action::RollbackAcme => status(client.rollback("acme", "stocks")),
            Action::PauseAcme => status(client.pause("acme", "stocks")),
            Action::ResumeAcme => status(client.resume("acme", "stocks")),
            Action::Metrics => status(client.metrics()),
        }
    }

    /// The one host call an allowed attempt makes.
    fn call(self) -> Call {
        let acme = || ("acme".to_string(), "stocks".to_string());
        match self {
            Action::ListTenants => Call::Tenants,
            Action::ListAcme => Call::Pipelines("acme".into()),
            Action::DeployAcme => Call::Deploy(acme().0, acme().1, COMPONENT.len()),
            Action::RollbackAcme => Call::Rollback(acme().0, acme().1),
            Action::PauseAcme => Call::Pause(acme().0, acme().1),
            Action::ResumeAcme => Call::Resume(acme().0, acme().1),
            Action::Metrics => Call::Metrics,
        }
    }
}

/// Attempts every action with `token` on a fresh host each and checks the statuses against
/// `expected` (in `ACTIONS` order): a 200 made exactly its one host call, anything else
/// made none.
fn check_row(token: &str, who: &str, expected: [u16; 7]) {
    for (action, expected) in ACTIONS.into_iter().zip(expected) {
        let server = Server::start();
        let got = action.attempt(&server.client(token));
        assert_eq!(got, expected, "{who} {action:?}");
        if expected == 200 {
            assert_eq!(server.calls(), vec![action.call()], "{who} {action:?}");
        } else {
            assert_eq!(
                server.calls(),
                vec![],
                "{who} {action:?} was refused but reached the host"
            );
        }
    }
}

//                          tenants acme deploy rollback pause resume metrics
#[test]
fn matrix_without_a_token() {
    check_row("", "no token", [401, 401, 401, 401, 401, 401, 401]);
}

#[test]
fn matrix_with_an_unknown_token() {
    check_row(BAD, "unknown token", [401, 401, 401, 401, 401, 401, 401]);
}

#[test]
fn matrix_with_acme_token_on_acme() {
    check_row(ACME, "acme", [200, 200, 200, 200, 200, 200, 403]);
}

#[test]
fn matrix_with_globex_token_on_acme() {
    check_row(GLOBEX, "globex", [200, 403, 403, 403, 403, 403, 403]);
}

#[test]
fn matrix_with_operator_token() {
    check_row(OPERATOR, "operator", [200, 200, 200, 200, 200, 200, 200]);
}

#[test]
fn listing_tenants_shows_a_tenant_only_itself() {
    let server = Server::start();
    let names = |token| -> Vec<String> {
        server
            .client(token)
            .tenants()
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect()
    };
    assert_eq!(names(OPERATOR), ["acme", "globex"]);
    assert_eq!(names(ACME), ["acme"]);
    assert_eq!(names(GLOBEX), ["globex"]);
    let everything: Vec<_> = server.client(GLOBEX).list(None).unwrap();
    assert_eq!(everything.len(), 1);
    assert_eq!(
        (everything[0].tenant.as_str(), everything[0].name.as_str()),
        ("globex", "rides")
    );
}

#[test]
fn refusals_without_a_valid_token_are_401_with_a_bearer_challenge() {
    let server = Server::start();
    let base = &server.url;
    let routes = [
        ("GET", format!("{base}/v1/tenants")),
        ("GET", format!("{base}/v1/tenants/acme/pipelines")),
        (
            "POST",
            format!("{base}/v1/tenants/acme/pipelines/stocks/deploy"),
        ),
        (
            "POST",
            format!("{base}/v1/tenants/acme/pipelines/stocks/rollback"),
        ),
        (
            "POST",
            format!("{base}/v1/tenants/acme/pipelines/stocks/pause"),
        ),
        (
            "POST",
            format!("{base}/v1/tenants/acme/pipelines/stocks/resume"),
        ),
        ("GET", format!("{base}/metrics")),
    ];
    let bad = format!("Bearer {BAD}");
    let basic = format!("Basic {OPERATOR}");
    for (method, url) in &routes {
        for auth in [
            None,
            Some(bad.as_str()),
            Some(basic.as_str()),
            Some("Bearer"),
        ] {
            let (status, www, _, body) = raw(method, url, auth);
            assert_eq!(status, 401, "{method} {url} with {auth:?}");
            assert_eq!(
                www.as_deref(),
                Some("Bearer"),
                "{method} {url} with {auth:?}"
            );
            let body: ErrorBody = serde_json::from_str(&body).unwrap();
            assert_eq!(body.error, "unauthorized");
        }
    }
    assert_eq!(server.calls(), vec![]);
}

#[test]
fn a_tenant_token_on_another_tenant_is_403_whether_or_not_it_exists() {
    let server = Server::start();
    let acme = server.client(ACME);
    // globex exists, `nobody` does not, and `globex/nope` does not: all look the same.
    for tenant in ["globex", "nobody"] {
        let error = acme.pipelines(tenant).unwrap_err();
        assert_eq!(error.status(), Some(403), "{error}");
        for pipeline in ["rides", "nope"] {
            assert_eq!(
                status(acme.deploy(tenant, pipeline, COMPONENT.to_vec())),
                403
            );
            assert_eq!(status(acme.rollback(tenant, pipeline)), 403);
            assert_eq!(status(acme.pause(tenant, pipeline)), 403);
            assert_eq!(status(acme.resume(tenant, pipeline)), 403);
        }
    }
    // A tenant whose name merely starts with acme's is another tenant.
    assert_eq!(status(acme.pipelines("acme2")), 403);
    assert_eq!(server.calls(), vec![]);
    let error = acme.pause("globex", "rides").unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "pause globex/rides forbidden (403): {}",
            error.reason().unwrap()
        )
    );
    assert!(!error.to_string().contains("not found"));
}

// ---------------------------------------------------------------------------------------
// Host errors, bodies, routes
// ---------------------------------------------------------------------------------------

#[test]
fn a_rejected_component_gives_422_with_the_hosts_reason_and_keeps_the_live_version() {
    let server = Server::start();
    let acme = server.client(ACME);
    let error = acme
        .deploy("acme", "stocks", b"not wasm at all".to_vec())
        .unwrap_err();
    assert_eq!(error.status(), Some(422));
    assert_eq!(
        error.to_string(),
        "deploy acme/stocks rejected (422): not a WebAssembly component: bad magic"
    );
    let stocks = &acme.pipelines("acme").unwrap()[0];
    let live: Vec<_> = stocks
        .versions
        .iter()
        .filter(|v| v.live)
        .map(|v| v.id.as_str())
        .collect();
    assert_eq!(live, ["vwap@0.2.0+bbbbbbbbbbbb"]);
}

#[test]
fn an_unknown_pipeline_is_404_once_authorized() {
    let server = Server::start();
    for token in [ACME, OPERATOR] {
        let client = server.client(token);
        let error = client
            .deploy("acme", "nope", COMPONENT.to_vec())
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "deploy acme/nope not found (404): no pipeline acme/nope"
        );
        assert_eq!(status(client.rollback("acme", "nope")), 404);
        assert_eq!(status(client.pause("acme", "nope")), 404);
        assert_eq!(status(client.resume("acme", "nope")), 404);
    }
    assert_eq!(status(server.client(OPERATOR).pipelines("nobody")), 404);
}

#[test]
fn rollback_with_no_earlier_version_is_409() {
    let server = Server::start();
    let error = server
        .client(GLOBEX)
        .rollback("globex", "rides")
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "rollback globex/rides conflict (409): globex/rides has no version before the live one"
    );
}

#[test]
fn deploy_rollback_pause_resume_round_trip() {
    let server = Server::start();
    let op = server.client(OPERATOR);
    let deployed = op.deploy("acme", "stocks", COMPONENT.to_vec()).unwrap();
    assert!(deployed.live);
    assert_eq!(deployed.origin, "api");
    assert_eq!(deployed.id, format!("new@3.0.0+{:012x}", COMPONENT.len()));

    let all = op.list(None).unwrap();
    let names: Vec<_> = all
        .iter()
        .map(|p| format!("{}/{}", p.tenant, p.name))
        .collect();
    assert_eq!(names, ["acme/stocks", "globex/rides"]);
    assert_eq!(all[0].versions.len(), 3);
    assert_eq!(all[0].versions.last(), Some(&deployed));

    let back = op.rollback("acme", "stocks").unwrap();
    assert_eq!(back.id, "vwap@0.2.0+bbbbbbbbbbbb");
    assert!(back.live);
    assert_eq!(
        op.pause("acme", "stocks").unwrap().state,
        PipelineState::Paused
    );
    assert_eq!(
        op.list(Some("acme")).unwrap()[0].state,
        PipelineState::Paused
    );
    assert_eq!(
        op.resume("acme", "stocks").unwrap().state,
        PipelineState::Running
    );
}

#[test]
fn a_body_over_64_mib_is_413_before_reaching_the_host() {
    let server = Server::start();
    let mut wasm = vec![0u8; MAX_PLUGIN_BYTES + 1];
    wasm[..4].copy_from_slice(b"\0asm");
    let error = server
        .client(ACME)
        .deploy("acme", "stocks", wasm)
        .unwrap_err();
    assert_eq!(error.status(), Some(413), "{error}");
    assert_eq!(server.calls(), vec![]);
}

#[test]
fn a_body_of_exactly_64_mib_is_accepted() {
    let server = Server::start();
    let mut wasm = vec![0u8; MAX_PLUGIN_BYTES];
    wasm[..4].copy_from_slice(b"\0asm");
    server.client(ACME).deploy("acme", "stocks", wasm).unwrap();
    assert_eq!(
        server.calls(),
        vec![Call::Deploy(
            "acme".into(),
            "stocks".into(),
            64 * 1024 * 1024
        )]
    );
}

#[test]
fn a_deploy_body_that_is_not_a_component_type_is_415() {
    let server = Server::start();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .post(format!(
            "{}/v1/tenants/acme/pipelines/stocks/deploy",
            server.url
        ))
        .header("Authorization", format!("Bearer {ACME}"))
        .header("Content-Type", "application/json")
        .send("{}")
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
    let body: ErrorBody =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(body.error, "unsupported_media_type");
    assert_eq!(server.calls(), vec![]);
}

#[test]
fn metrics_are_prometheus_text() {
    let server = Server::start();
    let text = server.client(OPERATOR).metrics().unwrap();
    assert!(text.contains("weir_events_read_total{tenant=\"acme\",pipeline=\"stocks\"} 100\n"));
    let (status, _, content_type, _) = raw(
        "GET",
        &format!("{}/metrics", server.url),
        Some(&format!("Bearer {OPERATOR}")),
    );
    assert_eq!(status, 200);
    assert!(
        content_type
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
}

#[test]
fn healthz_needs_no_token_and_unknown_routes_are_json_404() {
    let server = Server::start();
    let (status, _, _, body) = raw("GET", &format!("{}/healthz", server.url), None);
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (status, _, _, body) = raw("GET", &format!("{}/v2/everything", server.url), None);
    assert_eq!(status, 404);
    assert_eq!(
        serde_json::from_str::<ErrorBody>(&body).unwrap().error,
        "not_found"
    );
    assert_eq!(server.calls(), vec![]);
}

#[test]
fn an_unreachable_server_names_the_url_and_what_to_check() {
    // A port that was just free: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = Client::new(format!("127.0.0.1:{port}"), OPERATOR)
        .list(None)
        .unwrap_err();
    assert!(
        matches!(error, ClientError::Unreachable { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("http://127.0.0.1:{port}/v1/tenants")),
        "{message}"
    );
    assert!(
        message.contains("weir serve") && message.contains("--url"),
        "{message}"
    );
    assert!(!message.contains(OPERATOR));
}

#[test]
fn serve_returns_once_shutdown_completes() {
    let mut server = Server::start();
    server.client(ACME).tenants().unwrap();
    server.stop().unwrap().unwrap();
}

#[test]
fn requests_are_logged_without_tokens() {
    let log = Arc::new(Mutex::new(Vec::<u8>::new()));
    let writer = {
        let log = Arc::clone(&log);
        move || Capture(Arc::clone(&log))
    };
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(writer)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let server = Server::start();
    for token in [OPERATOR, ACME, GLOBEX, BAD] {
        let client = server.client(token);
        let _ = client.pause("acme", "stocks");
        let _ = client.deploy("acme", "stocks", COMPONENT.to_vec());
        let _ = client.metrics();
    }
    drop(server);
    let log = String::from_utf8(log.lock().unwrap().clone()).unwrap();
    for needle in [
        "operator",
        "tenant:acme",
        "tenant:globex",
        "anonymous",
        "deploy",
        "403",
        "401",
    ] {
        assert!(log.contains(needle), "log lacks {needle}:\n{log}");
    }
    for token in [OPERATOR, ACME, GLOBEX, BAD] {
        assert!(!log.contains(token), "log contains a token:\n{log}");
    }
}

/// A log writer into a shared buffer.
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
