//! A bound on one wait: the timer of a write (or read) that may wait for the peer at most
//! `limit` without progress (httpd's `Timeout` on each socket operation).
//!
//! The timer costs nothing until the first time the operation has to wait (most never do):
//! it is made then, and dropped at the next progress, so the next wait starts a fresh limit.
//!
//! May import: nothing of the crate.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;
use tokio::time::Sleep;

/// The stall timer of one operation; see the module documentation.
#[derive(Default)]
pub struct Stall(Option<Pin<Box<Sleep>>>);

impl Stall {
    /// Called when the operation found nothing to do (it returned `Pending`): true once it
    /// has waited `limit` since the first such call after the last progress; otherwise the
    /// task is woken when the limit runs out.
    #[cold]
    pub fn expired(&mut self, limit: Duration, cx: &mut Context<'_>) -> bool {
        let timer = self
            .0
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        timer.as_mut().poll(cx).is_ready()
    }

    /// The operation made progress: the next wait gets a fresh limit.
    pub fn progress(&mut self) {
        self.0 = None;
    }
}
