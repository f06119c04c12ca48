//! A small WebDriver client: starts chromedriver, opens a headless Chromium
//! session with a fresh profile and drives it over chromedriver's HTTP API
//! (plain HTTP/1.1 on std sockets, no client library).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    addr: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// chromedriver on a free port and a headless Chromium session.
    pub fn start() -> anyhow::Result<Browser> {
        let port = crate::free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chromedriver (scripts/ensure-services.sh --browser installs it)")?;
        let addr = format!("127.0.0.1:{port}");
        let profile = tempfile::Builder::new()
            .prefix("snapswitch-chromium-")
            .tempdir()?;
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&browser.addr).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "chromedriver did not listen on {} within 20 s",
                    browser.addr
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,1500",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain(std::iter::once(format!(
            "--user-data-dir={}",
            browser._profile.path().display()
        )))
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": which("chromium").unwrap_or_else(|| "/usr/bin/chromium".into()), "args": args}
        }}});
        let v = browser.call("POST", "/session", Some(caps))?;
        browser.session = v["value"]["sessionId"]
            .as_str()
            .context("no sessionId in the new-session answer")?
            .to_owned();
        Ok(browser)
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut stream = TcpStream::connect(&self.addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )?;
        let (head, body) = read_response(&mut stream)?;
        let v: Value = serde_json::from_str(&body)
            .with_context(|| format!("{method} {path}: not JSON: {head} {body}"))?;
        if let Some(err) = v["value"]["error"].as_str() {
            bail!("{method} {path}: {err}: {}", v["value"]["message"]);
        }
        Ok(v)
    }

    fn s(&self, tail: &str) -> String {
        format!("/session/{}{tail}", self.session)
    }

    pub fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.call("POST", &self.s("/url"), Some(json!({"url": url})))?;
        Ok(())
    }

    /// The first element `css` selects.
    pub fn find(&self, css: &str) -> anyhow::Result<String> {
        let v = self.call(
            "POST",
            &self.s("/element"),
            Some(json!({"using": "css selector", "value": css})),
        )?;
        v["value"][ELEMENT]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no element {css}: {v}"))
    }

    /// How many elements `css` selects.
    pub fn count(&self, css: &str) -> anyhow::Result<usize> {
        let v = self.call(
            "POST",
            &self.s("/elements"),
            Some(json!({"using": "css selector", "value": css})),
        )?;
        Ok(v["value"].as_array().map_or(0, Vec::len))
    }

    /// The rendered text of the first element `css` selects.
    pub fn text(&self, css: &str) -> anyhow::Result<String> {
        let id = self.find(css)?;
        let v = self.call("GET", &self.s(&format!("/element/{id}/text")), None)?;
        Ok(v["value"].as_str().unwrap_or_default().to_owned())
    }

    pub fn click(&self, css: &str) -> anyhow::Result<()> {
        let id = self.find(css)?;
        self.call(
            "POST",
            &self.s(&format!("/element/{id}/click")),
            Some(json!({})),
        )?;
        Ok(())
    }

    pub fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let id = self.find(css)?;
        self.call(
            "POST",
            &self.s(&format!("/element/{id}/clear")),
            Some(json!({})),
        )?;
        self.call(
            "POST",
            &self.s(&format!("/element/{id}/value")),
            Some(json!({"text": text})),
        )?;
        Ok(())
    }

    /// Runs `script` in the page; returns its value.
    pub fn execute(&self, script: &str) -> anyhow::Result<Value> {
        let v = self.call(
            "POST",
            &self.s("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )?;
        Ok(v["value"].clone())
    }

    /// The page's HTML as the browser holds it now.
    pub fn source(&self) -> anyhow::Result<String> {
        let v = self.call("GET", &self.s("/source"), None)?;
        Ok(v["value"].as_str().unwrap_or_default().to_owned())
    }

    pub fn title(&self) -> anyhow::Result<String> {
        let v = self.call("GET", &self.s("/title"), None)?;
        Ok(v["value"].as_str().unwrap_or_default().to_owned())
    }

    /// A PNG of the viewport, written to `path`.
    pub fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let v = self.call("GET", &self.s("/screenshot"), None)?;
        let data = base64_decode(v["value"].as_str().context("no screenshot data")?)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, data)?;
        Ok(())
    }

    /// Polls `check` every 200 ms until it returns `Some` or `timeout` passes.
    pub fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Browser) -> anyhow::Result<Option<T>>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            match check(self) {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => {}
                Err(e) => last = Some(e),
            }
            if Instant::now() > deadline {
                bail!("timed out after {timeout:?} waiting for {what}; last error: {last:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &self.s(""), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn which(name: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

/// Reads one response: the head, then `Content-Length` bytes (or chunks
/// up to the last one); chromedriver may keep the connection open.
fn read_response(stream: &mut TcpStream) -> anyhow::Result<(String, String)> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf)?;
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let body = &raw[end + 4..];
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            let done = match length {
                Some(len) => body.len() >= len,
                None if head.contains("transfer-encoding: chunked") => {
                    body.windows(5).any(|w| w == b"0\r\n\r\n")
                }
                None => n == 0,
            };
            if done || n == 0 {
                let head_text = String::from_utf8_lossy(&raw[..end]).into_owned();
                let body = match length {
                    Some(len) => String::from_utf8_lossy(&body[..len.min(body.len())]).into_owned(),
                    None if head.contains("transfer-encoding: chunked") => {
                        dechunk(&String::from_utf8_lossy(body))
                    }
                    None => String::from_utf8_lossy(body).into_owned(),
                };
                return Ok((head_text, body));
            }
        } else if n == 0 {
            bail!("connection closed before a complete response");
        }
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

/// Standard base64 (the screenshot's encoding).
fn base64_decode(text: &str) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buf = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' => continue,
            other => bail!("not base64: byte {other}"),
        };
        buf = (buf << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    Ok(out)
}
