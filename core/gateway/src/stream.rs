//! `stream`: a queue's messages pushed as server-sent events
//! (`text/event-stream`) with credits, the HTTP form of the native
//! `SUBSCRIBE` (docs/gateway.md "Streaming").
//!
//! A stream is a subscription of the caller's session with a window of
//! `credits` messages: the hub pushes at most that many before the client
//! settles some. Each `ack` or `nack` that names the stream's lease
//! (`?lease=`) gives one credit back; `POST …/stream/{lease}/credits`
//! gives more (after leases ran out unsettled), never past the window.
//! When the client goes, the subscription is dropped and every message it
//! had not settled is delivered again.

use crate::body::Body;
use crate::problem::Problem;
use crate::request::Query;
use crate::routes::Matched;
use bytes::Bytes;
use gonets_engine::{Session, Subscription};
use gonets_types::{HubError, Message};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

/// A stream's window when the client does not say (`credits`).
pub const STREAM_CREDITS_DEFAULT: u32 = 16;
/// The largest window a stream may ask for.
pub const STREAM_CREDITS_MAX: u32 = 512;
/// The largest lease a request may name: readers are numbered from 1 by
/// a counter that never comes near it, and every JSON number up to it is
/// exact (2^53 - 1).
pub const LEASE_MAX: u64 = (1 << 53) - 1;
/// Streams open at once in one gateway; more are refused `UNAVAILABLE`.
pub(crate) const STREAMS_MAX: usize = 256;
/// How often an idle stream gets a comment line, ms: idle proxies keep
/// the connection, and a client that left is noticed.
const KEEPALIVE_MS: u64 = 15_000;
/// Events queued for one stream before its task waits for the client.
const CHUNKS_QUEUED_MAX: usize = 64;

/// Credits given back to one stream, and the participant it serves.
struct Returns {
    participant: String,
    credits: AtomicU32,
    notify: Notify,
}

/// The gateway's open streams, by lease holder number.
#[derive(Default)]
pub(crate) struct Streams {
    open: Mutex<HashMap<u64, Arc<Returns>>>,
}

impl Streams {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Returns>>> {
        self.open.lock().expect("a stream lookup never panics")
    }

    /// Whether `lease` is an open stream of `participant`: the only lease
    /// besides its session's that an HTTP `ack` or `nack` may name.
    pub(crate) fn holds(&self, participant: &str, lease: u64) -> bool {
        self.lock()
            .get(&lease)
            .is_some_and(|r| r.participant == participant)
    }

    /// Gives `credits` back to stream `lease` of `participant`; `false`
    /// when it has no such stream (closed, or another's).
    pub(crate) fn give_back(&self, participant: &str, lease: u64, credits: u32) -> bool {
        let Some(returns) = self.lock().get(&lease).cloned() else {
            return false;
        };
        if returns.participant != participant {
            return false;
        }
        returns.credits.fetch_add(credits, Ordering::Relaxed);
        returns.notify.notify_one();
        true
    }
}

/// Opens a stream of the queue the path names for `participant`. A
/// refusal (not the queue's reader, a bad window) is a problem with its
/// status, before any event.
pub(crate) async fn open(
    streams: &Arc<Streams>,
    participant: &str,
    session: &Session,
    matched: &Matched,
    query: &Query,
) -> Result<Response<Body>, Problem> {
    let queue = crate::ops::queue(matched)?;
    let window = query.number(
        "credits",
        1,
        u64::from(STREAM_CREDITS_MAX),
        u64::from(STREAM_CREDITS_DEFAULT),
    )? as u32;
    if streams.lock().len() >= STREAMS_MAX {
        return Err(HubError::Unavailable(format!(
            "{STREAMS_MAX} streams are open in this gateway; try again later"
        ))
        .into());
    }
    let subscription = session.subscribe(queue, window).await?;
    let lease = subscription.lease_holder();
    let returns = Arc::new(Returns {
        participant: participant.to_owned(),
        credits: AtomicU32::new(0),
        notify: Notify::new(),
    });
    streams.lock().insert(lease, returns.clone());
    let (sender, chunks) = mpsc::channel(CHUNKS_QUEUED_MAX);
    let streams = streams.clone();
    tokio::spawn(async move {
        let opening = format!(
            "event: open\ndata: {}\n\n",
            serde_json::json!({ "lease": lease, "credits": window })
        );
        if sender.send(Bytes::from(opening)).await.is_ok() {
            let mut pushed = Pushed {
                subscription,
                window,
                outstanding: window,
            };
            pushed.forward(&returns, &sender).await;
        }
        streams.lock().remove(&lease);
    });
    // The body: each chunk the task sends, until it ends (as a streamed
    // attachment read is served, `crate::attachments::read`).
    let body = futures_lite::stream::unfold(chunks, |mut chunks| async move {
        let chunk = chunks.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(chunk)), chunks))
    });
    let mut response = Response::new(StreamBody::new(body).boxed());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// A stream's subscription and its credit count.
struct Pushed {
    subscription: Subscription,
    window: u32,
    /// Credits the hub holds for this stream: granted minus pushed.
    outstanding: u32,
}

impl Pushed {
    /// Sends each pushed message as an event, grants the credits given
    /// back, and a comment when idle, until the client goes (a send
    /// fails) or the hub stops (an `error` event ends the stream).
    async fn forward(&mut self, returns: &Returns, sender: &mpsc::Sender<Bytes>) {
        let keepalive = Duration::from_millis(KEEPALIVE_MS);
        // Runs until the client goes or the subscription ends.
        loop {
            let chunk = tokio::select! {
                pushed = self.subscription.recv() => match pushed {
                    Ok(m) => {
                        self.outstanding = self.outstanding.saturating_sub(1);
                        message_event(&m, self.subscription.lease_holder())
                    }
                    Err(e) => {
                        let _ = sender.send(error_event(&e)).await;
                        return;
                    }
                },
                () = returns.notify.notified() => {
                    let given = returns.credits.swap(0, Ordering::Relaxed);
                    match self.grant(given).await {
                        Ok(()) => continue,
                        Err(e) => error_event(&e),
                    }
                }
                () = tokio::time::sleep(keepalive) => Bytes::from_static(b": keep-alive\n\n"),
                // The client went: drop the subscription now, so its
                // unsettled messages go back at once.
                () = sender.closed() => return,
            };
            if sender.send(chunk).await.is_err() {
                return;
            }
        }
    }

    /// Grants `given` credits, never past the window (credits given back
    /// for a message the hub already counted again are dropped).
    async fn grant(&mut self, given: u32) -> Result<(), HubError> {
        let room = self.window - self.outstanding;
        let credits = given.min(room);
        if credits == 0 {
            return Ok(());
        }
        self.subscription.add_credits(credits).await?;
        self.outstanding += credits;
        assert!(self.outstanding <= self.window);
        Ok(())
    }
}

/// `event: message`, the message's JSON (as `fetch` gives it, with the
/// stream's `lease`) on one line, and its id.
fn message_event(m: &Message, lease: u64) -> Bytes {
    let mut view = crate::views::message(m);
    view["lease"] = serde_json::json!(lease);
    Bytes::from(format!("id: {}\nevent: message\ndata: {view}\n\n", m.id))
}

/// `event: error` with the problem the stream ended on.
fn error_event(e: &HubError) -> Bytes {
    let problem = Problem::from(e.clone());
    Bytes::from(format!("event: error\ndata: {}\n\n", problem.to_json()))
}
