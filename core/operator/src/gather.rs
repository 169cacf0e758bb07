//! Asks every shard for its stats, by message, each within a bound.

use crate::reply::ApiError;
use crate::settings::SHARD_WAIT_MS;
use gonets_engine::runtime::stats::ShardStats;
use gonets_engine::HubHandle;
use std::time::Duration;

/// Every shard's stats, in shard order; `Unavailable` when one has stopped
/// or does not answer within [`SHARD_WAIT_MS`].
pub(crate) async fn every_shard(hub: &HubHandle) -> Result<Vec<ShardStats>, ApiError> {
    let mut all = Vec::with_capacity(usize::from(hub.shard_count()));
    // Bounded by the shard count, each ask by SHARD_WAIT_MS.
    for shard in 0..hub.shard_count() {
        let ask = hub.shard_stats(shard);
        match tokio::time::timeout(Duration::from_millis(SHARD_WAIT_MS), ask).await {
            Ok(Ok(stats)) => all.push(stats),
            Ok(Err(e)) => return Err(ApiError::unavailable(format!("shard {shard}: {e}"))),
            Err(_) => {
                return Err(ApiError::unavailable(format!(
                    "shard {shard} did not answer within {SHARD_WAIT_MS} ms"
                )))
            }
        }
    }
    Ok(all)
}
