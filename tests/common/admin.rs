//! Talking to the gateway's admin listener: its address from the gateway's ready output, and
//! requests over plain HTTP/1.1 (the raw client of [`super::raw_http`]) with or without the
//! admin token.

use serde_json::Value;

use super::raw_http::{build_request, send_raw, Response};
use super::{poll_until, Gateway, READY_TIMEOUT};

const ADMIN_READY_PREFIX: &str = "mcpgate: admin API on http://";

/// The admin API of one gateway, as one caller: with a token, a wrong one, or none.
#[derive(Clone)]
pub struct Admin {
    /// `127.0.0.1:PORT`
    pub addr: String,
    pub token: Option<String>,
}

impl Admin {
    /// The admin listener `gw` announced (before its client ready line), used with `token`.
    pub fn of(gw: &mut Gateway, token: Option<&str>) -> Admin {
        let line = gw
            .proc
            .wait_stdout_line(|l| l.starts_with(ADMIN_READY_PREFIX), READY_TIMEOUT);
        Admin {
            addr: line[ADMIN_READY_PREFIX.len()..].trim().to_string(),
            token: token.map(str::to_owned),
        }
    }

    /// The same listener with another token (or none).
    pub fn with_token(&self, token: Option<&str>) -> Admin {
        Admin {
            addr: self.addr.clone(),
            token: token.map(str::to_owned),
        }
    }

    /// One request with this caller's token and `extra` headers.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let bearer = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = extra.to_vec();
        if let Some(b) = &bearer {
            headers.push(("Authorization", b));
        }
        if !body.is_empty() {
            headers.push(("Content-Type", "application/json"));
        }
        send_raw(
            &self.addr,
            build_request(method, path, &self.addr, &headers, body),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send("GET", path, &[], b"").await
    }

    /// `GET path`, which must answer 200 with JSON; the JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.body_text());
        json_of(&r)
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> Response {
        self.send("PUT", path, &[], body.to_string().as_bytes())
            .await
    }

    pub async fn post(&self, path: &str) -> Response {
        self.send("POST", path, &[], b"").await
    }

    /// `PUT /api/tools/{tool}` with `{"enabled": enabled}`, which must answer 200.
    pub async fn set_tool(&self, tool: &str, enabled: bool) -> Value {
        let r = self
            .put_json(
                &format!("/api/tools/{tool}"),
                &serde_json::json!({ "enabled": enabled }),
            )
            .await;
        assert_eq!(r.status, 200, "PUT /api/tools/{tool}: {}", r.body_text());
        json_of(&r)
    }

    /// The server named `name` in `GET /api/servers`.
    pub async fn server(&self, name: &str) -> Value {
        let servers = self.get_json("/api/servers").await;
        servers["servers"]
            .as_array()
            .and_then(|all| all.iter().find(|s| s["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no server {name:?} in {servers}"))
    }

    /// Waits (polling, bounded by `within`) until `GET /api/stats` counts at least `n` open
    /// client streams: a client's `GET /mcp` stream is then open and hears announcements.
    pub async fn wait_for_streams(&self, n: u64) {
        poll_until(&format!("{n} open client streams"), || async move {
            let stats = self.get_json("/api/stats").await;
            (stats["client_streams"].as_u64().unwrap_or(0) >= n).then_some(())
        })
        .await
    }

    /// `GET /metrics`, which must answer 200 in the text format; the page.
    pub async fn metrics(&self) -> String {
        let r = self.get("/metrics").await;
        assert_eq!(r.status, 200, "GET /metrics: {}", r.body_text());
        assert_eq!(
            r.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        r.body_text()
    }
}

/// The body as JSON, or a panic showing it.
pub fn json_of(r: &Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| {
        panic!(
            "body is not JSON ({e}); status {}: {:?}",
            r.status,
            r.body_text()
        )
    })
}

/// Asserts an admin API error: `status`, a JSON body `{"error": "..."}` whose message contains
/// `says`.
pub fn assert_error(r: &Response, status: u16, says: &str) {
    assert_eq!(r.status, status, "{}", r.body_text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let message = json_of(r)["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {}", r.body_text()))
        .to_owned();
    assert!(message.contains(says), "{message:?} does not say {says:?}");
}
