//! The charger's outbox of transaction messages (StartTransaction, MeterValues,
//! StopTransaction). OCPP 1.6 §4.10: these must reach the central system, in order, even across
//! a lost connection, so each stays queued until answered and is sent again after a reconnect
//! before anything newer. Pure bookkeeping; the station does the sending.

use std::collections::VecDeque;

use serde_json::Value;

/// The transaction-related actions a charger must deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxAction {
    StartTransaction,
    MeterValues,
    StopTransaction,
}

impl TxAction {
    pub fn name(self) -> &'static str {
        match self {
            TxAction::StartTransaction => "StartTransaction",
            TxAction::MeterValues => "MeterValues",
            TxAction::StopTransaction => "StopTransaction",
        }
    }
}

/// One queued message. Its payload is fixed when the event happens (the timestamp says when
/// the charger started, sampled or stopped, not when the message finally got through).
#[derive(Debug, Clone, PartialEq)]
pub struct TxMessage {
    pub action: TxAction,
    pub connector: u32,
    pub payload: Value,
    /// Sends so far; more than one means it was re-sent.
    pub sends: u32,
    /// Sends that got no answer in time (not counting a lost connection).
    pub timeouts: u32,
}

/// FIFO of unanswered transaction messages; the front is the one in flight.
#[derive(Debug, Clone)]
pub struct TxQueue {
    items: VecDeque<TxMessage>,
    capacity: usize,
    dropped: u64,
}

impl TxQueue {
    /// At most `capacity` messages (at least 2); see `push` for what gives way.
    pub fn new(capacity: usize) -> TxQueue {
        TxQueue {
            items: VecDeque::new(),
            capacity: capacity.max(2),
            dropped: 0,
        }
    }

    /// Queues a message behind every older one. When full, the oldest MeterValues not in
    /// flight gives way, as on real chargers: samples are expendable, the start and stop of
    /// a transaction (what it bills) are not. Returns false if nothing could give way and the
    /// new message was dropped instead.
    pub fn push(&mut self, action: TxAction, connector: u32, payload: Value) -> bool {
        if self.items.len() >= self.capacity {
            let expendable = self
                .items
                .iter()
                .skip(1)
                .position(|m| m.action == TxAction::MeterValues)
                .map(|p| p + 1);
            match expendable {
                Some(pos) => {
                    self.items.remove(pos);
                    self.dropped += 1;
                }
                None if action == TxAction::MeterValues => {
                    self.dropped += 1;
                    return false;
                }
                // A start or stop is kept even past the cap: losing it loses a bill.
                None => {}
            }
        }
        self.items.push_back(TxMessage {
            action,
            connector,
            payload,
            sends: 0,
            timeouts: 0,
        });
        true
    }

    /// The next message to send (again, if it was sent before and never answered).
    pub fn front(&self) -> Option<&TxMessage> {
        self.items.front()
    }

    /// Notes one more send of the front message; returns whether it is a re-send.
    pub fn mark_sent(&mut self) -> bool {
        match self.items.front_mut() {
            Some(m) => {
                m.sends += 1;
                m.sends > 1
            }
            None => false,
        }
    }

    /// The front message got no answer in time; returns how many times that has happened.
    pub fn mark_timed_out(&mut self) -> u32 {
        match self.items.front_mut() {
            Some(m) => {
                m.timeouts += 1;
                m.timeouts
            }
            None => 0,
        }
    }

    /// The front message was answered (or given up on): remove and return it.
    pub fn pop(&mut self) -> Option<TxMessage> {
        self.items.pop_front()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Messages that gave way to the capacity limit.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Every queued message, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &TxMessage> {
        self.items.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn actions(queue: &TxQueue) -> Vec<(TxAction, i64)> {
        queue
            .iter()
            .map(|m| (m.action, m.payload["n"].as_i64().unwrap()))
            .collect()
    }

    #[test]
    fn unanswered_messages_are_resent_first_in_order() {
        use TxAction::*;
        let mut queue = TxQueue::new(10);
        queue.push(StartTransaction, 1, json!({"n": 1}));
        queue.push(MeterValues, 1, json!({"n": 2}));
        // Sent, then the connection dropped before the answer: it stays at the front.
        assert!(!queue.mark_sent());
        queue.push(StopTransaction, 1, json!({"n": 3}));
        assert_eq!(queue.front().unwrap().payload["n"], 1);
        assert!(queue.mark_sent(), "the second send is a re-send");
        assert_eq!(queue.pop().unwrap().sends, 2);
        assert_eq!(
            actions(&queue),
            [(MeterValues, 2), (StopTransaction, 3)],
            "older messages go before newer ones"
        );
        assert!(!queue.mark_sent());
        assert_eq!(queue.mark_timed_out(), 1);
        assert_eq!(queue.mark_timed_out(), 2);
        queue.pop();
        queue.pop();
        assert!(queue.is_empty());
        assert!(queue.pop().is_none());
        assert!(!queue.mark_sent());
    }

    #[test]
    fn when_full_meter_values_give_way_but_starts_and_stops_never() {
        use TxAction::*;
        let mut queue = TxQueue::new(3);
        queue.push(MeterValues, 1, json!({"n": 1})); // in flight: kept
        queue.push(StartTransaction, 2, json!({"n": 2}));
        queue.push(MeterValues, 1, json!({"n": 3}));
        assert!(queue.push(StopTransaction, 1, json!({"n": 4})));
        assert_eq!(
            actions(&queue),
            [
                (MeterValues, 1),
                (StartTransaction, 2),
                (StopTransaction, 4)
            ]
        );
        assert_eq!(queue.dropped(), 1);
        // Nothing expendable behind the front: a new sample is the one dropped...
        assert!(!queue.push(MeterValues, 1, json!({"n": 5})));
        assert_eq!(queue.dropped(), 2);
        // ...but a stop still gets in.
        assert!(queue.push(StopTransaction, 2, json!({"n": 6})));
        assert_eq!(queue.len(), 4);
    }
}
