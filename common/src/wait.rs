//! Waiting for the cluster to reach a state, one way for every command:
//! a check run every `every` until it reports the state reached, under one
//! deadline that also bounds a request hanging on a stalled API server.
//!
//! The checks read with `get`, so a wait needs no more than the permission
//! the reading itself needs (least privilege: no `list`/`watch`, which
//! kube's watch-based `runtime::wait::await_condition` would take; that one
//! is used where phd holds cluster-wide rights anyway, such as waiting for
//! CustomResourceDefinitions to be Established in `apply`).

use std::future::Future;
use std::time::{Duration, Instant};

/// How long past the deadline a check that is still running may take before
/// the wait calls the API server stalled.
pub const GRACE: Duration = Duration::from_secs(1);

/// Why [`until`] ended without the state it waited for.
#[derive(Debug)]
pub enum WaitError<E> {
    /// The check itself failed (its error, such as a refused request).
    Failed(E),
    /// The state was not reached within the timeout; the check answered each time.
    TimedOut { timeout: Duration },
    /// A check did not answer within the timeout (plus [`GRACE`]): the API
    /// server stalled or the connection hangs.
    Stalled { timeout: Duration },
}

/// Runs `check` (given the time waited so far) every `every` until it returns
/// `Ok(Some(value))`, and returns that value.
///
/// # Errors
/// [`WaitError::Failed`] with the check's error; [`WaitError::TimedOut`]
/// once `timeout` has passed and the last check still returned `None`;
/// [`WaitError::Stalled`] when one check did not finish by the deadline.
pub async fn until<T, E, F, Fut>(
    timeout: Duration,
    every: Duration,
    mut check: F,
) -> Result<T, WaitError<E>>
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Result<Option<T>, E>>,
{
    let start = Instant::now();
    loop {
        let remaining = timeout.saturating_sub(start.elapsed()) + GRACE;
        match tokio::time::timeout(remaining, check(start.elapsed())).await {
            Err(_) => return Err(WaitError::Stalled { timeout }),
            Ok(Err(error)) => return Err(WaitError::Failed(error)),
            Ok(Ok(Some(value))) => return Ok(value),
            Ok(Ok(None)) if start.elapsed() >= timeout => {
                return Err(WaitError::TimedOut { timeout });
            }
            Ok(Ok(None)) => tokio::time::sleep(every).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn returns_the_first_value_a_check_gives() {
        let calls = AtomicU32::new(0);
        let value = until::<_, (), _, _>(Duration::from_secs(5), Duration::from_millis(1), |_| {
            let call = calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok((call == 2).then_some(call)) }
        })
        .await;
        assert!(matches!(value, Ok(2)));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_failed_check_ends_the_wait_with_its_error() {
        let result = until::<(), _, _, _>(
            Duration::from_secs(5),
            Duration::from_millis(1),
            |_| async { Err("refused") },
        )
        .await;
        assert!(matches!(result, Err(WaitError::Failed("refused"))));
    }

    #[tokio::test]
    async fn a_state_never_reached_times_out_and_a_hanging_check_stalls() {
        let timeout = Duration::from_millis(50);
        let result =
            until::<(), (), _, _>(timeout, Duration::from_millis(5), |_| async { Ok(None) }).await;
        assert!(matches!(result, Err(WaitError::TimedOut { .. })));
        let result = until::<(), (), _, _>(timeout, Duration::from_millis(5), |_| async {
            std::future::pending().await
        })
        .await;
        assert!(matches!(result, Err(WaitError::Stalled { .. })));
    }
}
