//! Delivery reports for records sent together: one shared [`Reports`] per batch, filled in as
//! librdkafka's reports are served ([`crate::polling`]), and one wake-up of the waiting task
//! when the last report is in.
//!
//! rdkafka's `FutureProducer` gives every record its own channel and future: per record a
//! channel allocation, a boxed future in a `FuturesUnordered`, and a wake-up of the waiting
//! task for each report. A gateway request of a hundred events waits for all of them anyway,
//! so a batch here shares one [`Reports`]: per record a small [`Ticket`] (the batch and the
//! record's index) rides along as librdkafka's delivery opaque, and its report is written into
//! the record's slot.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::Instant;

use futures::task::AtomicWaker;
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::ClientContext;

/// The producer's context: routes each delivery report to its record's slot.
/// ([`crate::polling`] has the reports served.)
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Reporting;

impl ClientContext for Reporting {}

impl ProducerContext for Reporting {
    type DeliveryOpaque = Box<Ticket>;

    fn delivery(&self, result: &DeliveryResult<'_>, ticket: Box<Ticket>) {
        let report = match result {
            Ok(message) => Report::Stored {
                partition: message.partition(),
                offset: message.offset(),
            },
            Err((error, _)) => Report::Failed(error.clone()),
        };
        ticket.complete(report);
    }
}

/// What became of one record.
#[derive(Debug, Clone)]
pub(crate) enum Report {
    /// Acknowledged: where the broker stored it.
    Stored {
        /// Partition.
        partition: i32,
        /// Offset.
        offset: i64,
    },
    /// Refused when queued (the local queue full, a record too large), with the records
    /// queued then.
    Refused(KafkaError, i32),
    /// librdkafka reported a failure.
    Failed(KafkaError),
    /// The record left librdkafka without a report (its producer was destroyed).
    Closed,
}

/// One record's report and when it came.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) report: Report,
    pub(crate) at: Instant,
}

/// The reports of a batch of records, filled in as they come.
#[derive(Debug)]
pub(crate) struct Reports {
    slots: Box<[OnceLock<Slot>]>,
    remaining: AtomicUsize,
    waker: AtomicWaker,
}

impl Reports {
    /// Reports for `records` records, none in yet.
    pub(crate) fn new(records: usize) -> Arc<Self> {
        Arc::new(Self {
            slots: (0..records).map(|_| OnceLock::new()).collect(),
            remaining: AtomicUsize::new(records),
            waker: AtomicWaker::new(),
        })
    }

    /// The ticket of record `index`, to travel with it through librdkafka.
    pub(crate) fn ticket(self: &Arc<Self>, index: usize) -> Box<Ticket> {
        Box::new(Ticket {
            reports: Arc::clone(self),
            index,
        })
    }

    /// Records report `report`; the first report of a record counts, later ones are ignored.
    /// The last record's report wakes the waiting task.
    pub(crate) fn complete(&self, index: usize, report: Report) {
        let slot = Slot {
            report,
            at: Instant::now(),
        };
        if self.slots[index].set(slot).is_ok() && self.remaining.fetch_sub(1, Ordering::AcqRel) == 1
        {
            self.waker.wake();
        }
    }

    /// Record `index`'s report, if it is in.
    pub(crate) fn get(&self, index: usize) -> Option<&Slot> {
        self.slots[index].get()
    }

    /// Waits until every record's report is in.
    pub(crate) async fn all_in(&self) {
        futures::future::poll_fn(|cx| {
            if self.remaining.load(Ordering::Acquire) == 0 {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            if self.remaining.load(Ordering::Acquire) == 0 {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

/// A record's place in its batch's [`Reports`]: librdkafka's delivery opaque.
#[derive(Debug)]
pub(crate) struct Ticket {
    reports: Arc<Reports>,
    index: usize,
}

impl Ticket {
    fn complete(&self, report: Report) {
        self.reports.complete(self.index, report);
    }
}

impl Drop for Ticket {
    /// A record whose ticket goes without a report (refused at send, or its producer destroyed
    /// before reporting) still ends: refusals are recorded before the ticket drops, so this
    /// only ever records [`Report::Closed`].
    fn drop(&mut self) {
        if self.reports.get(self.index).is_none() {
            self.complete(Report::Closed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_report_ends_the_wait_and_a_dropped_ticket_is_closed() {
        let reports = Reports::new(3);
        let first = reports.ticket(0);
        let second = reports.ticket(1);
        first.complete(Report::Stored {
            partition: 2,
            offset: 7,
        });
        drop(first);
        reports.complete(2, Report::Failed(KafkaError::Canceled));
        assert!(futures::FutureExt::now_or_never(reports.all_in()).is_none());
        drop(second);
        assert!(futures::FutureExt::now_or_never(reports.all_in()).is_some());
        assert!(matches!(
            reports.get(0).map(|s| &s.report),
            Some(Report::Stored {
                partition: 2,
                offset: 7
            })
        ));
        assert!(matches!(
            reports.get(1).map(|s| &s.report),
            Some(Report::Closed)
        ));
        // A second report of the same record changes nothing.
        reports.complete(0, Report::Closed);
        assert!(matches!(
            reports.get(0).map(|s| &s.report),
            Some(Report::Stored { .. })
        ));
    }
}
