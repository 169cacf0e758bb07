//! A wake-up flag between tasks of one executor: raised by one task, awaited
//! by another. Raising twice before the wait counts once, so it never queues.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// A single-threaded, coalescing wake-up.
#[derive(Debug, Default)]
pub(crate) struct LocalSignal {
    raised: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl LocalSignal {
    /// Raises the flag and wakes the waiting task, if any.
    pub(crate) fn raise(&self) {
        self.raised.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Resolves once the flag is raised (at once if it already is), lowering it.
    pub(crate) fn wait(&self) -> SignalWait<'_> {
        SignalWait { signal: self }
    }
}

/// Future of [`LocalSignal::wait`].
pub(crate) struct SignalWait<'a> {
    signal: &'a LocalSignal,
}

impl Future for SignalWait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.raised.replace(false) {
            return Poll::Ready(());
        }
        *self.signal.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}
