//! The HTTP API from the command line: uploads (streamed from disk) and the job routes that
//! need no live connection.

use std::path::Path;

use anyhow::{bail, Context};
use serde_json::Value;

use super::connection::Login;

/// The HTTP API at `base` (`http://HOST:PORT`).
pub struct Api {
    base: String,
    login: Login,
    client: reqwest::Client,
}

/// The HTTP base URL for a STOMP URL: `ws://HOST:PORT/ws` is served by `http://HOST:PORT`.
pub fn base_for(stomp_url: &str, explicit: Option<&str>) -> anyhow::Result<String> {
    if let Some(base) = explicit {
        return Ok(base.trim_end_matches('/').to_owned());
    }
    let (scheme, rest) = if let Some(rest) = stomp_url.strip_prefix("ws://") {
        ("http", rest)
    } else if let Some(rest) = stomp_url.strip_prefix("wss://") {
        ("https", rest)
    } else {
        bail!(
            "this command needs the HTTP API: give --http http://HOST:PORT (or https://) with a \
             tcp:// or tls:// --url"
        )
    };
    let host = rest.split('/').next().unwrap_or(rest);
    Ok(format!("{scheme}://{host}"))
}

impl Api {
    /// The API at `base`, called as `login`; over https the public roots and `ca_file`'s
    /// certificates are trusted.
    pub fn new(base: String, login: Login, ca_file: Option<&Path>) -> anyhow::Result<Api> {
        let mut client = reqwest::Client::builder()
            .user_agent(concat!("stompede-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = ca_file {
            for cert in super::connection::ca_certificates(path)? {
                client =
                    client.add_root_certificate(reqwest::Certificate::from_der(cert.as_ref())?);
            }
        }
        let client = client.build()?;
        Ok(Api {
            base,
            login,
            client,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.client.request(method, format!("{}{path}", self.base));
        match &self.login.user {
            Some(user) => request.basic_auth(user, self.login.password.as_deref()),
            None => request,
        }
    }

    /// Sends `request`; the JSON answer, or the problem's `detail` as the error.
    async fn call(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let answer = request
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = answer.status();
        let body = answer.bytes().await?;
        if status.is_success() {
            if body.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&body).context("the server's answer is not JSON");
        }
        let problem: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        match problem["detail"].as_str() {
            Some(detail) => bail!("{detail} ({status})"),
            None => bail!("the server answered {status}"),
        }
    }

    /// Uploads `file`, streamed from disk; returns its upload id.
    pub async fn upload(&self, file: &Path) -> anyhow::Result<String> {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{} has no usable file name", file.display()))?;
        let opened = tokio::fs::File::open(file)
            .await
            .with_context(|| format!("cannot read {}", file.display()))?;
        let length = opened.metadata().await?.len();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
            opened,
            256 * 1024,
        ));
        let encoded: String = name
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => {
                    (b as char).to_string()
                }
                other => format!("%{other:02X}"),
            })
            .collect();
        let request = self
            .request(reqwest::Method::POST, "/api/uploads")
            .header("content-type", "application/octet-stream")
            .header("content-length", length)
            .header(
                "content-disposition",
                format!("attachment; filename*=UTF-8''{encoded}"),
            )
            .body(body);
        let info = self.call(request).await?;
        info["id"]
            .as_str()
            .map(str::to_owned)
            .context("the upload's answer has no id")
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(self.request(reqwest::Method::GET, path)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.call(self.request(reqwest::Method::DELETE, path)).await
    }

    /// `POST path` with an empty body.
    pub async fn post(&self, path: &str) -> anyhow::Result<Value> {
        self.call(self.request(reqwest::Method::POST, path)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_base_follows_the_websocket_url() {
        assert_eq!(
            base_for("ws://127.0.0.1:15674/ws", None).ok().as_deref(),
            Some("http://127.0.0.1:15674")
        );
        assert_eq!(
            base_for("wss://broker.example/ws", None).ok().as_deref(),
            Some("https://broker.example")
        );
        assert!(base_for("tcp://127.0.0.1:61613", None).is_err());
        assert_eq!(
            base_for("tcp://h:1", Some("http://h:2/")).ok().as_deref(),
            Some("http://h:2")
        );
    }
}
