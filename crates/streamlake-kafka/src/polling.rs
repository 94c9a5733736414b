//! Delivery reports served on the async runtime, woken by librdkafka itself.
//!
//! librdkafka puts delivery reports on its main queue, which somebody has to poll. rdkafka's
//! `ThreadedProducer` dedicates a thread to it: the broker thread signals a condition
//! variable, the polling thread wakes, runs the reports, and wakes the task waiting for them.
//! For a request of one event that is two thread wake-ups per round trip.
//!
//! Here librdkafka's queue event callback (`rd_kafka_queue_cb_event_enable`, called when a
//! report lands on an empty queue) wakes a task on the runtime directly, and that task polls
//! the queue until it is empty: the reports run on a runtime thread, next to the tasks they
//! wake. Should the runtime stop while the producer lives on (or there be none when it is
//! created), a thread polls in its place, as rdkafka's would.
//!
//! The only `unsafe` code of the crate is here: four librdkafka calls and the callback.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::task::AtomicWaker;
use rdkafka::bindings as rdsys;
use rdkafka::config::FromClientConfigAndContext as _;
use rdkafka::error::KafkaResult;
use rdkafka::producer::BaseProducer;
use rdkafka::ClientConfig;

use crate::reports::Reporting;

/// Events polled per turn of the task before it yields to others.
const EVENTS_PER_TURN: usize = 64;

/// A librdkafka producer whose delivery reports are served by a task on the runtime it was
/// created on (see the module docs). Dereferences to rdkafka's `BaseProducer`.
pub(crate) struct RawProducer {
    // Fields drop in this order: the queue handle, then the producer (which purges and
    // flushes what it still holds, serving those reports on the dropping thread), then the
    // signal the callback used.
    main: MainQueue,
    base: BaseProducer<Reporting>,
    signal: Arc<Signal>,
}

impl std::fmt::Debug for RawProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawProducer")
            .field("queued_events", &self.main.len())
            .finish()
    }
}

impl std::ops::Deref for RawProducer {
    type Target = BaseProducer<Reporting>;

    fn deref(&self) -> &Self::Target {
        &self.base
    }
}

impl RawProducer {
    /// Creates the producer and starts serving its reports.
    pub(crate) fn create(config: &ClientConfig) -> KafkaResult<Arc<Self>> {
        let base = BaseProducer::from_config_and_context(config, Reporting)?;
        let main = MainQueue::of(&base);
        let signal = Arc::new(Signal::default());
        main.wake_on_event(&signal);
        let producer = Arc::new(Self { main, base, signal });
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(Pump {
                producer: Arc::downgrade(&producer),
                signal: Arc::clone(&producer.signal),
            })),
            Err(_) => serve_from_thread(Arc::downgrade(&producer)),
        }
        Ok(producer)
    }

    /// Polls reports until the main queue is empty, or `budget` events were polled: whether
    /// the queue was emptied.
    fn serve(&self, budget: usize) -> bool {
        for _ in 0..budget {
            if self.main.len() == 0 {
                return true;
            }
            self.base.poll(Duration::ZERO);
        }
        self.main.len() == 0
    }
}

impl Drop for RawProducer {
    fn drop(&mut self) {
        // After this returns the callback runs no more (librdkafka calls it under the queue's
        // lock, and this takes that lock), so the signal may go.
        self.main.stop_waking();
        // The task finds the producer gone and ends.
        self.signal.waker.wake();
    }
}

/// What librdkafka's callback wakes.
#[derive(Debug, Default)]
struct Signal {
    waker: AtomicWaker,
}

/// Called by librdkafka, on one of its threads, when an event lands on the empty main queue.
unsafe extern "C" fn event_arrived(_rk: *mut rdsys::rd_kafka_t, opaque: *mut c_void) {
    // SAFETY: `opaque` is the address of the `Signal` its `RawProducer` holds in an `Arc`;
    // the producer's `Drop` disables this callback before that `Arc` is released.
    let signal = unsafe { &*opaque.cast::<Signal>() };
    signal.waker.wake();
}

/// A handle on a producer's main queue, where its delivery reports arrive.
struct MainQueue(*mut rdsys::rd_kafka_queue_t);

// SAFETY: librdkafka queue handles may be used from any thread.
unsafe impl Send for MainQueue {}
// SAFETY: as above; every operation used here takes the queue's lock.
unsafe impl Sync for MainQueue {}

impl MainQueue {
    fn of(producer: &BaseProducer<Reporting>) -> Self {
        use rdkafka::producer::Producer as _;
        // SAFETY: the client pointer is valid while `producer` lives; the queue handle
        // returned holds its own reference and is destroyed in `Drop`, before the producer.
        Self(unsafe { rdsys::rd_kafka_queue_get_main(producer.client().native_ptr()) })
    }

    /// Events waiting in the queue.
    fn len(&self) -> usize {
        // SAFETY: the handle is valid until `Drop`.
        unsafe { rdsys::rd_kafka_queue_length(self.0) }
    }

    /// Has librdkafka wake `signal` whenever an event lands on the empty queue.
    fn wake_on_event(&self, signal: &Arc<Signal>) {
        let opaque = Arc::as_ptr(signal).cast::<c_void>().cast_mut();
        // SAFETY: the handle is valid; `opaque` stays valid until `stop_waking` (see
        // `event_arrived`).
        unsafe { rdsys::rd_kafka_queue_cb_event_enable(self.0, Some(event_arrived), opaque) }
    }

    fn stop_waking(&self) {
        // SAFETY: the handle is valid; no callback means no opaque.
        unsafe { rdsys::rd_kafka_queue_cb_event_enable(self.0, None, std::ptr::null_mut()) }
    }
}

impl Drop for MainQueue {
    fn drop(&mut self) {
        // SAFETY: the handle came from `rd_kafka_queue_get_main` and is destroyed once.
        unsafe { rdsys::rd_kafka_queue_destroy(self.0) }
    }
}

/// The task serving a producer's reports, for as long as the producer lives.
struct Pump {
    producer: Weak<RawProducer>,
    signal: Arc<Signal>,
}

impl Future for Pump {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // Registered before looking at the queue: an event that lands once it looked empty
        // wakes this task again.
        this.signal.waker.register(cx.waker());
        let Some(producer) = this.producer.upgrade() else {
            return Poll::Ready(());
        };
        if !producer.serve(EVENTS_PER_TURN) {
            // More to do: come back after the other tasks had their turn.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        // Dropped while the producer lives on: the runtime stopped.
        if self.producer.strong_count() > 0 {
            serve_from_thread(std::mem::take(&mut self.producer));
        }
    }
}

/// Serves a producer's reports from a thread of its own, until the producer is gone.
fn serve_from_thread(producer: Weak<RawProducer>) {
    let spawned = std::thread::Builder::new()
        .name("producer reports".into())
        .spawn(move || {
            while let Some(p) = producer.upgrade() {
                p.base.poll(Duration::from_millis(100));
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start a thread for the producer's reports");
    }
}
