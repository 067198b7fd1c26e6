//! Call records: start, end and each participant's time in the call, written to the store
//! (for attendance and reports) by one task, in the order the changes happened.

use tokio::sync::mpsc;

use crate::store::{CallRecord, SharedStore};

/// Records waiting to be written before new ones are dropped (and logged).
const QUEUE_CAPACITY: usize = 1024;

/// The writer of call records: a task that stores each record it is given, in order.
#[derive(Debug, Clone)]
pub struct RecordWriter {
    tx: mpsc::Sender<CallRecord>,
}

impl RecordWriter {
    /// Starts the writing task (it ends once every writer handle is dropped). Must be
    /// called within a tokio runtime.
    pub fn start(store: SharedStore) -> Self {
        let (tx, mut rx) = mpsc::channel::<CallRecord>(QUEUE_CAPACITY);
        tokio::spawn(async move {
            while let Some(record) = rx.recv().await {
                if let Err(err) = store.record_call(&record).await {
                    tracing::warn!(call = %record.call, room = %record.room, error = %err,
                        "a call record was not stored");
                }
            }
        });
        Self { tx }
    }

    /// Queues a record without waiting. Called under the call's lock, so the records of
    /// one call are queued in the order of its changes.
    pub fn submit(&self, record: CallRecord) {
        if let Err(err) = self.tx.try_send(record) {
            let record = match err {
                mpsc::error::TrySendError::Full(record)
                | mpsc::error::TrySendError::Closed(record) => record,
            };
            tracing::warn!(call = %record.call, "the call record queue is full; a record was dropped");
        }
    }
}
