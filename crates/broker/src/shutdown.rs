//! The broker's stop signal (mini-redis's `Shutdown` is the model): one sender, held by
//! whoever decides to stop, and a [`Stop`] receiver in every task and connection, which
//! waits for it only where stopping is safe — between requests, between ticks, between
//! partitions — so no task is cut in the middle of a write.
//!
//! Invariant: a leaf — this module imports nothing from the crate.

use tokio::sync::watch;

/// Sends the stop signal; dropping it also stops every receiver.
pub struct StopSender(watch::Sender<bool>);

/// A receiver of the stop signal; clones are independent.
#[derive(Clone)]
pub struct Stop(watch::Receiver<bool>);

pub fn channel() -> (StopSender, Stop) {
    let (tx, rx) = watch::channel(false);
    (StopSender(tx), Stop(rx))
}

impl StopSender {
    pub fn stop(&self) {
        self.0.send_replace(true);
    }

    pub fn subscribe(&self) -> Stop {
        Stop(self.0.subscribe())
    }
}

impl Stop {
    /// Resolves once the stop signal is sent (or its sender is gone).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// Whether the stop signal has been sent, for loops on blocking threads.
    pub fn is_set(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_receiver_sees_the_signal() {
        let (tx, mut a) = channel();
        let b = tx.subscribe();
        assert!(!a.is_set() && !b.is_set());
        tx.stop();
        a.wait().await;
        assert!(b.is_set());
    }

    #[tokio::test]
    async fn a_dropped_sender_stops_too() {
        let (tx, mut a) = channel();
        drop(tx);
        a.wait().await;
        assert!(a.is_set());
    }
}
