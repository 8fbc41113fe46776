//! Channels: a FIFO of values between tasks, unbounded or holding at most `cap`, with the
//! tasks blocked on it in the order they blocked (TASKS.md: "first come, first served").
//! This file is the channel as data; blocking and waking are the scheduler's (`mod.rs`).

use std::collections::VecDeque;

use crate::Value;

#[derive(Clone)]
pub struct Channel {
    /// Counts up from 1 per VM (`<channel 3>`).
    pub id: u32,
    /// At most this many values wait in `queue` (None: unbounded).
    pub cap: Option<usize>,
    pub queue: VecDeque<Value>,
    pub closed: bool,
    /// Tasks blocked in `recv` (or `select`), first blocked first.
    pub receivers: VecDeque<u32>,
    /// Tasks blocked in `send` on a full channel, with the value each sends.
    pub senders: VecDeque<(u32, Value)>,
}

impl Channel {
    pub fn new(id: u32, cap: Option<usize>) -> Channel {
        Channel { id, cap, queue: VecDeque::new(), closed: false, receivers: VecDeque::new(), senders: VecDeque::new() }
    }

    pub fn is_full(&self) -> bool {
        self.cap.is_some_and(|c| self.queue.len() >= c)
    }

    /// The values it holds (for the collector): queued ones and blocked senders' ones.
    pub fn values(&self) -> impl Iterator<Item = Value> + '_ {
        self.queue.iter().copied().chain(self.senders.iter().map(|(_, v)| *v))
    }

    /// The bytes the heap counts for it.
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Channel>()
            + (self.queue.capacity() + self.senders.capacity()) * std::mem::size_of::<(u32, Value)>()
            + self.receivers.capacity() * 4
    }
}
