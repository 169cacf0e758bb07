//! Criterion benchmark of the sans-IO shard state machine alone (`cargo bench
//! -p gonets-bench --bench shard`): no log, no network, no executor, so the
//! figure is the ceiling one core's rules can reach, before any I/O.
//!
//! One exchange is a request all the way to the consumer's ack of its answer,
//! driven as the runtime would drive it, with every peer message fed back in
//! (one shard owns both queues, so no message crosses a channel):
//!
//! send_request → commit → provider fetch → ack → send_response → commit →
//! EnqueueAnswer fed back → consumer fetch → AnswerDelivered fed back →
//! ack → AnswerAcked fed back (the next exchange's commit covers the last
//! two history records).
//!
//! Throughput is counted in transitions (inputs stepped into the shard);
//! exchanges/s = transitions/s ÷ the transitions per exchange printed at the
//! start and named in each benchmark's id. `single` runs one exchange per
//! commit; `batch64` runs 64 exchanges per commit and per fetch, as group
//! commit and a busy provider would.
//!
//! Payloads are 1 KiB requests and 2 KiB answers (the rt workload, DESIGN
//! §4); they are reference-counted buffers, so their size costs nothing here.
//!
//! The shard keeps every exchange (history retention does not exist yet)
//! and the clock stands still, so no lease or deadline timer ever fires; to
//! keep memory and map sizes bounded the benchmark swaps in a fresh shard
//! every `EXCHANGES_PER_SHARD` exchanges, outside the measured time.

use bytes::Bytes;
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use gonets_engine::shard::{
    Command, Input, NewRequest, Output, PeerMsg, Shard, ShardConfig, ShardReply,
};
use gonets_engine::Registry;
use gonets_types::{DataKindId, MessageId, ParticipantId, QueueId};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

const KIND: &str = "urn:gonets:fns:egrul-extract:1";
const PROVIDER: &str = "FNS";
const CONSUMER: &str = "MFC";
const REQUEST_BYTES: usize = 1024;
const ANSWER_BYTES: usize = 2048;
/// Exchanges per shard before a fresh one is swapped in (unmeasured).
const EXCHANGES_PER_SHARD: u64 = 100_000;
const PROVIDER_READER: u64 = 1;
const CONSUMER_READER: u64 = 2;

/// A shard and what the runtime keeps around it.
struct Rig {
    shard: Shard,
    out: Vec<Output>,
    peers: Vec<PeerMsg>,
    now_ms: u64,
    next_token: u64,
    transitions: u64,
    exchanges: u64,
    provider: ParticipantId,
    consumer: ParticipantId,
    requests: QueueId,
    answers: QueueId,
    request_payload: Bytes,
    answer_payload: Bytes,
}

impl Rig {
    fn new() -> Rig {
        let registry = Arc::new(Registry::embedded_default());
        let consumer = ParticipantId::new(CONSUMER);
        Rig {
            shard: Shard::new(ShardConfig::new(0, 1), registry, 0),
            out: Vec::with_capacity(1024),
            peers: Vec::with_capacity(1024),
            // A fixed, plausible epoch time: ids are UUIDv7.
            now_ms: 1_700_000_000_000,
            next_token: 1,
            transitions: 0,
            exchanges: 0,
            provider: ParticipantId::new(PROVIDER),
            answers: QueueId::Answers(consumer.clone()),
            consumer,
            requests: QueueId::Requests(DataKindId::new(KIND)),
            request_payload: Bytes::from(vec![7u8; REQUEST_BYTES]),
            answer_payload: Bytes::from(vec![9u8; ANSWER_BYTES]),
        }
    }

    /// Steps one input; keeps its outputs in `self.out` for the caller to read.
    fn step(&mut self, input: Input) {
        self.transitions += 1;
        self.out.clear();
        self.shard.step(self.now_ms, input, &mut self.out);
        // What the runtime would hand to a shard's channel; all go to shard 0.
        for o in self.out.iter() {
            if let Output::ToShard { msg, .. } = o {
                self.peers.push(msg.clone());
            }
        }
    }

    fn command(&mut self, caller: ParticipantId, command: Command) {
        let token = self.next_token;
        self.next_token += 1;
        self.step(Input::Command {
            token,
            caller,
            command,
        });
    }

    fn commit(&mut self) {
        let durable_offset = self.shard.next_offset();
        self.step(Input::Committed { durable_offset });
    }

    fn feed_peers(&mut self) {
        let mut peers = std::mem::take(&mut self.peers);
        for msg in peers.drain(..) {
            self.step(Input::Peer(msg));
        }
        // Keep the buffer (and its capacity) for the next round.
        debug_assert!(self.peers.is_empty());
        self.peers = peers;
    }

    /// The ids of the messages a fetch just returned.
    fn fetched(&self, into: &mut Vec<MessageId>) {
        into.clear();
        for o in &self.out {
            if let Output::Reply { result, .. } = o {
                match result {
                    Ok(ShardReply::Messages(m)) => into.extend(m.iter().map(|d| d.id)),
                    Ok(_) => {}
                    Err(e) => panic!("the benchmark's exchange failed: {e}"),
                }
            }
        }
    }

    fn assert_no_error(&self) {
        for o in &self.out {
            if let Output::Reply { result: Err(e), .. } = o {
                panic!("the benchmark's exchange failed: {e}");
            }
        }
    }

    /// `n` whole exchanges, each phase done for all `n` before the next
    /// (n = 1: one exchange per commit).
    fn exchanges(&mut self, n: usize, ids: &mut Vec<MessageId>) {
        for _ in 0..n {
            let r = NewRequest::new(KIND, self.request_payload.clone());
            self.command(self.consumer.clone(), Command::SendRequest(r));
            self.assert_no_error();
        }
        self.commit();
        self.assert_no_error();

        let fetch = Command::Fetch {
            queue: self.requests.clone(),
            max: n as u32,
            wait_ms: 0,
            reader: PROVIDER_READER,
        };
        self.command(self.provider.clone(), fetch);
        self.fetched(ids);
        assert_eq!(ids.len(), n, "every request reaches the provider");
        for &id in ids.iter() {
            let ack = Command::Ack {
                queue: self.requests.clone(),
                id,
                reader: PROVIDER_READER,
            };
            self.command(self.provider.clone(), ack);
            self.assert_no_error();
        }
        for &request_id in ids.iter() {
            let response = Command::SendResponse {
                request_id,
                payload: self.answer_payload.clone(),
                attachments: Vec::new(),
            };
            self.command(self.provider.clone(), response);
            self.assert_no_error();
        }
        self.commit();
        self.assert_no_error();
        self.feed_peers(); // EnqueueAnswer

        let fetch = Command::Fetch {
            queue: self.answers.clone(),
            max: n as u32,
            wait_ms: 0,
            reader: CONSUMER_READER,
        };
        self.command(self.consumer.clone(), fetch);
        self.fetched(ids);
        assert_eq!(ids.len(), n, "every answer reaches the consumer");
        self.feed_peers(); // AnswerDelivered
        for &id in ids.iter() {
            let ack = Command::Ack {
                queue: self.answers.clone(),
                id,
                reader: CONSUMER_READER,
            };
            self.command(self.consumer.clone(), ack);
            self.assert_no_error();
        }
        self.feed_peers(); // AnswerAcked
        self.exchanges += n as u64;
    }
}

/// Transitions one round of `n` exchanges takes (counted, not assumed), and
/// a check that the round really finishes every exchange.
fn transitions_per_round(n: usize) -> u64 {
    let mut rig = Rig::new();
    let mut ids = Vec::new();
    rig.exchanges(n, &mut ids);
    rig.commit();
    let finished = rig.shard.exchanges().filter(|e| e.finished()).count();
    assert_eq!(finished, n, "a round ends every exchange it starts");
    rig.transitions - 1
}

fn exchange(c: &mut Criterion) {
    let mut group = c.benchmark_group("shard_exchange");
    group.measurement_time(Duration::from_secs(5));
    for (name, n) in [("single", 1usize), ("batch64", 64)] {
        let per_round = transitions_per_round(n);
        println!(
            "shard_exchange/{name}: {per_round} transitions per {n} exchange(s) \
             ({:.2} per exchange)",
            per_round as f64 / n as f64
        );
        group.throughput(Throughput::Elements(per_round));
        let id = BenchmarkId::new(name, format!("{per_round}_transitions_per_round"));
        group.bench_function(id, |b| {
            b.iter_custom(|rounds| {
                let mut ids = Vec::with_capacity(n);
                let mut rig = Rig::new();
                let mut measured = Duration::ZERO;
                let mut left = rounds;
                while left > 0 {
                    if rig.exchanges >= EXCHANGES_PER_SHARD {
                        rig = Rig::new(); // unmeasured: see the module comment
                    }
                    let room = (EXCHANGES_PER_SHARD - rig.exchanges).div_ceil(n as u64);
                    let chunk = left.min(room.max(1));
                    let start = Instant::now();
                    for _ in 0..chunk {
                        rig.exchanges(n, &mut ids);
                    }
                    measured += start.elapsed();
                    left -= chunk;
                }
                black_box(&rig.shard);
                measured
            })
        });
    }
    group.finish();
}

criterion_group!(benches, exchange);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
