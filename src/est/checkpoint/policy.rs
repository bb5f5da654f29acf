//! Which checkpoints to keep: a pure function of the history, tf.estimator's RunConfig rules.
//! The newest `keep_max` stay; with `keep_every`, a checkpoint about to be dropped is kept for
//! good when at least that long has passed since the last one kept for good (or since training
//! first started); the `keep_best` checkpoints with the best evaluations stay too; the
//! checkpoint a run restored from is never dropped.

/// One checkpoint as the policy sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Record<'a> {
    /// Its file name.
    pub file: &'a str,
    /// Its global step.
    pub step: u64,
    /// Seconds since the Unix epoch.
    pub created: f64,
    /// Already kept for good.
    pub preserved: bool,
    /// Its evaluation by `best_by`, smaller better; `None` when it was not evaluated.
    pub cost: Option<f64>,
}

/// What happens to one checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Keep it for now.
    Keep,
    /// Keep for good: `keep_every` chose it.
    Preserve,
    /// Remove it.
    Delete,
}

/// The retention settings of the `checkpoint` block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Retention {
    /// The newest this many stay.
    pub keep_max: u32,
    /// Seconds.
    pub keep_every: Option<f64>,
    /// The best this many by their evaluations stay.
    pub keep_best: u32,
}

/// What to do with each record, oldest first. `started` is when the first checkpoint of this
/// model_dir was written; `protect` names a file that must survive.
pub fn plan(records: &[Record], policy: Retention, started: f64, protect: Option<&str>) -> Vec<Action> {
    let mut order: Vec<usize> = (0..records.len()).collect();
    order.sort_by_key(|&i| records[i].step);
    let newest: Vec<usize> = order.iter().rev().take(policy.keep_max as usize).copied().collect();
    // Ties go to the earlier checkpoint, the one that reached the value first.
    let mut evaluated: Vec<usize> =
        order.iter().copied().filter(|&i| records[i].cost.is_some_and(f64::is_finite)).collect();
    evaluated.sort_by(|&a, &b| records[a].cost.unwrap_or(0.0).total_cmp(&records[b].cost.unwrap_or(0.0)));
    let best: Vec<usize> = evaluated.into_iter().take(policy.keep_best as usize).collect();
    let mut anchor = records.iter().filter(|r| r.preserved).map(|r| r.created).fold(started, f64::max);
    let mut actions = vec![Action::Keep; records.len()];
    for &i in &order {
        let r = &records[i];
        if r.preserved || newest.contains(&i) || best.contains(&i) || protect == Some(r.file) {
            continue;
        }
        match policy.keep_every {
            Some(period) if r.created >= anchor + period => {
                actions[i] = Action::Preserve;
                anchor = r.created;
            }
            _ => actions[i] = Action::Delete,
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulates `saves` checkpoints `interval` seconds apart, applying the policy after each,
    /// as the store does. Returns the surviving (step, created, preserved).
    fn simulate(saves: u64, interval: f64, policy: Retention, protect_step: Option<u64>) -> Vec<(u64, f64, bool)> {
        let mut kept: Vec<(String, u64, f64, bool)> = Vec::new();
        let started = 1000.0;
        for step in 0..saves {
            let created = started + step as f64 * interval;
            kept.push((format!("ckpt-{step}"), step, created, false));
            let protect = protect_step.map(|s| format!("ckpt-{s}"));
            let records: Vec<Record> = kept
                .iter()
                .map(|(f, s, c, p)| Record { file: f, step: *s, created: *c, preserved: *p, cost: None })
                .collect();
            let actions = plan(&records, policy, started, protect.as_deref());
            let mut next = Vec::new();
            for (k, a) in kept.into_iter().zip(actions) {
                match a {
                    Action::Keep => next.push(k),
                    Action::Preserve => next.push((k.0, k.1, k.2, true)),
                    Action::Delete => {}
                }
            }
            kept = next;
        }
        kept.into_iter().map(|(_, s, c, p)| (s, c, p)).collect()
    }

    #[test]
    fn keep_max_keeps_the_newest() {
        let kept = simulate(500, 60.0, Retention { keep_max: 5, keep_every: None, keep_best: 0 }, None);
        assert_eq!(kept.iter().map(|k| k.0).collect::<Vec<_>>(), vec![495, 496, 497, 498, 499]);
    }

    #[test]
    fn keep_every_survives_keep_max() {
        // A save a minute for 500 minutes, one kept per hour on top of the newest three.
        let kept = simulate(500, 60.0, Retention { keep_max: 3, keep_every: Some(3600.0), keep_best: 0 }, None);
        let preserved: Vec<u64> = kept.iter().filter(|k| k.2).map(|k| k.0).collect();
        assert_eq!(preserved, vec![60, 120, 180, 240, 300, 360, 420, 480]);
        let newest: Vec<u64> = kept.iter().filter(|k| !k.2).map(|k| k.0).collect();
        assert_eq!(newest, vec![497, 498, 499]);
        for pair in preserved.windows(2) {
            assert!(pair[1] - pair[0] >= 60, "{pair:?} are less than an hour apart");
        }
    }

    #[test]
    fn keep_every_with_irregular_saves_keeps_one_per_period() {
        let mut kept: Vec<(String, u64, f64, bool)> = Vec::new();
        let policy = Retention { keep_max: 2, keep_every: Some(100.0), keep_best: 0 };
        let mut t = 0.0;
        for step in 0..300u64 {
            // Intervals of 1, 7, 13, ... seconds, wrapping: uneven, deterministic.
            t += ((step * 6) % 29 + 1) as f64;
            kept.push((format!("c{step}"), step, t, false));
            let records: Vec<Record> = kept
                .iter()
                .map(|(f, s, c, p)| Record { file: f, step: *s, created: *c, preserved: *p, cost: None })
                .collect();
            let actions = plan(&records, policy, 0.0, None);
            kept = kept
                .into_iter()
                .zip(actions)
                .filter_map(|(k, a)| match a {
                    Action::Keep => Some(k),
                    Action::Preserve => Some((k.0, k.1, k.2, true)),
                    Action::Delete => None,
                })
                .collect();
            let preserved: Vec<f64> = kept.iter().filter(|k| k.3).map(|k| k.2).collect();
            assert!(preserved.windows(2).all(|w| w[1] - w[0] >= 100.0));
            assert!(kept.iter().filter(|k| !k.3).count() <= 2);
        }
        let preserved = kept.iter().filter(|k| k.3).count();
        assert!(preserved >= (t / 100.0) as usize / 2, "only {preserved} kept over {t} s");
    }

    #[test]
    fn the_restored_checkpoint_is_never_deleted() {
        let kept = simulate(200, 1.0, Retention { keep_max: 2, keep_every: None, keep_best: 0 }, Some(10));
        assert_eq!(kept.iter().map(|k| k.0).collect::<Vec<_>>(), vec![10, 198, 199]);
    }

    #[test]
    fn keep_best_survives_keep_max() {
        // A loss that falls to its lowest at step 30 and rises again.
        let cost = |step: u64| (step as f64 - 30.0).abs();
        let policy = Retention { keep_max: 2, keep_every: None, keep_best: 2 };
        let mut kept: Vec<(String, u64)> = Vec::new();
        for step in (0..100).step_by(10) {
            kept.push((format!("ckpt-{step}"), step));
            let records: Vec<Record> = kept
                .iter()
                .map(|(f, s)| Record { file: f, step: *s, created: *s as f64, preserved: false, cost: Some(cost(*s)) })
                .collect();
            let actions = plan(&records, policy, 0.0, None);
            kept = kept.into_iter().zip(actions).filter(|(_, a)| *a != Action::Delete).map(|(k, _)| k).collect();
        }
        // The two best (30, then 20 which ties 40 and came first) and the two newest.
        assert_eq!(kept.iter().map(|k| k.1).collect::<Vec<_>>(), vec![20, 30, 80, 90]);
    }
}
