//! Webhooks: a job that names a callback URL has its terminal event (`JOB_COMPLETED`,
//! `JOB_FAILED`, `JOB_CANCELLED`) POSTed there as JSON, signed with HMAC-SHA256, and retried
//! with backoff until the receiver answers 2xx or the attempts run out.
//!
//! The job record is the delivery's durable state (`Job::webhook`): every attempt is saved
//! with it, so a restart goes on with the attempts left, and `GET /api/jobs/{id}` shows them.
//! Every save of a finished job with a pending webhook queues it here (`JobEngine::save`), and
//! one loop delivers what is due, a few at a time.
//!
//! The server only calls hosts the operator allowed (`webhook-hosts`, none by default), and
//! follows no redirect, so a job cannot make it reach anything else.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::model::{Job, JobStatus, WebhookStatus};
use super::JobEngine;
use crate::clock::now_ms;

/// Where and how terminal events are POSTed.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Hosts a callback URL may name, as `host` (any port) or `host:port`. Empty: no callbacks.
    pub hosts: Vec<String>,
    /// The HMAC-SHA256 key of the `Stompede-Signature` header, shared with the receivers. No
    /// secret: no callbacks.
    pub secret: Option<String>,
    /// Deliveries tried per terminal event, the first included.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles for each one after, up to ten minutes.
    pub retry_base: Duration,
    /// How long one attempt may take.
    pub timeout: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            hosts: Vec::new(),
            secret: None,
            max_attempts: 10,
            retry_base: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Longest wait between two attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(600);

/// Deliveries in flight at once.
const CONCURRENT_DELIVERIES: usize = 16;

/// Checks a callback URL against the configuration: `http` or `https`, no credentials in it,
/// and a host the operator allowed.
pub(crate) fn allowed(config: &WebhookConfig, url: &str) -> Result<reqwest::Url, String> {
    if config.secret.is_none() || config.hosts.is_empty() {
        return Err("this server sends no webhooks (set webhook-hosts and webhook-secret)".into());
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("callback URL {url:?}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("callback URL {url:?}: only http and https"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!("callback URL {url:?}: no credentials in the URL"));
    }
    let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
    let port = parsed.port_or_known_default().unwrap_or_default();
    let with_port = format!("{host}:{port}");
    let ok = config
        .hosts
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .any(|h| h == host || h == with_port);
    if ok {
        Ok(parsed)
    } else {
        Err(format!(
            "callback host {with_port} is not in webhook-hosts ({})",
            config.hosts.join(", ")
        ))
    }
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`: the time is signed with the body,
/// so a receiver can refuse an old delivery replayed.
pub fn signature(secret: &str, unix_seconds: u64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={unix_seconds},v1={hex}")
}

/// The delay before attempt `attempts + 1`.
fn retry_delay(base: Duration, attempts: u32) -> Duration {
    base.saturating_mul(1 << attempts.saturating_sub(1).min(20))
        .min(MAX_RETRY_DELAY)
}

/// What one attempt got: the receiver's status, or why there was none.
type Outcome = Result<u16, (Option<u16>, String)>;

impl JobEngine {
    /// Queues `job`'s webhook when the job is finished and its event not yet delivered.
    pub(super) fn queue_webhook(&self, job: &Job) {
        let Some(webhook) = &job.webhook else { return };
        if !job.status.is_finished() || webhook.status != WebhookStatus::Pending {
            return;
        }
        let due = webhook.next_attempt_at.unwrap_or(0);
        if let Ok(mut queue) = self.inner.webhooks.lock() {
            queue.insert((due, job.id.clone()));
        }
        self.inner.webhook_wake.notify_one();
    }

    /// The ids whose delivery is due at `now`, at most `max`; the earliest next due time.
    fn due_webhooks(&self, now: u64, max: usize) -> (Vec<String>, Option<u64>) {
        let Ok(mut queue) = self.inner.webhooks.lock() else {
            return (Vec::new(), None);
        };
        let mut due = Vec::new();
        while due.len() < max {
            match queue.first() {
                Some((at, _)) if *at <= now => {
                    if let Some((_, id)) = queue.pop_first() {
                        if !due.contains(&id) {
                            due.push(id);
                        }
                    }
                }
                _ => break,
            }
        }
        (due, queue.first().map(|(at, _)| *at))
    }

    /// Saves one attempt's outcome with the job; a failure schedules the next attempt.
    fn record_webhook(&self, id: &str, outcome: Outcome) {
        let config = &self.inner.config.webhooks;
        let mut state = self.lock();
        let Some(job) = state.jobs.get_mut(id) else {
            return;
        };
        let Some(webhook) = job.webhook.as_mut() else {
            return;
        };
        let now = now_ms();
        webhook.attempts += 1;
        match outcome {
            Ok(status) => {
                webhook.status = WebhookStatus::Delivered;
                webhook.last_status = Some(status);
                webhook.last_error = None;
                webhook.delivered_at = Some(now);
                webhook.next_attempt_at = None;
            }
            Err((status, why)) => {
                webhook.last_status = status;
                webhook.last_error = Some(why);
                if webhook.attempts >= config.max_attempts {
                    webhook.status = WebhookStatus::Failed;
                    webhook.next_attempt_at = None;
                } else {
                    let delay = retry_delay(config.retry_base, webhook.attempts);
                    webhook.next_attempt_at = Some(now + delay.as_millis() as u64);
                }
            }
        }
        let (attempts, status) = (webhook.attempts, webhook.status);
        tracing::info!(job = %id, attempts, ?status, "webhook attempt");
        self.save(job, Vec::new());
    }

    /// The body to POST for `job`: its last event, when that is its terminal one.
    fn terminal_event(&self, job: &Job) -> Option<Vec<u8>> {
        let stored = self
            .inner
            .store
            .events_after(&job.id, job.seq.saturating_sub(1))
            .ok()?;
        let last = stored.into_iter().last()?;
        let event: Value = serde_json::from_slice(&last).ok()?;
        let terminal = matches!(
            event["event"].as_str(),
            Some("JOB_COMPLETED" | "JOB_FAILED" | "JOB_CANCELLED")
        );
        terminal.then_some(last)
    }
}

/// Delivers due webhooks until shutdown.
pub(super) async fn run(engine: JobEngine) {
    let config = engine.inner.config.webhooks.clone();
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(config.timeout)
        .user_agent(concat!("stompede/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "no HTTP client: webhooks will not be delivered");
            return;
        }
    };
    let shutdown = engine.inner.shutdown.clone();
    loop {
        let now = now_ms();
        let (due, next) = engine.due_webhooks(now, CONCURRENT_DELIVERIES);
        if due.is_empty() {
            let wait = next.map_or(Duration::from_secs(3600), |at| {
                Duration::from_millis(at.saturating_sub(now))
            });
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = engine.inner.webhook_wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        let deliveries = due.iter().map(|id| deliver(&engine, &client, &config, id));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = futures::future::join_all(deliveries) => {}
        }
    }
}

/// One attempt for job `id`, when it still has a pending webhook.
async fn deliver(engine: &JobEngine, client: &reqwest::Client, config: &WebhookConfig, id: &str) {
    let Some(job) = engine.job(id) else { return };
    let Some(webhook) = &job.webhook else { return };
    if !job.status.is_finished() || webhook.status != WebhookStatus::Pending {
        return;
    }
    let outcome = match (allowed(config, &webhook.url), config.secret.as_deref()) {
        (Err(why), _) => Err((None, why)),
        (Ok(_), None) => Err((None, "no webhook-secret is configured".to_owned())),
        (Ok(url), Some(secret)) => {
            let body = engine
                .terminal_event(&job)
                .unwrap_or_else(|| fallback_event(&job));
            let attempt = webhook.attempts + 1;
            post(client, url, secret, &job, attempt, body).await
        }
    };
    engine.record_webhook(id, outcome);
}

/// The POST itself.
async fn post(
    client: &reqwest::Client,
    url: reqwest::Url,
    secret: &str,
    job: &Job,
    attempt: u32,
    body: Vec<u8>,
) -> Outcome {
    let signed = signature(secret, now_ms() / 1000, &body);
    let answer = client
        .post(url)
        .header("content-type", "application/json")
        .header("stompede-signature", signed)
        .header("stompede-job-id", job.id.as_str())
        .header("stompede-delivery-attempt", attempt.to_string())
        .body(body)
        .send()
        .await;
    match answer {
        Ok(answer) if answer.status().is_success() => Ok(answer.status().as_u16()),
        Ok(answer) => {
            let status = answer.status();
            Err((
                Some(status.as_u16()),
                format!("the receiver answered {status}"),
            ))
        }
        Err(error) => Err((None, error.to_string())),
    }
}

/// A terminal event made from the job, when the stored one is gone (trimmed from the log).
fn fallback_event(job: &Job) -> Vec<u8> {
    let event = match job.status {
        JobStatus::Completed => "JOB_COMPLETED",
        JobStatus::Cancelled => "JOB_CANCELLED",
        _ => "JOB_FAILED",
    };
    json!({
        "event": event,
        "jobId": job.id,
        "jobType": job.job_type,
        "seq": job.seq,
        "status": job.status,
        "timestamp": job.completed_at,
        "result": job.result,
        "error": job.error,
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn config(hosts: &[&str]) -> WebhookConfig {
        WebhookConfig {
            hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            secret: Some("s3cret".into()),
            ..WebhookConfig::default()
        }
    }

    #[test]
    fn only_allowed_hosts_over_http_without_credentials_are_called() {
        let c = config(&["hooks.example.com", "127.0.0.1:9000"]);
        assert!(allowed(&c, "https://hooks.example.com/jobs").is_ok());
        assert!(allowed(&c, "http://HOOKS.example.com:8080/jobs").is_ok());
        assert!(allowed(&c, "http://127.0.0.1:9000/x").is_ok());
        for bad in [
            "http://127.0.0.1:9001/x",
            "http://169.254.169.254/latest",
            "ftp://hooks.example.com/",
            "https://user:pw@hooks.example.com/",
            "not a url",
        ] {
            assert!(allowed(&c, bad).is_err(), "{bad}");
        }
        assert!(allowed(&WebhookConfig::default(), "https://hooks.example.com/").is_err());
    }

    #[test]
    fn the_signature_is_the_hmac_of_time_dot_body() {
        // The same as `printf '1700000000.{}' | openssl dgst -sha256 -hmac s3cret`.
        assert_eq!(
            signature("s3cret", 1_700_000_000, b"{}"),
            "t=1700000000,v1=97926816e98fbb41ccb1673225ff29a2f35369099990e1b1561651e7bd097ebf"
        );
    }

    #[test]
    fn retries_back_off_to_ten_minutes() {
        let base = Duration::from_secs(1);
        let delays: Vec<u64> = (1..=12).map(|n| retry_delay(base, n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
    }
}
