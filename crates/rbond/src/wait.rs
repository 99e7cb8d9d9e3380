//! Waiting for something to become true, for so long at most.

use std::time::{Duration, Instant};

/// Asks `ready` every `every` until it says yes (`Ok(true)`), fails (its error), or `limit`
/// has passed (`Ok(false)`). It is asked once more at the limit, so a slow machine that got
/// there just in time is not failed for it.
pub fn until(
    limit: Duration,
    every: Duration,
    mut ready: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<bool> {
    let end = Instant::now() + limit;
    loop {
        if ready()? {
            return Ok(true);
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return ready();
        }
        std::thread::sleep(every.min(left));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_stops_at_yes_at_an_error_or_at_the_limit() {
        let mut n = 0;
        assert!(
            until(Duration::from_secs(5), Duration::ZERO, || Ok({
                n += 1;
                n == 3
            }))
            .unwrap()
        );
        assert_eq!(n, 3);
        let start = Instant::now();
        assert!(!until(Duration::from_millis(30), Duration::from_millis(5), || Ok(false)).unwrap());
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert!(until(Duration::from_secs(5), Duration::ZERO, || anyhow::bail!("no")).is_err());
    }
}
