//! Messages sent but not yet acknowledged. Each is kept by its client message id until the
//! server acknowledges it or refuses it for good: it is sent again, with the same id, after
//! every reconnect, and after a backoff when the server refused it for a passing reason
//! (`rate_limited`, `store_unavailable`, `internal`). The server stores a retried id once.
//!
//! A send whose caller stopped waiting (its timeout passed) is forgotten.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;
use triad_protocol::{Ack, ClientMsgId, ErrorCode, Request, RequestId, RoomId};

use crate::backoff::Backoff;
use crate::error::ClientError;

/// Where the answer to a send goes.
pub(crate) type AckReply = oneshot::Sender<Result<Ack, ClientError>>;

/// One unacknowledged message.
#[derive(Debug)]
struct Entry {
    room: RoomId,
    client_msg_id: ClientMsgId,
    body: String,
    /// Callers waiting for the answer (more than one if the same id was sent twice).
    waiters: Vec<AckReply>,
    /// The request id of the attempt on the wire, if one is.
    in_flight: Option<RequestId>,
    /// Not before this instant, after a refusal for a passing reason.
    retry_at: Option<Instant>,
    backoff: Backoff,
}

impl Entry {
    fn abandoned(&self) -> bool {
        self.waiters.iter().all(oneshot::Sender::is_closed)
    }

    fn finish(self, result: &Result<Ack, ClientError>) {
        for waiter in self.waiters {
            // A waiter that gave up (timed out) has nobody to tell.
            waiter.send(result.clone()).ok();
        }
    }
}

/// The unacknowledged messages, in the order they were sent.
#[derive(Debug)]
pub(crate) struct Outbox {
    entries: Vec<Entry>,
    backoff_initial: Duration,
    backoff_max: Duration,
}

impl Outbox {
    /// An empty outbox whose retries back off between the given bounds.
    pub fn new(backoff_initial: Duration, backoff_max: Duration) -> Self {
        Self {
            entries: Vec::new(),
            backoff_initial,
            backoff_max,
        }
    }

    /// How many messages wait for an answer.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Adds a message. A message with an id already waiting gets one more waiter.
    pub fn add(&mut self, room: RoomId, client_msg_id: ClientMsgId, body: String, reply: AckReply) {
        if let Some(entry) = self
            .entries
            .iter_mut()
            .find(|e| e.client_msg_id == client_msg_id)
        {
            entry.waiters.push(reply);
            return;
        }
        self.entries.push(Entry {
            room,
            client_msg_id,
            body,
            waiters: vec![reply],
            in_flight: None,
            retry_at: None,
            backoff: Backoff::new(self.backoff_initial, self.backoff_max),
        });
    }

    /// Forgets messages nobody waits for.
    pub fn prune(&mut self) {
        self.entries.retain(|entry| !entry.abandoned());
    }

    /// The messages to put on the wire now, each marked in flight under the request id
    /// `next_id` gives it.
    pub fn take_due(
        &mut self,
        now: Instant,
        mut next_id: impl FnMut() -> RequestId,
    ) -> Vec<(RequestId, Request)> {
        self.prune();
        let mut due = Vec::new();
        for entry in &mut self.entries {
            if entry.in_flight.is_some() || entry.retry_at.is_some_and(|at| at > now) {
                continue;
            }
            let id = next_id();
            entry.in_flight = Some(id);
            entry.retry_at = None;
            due.push((
                id,
                Request::Send {
                    room: entry.room.clone(),
                    client_msg_id: entry.client_msg_id.clone(),
                    body: entry.body.clone(),
                },
            ));
        }
        due
    }

    /// When the earliest refused message may be sent again.
    pub fn next_retry(&self) -> Option<Instant> {
        self.entries
            .iter()
            .filter(|e| e.in_flight.is_none())
            .filter_map(|e| e.retry_at)
            .min()
    }

    fn position(&self, request: RequestId) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.in_flight == Some(request))
    }

    /// The server stored the message sent as `request`.
    pub fn on_ack(&mut self, request: RequestId, ack: Ack) {
        if let Some(index) = self.position(request) {
            self.entries.remove(index).finish(&Ok(ack));
        }
    }

    /// The server refused the message sent as `request`: back off and retry if the reason
    /// passes, otherwise fail the send.
    pub fn on_error(&mut self, request: RequestId, code: ErrorCode, message: String, now: Instant) {
        let Some(index) = self.position(request) else {
            return;
        };
        if code.is_retryable() {
            let entry = &mut self.entries[index];
            entry.in_flight = None;
            entry.retry_at = Some(now + entry.backoff.next_delay());
            tracing::debug!(client_msg_id = %entry.client_msg_id, %code, "send refused for now; retrying");
        } else {
            self.entries
                .remove(index)
                .finish(&Err(ClientError::Server { code, message }));
        }
    }

    /// The message sent as `request` cannot be sent at all.
    pub fn fail(&mut self, request: RequestId, err: ClientError) {
        if let Some(index) = self.position(request) {
            self.entries.remove(index).finish(&Err(err));
        }
    }

    /// The server answered the send with something other than an ack or an error.
    pub fn on_unexpected(&mut self, request: RequestId, what: &str) {
        if let Some(index) = self.position(request) {
            let err = ClientError::Protocol(format!("`{what}` in answer to `send`"));
            self.entries.remove(index).finish(&Err(err));
        }
    }

    /// The connection dropped: nothing is in flight any more, and everything goes out again
    /// after the next welcome.
    pub fn on_disconnect(&mut self) {
        for entry in &mut self.entries {
            entry.in_flight = None;
            entry.retry_at = None;
        }
    }

    /// Fails every waiting send: the client is stopping.
    pub fn fail_all(&mut self, err: &ClientError) {
        for entry in self.entries.drain(..) {
            entry.finish(&Err(err.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> impl FnMut() -> RequestId {
        let mut next = 0;
        move || {
            next += 1;
            next
        }
    }

    fn add(outbox: &mut Outbox, id: &str) -> oneshot::Receiver<Result<Ack, ClientError>> {
        let (tx, rx) = oneshot::channel();
        let room = RoomId::new("trio-1").expect("valid room id");
        outbox.add(room, ClientMsgId(id.into()), format!("body {id}"), tx);
        rx
    }

    fn ack(id: &str, seq: u64) -> Ack {
        Ack {
            room: RoomId::new("trio-1").expect("valid room id"),
            client_msg_id: ClientMsgId(id.into()),
            seq,
            ts: 0,
            duplicate: false,
        }
    }

    fn sent_ids(due: &[(RequestId, Request)]) -> Vec<String> {
        due.iter()
            .filter_map(|(_, r)| match r {
                Request::Send { client_msg_id, .. } => Some(client_msg_id.0.clone()),
                _ => None,
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn sends_go_out_again_after_a_drop_until_acknowledged() {
        let mut outbox = Outbox::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut next = ids();
        let mut a = add(&mut outbox, "a");
        let mut b = add(&mut outbox, "b");
        let due = outbox.take_due(Instant::now(), &mut next);
        assert_eq!(sent_ids(&due), ["a", "b"]);
        assert!(
            outbox.take_due(Instant::now(), &mut next).is_empty(),
            "in flight once"
        );

        outbox.on_disconnect();
        let due = outbox.take_due(Instant::now(), &mut next);
        assert_eq!(due.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [3, 4]);
        // An ack for the attempt of the old connection is stale.
        outbox.on_ack(1, ack("a", 9));
        assert!(a.try_recv().is_err());
        outbox.on_ack(3, ack("a", 7));
        assert_eq!(a.await.expect("answered"), Ok(ack("a", 7)));
        outbox.on_ack(4, ack("b", 8));
        assert_eq!(b.try_recv().expect("answered"), Ok(ack("b", 8)));
        assert_eq!(outbox.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn passing_refusals_back_off_and_others_fail() {
        let mut outbox = Outbox::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut next = ids();
        let _a = add(&mut outbox, "a");
        let mut b = add(&mut outbox, "b");
        let now = Instant::now();
        outbox.take_due(now, &mut next);
        outbox.on_error(1, ErrorCode::RateLimited, "slow down".into(), now);
        outbox.on_error(2, ErrorCode::NotAMember, "no".into(), now);
        let err = b.try_recv().expect("answered").expect_err("refused");
        assert_eq!(err.code(), Some(ErrorCode::NotAMember));

        let retry = outbox.next_retry().expect("a retry is planned");
        assert!(retry <= now + Duration::from_millis(100));
        let due = outbox.take_due(retry, &mut next);
        assert_eq!(sent_ids(&due), ["a"]);
    }

    #[tokio::test]
    async fn abandoned_sends_are_forgotten_and_duplicates_share_an_entry() {
        let mut outbox = Outbox::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut next = ids();
        drop(add(&mut outbox, "gone"));
        let first = add(&mut outbox, "same");
        let second = add(&mut outbox, "same");
        let due = outbox.take_due(Instant::now(), &mut next);
        assert_eq!(sent_ids(&due), ["same"]);
        outbox.on_ack(due[0].0, ack("same", 1));
        assert_eq!(first.await.expect("answered"), Ok(ack("same", 1)));
        assert_eq!(second.await.expect("answered"), Ok(ack("same", 1)));
    }
}
