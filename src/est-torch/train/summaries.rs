//! What a run tells TensorBoard, under tf.estimator's tags: the loss, the rate, the learning
//! rates and the hidden layers' summaries in model_dir, each evaluation's metrics in
//! model_dir/eval, and the last evaluation where `est inspect` finds it.

use camino::{Utf8Path, Utf8PathBuf};
use est::checkpoint::{Evaluation, Store, EVAL_DIR};
use est::events::{EventWriter, Item};
use est::pipeline::Files;
use est::pipeline::Scope;
use est::plan::Plan;
use tch::{Device, Kind, Tensor};

use super::optim::OptimizerState;
use super::{schedule, Metrics, TrainError};

/// A training run's event files.
pub struct Summaries {
    train: EventWriter,
    /// model_dir/eval's, opened at the run's first evaluation.
    eval: Option<EventWriter>,
    dir: Utf8PathBuf,
    /// The step and time of the last summary, for `global_step/sec`.
    last: Option<(u64, f64)>,
    histograms: bool,
}

impl Summaries {
    /// A new event file in `dir` for a run starting at step `from`: marked as a restart when
    /// `from > 0` (so TensorBoard drops what an earlier run logged past it), then the plan.
    pub fn open(
        dir: &Utf8Path,
        plan: &Plan,
        from: u64,
        clock: &dyn est::checkpoint::time::Clock,
    ) -> Result<Summaries, TrainError> {
        let mut train = EventWriter::create(dir, clock.now())?;
        if from > 0 {
            train.restarted_after(from, clock.now())?;
        }
        let plan_text = format!("```yaml\n{}```", plan.to_yaml());
        train.summary(from, clock.now(), &[Item::Text("plan", &plan_text)])?;
        Ok(Summaries { train, eval: None, dir: dir.to_owned(), last: None, histograms: plan.summaries.histograms })
    }

    /// The training scalars at `step`, and each hidden layer's summaries from its output `taps`.
    pub fn step(
        &mut self,
        optimizers: &[OptimizerState],
        step: u64,
        now: f64,
        loss: Option<f64>,
        taps: &[Tensor],
    ) -> Result<(), TrainError> {
        let mut scalars: Vec<(String, f32)> = Vec::new();
        if let Some(loss) = loss {
            scalars.push(("loss".into(), loss as f32));
        }
        if let Some((last_step, last_time)) = self.last {
            if now > last_time {
                scalars.push(("global_step/sec".into(), ((step - last_step) as f64 / (now - last_time)) as f32));
            }
        }
        self.last = Some((step, now));
        for opt in optimizers {
            let tag = match opt.config.scope {
                Scope::All => "learning_rate".to_string(),
                scope => format!("learning_rate/{}", scope.word()),
            };
            let lr = schedule::learning_rate(opt.config.learning_rate, opt.config.decay.as_ref(), step - 1);
            scalars.push((tag, lr as f32));
        }
        let mut histograms: Vec<(String, Vec<f32>)> = Vec::new();
        for (i, tap) in taps.iter().enumerate() {
            let zero = tap.f_eq(0.0)?.f_to_kind(Kind::Float)?.f_mean(Kind::Float)?.f_double_value(&[])?;
            scalars.push((format!("dnn/hiddenlayer_{i}/fraction_of_zero_values"), zero as f32));
            if self.histograms {
                let host = tap.f_to_device(Device::Cpu)?.f_contiguous()?.f_view([-1])?;
                histograms.push((format!("dnn/hiddenlayer_{i}/activation"), Vec::<f32>::try_from(&host)?));
            }
        }
        let mut items: Vec<Item> = scalars.iter().map(|(t, v)| Item::Scalar(t, *v)).collect();
        items.extend(histograms.iter().map(|(t, v)| Item::Histogram(t, v)));
        Ok(self.train.summary(step, now, &items)?)
    }

    /// An evaluation during the run, in model_dir/eval.
    pub fn evaluation(&mut self, metrics: &Metrics, now: f64) -> Result<(), TrainError> {
        let eval = match &mut self.eval {
            Some(eval) => eval,
            None => self.eval.insert(EventWriter::create(&self.dir.join(EVAL_DIR), now)?),
        };
        write_metrics(eval, metrics, now)
    }
}

/// Evaluation metrics at the checkpoint's step, as tf.estimator wrote them to model_dir/eval.
pub fn write_metrics(events: &mut EventWriter, metrics: &Metrics, now: f64) -> Result<(), TrainError> {
    let items: Vec<Item> = metrics.values.iter().map(|(k, v)| Item::Scalar(k, *v as f32)).collect();
    Ok(events.summary(metrics.global_step, now, &items)?)
}

/// Records an evaluation of the data at `data` in model_dir/eval/, where `est inspect` finds it.
pub fn record_evaluation(store: &Store, metrics: &Metrics, data: &Files, now: f64) -> Result<(), TrainError> {
    Ok(store.record_evaluation(&Evaluation {
        global_step: metrics.global_step,
        time: est::checkpoint::time::rfc3339(now),
        data: data.to_string().into(),
        metrics: metrics.values.clone(),
        checkpoint: None,
    })?)
}
