//! Retained messages, in memory, with MQTT 5 message expiry honoured.
//!
//! rmqtt's retainer plugin either expires every retained message after the
//! listener's default interval or ignores the publisher's expiry; this
//! wraps rmqtt's own retain tree and uses only the expiry the publisher set.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rmqtt::retain::{DefaultRetainStorage, RetainStorage};
use rmqtt::types::{Retain, TopicFilter, TopicName};
use rmqtt::Result;

/// In-memory retained messages (clones share the store), at most `max`
/// topics (0: no limit).
#[derive(Clone)]
pub(crate) struct MemRetain(Arc<DefaultRetainStorage>, usize);

impl MemRetain {
    pub(crate) fn new(max: usize) -> Self {
        Self(Arc::new(DefaultRetainStorage::new()), max)
    }

    /// Drops expired entries (they are already skipped on read).
    pub(crate) async fn purge(&self) -> usize {
        self.0.remove_expired_messages().await
    }
}

#[async_trait]
impl RetainStorage for MemRetain {
    fn enable(&self) -> bool {
        true
    }

    async fn set(
        &self,
        topic: &TopicName,
        retain: Retain,
        _listener_default: Option<Duration>,
    ) -> Result<()> {
        let full = self.1 > 0 && self.0.count().await >= self.1 as isize;
        if full && !retain.publish.payload.is_empty() {
            let filter = TopicFilter::from(topic.as_ref());
            if self.0.get_message(&filter).await?.is_empty() {
                tracing::warn!(topic = %topic, max = self.1, "not retained: limits.max_retained_messages reached");
                return Ok(());
            }
        }
        let own = retain
            .publish
            .properties
            .as_ref()
            .and_then(|p| p.message_expiry_interval)
            .map(|s| Duration::from_secs(u64::from(s.get())));
        self.0.set_with_timeout(topic, retain, own).await
    }

    async fn get(&self, filter: &TopicFilter) -> Result<Vec<(TopicName, Retain)>> {
        self.0.get_message(filter).await
    }

    async fn count(&self) -> isize {
        self.0.count().await
    }

    async fn max(&self) -> isize {
        self.0.max().await
    }
}
