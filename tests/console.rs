//! The web console end to end, against a real `weir serve` (and `weir run --console`) on
//! 127.0.0.1:
//!
//! - Its API: the page is served without a token and under a strict content security
//!   policy; every read needs a token; a tenant's overview lists only its own pipelines and
//!   another tenant's activity and live stream are refused (403) by the server; the live
//!   stream sends at most one event a second.
//! - In headless Chromium (Debian's `chromium` and `chromium-driver` through ChromeDriver):
//!   a tenant signs in through the form (the token stays out of the URL), sees its own
//!   pipelines and not another's; the pipeline page's charts gain points as events arrive,
//!   and once the input ends its result rows are exactly the windows worked out from the
//!   generated events; deploy, rollback, pause and resume through the page's buttons change
//!   what the host reports.
//! - `weir run --console`: the same API over one pipeline, read-only.
//!
//! Screenshots go to `$WEIR_SCREENSHOTS` when set (the README's come from
//! `WEIR_SCREENSHOTS=docs/console cargo test --test console`), else to the scratch dir.
//! Without Chromium, and when it cannot be installed, the browser tests print why and skip;
//! under `CI=true` they fail instead.

#[path = "support/browser.rs"]
mod browser;
mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use browser::Browser;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use support::serve::*;
use support::{Scratch, pipeline_toml};
use weir::serve::control::PipelineState;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// An endless stream of ticks, 4 symbols, 250 ms apart in event time, `rate` a second.
fn paced(rate: u64, count: u64) -> Gen {
    Gen {
        count,
        keys: 4,
        interval_ms: 250,
        seed: 11,
        rate,
    }
}

/// A host with tenant acme (pipeline `stocks` over `acme`) and tenant globex (pipeline
/// `rides` over an endless stream), both running `stats` over the price.
fn two_tenants(s: &Scratch, acme: Gen) -> Serve {
    let stats = support::wasm("stats");
    let params = "params = { field = \"price\" }";
    s.write(
        "stocks.toml",
        &pipeline_toml("stocks", &acme.toml(), &stats, params),
    );
    s.write(
        "rides.toml",
        &pipeline_toml("rides", &paced(20, 1_000_000).toml(), &stats, params),
    );
    Serve::start(
        s,
        &format!(
            "[console]\nkeep_rows = 5000\n\n{}{}",
            tenant_toml("acme", ACME, &["stocks.toml"]),
            tenant_toml("globex", GLOBEX, &["rides.toml"])
        ),
    )
}

/// One HTTP/1.1 request on loopback with an optional bearer token: (status, headers, body).
fn request(port: u16, method: &str, path: &str, token: Option<&str>) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = Vec::new();
    s.read_to_end(&mut text).expect("response");
    let text = String::from_utf8_lossy(&text).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}

fn get_json(port: u16, path: &str, token: &str) -> Json {
    let (status, _, body) = request(port, "GET", path, Some(token));
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// The `tenant/pipeline` names of an overview.
fn names(overview: &Json) -> Vec<String> {
    overview
        .as_array()
        .expect("a list")
        .iter()
        .map(|i| {
            format!(
                "{}/{}",
                i["pipeline"]["tenant"].as_str().unwrap(),
                i["pipeline"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

/// Where screenshots go: `$WEIR_SCREENSHOTS`, else the scratch dir.
fn shots(s: &Scratch) -> PathBuf {
    std::env::var_os("WEIR_SCREENSHOTS")
        .map(|d| {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                support::root().join(d)
            }
        })
        .unwrap_or_else(|| s.path("screenshots"))
}

/// Runs `test` in a fresh Chromium session; without a browser, fails under `CI=true` and
/// else prints why and returns.
fn in_browser<F: Future<Output = ()>>(test: impl FnOnce(Browser) -> F) {
    let name = std::thread::current()
        .name()
        .unwrap_or("tests/console.rs")
        .to_string();
    if !support::required(
        &name,
        browser::available()
            .map_err(|why| format!("the console's browser tests need Chromium: {why}")),
        "run scripts/install-chromium.sh as root (it installs Debian's chromium and chromium-driver)",
    ) {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let b = Browser::start().await;
        test(b).await;
    });
}

/// Signs in as acme and opens its `stocks` page; returns once it shows version `first`.
async fn open_stocks(b: &Browser, url: &str, first: &str) {
    open_signed_in(b, url, ACME).await;
    b.client
        .goto(&format!("{url}/#/p/acme/stocks"))
        .await
        .unwrap();
    b.wait_js(
        "the live version",
        Duration::from_secs(20),
        &format!("return document.getElementById('p-version').textContent === {first:?}"),
    )
    .await;
}

/// Chooses component `file` in the page's deploy form, ticks "as a shadow" when `shadow`,
/// and presses Deploy.
async fn choose_and_deploy(b: &Browser, file: &std::path::Path, shadow: bool) {
    b.client
        .find(fantoccini::Locator::Id("deploy-file"))
        .await
        .unwrap()
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    b.js(&format!(
        "document.getElementById('deploy-shadow').checked = {shadow}; return true"
    ))
    .await;
    b.click("deploy").await;
}

/// Opens the console at `url` and signs in with `token`; returns once the overview shows.
async fn open_signed_in(b: &Browser, url: &str, token: &str) {
    b.client.goto(url).await.expect("the console loads");
    b.wait_js(
        "the login form",
        Duration::from_secs(20),
        "return !document.getElementById('login').hidden",
    )
    .await;
    b.sign_in(token).await;
    b.wait_js(
        "the overview's rows",
        Duration::from_secs(20),
        "return document.querySelectorAll('#overview-table tbody tr').length",
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// 1. The API behind the page
// ---------------------------------------------------------------------------------------

#[test]
fn the_console_api_shows_each_tenant_only_its_own_pipelines() {
    let _serial = serial();
    let s = Scratch::new();
    let serve = two_tenants(&s, paced(40, 1_000_000));
    let port = serve.port;

    // The page needs no token and loads only from the host.
    let (status, head, body) = request(port, "GET", "/", None);
    assert_eq!(status, 200);
    assert!(body.contains("<title>Weir console</title>"), "{body}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{head}"
    );
    let (status, _, body) = request(port, "GET", "/console/uPlot.iife.min.js", None);
    assert_eq!(status, 200);
    assert!(body.contains("uPlot"), "the vendored chart library");
    assert_eq!(request(port, "GET", "/console/nope.js", None).0, 404);

    // Every read needs a token.
    for path in [
        "/v1/whoami",
        "/v1/overview",
        "/v1/tenants/acme/pipelines/stocks/activity",
        "/v1/tenants/acme/pipelines/stocks/live",
    ] {
        assert_eq!(request(port, "GET", path, None).0, 401, "{path}");
        assert_eq!(request(port, "GET", path, Some("wrong")).0, 401, "{path}");
    }

    // A tenant sees itself; the operator everyone.
    let who = get_json(port, "/v1/whoami", ACME);
    assert_eq!(who["principal"]["kind"], "tenant");
    assert_eq!(who["principal"]["tenant"], "acme");
    assert_eq!(who["controls"], true);
    assert_eq!(
        names(&get_json(port, "/v1/overview", ACME)),
        ["acme/stocks"]
    );
    assert_eq!(
        names(&get_json(port, "/v1/overview", GLOBEX)),
        ["globex/rides"]
    );
    assert_eq!(
        names(&get_json(port, "/v1/overview", OPERATOR)),
        ["acme/stocks", "globex/rides"]
    );

    // Another tenant's pipeline is refused by the server, whether or not it exists.
    for path in [
        "/v1/tenants/globex/pipelines/rides/activity",
        "/v1/tenants/globex/pipelines/rides/live",
        "/v1/tenants/globex/pipelines/nope/activity",
    ] {
        let (status, _, body) = request(port, "GET", path, Some(ACME));
        assert_eq!(status, 403, "{path}: {body}");
    }
    let (status, _, _) = request(
        port,
        "GET",
        "/v1/tenants/acme/pipelines/nope/activity",
        Some(OPERATOR),
    );
    assert_eq!(status, 404);

    // Activity: samples a second, and the rows the sink wrote, with their columns.
    let activity = wait_for("samples and rows", Duration::from_secs(60), || {
        let a = get_json(port, "/v1/tenants/acme/pipelines/stocks/activity", ACME);
        let ok = a["samples"].as_array()?.len() >= 2 && !a["rows"].as_array()?.is_empty();
        ok.then_some(a)
    });
    assert_eq!(activity["pipeline"]["name"], "stocks");
    assert_eq!(activity["key"], serde_json::json!(["symbol"]));
    let row = &activity["rows"][0];
    assert_eq!(row["kind"], "results");
    for col in [
        "symbol",
        "window_start",
        "window_end",
        "plugin_version",
        "count",
    ] {
        assert!(row["fields"].get(col).is_some(), "{col} in {row}");
    }
    let samples = activity["samples"].as_array().unwrap();
    let last = samples.last().unwrap();
    assert!(last["events_read"].as_u64().unwrap() > 0, "{last}");
    // The plugin's calls cost CPU time, accounted to the pipeline.
    assert!(last["cpu_seconds"].as_f64().unwrap() > 0.0, "{last}");
    // Samples are a second apart (the sampler's tick), in order.
    for pair in samples.windows(2) {
        assert_eq!(
            pair[1]["seq"].as_u64().unwrap(),
            pair[0]["seq"].as_u64().unwrap() + 1
        );
        assert!(pair[1]["at_ms"].as_i64() > pair[0]["at_ms"].as_i64());
    }
    // Asking past the last numbers gives only what is newer.
    let next = &activity["next"];
    let newer = get_json(
        port,
        &format!(
            "/v1/tenants/acme/pipelines/stocks/activity?sample={}&row={}&error={}",
            next["sample"], next["row"], next["error"]
        ),
        ACME,
    );
    for s in newer["samples"].as_array().unwrap() {
        assert!(s["seq"].as_u64() > next["sample"].as_u64(), "{s}");
    }

    // The live stream: an `activity` event at once, then at most one a second.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET /v1/tenants/acme/pipelines/stocks/live HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ACME}\r\n\r\n"
    )
    .unwrap();
    let mut seen = String::new();
    let mut at = Vec::new();
    let mut buf = [0u8; 65536];
    while at.len() < 4 {
        let n = stream.read(&mut buf).expect("the stream goes on");
        assert!(n > 0, "the stream ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        let events = seen.matches("event: activity").count();
        while at.len() < events {
            at.push(Instant::now());
        }
    }
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert!(seen.to_ascii_lowercase().contains("text/event-stream"));
    // Three intervals after the first event: at least about 3 s.
    let spread = at[3] - at[0];
    assert!(spread >= Duration::from_millis(2_500), "{spread:?}");

    // SIGTERM ends the open stream, and the host exits without waiting out the admin
    // API's 60 s request timeout for it.
    let mut serve = serve;
    let stopped = Instant::now();
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &serve.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let status = wait_for("weir serve to exit", Duration::from_secs(45), || {
        serve.child.try_wait().unwrap()
    });
    assert!(status.success(), "{}", serve.stderr());
    assert!(stopped.elapsed() < Duration::from_secs(45));
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) => panic!("the stream did not end cleanly: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// 2. Signing in, in a real browser
// ---------------------------------------------------------------------------------------

#[test]
fn a_tenant_signs_in_and_sees_only_its_own_pipelines() {
    let _serial = serial();
    let s = Scratch::new();
    let serve = two_tenants(&s, paced(40, 1_000_000));
    let url = serve.url();
    let dir = shots(&s);
    in_browser(|b| async move {
        b.client.goto(&url).await.unwrap();
        b.wait_js(
            "the login form",
            Duration::from_secs(20),
            "return !document.getElementById('login').hidden",
        )
        .await;
        // A wrong token is refused, and the form says so.
        b.sign_in("not-a-token").await;
        let error = b
            .wait_js(
                "the refusal",
                Duration::from_secs(20),
                "return document.getElementById('login-error').textContent",
            )
            .await;
        assert!(error.as_str().unwrap().contains("refused"), "{error}");

        b.sign_in(ACME).await;
        b.wait_js(
            "the overview's rows",
            Duration::from_secs(20),
            "return document.querySelectorAll('#overview-table tbody tr').length",
        )
        .await;
        let rows = b
            .js("return Array.from(document.querySelectorAll('#overview-table tbody tr')).map(r => r.dataset.tenant + '/' + r.dataset.pipeline)")
            .await;
        assert_eq!(rows, serde_json::json!(["acme/stocks"]));
        assert_eq!(b.text("who").await, "tenant acme");
        // The token is in the tab's session storage, never in the URL.
        let url_now = b.client.current_url().await.unwrap().to_string();
        assert!(!url_now.contains(ACME), "{url_now}");
        assert_eq!(
            b.js("return sessionStorage.getItem('weir.token')").await,
            ACME
        );
        // The server refuses the other tenant's data to this page's token.
        let status = b
            .js("return (async () => (await fetch('/v1/tenants/globex/pipelines/rides/activity', {headers: {Authorization: 'Bearer ' + sessionStorage.getItem('weir.token')}})).status)()")
            .await;
        assert_eq!(status, 403);
        // Events per second reach the overview.
        b.wait_js(
            "a rate in the overview",
            Duration::from_secs(30),
            "const c = document.querySelector('#overview-table tbody tr td:nth-child(5)'); return c && c.textContent !== '–' && c.textContent !== '0'",
        )
        .await;

        // Signing out forgets the token; the operator then sees both tenants.
        b.click("sign-out").await;
        assert_eq!(
            b.js("return sessionStorage.getItem('weir.token')").await,
            Json::Null
        );
        b.sign_in(OPERATOR).await;
        b.wait_js(
            "both tenants",
            Duration::from_secs(20),
            "return document.querySelectorAll('#overview-table tbody tr').length === 2",
        )
        .await;
        b.wait_js(
            "rates for both",
            Duration::from_secs(30),
            "return Array.from(document.querySelectorAll('#overview-table tbody tr td:nth-child(5)')).every(c => c.textContent !== '–')",
        )
        .await;
        b.screenshot(&dir.join("overview.png")).await;
        b.close().await;
    });
}

// ---------------------------------------------------------------------------------------
// 3. Live charts, and the exact rows once the input ends
// ---------------------------------------------------------------------------------------

#[test]
fn the_pipeline_page_draws_live_charts_and_the_exact_rows() {
    let _serial = serial();
    let s = Scratch::new();
    // 1 200 ticks at 100 a second: 12 s of input, 300 s of event time, 4 symbols.
    let input = paced(100, 1_200);
    let dir = shots(&s);
    // The expected windows: the generated events bucketed by symbol and 1 s window.
    let expected: BTreeMap<(String, i64), u64> = bucket(&input.events(), 1000)
        .into_iter()
        .map(|(k, b)| (k, b.count as u64))
        .collect();
    // Every row fits in what the console keeps (`keep_rows = 5000` above).
    assert!(expected.len() < 5000);
    let s = &s;
    in_browser(|b| async move {
        // The host starts once the browser is up, so the page sees the input arrive.
        let serve = two_tenants(s, input);
        let serve_ref = &serve;
        let url = serve.url();
        open_signed_in(&b, &url, ACME).await;
        b.client
            .find(fantoccini::Locator::LinkText("stocks"))
            .await
            .expect("a link to the pipeline")
            .click()
            .await
            .unwrap();
        let points = "return window.weirConsole.charts.events ? window.weirConsole.charts.events.data[0].length : 0";
        let first = b
            .wait_js("the first points", Duration::from_secs(20), points)
            .await
            .as_u64()
            .unwrap();
        // The results chart's newest window end (seconds), once it has one.
        let newest = "const x = window.weirConsole.charts.results ? window.weirConsole.charts.results.data[0] : []; return x.length ? x[x.length - 1] : 0";
        let first_end = b
            .wait_js("the first windows", Duration::from_secs(20), newest)
            .await
            .as_f64()
            .unwrap();
        // While events arrive, every chart gains points.
        b.wait_js(
            "more points",
            Duration::from_secs(20),
            &format!("return window.weirConsole.charts.events.data[0].length > {first}"),
        )
        .await;
        b.wait_js(
            "newer windows",
            Duration::from_secs(20),
            &format!(
                "const x = window.weirConsole.charts.results.data[0]; return x[x.length - 1] > {first_end}"
            ),
        )
        .await;
        // A few more seconds of charts for the README's picture.
        b.wait_js(
            "eight points",
            Duration::from_secs(30),
            "return window.weirConsole.charts.events.data[0].length >= 8",
        )
        .await;
        b.screenshot(&dir.join("pipeline.png")).await;

        // Once the input ends, the page's rows are exactly the expected windows.
        serve_ref.wait_state(
            "acme",
            "stocks",
            PipelineState::Finished,
            Duration::from_secs(60),
        );
        let rows = b
            .wait_js(
                "every row",
                Duration::from_secs(20),
                &format!(
                    "const r = window.weirConsole.rows.filter(r => r.kind === 'results'); return r.length === {} ? r.map(r => [r.fields.symbol, r.fields.window_start, r.fields.count]) : null",
                    expected.len()
                ),
            )
            .await;
        let got: BTreeMap<(String, i64), u64> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    (
                        r[0].as_str().unwrap().to_string(),
                        ts_ms(r[1].as_str().unwrap()),
                    ),
                    r[2].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, expected);
        // And the last sample counts every event, as the host's counters do.
        b.wait_js(
            "the last sample",
            Duration::from_secs(20),
            &format!(
                "const s = window.weirConsole.samples; return s.length && s[s.length - 1].events_read === {}",
                input.count
            ),
        )
        .await;
        // The table shows the latest rows, newest first.
        let table = b
            .js("return document.querySelectorAll('#rows tbody tr').length")
            .await;
        assert_eq!(table, 20);
        // The results chart plots the chosen field, one line per symbol.
        assert_eq!(
            b.js("return document.getElementById('r-field').value")
                .await,
            "avg"
        );
        assert_eq!(
            b.js("return window.weirConsole.charts.results.series.length - 1")
                .await,
            4
        );
        // The results chart and the latest rows, for the README.
        b.js("document.getElementById('r-field').parentNode.parentNode.scrollIntoView(); return null")
            .await;
        b.screenshot(&dir.join("results.png")).await;
        b.close().await;
    });
}

// ---------------------------------------------------------------------------------------
// 4. Deploy, rollback, pause and resume through the page
// ---------------------------------------------------------------------------------------

#[test]
fn deploy_rollback_pause_and_resume_through_the_page() {
    let _serial = serial();
    let s = Scratch::new();
    let serve = two_tenants(&s, paced(40, 1_000_000));
    let url = serve.url();
    let first = live(&serve.view("acme", "stocks")).to_string();
    let new = support::wasm("stats_incremental");
    let sha: String = Sha256::digest(std::fs::read(&new).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let serve_ref = &serve;
    in_browser(|b| async move {
        open_stocks(&b, &url, &first).await;

        // Deploy: choose the file, press Deploy; the page shows the new version live.
        choose_and_deploy(&b, &new, false).await;
        let shown = b
            .wait_js(
                "the new version",
                Duration::from_secs(30),
                &format!(
                    "const v = document.getElementById('p-version').textContent; return v.endsWith('+{}') ? v : null",
                    &sha[..12]
                ),
            )
            .await;
        assert_eq!(live(&serve_ref.view("acme", "stocks")), shown);
        assert!(b.text("p-message").await.starts_with("Deployed"));

        // Roll back: the first version is live again, in the page and the host.
        b.wait_js(
            "rollback enabled",
            Duration::from_secs(10),
            "return !document.getElementById('rollback').disabled",
        )
        .await;
        b.click("rollback").await;
        b.wait_js(
            "the first version again",
            Duration::from_secs(30),
            &format!("return document.getElementById('p-version').textContent === {first:?}"),
        )
        .await;
        assert_eq!(live(&serve_ref.view("acme", "stocks")), first);

        // Pause and resume.
        b.click("pause").await;
        b.wait_js(
            "paused",
            Duration::from_secs(20),
            "return document.getElementById('p-state').textContent === 'paused'",
        )
        .await;
        assert_eq!(
            serve_ref.view("acme", "stocks").state,
            PipelineState::Paused
        );
        b.click("resume").await;
        b.wait_js(
            "running",
            Duration::from_secs(20),
            "return document.getElementById('p-state').textContent === 'running'",
        )
        .await;
        assert_eq!(
            serve_ref.view("acme", "stocks").state,
            PipelineState::Running
        );
        // The version history lists both, the rolled-back one marked so.
        let statuses = b
            .js("return Array.from(document.querySelectorAll('#versions tbody tr')).map(r => r.dataset.status)")
            .await;
        assert_eq!(statuses, serde_json::json!(["rolled_back", "live"]));
        b.close().await;
    });
}

#[test]
fn a_shadow_deployed_from_the_page_shows_its_diff_and_is_discarded_or_promoted_there() {
    let _serial = serial();
    let s = Scratch::new();
    // 4 symbols: AAPL, MSFT, GOOG, AMZN; windows of 1 s of event time, 4 a second.
    let serve = two_tenants(&s, paced(16, 1_000_000));
    let url = serve.url();
    let dir = shots(&s);
    let first = live(&serve.view("acme", "stocks")).to_string();
    let skewed = support::wasm("skewed");
    let incremental = support::wasm("stats_incremental");
    let serve_ref = &serve;
    in_browser(|b| async move {
        open_stocks(&b, &url, &first).await;
        assert_eq!(
            b.js("return document.getElementById('shadow').hidden")
                .await,
            true
        );
        // What a candidate must match: the pipeline's fields, window and params.
        let fields = b
            .wait_js(
                "the schema",
                Duration::from_secs(20),
                "const rows = Array.from(document.querySelectorAll('#sc-fields tbody tr')); \
                 return rows.length ? rows.map(r => Array.from(r.cells).map(c => c.textContent).join(' ')) : null",
            )
            .await;
        assert_eq!(
            fields,
            serde_json::json!(["price f64  ", "symbol string key required", "volume i64  "])
        );
        // Inside a closed <details>: read as the DOM has it, not as shown.
        let summary = b
            .js("return document.getElementById('sc-summary').textContent + ' ' + document.getElementById('sc-params').textContent")
            .await;
        let summary = summary.as_str().unwrap();
        assert!(summary.contains("window tumbling 1s"), "{summary}");
        assert!(summary.contains("field = \"price\""), "{summary}");

        // The skewed candidate: MSFT's `max` is one more, GOOG's windows fail.
        choose_and_deploy(&b, &skewed, true).await;
        b.wait_js(
            "differing and failed windows",
            Duration::from_secs(60),
            "const rows = Array.from(document.querySelectorAll('#s-diffs tbody tr')); \
             return rows.some(r => r.dataset.result === 'differing') && rows.some(r => r.dataset.result === 'error')",
        )
        .await;
        assert!(b.text("p-message").await.contains("runs as the shadow of"));
        // Every listed cell is MSFT's `max`, the candidate's one more than the live one;
        // every failed window is GOOG's.
        let rows = b
            .js("return Array.from(document.querySelectorAll('#s-diffs tbody tr')).map(r => Array.from(r.cells).map(c => c.textContent))")
            .await;
        for r in rows.as_array().unwrap() {
            let cells: Vec<&str> = r
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect();
            match cells[2] {
                "differing" => {
                    assert_eq!((cells[0], cells[4]), ("MSFT", "max"), "{cells:?}");
                    let live: f64 = cells[5].parse().unwrap();
                    let candidate: f64 = cells[6].parse().unwrap();
                    assert_eq!(candidate, live + 1.0, "{cells:?}");
                }
                "error" => {
                    assert_eq!(cells[0], "GOOG", "{cells:?}");
                    assert!(cells[6].contains("refusing key"), "{cells:?}");
                }
                other => panic!("a row that is {other}: {cells:?}"),
            }
        }
        assert!(
            b.text("s-summary")
                .await
                .contains("Columns removed: sum, min, avg, stddev")
        );
        b.js("document.getElementById('shadow').scrollIntoView(); return true")
            .await;
        b.screenshot(&dir.join("shadow.png")).await;

        // Discard: the panel says so, the host too, the live version never changed.
        b.click("discard").await;
        b.wait_js(
            "discarded",
            Duration::from_secs(20),
            "return document.getElementById('s-state').textContent === 'discarded'",
        )
        .await;
        assert_eq!(live(&serve_ref.view("acme", "stocks")), first);

        // The incremental build as a shadow: nothing differs; Promote makes it live.
        choose_and_deploy(&b, &incremental, true).await;
        let compared = b
            .wait_js(
                "windows compared by the incremental build",
                Duration::from_secs(60),
                "const s = document.getElementById('s-summary').textContent; \
                 const m = s.match(/(\\d+) windows compared, (\\d+) equal, (\\d+) differing, (\\d+) candidate errors/); \
                 return m && document.getElementById('s-state').textContent === 'running' && +m[1] >= 8 ? m.slice(1).map(Number) : null",
            )
            .await;
        let c: Vec<u64> = serde_json::from_value(compared).unwrap();
        assert_eq!((c[1], c[2], c[3]), (c[0], 0, 0), "{c:?}");
        b.click("promote").await;
        let shown = b
            .wait_js(
                "the promoted version live",
                Duration::from_secs(30),
                "const v = document.getElementById('p-version').textContent; \
                 return v.startsWith('weir-plugin-stats-incremental@') ? v : null",
            )
            .await;
        assert_eq!(live(&serve_ref.view("acme", "stocks")), shown);
        assert!(b.text("p-message").await.starts_with("Promoted"));
        b.wait_js(
            "promoted",
            Duration::from_secs(20),
            "return document.getElementById('s-state').textContent === 'promoted'",
        )
        .await;
        let statuses = b
            .js("return Array.from(document.querySelectorAll('#versions tbody tr')).map(r => r.dataset.status)")
            .await;
        assert_eq!(
            statuses,
            serde_json::json!(["live", "discarded", "previous"])
        );
        b.close().await;
    });
}

// ---------------------------------------------------------------------------------------
// 5. `weir run --console`
// ---------------------------------------------------------------------------------------

#[test]
fn weir_run_serves_a_read_only_console() {
    let _serial = serial();
    let s = Scratch::new();
    let input = paced(100, 600);
    let path = s.write(
        "solo.toml",
        &pipeline_toml(
            "solo",
            &input.toml(),
            &support::wasm("stats"),
            "params = { field = \"price\" }",
        ),
    );
    let port = free_port();
    let mut child = support::weir()
        .args(["run", "--console", &format!("127.0.0.1:{port}")])
        .arg(&path)
        .env("WEIR_CONSOLE_TOKEN", "solo-token-0123456")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let overview = wait_for("the console", Duration::from_secs(60), || {
        let (status, _, body) = request_opt(port, "/v1/overview", "solo-token-0123456")?;
        (status == 200).then(|| serde_json::from_str::<Json>(&body).unwrap())
    });
    assert_eq!(names(&overview), ["local/solo"]);
    let who = get_json(port, "/v1/whoami", "solo-token-0123456");
    assert_eq!(who["controls"], false);
    assert_eq!(who["principal"]["kind"], "operator");
    let (status, _, body) = request(
        port,
        "POST",
        "/v1/tenants/local/pipelines/solo/pause",
        Some("solo-token-0123456"),
    );
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("weir serve"), "{body}");
    let a = wait_for("rows", Duration::from_secs(60), || {
        let a = get_json(
            port,
            "/v1/tenants/local/pipelines/solo/activity",
            "solo-token-0123456",
        );
        (!a["rows"].as_array()?.is_empty()).then_some(a)
    });
    assert_eq!(a["rows"][0]["kind"], "results");
    assert_eq!(request(port, "GET", "/v1/overview", None).0, 401);
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{err}");
    assert!(
        !err.contains("solo-token-0123456"),
        "a given token is not printed"
    );
}

/// [`request`] that answers `None` while nothing listens.
fn request_opt(port: u16, path: &str, token: &str) -> Option<(u16, String, String)> {
    TcpStream::connect(("127.0.0.1", port)).ok()?;
    Some(request(port, "GET", path, Some(token)))
}

// ---------------------------------------------------------------------------------------
// 6. The last error records, and a host with the console off
// ---------------------------------------------------------------------------------------

#[test]
fn the_console_keeps_the_last_dead_letters_and_late_events() {
    let _serial = serial();
    let s = Scratch::new();
    // Two malformed lines (2 and 5), and one tick (line 4) whose only window, [0 s, 1 s),
    // closed when the watermark reached 5 s at line 3 (no delay, no lateness allowed).
    let input = s.write(
        "ticks.jsonl",
        "{\"ts\":\"2024-01-22T00:00:00.500Z\",\"symbol\":\"AAPL\",\"price\":1.5,\"volume\":3}\n\
         not json at all\n\
         {\"ts\":\"2024-01-22T00:00:05.000Z\",\"symbol\":\"AAPL\",\"price\":2.0,\"volume\":3}\n\
         {\"ts\":\"2024-01-22T00:00:00.700Z\",\"symbol\":\"MSFT\",\"price\":1.0,\"volume\":1}\n\
         {\"ts\":\"yesterday\",\"symbol\":\"AAPL\",\"price\":1.0,\"volume\":1}\n",
    );
    s.write(
        "stocks.toml",
        &support::pipeline_toml_to(
            "stocks",
            &format!("[source]\nkind = \"file\"\npath = \"{}\"\n", input.display()),
            &support::wasm("stats"),
            "params = { field = \"price\" }",
            "kind = \"file\"\npath = \"stocks.jsonl\"\n\n[late_sink]\nkind = \"file\"\npath = \"late.jsonl\"\n\n[dead_letter]\nkind = \"file\"\npath = \"dead.jsonl\"",
        ),
    );
    let serve = Serve::start(&s, &tenant_toml("acme", ACME, &["stocks.toml"]));
    serve.wait_state(
        "acme",
        "stocks",
        PipelineState::Finished,
        Duration::from_secs(60),
    );
    let a = get_json(
        serve.port,
        "/v1/tenants/acme/pipelines/stocks/activity",
        ACME,
    );
    let errors = a["errors"].as_array().unwrap();
    // Each is the record its sink wrote, in the order that sink wrote them (a batch's dead
    // letters at decoding, before its events are placed in windows).
    let of = |kind: &str| -> Vec<Json> {
        errors
            .iter()
            .filter(|e| e["kind"] == kind)
            .map(|e| e["fields"].clone())
            .collect()
    };
    assert_eq!(errors.len(), 3, "{errors:?}");
    let dead = s.read_jsonl("dead.jsonl");
    assert_eq!(of("dead_letter"), dead);
    assert_eq!(dead[0]["record"], "not json at all");
    assert_eq!(dead[0]["offset"], 2);
    assert_eq!(dead[1]["offset"], 5);
    let late = of("late");
    assert_eq!(late, s.read_jsonl("late.jsonl"));
    assert_eq!(late[0]["symbol"], "MSFT");
    // The rows: AAPL's two windows, [0 s, 1 s) and [5 s, 6 s), one tick each.
    let rows: Vec<(String, i64)> = a["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["fields"]["symbol"].as_str().unwrap().to_string(),
                r["fields"]["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows, [("AAPL".to_string(), 1), ("AAPL".to_string(), 1)]);
    assert_eq!(
        a["columns"],
        serde_json::json!([
            "symbol",
            "window_start",
            "window_end",
            "plugin_version",
            "count",
            "sum",
            "min",
            "max",
            "avg",
            "stddev"
        ])
    );
}

#[test]
fn a_host_with_the_console_off_serves_no_page_and_keeps_nothing() {
    let _serial = serial();
    let s = Scratch::new();
    s.write(
        "stocks.toml",
        &pipeline_toml(
            "stocks",
            &paced(40, 1_000_000).toml(),
            &support::wasm("stats"),
            "params = { field = \"price\" }",
        ),
    );
    let serve = Serve::start(
        &s,
        &format!(
            "[console]\nenabled = false\n\n{}",
            tenant_toml("acme", ACME, &["stocks.toml"])
        ),
    );
    assert_eq!(request(serve.port, "GET", "/", None).0, 404);
    assert_eq!(
        request(serve.port, "GET", "/console/console.js", None).0,
        404
    );
    let (status, _, body) = request(
        serve.port,
        "GET",
        "/v1/tenants/acme/pipelines/stocks/activity",
        Some(ACME),
    );
    assert_eq!(status, 404);
    assert!(
        body.contains("console.enabled") || body.contains("[console] enabled"),
        "{body}"
    );
    // The rest of the admin API is unchanged.
    assert_eq!(
        names(&get_json(serve.port, "/v1/overview", ACME)),
        ["acme/stocks"]
    );
}
