//! Plan to libtorch: the model's variables as named tensors (the plan's names and shapes,
//! kernels `[in, out]` as tf.estimator stored them) and the forward pass over a batch of typed
//! columns. Initialisation is tf.estimator's, drawn from est's own seeded generator so it is the
//! same on every machine and device.

mod blob;
mod inputs;
mod torch;

use std::collections::HashMap;

use tch::{Device, Kind, Tensor};

pub use inputs::Inputs;
pub use torch::{Done, TorchError};

use est::data::hash::hash64;
use est::data::Table;
use est::pipeline::*;
use est::plan::*;
use est::rng::Rng;

/// One variable of the model.
#[derive(Debug)]
pub struct Param {
    /// Its checkpoint name.
    pub name: String,
    /// A trainable variable is a view into its group's flat buffer.
    pub tensor: Tensor,
    /// Whether an optimizer updates it (moving statistics are not).
    pub trainable: bool,
    /// The part of the model it belongs to.
    pub part: Scope,
}

/// The trainable variables one optimizer updates, laid end to end in one flat buffer, so the
/// optimizer's update is a handful of operations on one tensor, not a few per variable.
#[derive(Debug)]
pub struct Group {
    /// The part its optimizer updates.
    pub scope: Scope,
    /// `[total]`: the members' memory, end to end.
    pub flat: Tensor,
    /// Per member: the index in `Model::params`, its offset and length in `flat`.
    pub members: Vec<(usize, i64, i64)>,
}

impl Group {
    /// The part of a flat buffer laid out like this group (the buffer itself or optimizer state)
    /// that belongs to member `k`, in its own shape.
    pub fn view(&self, flat: &Tensor, k: usize, shape: &[i64]) -> Result<Tensor, tch::TchError> {
        let (_, offset, len) = self.members[k];
        flat.f_narrow(0, offset, len)?.f_view(shape)
    }
}

/// An embedding among the DNN's inputs: its table, its ids and where its combined rows sit in
/// the columns `Model::dnn_input` returns.
#[derive(Clone, Debug)]
pub struct InputEmbedding {
    /// Its table's index in `Model::params`.
    pub param: usize,
    /// The id column it looks up.
    pub ids: String,
    /// How a row's looked-up rows combine.
    pub combiner: Combiner,
    /// Where its combined rows start among the DNN's inputs (0 in the linear part).
    pub offset: i64,
    /// Values per row.
    pub dimension: i64,
}

/// One column of the DNN's input layer.
#[derive(Clone, Debug)]
pub struct DnnColumn {
    /// The feature's name.
    pub name: String,
    /// Where it starts in the input layer.
    pub offset: i64,
    /// Values per row.
    pub width: i64,
    /// Whether it is a numeric column, a slice of the batch's block.
    pub numeric: bool,
}

/// One input of the linear part, as its forward pass and its gradient need it.
#[derive(Clone, Debug)]
pub enum LinearInput {
    /// Weights `[buckets, logits]` looked up by id and summed: an embedding as wide as the logits.
    Ids(InputEmbedding),
    /// A dense value `[batch, width]` times weights `[width, logits]`; an embedding's value comes
    /// from its own table.
    Dense {
        /// The column.
        name: String,
        /// The weights' index in `Model::params`.
        weights: usize,
        /// The embedding whose combined rows are the value, for an embedding column.
        table: Option<InputEmbedding>,
    },
}

/// The model a plan describes, with its variables on one device.
pub struct Model {
    /// Every variable, in the plan's order.
    pub params: Vec<Param>,
    /// One flat buffer per optimizer.
    pub groups: Vec<Group>,
    index: HashMap<String, usize>,
    features: Vec<FeaturePlan>,
    dnn: Option<DnnPlan>,
    /// The linear part's inputs, in order, worked out once.
    linear: Option<Vec<LinearInput>>,
    /// The head.
    pub head: Head,
    /// Where the variables live.
    pub device: Device,
}

/// What can go wrong building a model or reading its inputs.
#[derive(Debug, thiserror::Error)]
pub enum LowerError {
    /// libtorch refused an operation.
    #[error("libtorch: {0}")]
    Torch(#[from] TorchError),
    /// A piece of the work run by a helper thread panicked.
    #[error(transparent)]
    Helper(#[from] crate::crew::Panicked),
    /// The model asked for a variable or column the plan does not have.
    #[error("the plan has no variable `{0}`; this is a bug in est")]
    MissingVariable(String),
}

impl From<tch::TchError> for LowerError {
    fn from(e: tch::TchError) -> Self {
        LowerError::Torch(TorchError(e))
    }
}

// Keeps weight-initialisation draws apart from other uses of the seed.
const INIT: u64 = 0x696e_6974;

impl Model {
    /// The plan's variables, initialised: Glorot-uniform kernels, zero biases, truncated-normal
    /// embeddings, zero linear weights, and normalisation statistics from `train`.
    pub fn build(plan: &Plan, device: Device, train: Option<&Table>) -> Result<Model, LowerError> {
        let seed = plan.train.seed;
        let variables = &plan.model.variables;
        let count = |i: usize| variables[i].shape.iter().product::<u64>() as usize;
        // Each optimizer's variables in one flat buffer; one optimizer for all takes them all.
        let mut groups = Vec::new();
        let mut slot: Vec<Option<(usize, usize)>> = vec![None; variables.len()];
        for optimizer in &plan.optimizers {
            let members: Vec<usize> = (0..variables.len())
                .filter(|&i| {
                    let v = &variables[i];
                    v.trainable && (optimizer.scope == Scope::All || v.part == optimizer.scope)
                })
                .collect();
            let mut host = vec![0.0f32; members.iter().map(|&i| count(i)).sum()];
            let mut layout = Vec::with_capacity(members.len());
            let mut at = 0;
            for (k, &i) in members.iter().enumerate() {
                layout.push((i, at as i64, count(i) as i64));
                at += count(i);
                slot[i] = Some((groups.len(), k));
            }
            initialise(&mut host, &layout, variables, seed, train);
            let flat = blob::floats(host, &[at as i64])?.f_to_device(device)?;
            groups.push(Group { scope: optimizer.scope, flat, members: layout });
        }
        let mut params = Vec::with_capacity(plan.model.variables.len());
        for (i, var) in plan.model.variables.iter().enumerate() {
            let shape: Vec<i64> = var.shape.iter().map(|&d| d as i64).collect();
            let tensor = match slot[i] {
                // A leaf of its own that shares the flat buffer's memory: autograd gives each
                // variable its gradient directly, and the optimizer updates the buffer whole.
                Some((g, k)) => groups[g].view(&groups[g].flat, k, &shape)?.f_detach()?.f_set_requires_grad(true)?,
                None => {
                    Tensor::f_from_slice(&initial_values(var, seed, train))?.f_reshape(&shape)?.f_to_device(device)?
                }
            };
            params.push(Param { name: var.name.clone(), tensor, trainable: var.trainable, part: var.part });
        }
        let index = params.iter().enumerate().map(|(i, p)| (p.name.clone(), i)).collect();
        let mut model = Model {
            params,
            groups,
            index,
            features: plan.features.clone(),
            dnn: plan.model.dnn.clone(),
            linear: None,
            head: plan.model.head.clone(),
            device,
        };
        model.linear = plan.model.linear.as_ref().map(|spec| model.describe_linear(spec)).transpose()?;
        Ok(model)
    }

    /// Whether the model has variable `name`.
    pub fn has_param(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Where `name` is in `params`.
    pub fn param_index(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// The DNN part, if the model has one.
    pub fn dnn(&self) -> Option<&DnnPlan> {
        self.dnn.as_ref()
    }

    /// Whether the model has a linear part (alone or beside a DNN).
    pub fn has_linear(&self) -> bool {
        self.linear.is_some()
    }

    /// Variable `name`.
    pub fn param(&self, name: &str) -> Result<&Tensor, LowerError> {
        self.index.get(name).map(|&i| &self.params[i].tensor).ok_or_else(|| LowerError::MissingVariable(name.into()))
    }

    fn feature(&self, name: &str) -> Option<&FeaturePlan> {
        self.features.iter().find(|f| f.feature.name == name)
    }

    /// Logits `[batch, head.logits]`. `step` seeds dropout, so a resumed run drops the same units.
    pub fn forward(&self, x: &Inputs, training: bool, step: u64, seed: u64) -> Result<Tensor, LowerError> {
        self.forward_tapped(x, training, step, seed, None)
    }

    /// As `forward`, also handing out each hidden layer's output for summaries.
    pub fn forward_tapped(
        &self,
        x: &Inputs,
        training: bool,
        step: u64,
        seed: u64,
        taps: Option<&mut Vec<Tensor>>,
    ) -> Result<Tensor, LowerError> {
        let mut logits: Option<Tensor> = None;
        if let Some(dnn) = &self.dnn {
            logits = Some(self.dnn_logits(dnn, x, training, step, seed, taps)?);
        }
        if self.linear.is_some() {
            let l = self.linear_part(x)?;
            logits = Some(match logits {
                Some(d) => d.f_add(&l)?,
                None => l,
            });
        }
        if let (None, Some(&i)) = (&logits, self.index.get("baseline/bias")) {
            // A baseline: the same logits, its bias, for every row.
            let bias = &self.params[i].tensor;
            logits = Some(bias.f_unsqueeze(0)?.f_expand([x.rows, self.head.logits as i64], false)?);
        }
        logits.ok_or_else(|| LowerError::MissingVariable("dnn/logits/kernel".into()))
    }

    /// The embeddings among the DNN's inputs, in input order.
    pub fn input_embeddings(&self) -> Result<Vec<InputEmbedding>, LowerError> {
        let dnn = self.dnn.as_ref().ok_or_else(|| LowerError::MissingVariable("dnn/logits/kernel".into()))?;
        let mut offset = 0;
        let mut embeddings = Vec::new();
        for name in &dnn.spec.inputs {
            let feature = self.feature(name).ok_or_else(|| LowerError::MissingVariable(name.clone()))?;
            if let FeatureKind::Embedding { source, dimension, combiner } = &feature.feature.kind {
                let table = format!("dnn/input_from_feature_columns/input_layer/{name}/embedding_weights");
                let param = self.param_index(&table).ok_or(LowerError::MissingVariable(table))?;
                embeddings.push(InputEmbedding {
                    param,
                    ids: source.clone(),
                    combiner: *combiner,
                    offset,
                    dimension: *dimension as i64,
                });
            }
            offset += feature.width as i64;
        }
        Ok(embeddings)
    }

    /// The DNN's inputs in order, each with where it starts in the input layer, its width and
    /// whether it is a numeric column of the block.
    pub fn dnn_columns(&self) -> Result<Vec<DnnColumn>, LowerError> {
        let dnn = self.dnn.as_ref().ok_or_else(|| LowerError::MissingVariable("dnn/logits/kernel".into()))?;
        let mut offset = 0;
        let mut columns = Vec::with_capacity(dnn.spec.inputs.len());
        for name in &dnn.spec.inputs {
            let feature = self.feature(name).ok_or_else(|| LowerError::MissingVariable(name.clone()))?;
            let (width, numeric) = (feature.width as i64, matches!(feature.feature.kind, FeatureKind::Numeric { .. }));
            columns.push(DnnColumn { name: name.clone(), offset, width, numeric });
            offset += width;
        }
        Ok(columns)
    }

    /// Column `name` of the DNN's input layer for a batch, `[batch, width]`.
    pub fn dnn_column(&self, name: &str, x: &Inputs) -> Result<Tensor, LowerError> {
        self.dense(name, x, "dnn/input_from_feature_columns/input_layer")
    }

    /// The DNN's input layer for a batch: its columns side by side, `[batch, input_width]`.
    pub fn dnn_input(&self, x: &Inputs) -> Result<Tensor, LowerError> {
        let dnn = self.dnn.as_ref().ok_or_else(|| LowerError::MissingVariable("dnn/logits/kernel".into()))?;
        let mut parts = Vec::with_capacity(dnn.spec.inputs.len());
        let mut run: Vec<String> = Vec::new();
        for name in &dnn.spec.inputs {
            let numeric = matches!(self.feature(name).map(|f| &f.feature.kind), Some(FeatureKind::Numeric { .. }));
            // Numeric columns next to each other in the block enter as one slice of it.
            if numeric && run.last().is_none_or(|last| x.adjacent(last, name)) {
                run.push(name.clone());
                continue;
            }
            if !run.is_empty() {
                parts.push(x.numeric_run(&run)?);
                run.clear();
            }
            if numeric {
                run.push(name.clone());
            } else {
                parts.push(self.dense(name, x, "dnn/input_from_feature_columns/input_layer")?);
            }
        }
        if !run.is_empty() {
            parts.push(x.numeric_run(&run)?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Tensor::f_cat(&parts, 1)? })
    }

    fn dnn_logits(
        &self,
        dnn: &DnnPlan,
        x: &Inputs,
        training: bool,
        step: u64,
        seed: u64,
        mut taps: Option<&mut Vec<Tensor>>,
    ) -> Result<Tensor, LowerError> {
        let mut h = self.dnn_input(x)?;
        if training && dnn.spec.dropout > 0.0 {
            seed_dropout(seed, step);
        }
        for i in 0..dnn.spec.hidden_units.len() {
            let kernel = self.param(&format!("dnn/hiddenlayer_{i}/kernel"))?;
            let bias = self.param(&format!("dnn/hiddenlayer_{i}/bias"))?;
            h = activate(&bias.f_addmm(&h, kernel)?, dnn.spec.activation)?;
            if training && dnn.spec.dropout > 0.0 {
                h = h.f_dropout(dnn.spec.dropout, true)?;
            }
            if dnn.spec.batch_norm {
                let p = format!("dnn/hiddenlayer_{i}/batchnorm_{i}");
                h = h.f_batch_norm(
                    Some(self.param(&format!("{p}/gamma"))?),
                    Some(self.param(&format!("{p}/beta"))?),
                    Some(self.param(&format!("{p}/moving_mean"))?),
                    Some(self.param(&format!("{p}/moving_variance"))?),
                    training,
                    NORM_MOMENTUM,
                    NORM_EPSILON,
                    false,
                )?;
            }
            if let Some(taps) = taps.as_deref_mut() {
                taps.push(h.f_detach()?);
            }
        }
        let kernel = self.param("dnn/logits/kernel")?;
        let bias = self.param("dnn/logits/bias")?;
        Ok(bias.f_addmm(&h, kernel)?)
    }

    /// The dense value the linear part multiplies by the weights of `name`.
    pub fn linear_dense(&self, name: &str, x: &Inputs) -> Result<Tensor, LowerError> {
        self.dense(name, x, "linear/linear_model")
    }

    /// The linear part's inputs, in order (none without a linear part).
    pub fn linear_inputs(&self) -> &[LinearInput] {
        self.linear.as_deref().unwrap_or_default()
    }

    fn describe_linear(&self, linear: &LinearSpec) -> Result<Vec<LinearInput>, LowerError> {
        let prefix = "linear/linear_model";
        let index = |name: String| self.param_index(&name).ok_or(LowerError::MissingVariable(name));
        let by_id = |param: usize, ids: &str| {
            LinearInput::Ids(InputEmbedding {
                param,
                ids: ids.to_string(),
                combiner: Combiner::Sum,
                offset: 0,
                dimension: self.head.logits as i64,
            })
        };
        let mut inputs = Vec::with_capacity(linear.inputs.len());
        for name in &linear.inputs {
            let feature = self.feature(name).ok_or_else(|| LowerError::MissingVariable(name.clone()))?;
            let weights = index(format!("{prefix}/{name}/weights"))?;
            inputs.push(match &feature.feature.kind {
                FeatureKind::Categorical { .. } | FeatureKind::Bucketized { .. } | FeatureKind::Crossed { .. } => {
                    by_id(weights, name)
                }
                FeatureKind::Indicator { source } => by_id(weights, source),
                FeatureKind::Numeric { .. } => LinearInput::Dense { name: name.clone(), weights, table: None },
                FeatureKind::Embedding { source, dimension, combiner } => LinearInput::Dense {
                    name: name.clone(),
                    weights,
                    table: Some(InputEmbedding {
                        param: index(format!("{prefix}/{name}/embedding_weights"))?,
                        ids: source.clone(),
                        combiner: *combiner,
                        offset: 0,
                        dimension: *dimension as i64,
                    }),
                },
            });
        }
        Ok(inputs)
    }

    /// The linear part's logits for a batch, its bias included.
    pub fn linear_part(&self, x: &Inputs) -> Result<Tensor, LowerError> {
        let mut sum = self.param("linear/linear_model/bias_weights")?.f_unsqueeze(0)?;
        for input in self.linear_inputs() {
            let part = match input {
                LinearInput::Ids(e) => embed(&self.params[e.param].tensor, x.ids(&e.ids)?, Combiner::Sum)?,
                LinearInput::Dense { name, weights, .. } => {
                    self.linear_dense(name, x)?.f_mm(&self.params[*weights].tensor)?
                }
            };
            sum = sum.f_add(&part)?;
        }
        Ok(sum)
    }

    /// The dense value of a column: normalised numbers, one-hot buckets, multi-hot indicators or
    /// combined embeddings. `scope` is where its embedding table lives.
    fn dense(&self, name: &str, x: &Inputs, scope: &str) -> Result<Tensor, LowerError> {
        let feature = self.feature(name).ok_or_else(|| LowerError::MissingVariable(name.into()))?;
        match &feature.feature.kind {
            // Normalised when the inputs were built, with the frozen statistics.
            FeatureKind::Numeric { .. } => x.numeric(name),
            FeatureKind::Bucketized { .. } => multi_hot(x.ids(name)?, feature.width as i64),
            FeatureKind::Indicator { source } => multi_hot(x.ids(source)?, feature.width as i64),
            FeatureKind::Embedding { source, combiner, .. } => {
                let table = self.param(&format!("{scope}/{name}/embedding_weights"))?;
                embed(table, x.ids(source)?, *combiner)
            }
            FeatureKind::Categorical { .. } | FeatureKind::Crossed { .. } => {
                Err(LowerError::MissingVariable(format!("{name} (a sparse column in a dense layer)")))
            }
        }
    }
}

/// A variable's index and its part of a flat buffer.
type Part<'a> = (usize, &'a mut [f32]);

/// Writes each member's initial values into its part of a group's flat buffer, the members
/// shared out among the cores: each variable draws from a generator of its own, so the values
/// are the ones drawn one after another (a million-bucket table takes seconds to draw).
fn initialise(
    host: &mut [f32],
    layout: &[(usize, i64, i64)],
    variables: &[Variable],
    seed: u64,
    train: Option<&Table>,
) {
    let mut parts: Vec<Part> = Vec::with_capacity(layout.len());
    let mut rest = host;
    for &(i, _, len) in layout {
        let (part, tail) = rest.split_at_mut(len as usize);
        parts.push((i, part));
        rest = tail;
    }
    // Largest first, each to the core with the least so far.
    parts.sort_by_key(|(_, p)| std::cmp::Reverse(p.len()));
    let cores = est::data::cores().max(1);
    // Per core: the elements it has, and its parts.
    let mut shares: Vec<(usize, Vec<Part>)> = (0..cores).map(|_| (0, Vec::new())).collect();
    for part in parts {
        let least = (0..shares.len()).min_by_key(|&k| shares[k].0).unwrap_or(0);
        shares[least].0 += part.1.len();
        shares[least].1.push(part);
    }
    std::thread::scope(|scope| {
        for (_, share) in shares {
            scope.spawn(move || {
                for (i, out) in share {
                    fill_initial(&variables[i], seed, train, out);
                }
            });
        }
    });
}

/// tf.estimator's initial value of one variable: Glorot-uniform kernels, zero biases,
/// truncated-normal embeddings, zero linear weights, normalisation statistics from the data.
fn initial_values(var: &Variable, seed: u64, train: Option<&Table>) -> Vec<f32> {
    let mut out = vec![0.0; var.shape.iter().product::<u64>() as usize];
    fill_initial(var, seed, train, &mut out);
    out
}

/// `initial_values` of `var`, written into `out`.
fn fill_initial(var: &Variable, seed: u64, train: Option<&Table>, out: &mut [f32]) {
    if var.name.starts_with("normalization/") {
        if let Some(table) = train {
            out.copy_from_slice(&normalization_init(&var.name, table, out.len()));
            return;
        }
    }
    let mut rng = Rng::derived(seed, &[INIT, hash64(var.name.as_bytes())]);
    match var.name.rsplit('/').next().unwrap_or("") {
        "kernel" => {
            let limit = (6.0 / (var.shape[0] + var.shape[1]) as f64).sqrt();
            out.iter_mut().for_each(|v| *v = ((rng.next_f64() * 2.0 - 1.0) * limit) as f32);
        }
        "embedding_weights" => {
            let std = 1.0 / (var.shape[1] as f64).sqrt();
            out.iter_mut().for_each(|v| *v = (truncated_normal(&mut rng) * std) as f32);
        }
        "gamma" | "moving_variance" | "std" => out.fill(1.0),
        _ => out.fill(0.0),
    }
}

fn normalization_init(name: &str, table: &Table, count: usize) -> Vec<f32> {
    let column = name.trim_start_matches("normalization/").rsplit_once('/').map_or("", |(c, _)| c);
    let Some(values) = table.numeric.column(column) else {
        return vec![0.0; count];
    };
    let s = values.stats;
    let value = match name.rsplit('/').next() {
        Some("mean") => s.mean,
        // A constant column would divide by zero; leave it unscaled instead.
        Some("std") => {
            if s.std > 0.0 {
                s.std
            } else {
                1.0
            }
        }
        Some("min") => s.min,
        Some("max") => {
            if s.max > s.min {
                s.max
            } else {
                s.min + 1.0
            }
        }
        _ => 0.0,
    };
    vec![value as f32; count]
}

/// tf.truncated_normal: a standard normal redrawn beyond two standard deviations.
fn truncated_normal(rng: &mut Rng) -> f64 {
    loop {
        let x = rng.normal();
        if x.abs() <= 2.0 {
            return x;
        }
    }
}

/// Batch normalisation as tf.layers.batch_normalization(momentum=0.999, epsilon=1e-3) does it;
/// libtorch's momentum is the weight of the new batch.
pub const NORM_MOMENTUM: f64 = 0.001;
/// Added to the variance before its square root.
pub const NORM_EPSILON: f64 = 1e-3;

/// Seeds libtorch's generator for one training step's dropout masks, so they are a function of
/// (seed, step), not of history: a resumed run drops the same units.
pub fn seed_dropout(seed: u64, step: u64) {
    tch::manual_seed((est::rng::mix(seed ^ step.wrapping_mul(0x9e37_79b9)) >> 1) as i64);
}

fn activate(x: &Tensor, activation: Activation) -> Result<Tensor, tch::TchError> {
    match activation {
        Activation::Relu => x.f_relu(),
        Activation::Relu6 => x.f_relu6(),
        Activation::Elu => x.f_elu(),
        Activation::Selu => x.f_selu(),
        Activation::Gelu => x.f_gelu("none"),
        Activation::Tanh => x.f_tanh(),
        Activation::Sigmoid => x.f_sigmoid(),
        Activation::Swish => x.f_silu(),
        // tf.nn.leaky_relu's slope, 0.2.
        Activation::LeakyRelu => x.f_maximum(&x.f_mul_scalar(0.2)?),
        Activation::Linear => Ok(x.shallow_clone()),
    }
}

/// Rows of `table` picked by `ids` `[batch, k]` (`-1` is no id), combined per row.
fn embed(table: &Tensor, ids: &Tensor, combiner: Combiner) -> Result<Tensor, LowerError> {
    let (batch, k) = ids.size2()?;
    let dim = table.size()[1];
    let mask = ids.f_ge(0)?;
    let rows = table.f_index_select(0, &ids.f_clamp_min(0)?.f_view([-1])?)?.f_view([batch, k, dim])?;
    let maskf = mask.f_to_kind(Kind::Float)?;
    let summed = rows.f_mul(&maskf.f_unsqueeze(2)?)?.f_sum_dim_intlist(1, false, Kind::Float)?;
    match combiner {
        Combiner::Sum => Ok(summed),
        Combiner::Mean => Ok(summed.f_div(&maskf.f_sum_dim_intlist(1, true, Kind::Float)?.f_clamp_min(1.0)?)?),
        Combiner::Sqrtn => {
            Ok(summed.f_div(&maskf.f_sum_dim_intlist(1, true, Kind::Float)?.f_clamp_min(1.0)?.f_sqrt()?)?)
        }
    }
}

/// Counts of each id per row, `[batch, width]`.
fn multi_hot(ids: &Tensor, width: i64) -> Result<Tensor, LowerError> {
    let (batch, _) = ids.size2()?;
    let mask = ids.f_ge(0)?.f_to_kind(Kind::Float)?;
    let mut out = Tensor::f_zeros([batch, width], (Kind::Float, ids.device()))?;
    out.f_scatter_add_(1, &ids.f_clamp_min(0)?, &mask).done()?;
    Ok(out)
}
