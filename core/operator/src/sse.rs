//! `/events`: the operator events as a server-sent-events stream
//! (`text/event-stream`): the kept events first, then each new one as it
//! comes, and a comment line every [`KEEPALIVE_MS`] so that idle proxies
//! keep the connection and a client that left is noticed.

use crate::events::EventFeed;
use crate::reply::Body;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// How often an idle stream gets a comment line, ms.
const KEEPALIVE_MS: u64 = 15_000;
/// Chunks queued for one stream before its writer waits.
const CHUNKS_QUEUED_MAX: usize = 64;

/// The body of one stream: the chunks its forwarding task sends.
struct EventStream {
    chunks: mpsc::Receiver<Bytes>,
}

impl hyper::body::Body for EventStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.chunks
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

/// A stream of `feed`'s events, until the client goes or the API stops.
pub(crate) fn stream(feed: &EventFeed) -> Response<Body> {
    let (kept, live) = feed.subscribe();
    let (sender, chunks) = mpsc::channel(CHUNKS_QUEUED_MAX);
    tokio::spawn(async move {
        // An opening comment: the client sees the stream is up at once.
        let mut first = String::from(": gonets operator events\n\n");
        kept.iter().for_each(|e| first.push_str(&e.sse()));
        if sender.send(Bytes::from(first)).await.is_ok() {
            forward(live, &sender).await;
        }
    });
    let mut response = Response::new(EventStream { chunks }.boxed());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Sends each new event, and a comment when idle, until the client goes.
async fn forward(
    mut live: broadcast::Receiver<crate::events::Event>,
    sender: &mpsc::Sender<Bytes>,
) {
    // Runs until the client goes (a send fails) or the feed closes.
    loop {
        let next = tokio::time::timeout(Duration::from_millis(KEEPALIVE_MS), live.recv()).await;
        let chunk = match next {
            Ok(Ok(event)) => event.sse(),
            Ok(Err(broadcast::error::RecvError::Lagged(missed))) => {
                format!(": {missed} events missed (the stream fell behind)\n\n")
            }
            Ok(Err(broadcast::error::RecvError::Closed)) => return,
            Err(_) => ": keep-alive\n\n".to_string(),
        };
        if sender.send(Bytes::from(chunk)).await.is_err() {
            return;
        }
    }
}
