//! Headless Chromium for the tests of the verify page (Debian's `chromium` package, which
//! `scripts/install-deps --tests` installs): load a page and read back its DOM or a screenshot
//! ([`render`]), or drive it over the DevTools protocol ([`Browser`], [`Tab`]).

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The browser on this machine, or `None`; in CI (`CI` set) a missing browser is a failure,
/// never a silent skip.
pub fn chromium() -> Option<&'static str> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new("which")
                .arg(b)
                .output()
                .is_ok_and(|o| o.status.success())
        });
    assert!(
        found.is_some() || std::env::var_os("CI").is_none(),
        "CI must install chromium (see scripts/install-deps)"
    );
    if found.is_none() {
        eprintln!(
            "skipping a browser test: no chromium on this machine (apt-get install chromium)"
        );
    }
    found
}

/// Load `url` and return the DOM after its scripts ran (up to `budget_ms` of virtual time), or
/// write a screenshot to `screenshot` instead.
pub fn render(browser: &str, url: &str, budget_ms: u32, screenshot: Option<&Path>) -> String {
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=900,1100",
    ])
    .arg(format!("--virtual-time-budget={budget_ms}"));
    match screenshot {
        Some(path) => cmd.arg(format!("--screenshot={}", path.display())),
        None => cmd.arg("--dump-dom"),
    };
    let out = cmd
        .arg(url)
        .stderr(Stdio::null())
        .output()
        .expect("browser runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Where tests leave screenshots: `$CACHET_ARTIFACTS`, else `target/test-artifacts/`.
pub fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("CACHET_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            crate::cachet_bin()
                .parent()
                .and_then(|p| p.parent())
                .expect("target dir")
                .join("test-artifacts")
        });
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// A headless Chromium driven over the DevTools protocol, for what a page test cannot do by
/// loading a URL: choose files in a file input, click, read the DOM as it changes, take
/// screenshots. The browser is killed when this is dropped.
pub struct Browser {
    child: std::process::Child,
    _profile: TempDir,
    port: u16,
}

/// One page of a [`Browser`], over its own DevTools WebSocket.
pub struct Tab {
    ws: WebSocket,
    next_id: u64,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Browser {
    /// Start `browser`; `host_rules` maps host names for it (Chromium's
    /// `--host-resolver-rules`, e.g. `MAP verify.example 127.0.0.1`), so a page can be served
    /// under a name that is not `localhost` — an origin that is not a secure context.
    pub fn launch(browser: &str, host_rules: &str) -> Browser {
        let profile = std::env::temp_dir().join(format!(
            "cachet-chromium-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&profile).unwrap();
        let mut child = Command::new(browser)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--window-size=900,1200",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--host-resolver-rules={host_rules}"))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("browser starts");
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/..."
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut port = None;
        let mut line = String::new();
        while port.is_none() {
            line.clear();
            if std::io::BufRead::read_line(&mut stderr, &mut line).unwrap_or(0) == 0 {
                break;
            }
            if let Some(rest) = line.split("ws://127.0.0.1:").nth(1) {
                port = rest.split('/').next().and_then(|p| p.parse().ok());
            }
        }
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Browser {
            child,
            _profile: TempDir(profile),
            port: port.expect("the browser reports its DevTools port"),
        }
    }

    /// A new page (about:blank).
    pub fn tab(&self) -> Tab {
        let (status, _, body) =
            http_put(&format!("127.0.0.1:{}", self.port), "/json/new?about:blank");
        assert_eq!(status, 200, "DevTools refused a new tab: {body}");
        let target: Value = serde_json::from_str(&body).unwrap();
        let url = target["webSocketDebuggerUrl"].as_str().unwrap();
        let mut tab = Tab {
            ws: WebSocket::connect(url),
            next_id: 0,
        };
        tab.call("Page.enable", json!({}));
        tab.call("Runtime.enable", json!({}));
        tab
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Tab {
    /// Send a DevTools command and wait for its result (events in between are dropped).
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.ws
            .send(&json!({ "id": id, "method": method, "params": params }).to_string());
        loop {
            let msg: Value = serde_json::from_str(&self.ws.receive()).unwrap();
            if msg["id"].as_u64() == Some(id) {
                assert!(msg["error"].is_null(), "{method} failed: {msg}");
                return msg["result"].clone();
            }
        }
    }

    /// Load `url` and wait until its document has loaded.
    pub fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
        assert!(
            crate::wait_until(Duration::from_secs(20), || {
                self.eval("document.readyState") == "complete"
            }),
            "{url} did not load"
        );
    }

    /// The value of a JavaScript expression (a string, number or boolean).
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        r["result"]["value"].clone()
    }

    /// Wait until `expression` is a non-empty string, and return it.
    pub fn wait_for_text(&mut self, expression: &str, timeout: Duration) -> String {
        let mut text = String::new();
        crate::wait_until(timeout, || {
            text = self.eval(expression).as_str().unwrap_or("").to_string();
            !text.is_empty()
        });
        text
    }

    /// Choose `files` in the file input matching `selector`.
    pub fn set_files(&mut self, selector: &str, files: &[&Path]) {
        let doc = self.call("DOM.getDocument", json!({}));
        let root = doc["root"]["nodeId"].clone();
        let found = self.call(
            "DOM.querySelector",
            json!({ "nodeId": root, "selector": selector }),
        );
        let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        self.call(
            "DOM.setFileInputFiles",
            json!({ "nodeId": found["nodeId"], "files": files }),
        );
    }

    /// Save a PNG screenshot of the page.
    pub fn screenshot(&mut self, path: &Path) {
        let r = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = decode_base64(r["data"].as_str().unwrap());
        std::fs::write(path, png).unwrap();
    }
}

fn http_put(addr: &str, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    // DevTools keeps the connection open: read the head, then Content-Length bytes.
    let (head, body) = crate::read_http(&mut s).unwrap();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

/// The smallest WebSocket client the DevTools protocol needs (RFC 6455): text frames, client
/// frames masked, server frames possibly fragmented.
struct WebSocket {
    stream: TcpStream,
}

impl WebSocket {
    fn connect(url: &str) -> WebSocket {
        let rest = url.strip_prefix("ws://").expect("a ws:// url");
        let (addr, path) = rest.split_at(rest.find('/').unwrap());
        let mut stream = TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        // The handshake reply ends with an empty line; frames follow.
        let head = crate::read_http_head(&mut stream).unwrap();
        assert!(
            head.starts_with("HTTP/1.1 101"),
            "no WebSocket upgrade: {head}"
        );
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        WebSocket { stream }
    }

    fn send(&mut self, text: &str) {
        let payload = text.as_bytes();
        let mut frame = vec![0x81u8]; // FIN, text
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n < 65_536 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask: [u8; 4] = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos())
        .to_le_bytes();
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).unwrap();
    }

    fn receive(&mut self) -> String {
        let mut message = Vec::new();
        loop {
            let mut h = [0u8; 2];
            self.stream.read_exact(&mut h).unwrap();
            let fin = h[0] & 0x80 != 0;
            let len = match h[1] & 0x7f {
                126 => {
                    let mut b = [0u8; 2];
                    self.stream.read_exact(&mut b).unwrap();
                    u16::from_be_bytes(b) as usize
                }
                127 => {
                    let mut b = [0u8; 8];
                    self.stream.read_exact(&mut b).unwrap();
                    u64::from_be_bytes(b) as usize
                }
                n => n as usize,
            };
            let mut payload = vec![0u8; len];
            self.stream.read_exact(&mut payload).unwrap();
            message.extend_from_slice(&payload);
            if fin {
                return String::from_utf8(message).expect("a text frame");
            }
        }
    }
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64"),
    };
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').map(value).collect();
    digits
        .chunks(4)
        .flat_map(|c| {
            let n = c
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &d)| n | (d as u32) << (18 - 6 * i));
            let bytes = n.to_be_bytes();
            bytes[1..c.len()].to_vec()
        })
        .collect()
}
