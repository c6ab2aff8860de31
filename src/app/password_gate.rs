//! Password hashing and checks (argon2id) each take about 19 MiB and tens of milliseconds.
//! They run on the blocking pool at most `permits` at a time, so their memory stays below
//! `permits × 19 MiB` however many clients try at once. At most `queue` more wait for a
//! turn; a check beyond that is refused at once (503 with `Retry-After`).

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::{AppError, blocking};

/// Memory one argon2id computation takes with the parameters snip uses (the crate's
/// defaults: m = 19,456 KiB).
pub const ARGON2_MEMORY_BYTES: usize = 19_456 * 1024;

/// The gate password work passes through.
pub struct PasswordGate {
    /// Turns to compute: one per permit.
    running: Arc<Semaphore>,
    /// Places to be in: computing or waiting.
    admitted: Arc<Semaphore>,
    permits: usize,
}

impl PasswordGate {
    /// A gate running `permits` computations at once, with `queue` more waiting.
    pub fn new(permits: usize, queue: usize) -> Self {
        let permits = permits.max(1);
        Self {
            running: Arc::new(Semaphore::new(permits)),
            admitted: Arc::new(Semaphore::new(permits + queue)),
            permits,
        }
    }

    /// How many computations run at once at most.
    pub fn permits(&self) -> usize {
        self.permits
    }

    /// Runs `f` (a password check) when a turn is free; refused at once with
    /// [`AppError::Busy`] when the queue is full. The turn is held until `f` returns, even
    /// if the request is dropped meanwhile.
    pub async fn check<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let place =
            self.admitted.clone().try_acquire_owned().map_err(|_| {
                AppError::Busy("too many password checks at once; try again shortly")
            })?;
        self.run(place, f).await
    }

    /// Runs `f` (hashing a new password) when a turn is free, waiting for a place in the
    /// queue: link writes are already bounded by their rate limit.
    pub async fn hash<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let place = self
            .admitted
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| AppError::Busy("shutting down"))?;
        self.run(place, f).await
    }

    async fn run<T: Send + 'static>(
        &self,
        place: tokio::sync::OwnedSemaphorePermit,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let turn = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| AppError::Busy("shutting down"))?;
        blocking(move || {
            let _held = (place, turn);
            f()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_at_most_permits_at_once_and_refuses_past_the_queue() {
        let gate = Arc::new(PasswordGate::new(2, 3));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (gate, running, most) = (gate.clone(), running.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                gate.check(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(50));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        let mut done = 0;
        let mut busy = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => done += 1,
                Err(AppError::Busy(_)) => busy += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
        assert!(done >= 5, "{done}");
        assert!(busy > 0 && done + busy == 20, "{done} {busy}");
    }
}
