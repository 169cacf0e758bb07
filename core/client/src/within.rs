//! Bounding a wait on a glommio executor.

use futures_lite::FutureExt;
use std::future::Future;
use std::time::Duration;

/// Runs `f` for at most `ms` on the current glommio executor; `None` after that.
pub async fn within<T>(ms: u64, f: impl Future<Output = T>) -> Option<T> {
    async { Some(f.await) }
        .or(async {
            glommio::timer::sleep(Duration::from_millis(ms)).await;
            None
        })
        .await
}
