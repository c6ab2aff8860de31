//! Password hashing and checks (argon2id) each take about 19 MiB and tens of milliseconds.
//! They run on `permits` threads of their own, so their memory stays below
//! `permits × 19 MiB` however many clients try at once, and stays there afterwards: each
//! thread reuses the memory it freed. At most `queue` more checks wait for a turn; a check
//! beyond that is refused at once (503 with `Retry-After`).

use std::sync::{Arc, Mutex, mpsc};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::AppError;

/// Memory one argon2id computation takes with the parameters snip uses (the crate's
/// defaults: m = 19,456 KiB).
pub const ARGON2_MEMORY_BYTES: usize = 19_456 * 1024;

type Job = Box<dyn FnOnce() + Send>;

/// The gate password work passes through.
pub struct PasswordGate {
    /// Work for the threads; they stop when the gate is dropped.
    jobs: mpsc::Sender<Job>,
    /// Places to be in: computing or waiting.
    admitted: Arc<Semaphore>,
    permits: usize,
}

impl PasswordGate {
    /// A gate running `permits` computations at once, with `queue` more waiting.
    pub fn new(permits: usize, queue: usize) -> Self {
        let permits = permits.max(1);
        let (send, receive) = mpsc::channel::<Job>();
        let receive = Arc::new(Mutex::new(receive));
        for n in 0..permits {
            let receive = receive.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("snip-password-{n}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while taking the next job.
                        let job = match receive.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        // A panic loses one answer (a 500), not the thread.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password thread");
            }
        }
        Self {
            jobs: send,
            admitted: Arc::new(Semaphore::new(permits + queue)),
            permits,
        }
    }

    /// How many computations run at once at most.
    pub fn permits(&self) -> usize {
        self.permits
    }

    /// Runs `f` (a password check) when a turn is free; refused at once with
    /// [`AppError::Busy`] when the queue is full. The place is held until `f` returns, even
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
        place: OwnedSemaphorePermit,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let (done, answer) = oneshot::channel();
        let job: Job = Box::new(move || {
            let value = f();
            drop(place);
            let _ = done.send(value);
        });
        if self.jobs.send(job).is_err() {
            return Err(AppError::Internal(anyhow::anyhow!(
                "the password threads have stopped"
            )));
        }
        answer
            .await
            .map_err(|_| AppError::Internal(anyhow::anyhow!("a password check failed")))
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
