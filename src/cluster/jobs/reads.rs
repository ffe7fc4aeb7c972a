//! Any node reads any job: its record and the node holding its lease from the bucket, its
//! events from the log, whichever node runs it.

use super::{
    event_subject, header_seq, job_key, lease_key, ClusterJobs, LeaseValue, Parts, EVENT_LOG_LIMIT,
};
use crate::clock::now_ms;
use crate::jobs::shared::Stored;
use async_nats::jetstream::stream;
use bytes::Bytes;

impl ClusterJobs {
    /// Job `id`'s record and the node holding it; None when the bucket has no such job.
    pub(super) async fn read_stored(&self, id: &str) -> Result<Option<Stored>, String> {
        let parts = self.parts().await?;
        let Some(record) = parts.kv.get(job_key(id)).await.map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let holder = self.holder(parts, id).await?;
        Ok(Some(Stored {
            record: record.to_vec(),
            holder,
        }))
    }

    /// The node whose lease on job `id` is live, if any (an expired lease holds nothing: its
    /// node stopped renewing it, and the next claim takes it over).
    pub(super) async fn holder(&self, parts: &Parts, id: &str) -> Result<Option<String>, String> {
        let lease = parts
            .kv
            .get(lease_key(id))
            .await
            .map_err(|e| e.to_string())?;
        Ok(lease
            .and_then(|lease| serde_json::from_slice::<LeaseValue>(&lease).ok())
            .filter(|lease| lease.expires > now_ms())
            .map(|lease| lease.node))
    }

    /// The logged events of job `id` after sequence number `seq`, in order. The log keeps a
    /// job's last [`EVENT_LOG_LIMIT`] events, so at most that many are read, one direct get
    /// each.
    pub(super) async fn logged_after(&self, id: &str, seq: u64) -> Result<Vec<Bytes>, String> {
        let parts = self.parts().await?;
        let subject = event_subject(id);
        let last = match parts.events.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => message.sequence,
            Err(error) if error.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {
                return Ok(Vec::new())
            }
            Err(error) => return Err(error.to_string()),
        };
        let mut events = Vec::new();
        let mut from = 1;
        for _ in 0..EVENT_LOG_LIMIT {
            let message = parts
                .events
                .raw_message_builder()
                .sequence(from)
                .next_by_subject(subject.clone())
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if header_seq(&message.headers) > seq {
                events.push(message.payload);
            }
            if message.sequence >= last {
                break;
            }
            from = message.sequence + 1;
        }
        Ok(events)
    }
}
