//! Lanes: the glommio task queues of a shard executor, so real-time work
//! runs before bulk work and background work never crowds either
//! (docs/adr/0015).
//!
//! - [`Lane::Rt`]: `Latency::Matters`, the most shares: the shard
//!   driver's rt half (and with it the log's flusher and the committers it
//!   starts), calls, their providers' deliveries (subscriptions) and
//!   answers and acks.
//! - [`Lane::Bulk`]: fewer shares: the shard driver's bulk half (it steps
//!   the bulk inbox), `send_request(s)`, `fetch`, `ack_many`/`nack_many`,
//!   and a bulk drain's deliveries and single acks: work whose cost grows
//!   with bulk traffic.
//! - [`Lane::Background`]: fewest shares: checkpoints and retention after a
//!   snapshot, history-index merges.
//! - [`Lane::Front`]: glommio's default queue: network front ends
//!   (accepting, reading frames, writing replies).
//!
//! The
//! queues are made once per shard executor ([`open_on_this_executor`]) and
//! kept in a thread local (one executor per thread: nothing is shared
//! between shards); on an executor without them (tests, clients) a spawn
//! goes to the current queue, as `glommio::spawn_local` does.

use crate::registry::{Mode, Registry};
use glommio::{Latency, Shares, Task, TaskQueueHandle};
use gonets_types::ids::QueueId;
use gonets_types::Command;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::time::Duration;

/// How long rt work may wait for a running bulk or background task to
/// yield, ms: glommio preempts a queue after this when the rt queue has
/// work. Equal to the shards' own preemption timer, so the rt queue arms
/// no shorter timer than the executor already does.
pub const RT_LATENCY_MS: u64 = 1;
/// Shares of the rt queue (glommio's default queue has 1000).
const RT_SHARES: usize = 1000;
/// Shares of the bulk queue: under contention it gets a fifth of the rt
/// queue's CPU; alone, all of it.
const BULK_SHARES: usize = 200;
/// Shares of the background queue.
const BACKGROUND_SHARES: usize = 50;
/// The queues' names, as glommio reports them.
const RT_QUEUE: &str = "gonets-rt";
const BULK_QUEUE: &str = "gonets-bulk";
const BACKGROUND_QUEUE: &str = "gonets-background";

/// Which queue a task runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Real-time: calls, deliveries, answers, the driver and its commits.
    Rt,
    /// Bulk: batched sends, fetches and acks.
    Bulk,
    /// Background: checkpoints, retention, archive index merges.
    Background,
    /// The front end: glommio's default queue (accepting, reading frames,
    /// writing replies).
    Front,
}

impl Lane {
    /// Every lane, in the order [`usage`] reports them.
    pub const ALL: [Lane; 4] = [Lane::Rt, Lane::Bulk, Lane::Background, Lane::Front];

    /// The lane's name, as the operator's metrics label it.
    pub fn name(self) -> &'static str {
        match self {
            Lane::Rt => "rt",
            Lane::Bulk => "bulk",
            Lane::Background => "background",
            Lane::Front => "front",
        }
    }

    /// The lane of the work that reads `queue` (a fetch, an ack, a
    /// subscription's deliveries): rt for a realtime kind's requests (its
    /// provider answers within the kind's budget), bulk for the rest (an
    /// async kind's requests, a consumer's answers): a bulk drain acks
    /// each message, and those acks must not queue in the rt lane ahead of
    /// calls.
    pub fn of_queue(queue: &QueueId, registry: &Registry) -> Lane {
        match queue {
            QueueId::Requests(kind)
                if registry
                    .kind(kind)
                    .is_some_and(|k| k.mode == Mode::Realtime) =>
            {
                Lane::Rt
            }
            QueueId::Requests(_) | QueueId::Answers(_) => Lane::Bulk,
        }
    }

    /// The lane of a client operation: bulk for an async request or a
    /// batch (its cost grows with its size, and nobody waits on it within
    /// the 2-second budget), rt for the rest (single calls, answers,
    /// status reads: small and waited on). A fetch, an ack or a nack goes
    /// by the queue it reads ([`Lane::of_queue`]): rt only for a realtime
    /// kind's requests (a provider that polls for calls instead of
    /// subscribing, or acks them).
    pub fn of(command: &Command, registry: &Registry) -> Lane {
        // A signed command goes where the command it wraps goes.
        match command.unsigned() {
            Command::Fetch { queue, .. }
            | Command::Ack { queue, .. }
            | Command::Nack { queue, .. } => Lane::of_queue(queue, registry),
            Command::SendRequest(_)
            | Command::SendRequests(_)
            | Command::AckMany { .. }
            | Command::NackMany { .. }
            | Command::UploadBegin { .. }
            | Command::UploadChunk { .. }
            | Command::UploadStatus { .. }
            | Command::UploadFinish { .. }
            | Command::ReadAttachment { .. } => Lane::Bulk,
            Command::Call(_)
            | Command::Subscribe { .. }
            | Command::SendResponse { .. }
            | Command::SendRefusal { .. }
            | Command::Status { .. }
            | Command::QueueStats { .. }
            | Command::Signed { .. } => Lane::Rt,
        }
    }
}

/// One executor's queues.
#[derive(Clone, Copy)]
struct Queues {
    rt: TaskQueueHandle,
    bulk: TaskQueueHandle,
    background: TaskQueueHandle,
}

thread_local! {
    static QUEUES: Cell<Option<Queues>> = const { Cell::new(None) };
    /// Each lane's running totals, in [`Lane::ALL`]'s order: glommio's
    /// own figures are reset every time they are read.
    static USAGE: RefCell<[LaneUsage; 4]> = const { RefCell::new([LaneUsage::ZERO; 4]) };
}

/// What one lane's task queue has had of its executor since the lanes
/// were opened: the CPU time its tasks ran, and how many times the
/// executor picked it. Their ratio is the queue's mean run: how long, on
/// average, the other lanes wait once it has been picked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LaneUsage {
    /// Time the queue's tasks ran.
    pub busy: Duration,
    /// Times the executor picked the queue to run.
    pub runs: u64,
    /// Runs that went over their budget by more than `stall_report_ms`
    /// (counted only where stall reports are on; docs/adr/0031).
    pub stalls: u64,
}

impl LaneUsage {
    const ZERO: LaneUsage = LaneUsage {
        busy: Duration::ZERO,
        runs: 0,
        stalls: 0,
    };
}

/// Counts a stall of the task queue named `queue` (glommio's name for it)
/// in its lane's totals on the current executor; the default queue's and
/// any unknown one's count as the front end's.
pub fn note_stall(queue: &str) {
    let lane = match queue {
        RT_QUEUE => Lane::Rt,
        BULK_QUEUE => Lane::Bulk,
        BACKGROUND_QUEUE => Lane::Background,
        _ => Lane::Front,
    };
    let i = Lane::ALL
        .iter()
        .position(|l| *l == lane)
        .expect("every lane is listed");
    USAGE.with(|totals| totals.borrow_mut()[i].stalls += 1);
}

/// Every lane's running totals on the current executor, in
/// [`Lane::ALL`]'s order; empty where the lanes were not opened.
pub fn usage() -> Vec<(Lane, LaneUsage)> {
    let Some(queues) = QUEUES.with(Cell::get) else {
        return Vec::new();
    };
    let ex = glommio::executor();
    USAGE.with(|totals| {
        let mut totals = totals.borrow_mut();
        for (i, lane) in Lane::ALL.into_iter().enumerate() {
            // The handle was made on this executor: the read cannot fail.
            if let Ok(st) = ex.task_queue_stats(queues.handle(lane)) {
                totals[i].busy += st.runtime();
                totals[i].runs += st.queue_selected();
            }
        }
        Lane::ALL.into_iter().zip(totals.iter().copied()).collect()
    })
}

/// Makes the lanes' task queues on the current glommio executor (once;
/// later calls keep the first). Call it from the executor's first task.
pub fn open_on_this_executor() {
    if QUEUES.with(Cell::get).is_some() {
        return;
    }
    let ex = glommio::executor();
    let latency = Latency::Matters(Duration::from_millis(RT_LATENCY_MS));
    let queues = Queues {
        rt: ex.create_task_queue(Shares::Static(RT_SHARES), latency, RT_QUEUE),
        bulk: ex.create_task_queue(
            Shares::Static(BULK_SHARES),
            Latency::NotImportant,
            BULK_QUEUE,
        ),
        background: ex.create_task_queue(
            Shares::Static(BACKGROUND_SHARES),
            Latency::NotImportant,
            BACKGROUND_QUEUE,
        ),
    };
    QUEUES.with(|q| q.set(Some(queues)));
}

/// Spawns `future` in `lane`'s queue on the current executor, or in the
/// current queue where the lanes were not opened.
pub fn spawn<T: 'static>(lane: Lane, future: impl Future<Output = T> + 'static) -> Task<T> {
    let Some(queues) = QUEUES.with(Cell::get) else {
        return glommio::spawn_local(future);
    };
    // The handle was made on this thread's executor and queues are never
    // removed, so the only error (queue not found) cannot happen.
    glommio::spawn_local_into(future, queues.handle(lane))
        .expect("a lane's queue exists on its executor")
}

impl Queues {
    fn handle(&self, lane: Lane) -> TaskQueueHandle {
        match lane {
            Lane::Rt => self.rt,
            Lane::Bulk => self.bulk,
            Lane::Background => self.background,
            Lane::Front => TaskQueueHandle::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glommio::{LocalExecutorBuilder, Placement};
    use gonets_types::ids::{DataKindId, MessageId, ParticipantId};

    #[test]
    fn given_lanes_opened_when_spawned_then_each_runs_in_its_own_queue() {
        LocalExecutorBuilder::new(Placement::Unbound)
            .make()
            .unwrap()
            .run(async {
                let default = glommio::executor().current_task_queue();
                open_on_this_executor();
                let mut seen = Vec::new();
                let front = spawn(Lane::Front, async {
                    glommio::executor().current_task_queue()
                });
                assert_eq!(
                    front.await,
                    default,
                    "the front end keeps the default queue"
                );
                for lane in [Lane::Rt, Lane::Bulk, Lane::Background] {
                    let queue = spawn(lane, async { glommio::executor().current_task_queue() });
                    seen.push(queue.await);
                }
                assert!(!seen.contains(&default), "lanes are not the default queue");
                assert_ne!(seen[0], seen[1]);
                assert_ne!(seen[1], seen[2]);
                assert_ne!(seen[0], seen[2]);
                open_on_this_executor();
                let again = spawn(Lane::Rt, async { glommio::executor().current_task_queue() });
                assert_eq!(again.await, seen[0], "a second open keeps the first queues");
            });
    }

    #[test]
    fn given_bulk_spinning_when_rt_sleeps_then_rt_wakes_while_bulk_still_spins() {
        // The vendored glommio keeps its preemption timers armed across
        // executor loops (docs/adr/0016). Were one kept that never fires,
        // a bulk task that only yields when preempted would hold the core
        // and the rt task's timers would wait for it to end.
        const SLEEPS: u32 = 20;
        const SLEEP_MS: u64 = 5;
        const SPIN_MS_MAX: u64 = 10_000;
        LocalExecutorBuilder::new(Placement::Unbound)
            .preempt_timer(Duration::from_millis(RT_LATENCY_MS))
            .make()
            .unwrap()
            .run(async {
                open_on_this_executor();
                let rt_done = std::rc::Rc::new(Cell::new(false));
                let done = rt_done.clone();
                let rt = spawn(Lane::Rt, async move {
                    for _ in 0..SLEEPS {
                        glommio::timer::sleep(Duration::from_millis(SLEEP_MS)).await;
                    }
                    done.set(true);
                });
                let done = rt_done.clone();
                let bulk = spawn(Lane::Bulk, async move {
                    let start = std::time::Instant::now();
                    let cap = Duration::from_millis(SPIN_MS_MAX);
                    while !done.get() && start.elapsed() < cap {
                        glommio::yield_if_needed().await;
                    }
                    done.get()
                });
                assert!(
                    bulk.await,
                    "rt slept {SLEEPS} x {SLEEP_MS} ms only after bulk spun {SPIN_MS_MAX} ms"
                );
                rt.await;
            });
    }

    #[test]
    fn given_bulk_work_when_usage_is_read_twice_then_its_time_and_runs_add_up() {
        const SPIN_MS: u64 = 20;
        LocalExecutorBuilder::new(Placement::Unbound)
            .make()
            .unwrap()
            .run(async {
                assert!(usage().is_empty(), "no lanes, no usage");
                open_on_this_executor();
                let spin = || async {
                    let until = std::time::Instant::now() + Duration::from_millis(SPIN_MS);
                    while std::time::Instant::now() < until {
                        std::hint::spin_loop();
                    }
                };
                spawn(Lane::Bulk, spin()).await;
                let first = usage();
                let names: Vec<_> = first.iter().map(|(l, _)| l.name()).collect();
                assert_eq!(names, ["rt", "bulk", "background", "front"]);
                let bulk = first[1].1;
                assert!(bulk.busy >= Duration::from_millis(SPIN_MS), "{bulk:?}");
                assert!(bulk.runs >= 1);
                assert_eq!(first[2].1, LaneUsage::default(), "background ran nothing");
                spawn(Lane::Bulk, spin()).await;
                let second = usage()[1].1;
                assert!(
                    second.busy >= bulk.busy + Duration::from_millis(SPIN_MS),
                    "{second:?}"
                );
                assert!(
                    second.runs > bulk.runs,
                    "totals, not glommio's reset figures"
                );
            });
    }

    #[test]
    fn given_no_lanes_when_spawned_then_runs_in_the_current_queue() {
        LocalExecutorBuilder::new(Placement::Unbound)
            .make()
            .unwrap()
            .run(async {
                let here = glommio::executor().current_task_queue();
                let ran = spawn(Lane::Bulk, async {
                    glommio::executor().current_task_queue()
                });
                assert_eq!(ran.await, here);
            });
    }

    #[test]
    fn given_commands_when_classified_then_batches_bulk_and_single_answers_rt() {
        let registry = Registry::embedded_default();
        let id = MessageId::new(1, 0, 1);
        let answer = Command::SendResponse {
            request_id: id,
            payload: Default::default(),
            attachments: Vec::new(),
        };
        assert_eq!(Lane::of(&answer, &registry), Lane::Rt);
        let acks = Command::AckMany {
            queue: QueueId::Requests(DataKindId::new("k")),
            ids: vec![id],
            reader: 1,
        };
        assert_eq!(Lane::of(&acks, &registry), Lane::Bulk);
        assert_eq!(Lane::of(&Command::Status { id }, &registry), Lane::Rt);
    }

    /// The requests queue of the default registry's first kind of `mode`.
    fn requests_of_a(mode: Mode, registry: &Registry) -> QueueId {
        registry
            .kinds()
            .find(|k| k.mode == mode)
            .map(|k| QueueId::Requests(k.id.clone()))
            .expect("the default registry has a kind of each mode")
    }

    #[test]
    fn given_fetch_when_classified_then_rt_only_for_a_realtime_kinds_requests() {
        let registry = Registry::embedded_default();
        let fetch = |queue| Command::Fetch {
            queue,
            max: 10,
            wait_ms: 0,
            reader: 1,
        };
        let rt = fetch(requests_of_a(Mode::Realtime, &registry));
        assert_eq!(Lane::of(&rt, &registry), Lane::Rt);
        let bulk = fetch(requests_of_a(Mode::Async, &registry));
        assert_eq!(Lane::of(&bulk, &registry), Lane::Bulk);
        let unknown = fetch(QueueId::Requests(DataKindId::new("urn:nobody")));
        assert_eq!(Lane::of(&unknown, &registry), Lane::Bulk);
        let answers = fetch(QueueId::Answers(ParticipantId::new("urn:consumer")));
        assert_eq!(Lane::of(&answers, &registry), Lane::Bulk);
    }

    #[test]
    fn given_single_acks_when_classified_then_rt_only_for_a_realtime_kinds_requests() {
        let registry = Registry::embedded_default();
        let id = MessageId::new(1, 0, 1);
        for (queue, lane) in [
            (requests_of_a(Mode::Realtime, &registry), Lane::Rt),
            (requests_of_a(Mode::Async, &registry), Lane::Bulk),
            (
                QueueId::Answers(ParticipantId::new("urn:consumer")),
                Lane::Bulk,
            ),
        ] {
            let ack = Command::Ack {
                queue: queue.clone(),
                id,
                reader: 1,
            };
            let nack = Command::Nack {
                queue: queue.clone(),
                id,
                reader: 1,
                delay_ms: 0,
            };
            assert_eq!(Lane::of(&ack, &registry), lane, "{queue:?}");
            assert_eq!(Lane::of(&nack, &registry), lane, "{queue:?}");
            assert_eq!(Lane::of_queue(&queue, &registry), lane, "{queue:?}");
        }
    }
}
