//! The real Chromium for the web page's tests: chromedriver on a free port, a headless
//! session with its own profile, and signing in with a token as a person would.

use std::path::Path;
use std::process::Command;

use fantoccini::{Client, ClientBuilder, Locator};

use crate::{Proc, free_port, wait_until};

/// Debian's chromedriver (`chromium-driver`, installed by scripts/test.sh).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Debian's Chromium (`chromium`).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// chromedriver on a free port and a headless Chromium session with its profile in
/// `profile`. Keep the returned [`Proc`] alive as long as the client.
pub async fn browser(profile: &Path) -> (Proc, Client) {
    for p in [CHROMEDRIVER, CHROMIUM] {
        assert!(
            Path::new(p).exists(),
            "{p} missing: apt-get install chromium chromium-driver (scripts/test.sh installs them)"
        );
    }
    let port = free_port();
    let mut cmd = Command::new(CHROMEDRIVER);
    cmd.arg(format!("--port={port}"));
    // chromedriver says it started on stdout, which `Proc` does not read: wait for its
    // port instead.
    let driver = Proc::spawn_group("chromedriver", cmd);
    wait_until("chromedriver to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,1100",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let c = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session with Chromium");
    (driver, c)
}

/// Opens `base`'s login page, signs in with `token` and waits for the overview.
pub async fn sign_in(
    c: &Client,
    base: &str,
    token: &str,
) -> Result<(), fantoccini::error::CmdError> {
    c.goto(&format!("{base}/login")).await?;
    c.find(Locator::Id("token")).await?.send_keys(token).await?;
    c.find(Locator::Id("sign-in")).await?.click().await?;
    c.wait().for_element(Locator::Id("kwh")).await?;
    Ok(())
}
