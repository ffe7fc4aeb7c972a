//! Operator endpoints on the HTTP port: `/health`, `/ready`, `/metrics` (Prometheus text
//! format) and, on a cluster member, `/cluster`, so flow control, slow consumers, errors and
//! the cluster link can be watched without the library API.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::context::ServerContext;
use crate::store::Health;

/// The routes.
pub fn router(ctx: Arc<ServerContext>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/cluster", get(cluster))
        .with_state(ctx)
}

/// The store's fault, when it cannot take durable work (a full or read-only disk).
fn store_fault(ctx: &ServerContext) -> Option<String> {
    match ctx.broker.store()?.health() {
        Health::Available => None,
        Health::Unavailable { reason } => Some(reason),
    }
}

/// The cluster link's fault, on a member whose NATS connection is down.
fn cluster_fault(ctx: &ServerContext) -> Option<String> {
    let cluster = ctx.cluster.as_ref()?;
    (!cluster.is_connected()).then(|| {
        format!(
            "cluster link down: node {} is not connected to NATS ({})",
            cluster.node(),
            cluster.status().nats
        )
    })
}

/// Alive: 200 while the process serves, "degraded" with the cause while the store cannot write
/// or a cluster member has lost NATS (local traffic goes on, and restarting would bring back
/// neither the disk nor NATS, so a liveness probe must not fail).
async fn health(State(ctx): State<Arc<ServerContext>>) -> impl IntoResponse {
    let faults: Vec<String> = [
        store_fault(&ctx).map(|reason| format!("store unavailable: {reason}")),
        cluster_fault(&ctx),
    ]
    .into_iter()
    .flatten()
    .collect();
    if faults.is_empty() {
        "ok\n".to_owned()
    } else {
        format!("degraded: {}\n", faults.join("; "))
    }
}

/// Ready to serve: the store is open and the listeners run from start-up until shutdown, so
/// readiness ends when shutdown begins (load balancers stop sending new clients), and while
/// the store cannot write: durable work is refused until the disk comes back. A cluster member
/// is not ready while its NATS connection is down either: it still serves its own sessions,
/// but a client sent to it would not hear the other nodes.
async fn ready(State(ctx): State<Arc<ServerContext>>) -> impl IntoResponse {
    let unavailable = axum::http::StatusCode::SERVICE_UNAVAILABLE;
    if ctx.shutdown.is_cancelled() {
        return (unavailable, "shutting down\n".to_owned());
    }
    if let Some(reason) = store_fault(&ctx) {
        return (
            unavailable,
            format!("degraded: store unavailable: {reason}\n"),
        );
    }
    match cluster_fault(&ctx) {
        Some(fault) => (unavailable, format!("{fault}\n")),
        None => (axum::http::StatusCode::OK, "ready\n".to_owned()),
    }
}

/// The cluster view as JSON: node name, NATS connection, interests, counters; 404 on a node
/// that is not a cluster member.
async fn cluster(State(ctx): State<Arc<ServerContext>>) -> axum::response::Response {
    match &ctx.cluster {
        Some(cluster) => {
            let mut view = serde_json::json!(cluster.status());
            if let Some(jetstream) = cluster.jetstream().await {
                view["jetstream"] = serde_json::json!(jetstream);
            }
            axum::Json(view).into_response()
        }
        None => (axum::http::StatusCode::NOT_FOUND, "not a cluster member\n").into_response(),
    }
}

async fn metrics(State(ctx): State<Arc<ServerContext>>) -> impl IntoResponse {
    let broker = &ctx.broker;
    let mut body = String::with_capacity(2048);
    for (name, value) in broker.metrics().snapshot() {
        let _ = writeln!(body, "# TYPE stompede_{name}_total counter");
        let _ = writeln!(body, "stompede_{name}_total {value}");
    }
    if let Some(store) = broker.store() {
        let (failures, reopens) = store.fault_counts();
        let _ = writeln!(body, "# TYPE stompede_store_failures_total counter");
        let _ = writeln!(body, "stompede_store_failures_total {failures}");
        let _ = writeln!(body, "# TYPE stompede_store_reopens_total counter");
        let _ = writeln!(body, "stompede_store_reopens_total {reopens}");
    }
    let _ = writeln!(body, "# TYPE stompede_audit_write_failures_total counter");
    let _ = writeln!(
        body,
        "stompede_audit_write_failures_total {}",
        ctx.audit.write_failures()
    );
    let gauges = [
        ("sessions", broker.session_count()),
        ("outbox_memory_bytes", broker.outbox_memory()),
        (
            "store_available",
            usize::from(broker.store().is_some() && store_fault(&ctx).is_none()),
        ),
    ];
    for (name, value) in gauges {
        let _ = writeln!(body, "# TYPE stompede_{name} gauge");
        let _ = writeln!(body, "stompede_{name} {value}");
    }
    // A family's samples must come together (the text format's rule: a parser that meets a
    // family again starts another one), so each family is written whole in turn.
    let queues = broker.queue_stats();
    let _ = writeln!(body, "# TYPE stompede_queue_depth gauge");
    for queue in &queues {
        let name = label_value(&queue.name);
        let _ = writeln!(
            body,
            "stompede_queue_depth{{queue=\"{name}\"}} {}",
            queue.depth
        );
    }
    let _ = writeln!(body, "# TYPE stompede_queue_unacked gauge");
    for queue in &queues {
        let name = label_value(&queue.name);
        let _ = writeln!(
            body,
            "stompede_queue_unacked{{queue=\"{name}\"}} {}",
            queue.unacked
        );
    }
    if let Some(jobs) = &ctx.jobs {
        let stats = jobs.stats();
        let _ = writeln!(body, "# TYPE stompede_jobs gauge");
        for (status, n) in &stats.by_status {
            let _ = writeln!(
                body,
                "stompede_jobs{{status=\"{}\"}} {n}",
                label_value(status)
            );
        }
        let _ = writeln!(body, "# TYPE stompede_jobs_by_type gauge");
        for (kind, n) in &stats.by_type {
            let _ = writeln!(
                body,
                "stompede_jobs_by_type{{type=\"{}\"}} {n}",
                label_value(kind)
            );
        }
    }
    if let Some(jobs) = &ctx.jobs {
        chunk_durations(&mut body, &jobs.chunk_times());
    }
    if let Some(cluster) = &ctx.cluster {
        cluster_metrics(&mut body, &cluster.status());
        if let Some(jetstream) = cluster.jetstream().await {
            jetstream_metrics(&mut body, &jetstream);
        }
    }
    let store_dir = ctx.config.data_dir.join("store");
    if let Ok(Ok(bytes)) = tokio::task::spawn_blocking(move || disk_usage(&store_dir)).await {
        let _ = writeln!(body, "# TYPE stompede_store_size_bytes gauge");
        let _ = writeln!(body, "stompede_store_size_bytes {bytes}");
    }
    let _ = writeln!(body, "# TYPE stompede_http_requests_total counter");
    for ((route, status), n) in ctx.http_requests.snapshot() {
        let _ = writeln!(
            body,
            "stompede_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
            label_value(route)
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// The cluster link: `stompede_cluster_connected{node}` (1 or 0), its interests and queue,
/// the members heard and how long ago each last beat, and one counter family per link counter.
fn cluster_metrics(body: &mut String, status: &crate::cluster::ClusterStatus) {
    let node = label_value(&status.node);
    let connected = u8::from(status.nats == "connected");
    let _ = writeln!(body, "# TYPE stompede_cluster_connected gauge");
    let _ = writeln!(
        body,
        "stompede_cluster_connected{{node=\"{node}\"}} {connected}"
    );
    let _ = writeln!(body, "# TYPE stompede_cluster_interests gauge");
    let _ = writeln!(body, "stompede_cluster_interests {}", status.interests);
    let _ = writeln!(body, "# TYPE stompede_cluster_outbound_queued gauge");
    let _ = writeln!(
        body,
        "stompede_cluster_outbound_queued {}",
        status.outbound_queued
    );
    let _ = writeln!(body, "# TYPE stompede_cluster_members gauge");
    let _ = writeln!(body, "stompede_cluster_members {}", status.members.len());
    let _ = writeln!(
        body,
        "# TYPE stompede_cluster_member_heartbeat_age_seconds gauge"
    );
    for member in &status.members {
        let _ = writeln!(
            body,
            "stompede_cluster_member_heartbeat_age_seconds{{member=\"{}\"}} {:.3}",
            label_value(&member.node),
            member.last_heartbeat_age_ms as f64 / 1000.0
        );
    }
    for (name, value) in &status.counters {
        let _ = writeln!(body, "# TYPE stompede_cluster_{name}_total counter");
        let _ = writeln!(body, "stompede_cluster_{name}_total {value}");
    }
}

/// What waits in JetStream: each stream's messages and bytes, how far each copy trails its
/// leader (`stompede_cluster_stream_replica_lag{stream,server}`, in operations), and the jobs
/// waiting to be claimed and held by nodes.
fn jetstream_metrics(body: &mut String, view: &crate::cluster::backlog::JetStreamView) {
    use crate::cluster::backlog::StreamView;
    type Size = fn(&StreamView) -> u64;
    let sizes: [(&str, Size); 2] = [
        ("stompede_cluster_stream_messages", |stream| stream.messages),
        ("stompede_cluster_stream_bytes", |stream| stream.bytes),
    ];
    for (family, size) in sizes {
        let _ = writeln!(body, "# TYPE {family} gauge");
        for stream in &view.streams {
            let name = label_value(&stream.name);
            let _ = writeln!(body, "{family}{{stream=\"{name}\"}} {}", size(stream));
        }
    }
    let family = "stompede_cluster_stream_replica_lag";
    let _ = writeln!(body, "# TYPE {family} gauge");
    for stream in &view.streams {
        for replica in &stream.replicas {
            let _ = writeln!(
                body,
                "{family}{{stream=\"{}\",server=\"{}\"}} {}",
                label_value(&stream.name),
                label_value(&replica.server),
                replica.lag
            );
        }
    }
    for (family, value) in [
        ("stompede_cluster_jobs_waiting", view.jobs_waiting),
        ("stompede_cluster_jobs_held", view.jobs_held),
    ] {
        if let Some(value) = value {
            let _ = writeln!(body, "# TYPE {family} gauge");
            let _ = writeln!(body, "{family} {value}");
        }
    }
}

/// `stompede_job_chunk_duration_seconds`, one histogram per job type and outcome.
fn chunk_durations(
    body: &mut String,
    histograms: &[((String, &'static str), crate::jobs::timing::Histogram)],
) {
    let family = "stompede_job_chunk_duration_seconds";
    let _ = writeln!(body, "# TYPE {family} histogram");
    for ((job_type, outcome), histogram) in histograms {
        let labels = format!("type=\"{}\",outcome=\"{outcome}\"", label_value(job_type));
        for (bound, n) in histogram.cumulative() {
            let _ = writeln!(body, "{family}_bucket{{{labels},le=\"{bound}\"}} {n}");
        }
        let count = histogram.count;
        let _ = writeln!(body, "{family}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let _ = writeln!(body, "{family}_sum{{{labels}}} {}", histogram.sum);
        let _ = writeln!(body, "{family}_count{{{labels}}} {count}");
    }
}

/// Bytes the files under `dir` take (the store: sled's segments and snapshots), bounded in
/// depth and count.
fn disk_usage(dir: &std::path::Path) -> std::io::Result<u64> {
    let mut total = 0;
    let mut pending = vec![(dir.to_path_buf(), 0)];
    let mut seen = 0;
    while let Some((dir, depth)) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            seen += 1;
            if seen > 100_000 {
                return Ok(total);
            }
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() && depth < 4 {
                pending.push((entry.path(), depth + 1));
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

/// A Prometheus label value: backslash, double quote and line feed escaped, as the text
/// exposition format requires. A destination name may hold any of them (a STOMP header value
/// can carry an escaped line feed), and an unescaped one would inject lines into the scrape.
fn label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::label_value;

    #[test]
    fn label_values_cannot_break_out_of_their_line() {
        assert_eq!(
            label_value("/queue/a\nstompede_fake 1\\\"x"),
            "/queue/a\\nstompede_fake 1\\\\\\\"x"
        );
        assert!(!label_value("a\nb").contains('\n'));
    }
}
