//! What waits in JetStream and how far each copy trails: the lag in the cluster view
//! (`/cluster`'s `jetstream`, the `stompede_cluster_stream_*` and `stompede_cluster_jobs_*`
//! metrics). Read on demand, one info request per stream, each bounded by [`READ_WAIT`]: an
//! operator's page must answer even while JetStream does not.

use std::time::Duration;

use async_nats::jetstream::{self, consumer};

/// The longest one stream's or consumer's information is waited for.
const READ_WAIT: Duration = Duration::from_secs(2);

/// One stream as JetStream reports it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamView {
    /// The stream's name.
    pub name: String,
    /// Messages it holds.
    pub messages: u64,
    /// Bytes it holds.
    pub bytes: u64,
    /// The NATS server leading its replication group (none with one copy).
    pub leader: Option<String>,
    /// The other copies: how far each trails the leader.
    pub replicas: Vec<ReplicaView>,
}

/// A copy of a stream on another NATS server.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaView {
    /// The NATS server holding it.
    pub server: String,
    /// Up to date with the leader.
    pub current: bool,
    /// Operations it is behind the leader.
    pub lag: u64,
    /// Taken as offline by its group.
    pub offline: bool,
}

/// The streams this node uses, and the shared queue of jobs to run.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JetStreamView {
    /// Each stream that exists, in the order asked.
    pub streams: Vec<StreamView>,
    /// Jobs offered and not yet claimed by any node (with `cluster-jobs`).
    pub jobs_waiting: Option<u64>,
    /// Jobs claimed by a node and not yet finished there (with `cluster-jobs`).
    pub jobs_held: Option<u64>,
    /// The first failure to read, when one was not read.
    pub error: Option<String>,
}

/// Reads `streams` (those not made yet are left out) and, when given, the work queue's
/// consumer (`stream`, `consumer`).
pub(super) async fn read(
    js: &jetstream::Context,
    streams: &[&str],
    work_queue: Option<(&str, &str)>,
) -> JetStreamView {
    let mut view = JetStreamView::default();
    for name in streams {
        match tokio::time::timeout(READ_WAIT, js.get_stream(*name)).await {
            Ok(Ok(stream)) => match tokio::time::timeout(READ_WAIT, stream.get_info()).await {
                Ok(Ok(info)) => view.streams.push(stream_view(name, &info)),
                Ok(Err(error)) => note(&mut view, format!("stream {name}: {error}")),
                Err(_) => note(&mut view, format!("stream {name}: no answer")),
            },
            // Not made yet (nothing used it so far): nothing waits in it.
            Ok(Err(error)) if not_found(&error.kind()) => {}
            Ok(Err(error)) => note(&mut view, format!("stream {name}: {error}")),
            Err(_) => note(&mut view, format!("stream {name}: no answer")),
        }
    }
    if let Some((stream, name)) = work_queue {
        // None when the stream or its consumer is not made yet: nothing was offered.
        let info = async {
            let stream = match js.get_stream(stream).await {
                Ok(stream) => stream,
                Err(error) if not_found(&error.kind()) => return Ok(None),
                Err(error) => return Err(error.to_string()),
            };
            let consumer: consumer::PullConsumer = match stream.get_consumer(name).await {
                Ok(consumer) => consumer,
                Err(error) if error.to_string().contains("consumer not found") => return Ok(None),
                Err(error) => return Err(error.to_string()),
            };
            consumer
                .get_info()
                .await
                .map(Some)
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(READ_WAIT, info).await {
            Ok(Ok(Some(info))) => {
                view.jobs_waiting = Some(info.num_pending);
                view.jobs_held = Some(info.num_ack_pending as u64);
            }
            Ok(Ok(None)) => {}
            Ok(Err(error)) => note(&mut view, format!("consumer {name}: {error}")),
            Err(_) => note(&mut view, format!("consumer {name}: no answer")),
        }
    }
    view
}

fn stream_view(name: &str, info: &jetstream::stream::Info) -> StreamView {
    let cluster = info.cluster.as_ref();
    StreamView {
        name: name.to_owned(),
        messages: info.state.messages,
        bytes: info.state.bytes,
        leader: cluster.and_then(|c| c.leader.clone()),
        replicas: cluster
            .map(|c| {
                c.replicas
                    .iter()
                    .map(|peer| ReplicaView {
                        server: peer.name.clone(),
                        current: peer.current,
                        lag: peer.lag.unwrap_or(0),
                        offline: peer.offline,
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// JetStream's "stream not found": a stream nothing has made yet.
fn not_found(kind: &jetstream::context::GetStreamErrorKind) -> bool {
    matches!(kind, jetstream::context::GetStreamErrorKind::JetStream(error)
        if error.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND)
}

/// Keeps the first failure: the page names one cause, not a cascade of the same.
fn note(view: &mut JetStreamView, error: String) {
    view.error.get_or_insert(error);
}
