//! Is a file's figure (its valid rows, its error rate) far from its feed's history? A
//! pure function of numbers.
//!
//! The history is the feed's last completed files on the file's weekday when there are
//! at least `min_history` of them, else all of its last files. Against it the figure's
//! robust z is `0.6745 · (x − median) / MAD` (MAD: the median of the absolute deviations
//! from the median; 0.6745 makes it comparable to a normal z). A file is anomalous when
//! |z| exceeds `robust_z` **and** the change |x − median| exceeds a floor; when MAD is 0
//! (a history of identical figures) the floor alone decides. With fewer than
//! `min_history` files in all there is no statistic: only the static bounds, if any,
//! which apply in every case. Median and MAD, not mean and standard deviation: one bad
//! night inflates σ and hides the next one, while it barely moves the median and MAD
//! (docs/decisions.md, "Alerts on volume and error rate").

use serde::Serialize;

/// The scale that makes MAD comparable to a standard deviation (Iglewicz and Hoaglin).
const CONSISTENCY: f64 = 0.6745;

/// How a figure is judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    /// |z| beyond this…
    pub robust_z: f64,
    /// …and a change beyond this (in the figure's unit).
    pub floor: f64,
    /// Files of history needed for the statistic.
    pub min_history: usize,
    /// Static bounds, if configured.
    pub low: Option<f64>,
    /// Static bounds, if configured.
    pub high: Option<f64>,
}

/// Which history a figure was compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// The files of the same weekday.
    SameWeekday,
    /// All the last files.
    AllDays,
    /// Too little history: the static bounds only.
    StaticOnly,
}

/// What the comparison found: the figures an alert quotes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// The file's figure.
    pub value: f64,
    /// The history's median.
    pub median: Option<f64>,
    /// The history's median absolute deviation.
    pub mad: Option<f64>,
    /// The robust z (none when MAD is 0 or there is no statistic).
    pub z: Option<f64>,
    /// Files of history compared with.
    pub history: usize,
    /// Which history.
    pub basis: Basis,
    /// Anomalous?
    pub anomalous: bool,
    /// Why (or why not), for people.
    pub reason: String,
}

/// Judges `value` against the same weekday's history and all of it.
pub fn judge(value: f64, same_weekday: &[f64], all: &[f64], rule: &Rule) -> Figures {
    let (basis, history) = if same_weekday.len() >= rule.min_history {
        (Basis::SameWeekday, same_weekday)
    } else if all.len() >= rule.min_history {
        (Basis::AllDays, all)
    } else {
        (Basis::StaticOnly, &[][..])
    };
    let mut figures = Figures {
        value,
        median: None,
        mad: None,
        z: None,
        history: history.len(),
        basis,
        anomalous: false,
        reason: String::new(),
    };
    if basis != Basis::StaticOnly {
        let m = median(history);
        let deviations: Vec<f64> = history.iter().map(|x| (x - m).abs()).collect();
        let mad = median(&deviations);
        let change = (value - m).abs();
        figures.median = Some(m);
        figures.mad = Some(mad);
        if mad > 0.0 {
            let z = CONSISTENCY * (value - m) / mad;
            figures.z = Some(z);
            figures.anomalous = z.abs() > rule.robust_z && change > rule.floor;
            figures.reason = format!(
                "robust z {z:.1} (limit {}), change {change:.1} (floor {})",
                rule.robust_z, rule.floor
            );
        } else {
            figures.anomalous = change > rule.floor;
            figures.reason = format!(
                "MAD 0 (every file alike): change {change:.1} against the floor {}",
                rule.floor
            );
        }
    } else {
        figures.reason = format!(
            "{} file(s) of history, fewer than {}: static bounds only",
            all.len(),
            rule.min_history
        );
    }
    if let Some(low) = rule.low.filter(|low| value < *low) {
        figures.anomalous = true;
        figures.reason = format!("below the static bound {low}; {}", figures.reason);
    }
    if let Some(high) = rule.high.filter(|high| value > *high) {
        figures.anomalous = true;
        figures.reason = format!("above the static bound {high}; {}", figures.reason);
    }
    figures
}

/// The median of `xs` (the mean of the middle two for an even count); 0 for none.
pub fn median(xs: &[f64]) -> f64 {
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: Rule = Rule {
        robust_z: 3.5,
        floor: 100.0,
        min_history: 6,
        low: None,
        high: None,
    };

    /// Ten nights around 10,000 rows (±5 %).
    fn nights() -> Vec<f64> {
        vec![
            10_000.0, 10_300.0, 9_700.0, 10_450.0, 9_550.0, 10_100.0, 9_900.0, 10_200.0, 9_800.0,
            10_050.0,
        ]
    }

    #[test]
    fn median_and_mad_of_a_hand_made_series() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        let f = judge(1_000.0, &[], &nights(), &RULE);
        assert_eq!(f.median, Some(10_025.0));
        // |x - 10025|: 25 275 325 425 475 75 125 175 225 25 -> sorted middle 175, 225.
        assert_eq!(f.mad, Some(200.0));
        let z = f.z.unwrap();
        assert!((z - CONSISTENCY * (1_000.0 - 10_025.0) / 200.0).abs() < 1e-9);
        assert!(
            f.anomalous && f.basis == Basis::AllDays && f.history == 10,
            "{f:?}"
        );
    }

    #[test]
    fn a_usual_night_is_not_anomalous() {
        let f = judge(10_400.0, &[], &nights(), &RULE);
        assert!(!f.anomalous, "{f:?}");
    }

    #[test]
    fn one_bad_night_does_not_hide_the_next() {
        // With mean and σ the 1,000-row night inflates σ to ~2,800: a second one at 5,000
        // would be only z = -1.6. Median and MAD barely move.
        let mut history = nights();
        history.push(1_000.0);
        let f = judge(5_000.0, &[], &history, &RULE);
        assert!(f.anomalous, "{f:?}");
        assert!(!judge(10_100.0, &[], &history, &RULE).anomalous);
    }

    #[test]
    fn mad_zero_falls_back_to_the_floor_alone() {
        let same = vec![500.0; 8];
        let within = judge(590.0, &[], &same, &RULE);
        assert_eq!(
            (within.mad, within.z, within.anomalous),
            (Some(0.0), None, false)
        );
        let beyond = judge(601.0, &[], &same, &RULE);
        assert!(
            beyond.anomalous && beyond.reason.contains("MAD 0"),
            "{beyond:?}"
        );
    }

    #[test]
    fn a_big_z_with_a_small_change_is_not_anomalous() {
        // Very steady history: a change of 60 rows is z ~ -40 but under the floor.
        let steady = vec![1_000.0, 1_001.0, 999.0, 1_000.0, 1_001.0, 999.0, 1_000.0];
        let f = judge(940.0, &[], &steady, &RULE);
        assert!(f.z.unwrap() < -3.5 && !f.anomalous, "{f:?}");
    }

    #[test]
    fn short_history_uses_only_the_static_bounds() {
        let short = vec![10_000.0; 5];
        let f = judge(10.0, &[], &short, &RULE);
        assert_eq!(
            (f.basis, f.anomalous, f.median),
            (Basis::StaticOnly, false, None)
        );
        let bounded = Rule {
            low: Some(100.0),
            ..RULE
        };
        let f = judge(10.0, &[], &short, &bounded);
        assert!(
            f.anomalous && f.reason.contains("static bound 100"),
            "{f:?}"
        );
        // Static bounds apply with a full history too.
        let f = judge(
            10_000.0,
            &[],
            &nights(),
            &Rule {
                high: Some(9_000.0),
                ..RULE
            },
        );
        assert!(f.anomalous, "{f:?}");
    }

    #[test]
    fn weekday_seasonality_compares_a_sunday_with_sundays() {
        // Sundays bring ~1,000 rows, other days ~10,000.
        let sundays = vec![1_000.0, 1_050.0, 980.0, 1_020.0, 990.0, 1_010.0];
        let mut all = nights();
        all.extend(&sundays);
        let f = judge(1_030.0, &sundays, &all, &RULE);
        assert_eq!(f.basis, Basis::SameWeekday);
        assert!(!f.anomalous, "{f:?}");
        // A Sunday of weekday volume is the anomaly.
        assert!(judge(10_000.0, &sundays, &all, &RULE).anomalous);
        // Too few Sundays yet: compared with all days, where 1,030 is far below.
        let f = judge(1_030.0, &sundays[..3], &all, &RULE);
        assert_eq!(f.basis, Basis::AllDays);
    }
}
