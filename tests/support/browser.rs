//! Headless Chromium for the console's tests (included by `tests/console.rs` only), driven
//! through ChromeDriver (WebDriver) by fantoccini. Debian's `chromium` and `chromium-driver` are installed by
//! `scripts/install-chromium.sh` (test.sh runs it), or here when a test finds them missing;
//! when they cannot be installed the browser tests print why and skip.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value as Json, json};

use crate::support::serve::free_port;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Whether Chromium and ChromeDriver are there, installing them once if they are not; the
/// reason when they cannot be.
pub fn available() -> Result<(), String> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let present = || Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
            if present() {
                return Ok(());
            }
            let script = crate::support::root().join("scripts/install-chromium.sh");
            let status = Command::new("bash").arg(&script).status();
            if present() {
                Ok(())
            } else {
                Err(format!(
                    "{CHROMIUM} and {CHROMEDRIVER} are missing and {} could not install them ({status:?}); install Debian's chromium and chromium-driver",
                    script.display()
                ))
            }
        })
        .clone()
}

/// A ChromeDriver process and one browser session on it; the driver (and the browser it
/// started) is killed when dropped, also when a test fails.
pub struct Browser {
    driver: Child,
    pub client: Client,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // ChromeDriver runs in its own process group, with the browser it started.
        let pid = self.driver.id() as i32;
        // SAFETY: signalling a process group we created; no memory is involved.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// Starts ChromeDriver on a free port and opens a headless Chromium session, 1400×1000,
    /// with a fresh profile and no background network traffic.
    pub async fn start() -> Browser {
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let until = Instant::now() + Duration::from_secs(30);
        // ChromeDriver keeps connections open: wait for it to accept one.
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < until,
                "chromedriver did not answer in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                    "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let Json::Object(caps) = caps else {
            unreachable!()
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        Browser {
            driver,
            client,
            _profile: profile,
        }
    }

    /// Runs `script` (a function body; `return` its value) in the page.
    pub async fn js(&self, script: &str) -> Json {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `script` every 100 ms until it returns something truthy, failing with `what`
    /// after `timeout`.
    pub async fn wait_js(&self, what: &str, timeout: Duration, script: &str) -> Json {
        let until = Instant::now() + timeout;
        loop {
            let v = self.js(script).await;
            let truthy = match &v {
                Json::Null => false,
                Json::Bool(b) => *b,
                Json::Number(n) => n.as_f64() != Some(0.0),
                Json::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            assert!(
                Instant::now() < until,
                "timed out after {timeout:?} waiting for {what} (last: {v})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of the element with id `id`.
    pub async fn text(&self, id: &str) -> String {
        self.client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no #{id}: {e}"))
            .text()
            .await
            .expect("element text")
    }

    /// Types `token` into the login form and submits it.
    pub async fn sign_in(&self, token: &str) {
        let input = self
            .client
            .find(Locator::Id("token"))
            .await
            .expect("the login form's token field");
        input.send_keys(token).await.expect("typing the token");
        self.client
            .find(Locator::Id("sign-in"))
            .await
            .expect("the sign-in button")
            .click()
            .await
            .expect("clicking sign in");
    }

    /// Clicks the element with id `id`.
    pub async fn click(&self, id: &str) {
        self.client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no #{id}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking #{id}: {e}"));
    }

    /// Saves a PNG of the page to `path` (its directory is created).
    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.expect("a screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("writing the screenshot");
    }

    /// Ends the session (and the browser).
    pub async fn close(self) {
        let client = self.client.clone();
        let _ = client.close().await;
    }
}
