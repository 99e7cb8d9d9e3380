//! Figures that hold up on a noisy machine: medians and percentiles of repeated runs, with
//! 95 % bootstrap confidence intervals, and goals judged by the interval rather than by one
//! number: met or missed only when the whole interval says so, otherwise within noise.

use std::fmt;

/// Resamples per interval: enough that the interval's ends move by well under a percent
/// from one seed to another.
const RESAMPLES: usize = 10_000;

/// A statistic of some runs and its 95 % bootstrap confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub low: f64,
    pub high: f64,
    pub runs: usize,
}

/// Where a goal stands once the interval is taken into account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    /// The interval holds the goal: these runs cannot tell.
    WithinNoise,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Met => "met",
            Verdict::Missed => "**missed**",
            Verdict::WithinNoise => "within noise",
        })
    }
}

/// The median; the mean of the two middle values for an even count. NaN for no values.
pub fn median(values: &[f64]) -> f64 {
    let v = sorted(values);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The nearest-rank percentile `p` (0–100): the smallest value with at least p % of the
/// values at or below it. NaN for no values.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let v = sorted(values);
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

pub fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NAN, f64::max)
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// `statistic` of `values`, with the 2.5th and 97.5th percentiles of the statistic over
/// resamples drawn with replacement. The seed is fixed, so the same runs give the same
/// interval.
pub fn bootstrap(values: &[f64], statistic: fn(&[f64]) -> f64) -> Estimate {
    let mut rng = SplitMix(0x5eed_b0b5);
    let mut resample = vec![0.0; values.len()];
    let mut stats = Vec::with_capacity(RESAMPLES);
    if !values.is_empty() {
        for _ in 0..RESAMPLES {
            for slot in resample.iter_mut() {
                *slot = values[rng.below(values.len())];
            }
            stats.push(statistic(&resample));
        }
    }
    Estimate {
        value: statistic(values),
        low: percentile(&stats, 2.5),
        high: percentile(&stats, 97.5),
        runs: values.len(),
    }
}

impl Estimate {
    /// Judged against a floor: met when the whole interval is at or above it.
    pub fn at_least(&self, goal: f64) -> Verdict {
        if self.low >= goal {
            Verdict::Met
        } else if self.high < goal {
            Verdict::Missed
        } else {
            Verdict::WithinNoise
        }
    }

    /// Judged against a ceiling: met when the whole interval is at or below it.
    pub fn at_most(&self, goal: f64) -> Verdict {
        if self.high <= goal {
            Verdict::Met
        } else if self.low > goal {
            Verdict::Missed
        } else {
            Verdict::WithinNoise
        }
    }

    /// Every figure multiplied by `k` (a ratio as a percentage, seconds as milliseconds).
    pub fn scaled(self, k: f64) -> Estimate {
        Estimate { value: self.value * k, low: self.low * k, high: self.high * k, ..self }
    }

    /// `value [low, high]` with `decimals` places.
    pub fn show(&self, decimals: usize) -> String {
        format!("{:.decimals$} [{:.decimals$}, {:.decimals$}]", self.value, self.low, self.high)
    }
}

/// SplitMix64: the resampling needs uniform indexes from a fixed seed, nothing stronger, and
/// the generator is six lines where a crate would bring its own seeding machinery.
struct SplitMix(u64);

impl SplitMix {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_percentiles_of_small_sets() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 95.0), 19.0);
        assert_eq!(percentile(&v, 100.0), 20.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(max(&v), 20.0);
    }

    #[test]
    fn a_steady_figure_has_a_tight_interval_and_a_noisy_one_a_wide_one() {
        let steady = [1.00, 1.01, 0.99, 1.00, 1.02, 0.98, 1.00, 1.01, 0.99, 1.00];
        let e = bootstrap(&steady, median);
        assert_eq!(e.runs, 10);
        assert!(e.low >= 0.99 && e.high <= 1.01, "{e:?}");
        assert_eq!(e.at_least(0.95), Verdict::Met);
        assert_eq!(e.at_least(1.05), Verdict::Missed);
        let noisy = [0.70, 1.30, 0.80, 1.20, 0.90, 1.10, 0.75, 1.25, 0.85, 1.15];
        let n = bootstrap(&noisy, median);
        assert!(n.low < 0.95 && n.high > 1.05, "{n:?}");
        assert_eq!(n.at_least(0.95), Verdict::WithinNoise);
        assert_eq!(n.at_most(0.95), Verdict::WithinNoise);
    }

    #[test]
    fn the_same_runs_give_the_same_interval() {
        let v = [5.0, 9.0, 2.0, 7.0, 4.0, 8.0, 1.0, 6.0, 3.0, 10.0, 4.5];
        assert_eq!(bootstrap(&v, median), bootstrap(&v, median));
        let p95 = bootstrap(&v, |v| percentile(v, 95.0));
        assert!(p95.low <= p95.value && p95.value <= p95.high, "{p95:?}");
    }

    #[test]
    fn ceilings_are_judged_by_the_interval() {
        let e = Estimate { value: 0.4, low: 0.3, high: 0.6, runs: 30 };
        assert_eq!(e.at_most(0.5), Verdict::WithinNoise);
        assert_eq!(e.at_most(0.7), Verdict::Met);
        assert_eq!(e.at_most(0.2), Verdict::Missed);
        assert_eq!(e.scaled(1000.0).show(0), "400 [300, 600]");
    }
}
