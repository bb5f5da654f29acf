//! Plan and weights to an ONNX graph: the same computation `est predict` runs, from the typed
//! inputs of the signature to the head's outputs. Defaults, normalisation, buckets, vocabulary
//! look-ups, embeddings, the linear part, the DNN (batch normalisation in inference mode,
//! dropout off) and the head are all nodes of the graph.

use std::collections::{BTreeMap, HashMap};

use super::graph::{Attr, Dim, Graph};
use super::onnx::{TYPE_DOUBLE, TYPE_FLOAT, TYPE_INT64, TYPE_STRING};
use super::signature::{self, Elem, Feed, Input, Output};
use super::ExportError;
use crate::checkpoint::HostTensor;
use crate::pipeline::{Activation, CategoricalIds, Combiner, FeatureKind, Normalize};
use crate::plan::{DnnPlan, HeadKind, Plan};

/// tf.layers.batch_normalization's epsilon, as training uses it.
const NORM_EPSILON: f32 = 1e-3;

/// Where the DNN's and the linear part's tables live, as checkpoints name them.
const DNN_SCOPE: &str = "dnn/input_from_feature_columns/input_layer";
const LINEAR_SCOPE: &str = "linear/linear_model";

/// The graph of `plan` with the checkpoint's `tensors`.
pub fn graph(
    plan: &Plan,
    tensors: &BTreeMap<String, HostTensor>,
    inputs: &[Input],
    outputs: &[Output],
) -> Result<Graph, ExportError> {
    let mut b = Builder {
        g: Graph::default(),
        plan,
        tensors,
        inputs,
        weights: HashMap::new(),
        raw: HashMap::new(),
        dense: HashMap::new(),
        ids: HashMap::new(),
        masks: HashMap::new(),
    };
    let names: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
    for input in inputs {
        if names.contains(&input.name.as_str()) {
            return Err(ExportError::NameClash(input.name.clone()));
        }
    }
    b.g.reserve(&names);
    for input in inputs {
        let elem = match input.elem {
            Elem::Float32 => TYPE_FLOAT,
            Elem::Int64 => TYPE_INT64,
            Elem::String => TYPE_STRING,
        };
        b.g.input(&input.name, elem, &dims(&input.shape))?;
    }
    let logits = b.logits()?;
    b.head(&logits)?;
    for output in outputs {
        let elem = match output.elem {
            Elem::Float32 => TYPE_FLOAT,
            Elem::Int64 => TYPE_INT64,
            Elem::String => TYPE_STRING,
        };
        b.g.output(&output.name, elem, &dims(&output.shape));
    }
    Ok(b.g)
}

fn dims(shape: &[signature::Dim]) -> Vec<Dim> {
    shape
        .iter()
        .map(|d| match d {
            signature::Dim::Fixed(n) => Dim::Fixed(*n as i64),
            signature::Dim::Named(s) => Dim::Named(s.clone()),
        })
        .collect()
}

/// A feature's ids, `[N, k]` int64, and how many there can be.
#[derive(Clone)]
struct Ids {
    value: String,
    buckets: u64,
}

struct Builder<'p> {
    g: Graph,
    plan: &'p Plan,
    tensors: &'p BTreeMap<String, HostTensor>,
    inputs: &'p [Input],
    /// Variables already added, by checkpoint name.
    weights: HashMap<String, String>,
    /// Numeric features with their defaults filled in, before normalisation.
    raw: HashMap<String, String>,
    /// Dense values by (scope, feature).
    dense: HashMap<(String, String), String>,
    ids: HashMap<String, Ids>,
    /// Per id feature: the ids with no-ids replaced by 0, and a `[N, k, 1]` float mask of real ones.
    masks: HashMap<String, (String, String)>,
}

impl Builder<'_> {
    /// Variable `name` as an initializer, checked against the plan's shape.
    fn weight(&mut self, name: &str) -> Result<String, ExportError> {
        if let Some(v) = self.weights.get(name) {
            return Ok(v.clone());
        }
        let missing = || ExportError::MissingTensor(name.to_string());
        let expected = self.plan.model.variables.iter().find(|v| v.name == name).ok_or_else(missing)?;
        let tensor = self.tensors.get(name).ok_or_else(missing)?;
        let shape: Vec<usize> = expected.shape.iter().map(|&d| d as usize).collect();
        if tensor.shape != shape {
            return Err(ExportError::WrongShape { name: name.into(), found: tensor.shape.clone(), expected: shape });
        }
        if tensor.dtype != safetensors::Dtype::F32 {
            return Err(missing());
        }
        // Checkpoints and ONNX both hold float32 little-endian, row-major: the bytes go as they are.
        let value = self.g.weight(name, &tensor.shape, tensor.bytes.clone())?;
        self.weights.insert(name.to_string(), value.clone());
        Ok(value)
    }

    fn input_of(&self, feature: &str) -> Result<&Input, ExportError> {
        self.inputs
            .iter()
            .find(|i| i.reads(feature))
            .ok_or_else(|| ExportError::Bug(format!("no input feeds `{feature}`")))
    }

    fn feature(&self, name: &str) -> Result<&FeatureKind, ExportError> {
        self.plan
            .feature(name)
            .map(|f| &f.feature.kind)
            .ok_or_else(|| ExportError::Bug(format!("the plan has no feature `{name}`")))
    }

    fn width(&self, name: &str) -> u64 {
        self.plan.feature(name).map_or(0, |f| f.width)
    }

    /// A numeric feature's values, NaN replaced by its default, before normalisation.
    fn raw(&mut self, name: &str) -> Result<String, ExportError> {
        if let Some(v) = self.raw.get(name) {
            return Ok(v.clone());
        }
        let FeatureKind::Numeric { default, .. } = self.feature(name)?.clone() else {
            return Err(ExportError::Bug(format!("`{name}` is not numeric")));
        };
        let x = self.input_of(name)?.name.clone();
        let value = match default {
            // As the readers do: the default as float32.
            Some(d) => {
                let d = self.g.floats(&format!("features/{name}/default"), &[], &[d as f32]);
                let nan = self.g.op("IsNaN", &[&x], vec![], &format!("{name}/is_missing"));
                self.g.op("Where", &[&nan, &d, &x], vec![], &format!("{name}/filled"))
            }
            None => x,
        };
        self.raw.insert(name.to_string(), value.clone());
        Ok(value)
    }

    /// A numeric feature normalised with the checkpoint's statistics: `(x - shift) / scale`.
    fn numeric(&mut self, name: &str) -> Result<String, ExportError> {
        let FeatureKind::Numeric { normalize, .. } = self.feature(name)?.clone() else {
            return Err(ExportError::Bug(format!("`{name}` is not numeric")));
        };
        let raw = self.raw(name)?;
        Ok(match normalize {
            Normalize::None => raw,
            Normalize::Zscore => {
                let mean = self.weight(&format!("normalization/{name}/mean"))?;
                let std = self.weight(&format!("normalization/{name}/std"))?;
                let centred = self.g.op("Sub", &[&raw, &mean], vec![], &format!("{name}/centred"));
                self.g.op("Div", &[&centred, &std], vec![], &format!("{name}/normalized"))
            }
            Normalize::Minmax => {
                let min = self.weight(&format!("normalization/{name}/min"))?;
                let max = self.weight(&format!("normalization/{name}/max"))?;
                let range = self.g.op("Sub", &[&max, &min], vec![], &format!("{name}/range"));
                let shifted = self.g.op("Sub", &[&raw, &min], vec![], &format!("{name}/shifted"));
                self.g.op("Div", &[&shifted, &range], vec![], &format!("{name}/normalized"))
            }
        })
    }

    /// A feature's ids, `[N, k]`, `-1` for none.
    fn ids(&mut self, name: &str) -> Result<Ids, ExportError> {
        if let Some(ids) = self.ids.get(name) {
            return Ok(ids.clone());
        }
        let ids = match self.feature(name)?.clone() {
            FeatureKind::Bucketized { source, boundaries } => {
                // Compared as doubles, as the readers compare the float32 value with them.
                let x = self.raw(&source)?;
                let x = self.g.op("Cast", &[&x], vec![("to", Attr::Int(TYPE_DOUBLE as i64))], &format!("{name}/value"));
                let b = self.g.doubles(&format!("features/{name}/boundaries"), &[boundaries.len() as i64], &boundaries);
                let past = self.g.op("GreaterOrEqual", &[&x, &b], vec![], &format!("{name}/past"));
                let past = self.g.op(
                    "Cast",
                    &[&past],
                    vec![("to", Attr::Int(TYPE_INT64 as i64))],
                    &format!("{name}/past_count"),
                );
                let axes = self.g.longs("axes_1", &[1], &[1]);
                let value =
                    self.g.op("ReduceSum", &[&past, &axes], vec![("keepdims", Attr::Int(1))], &format!("{name}/ids"));
                Ids { value, buckets: boundaries.len() as u64 + 1 }
            }
            FeatureKind::Categorical { ids, .. } => {
                let input = self.input_of(name)?.clone();
                let value = match (&input.feed, &ids) {
                    (Feed::Vocabulary { .. }, CategoricalIds::Vocabulary { vocabulary, .. }) => {
                        let attributes = vec![
                            ("keys_strings", Attr::Strings(vocabulary.clone())),
                            ("values_int64s", Attr::Ints((0..vocabulary.len() as i64).collect())),
                            ("default_int64", Attr::Int(-1)),
                        ];
                        self.g.ml_op("LabelEncoder", &[&input.name], attributes, &format!("{name}/ids"), false)
                    }
                    _ => input.name.clone(),
                };
                Ids { value, buckets: ids.buckets() }
            }
            FeatureKind::Crossed { hash_buckets, .. } => {
                Ids { value: self.input_of(name)?.name.clone(), buckets: hash_buckets }
            }
            _ => return Err(ExportError::Bug(format!("`{name}` has no ids"))),
        };
        self.ids.insert(name.to_string(), ids.clone());
        Ok(ids)
    }

    /// A feature's ids with no-ids (and any outside `0..buckets`) replaced by 0, and a float mask
    /// `[N, k, 1]` that is 1 where there is an id.
    fn masked(&mut self, name: &str) -> Result<(String, String), ExportError> {
        if let Some(m) = self.masks.get(name) {
            return Ok(m.clone());
        }
        let Ids { value, buckets } = self.ids(name)?;
        let zero = self.g.longs("zero_id", &[], &[0]);
        let limit = self.g.longs(&format!("features/{name}/buckets"), &[], &[buckets as i64]);
        let some = self.g.op("GreaterOrEqual", &[&value, &zero], vec![], &format!("{name}/some"));
        let below = self.g.op("Less", &[&value, &limit], vec![], &format!("{name}/in_range"));
        let valid = self.g.op("And", &[&some, &below], vec![], &format!("{name}/valid"));
        let safe = self.g.op("Where", &[&valid, &value, &zero], vec![], &format!("{name}/safe_ids"));
        let mask = self.g.op("Cast", &[&valid], vec![("to", Attr::Int(TYPE_FLOAT as i64))], &format!("{name}/mask"));
        let axes = self.g.longs("axes_2", &[1], &[2]);
        let mask = self.g.op("Unsqueeze", &[&mask, &axes], vec![], &format!("{name}/mask3"));
        self.masks.insert(name.to_string(), (safe.clone(), mask.clone()));
        Ok((safe, mask))
    }

    /// Rows of `table` picked by feature `ids`' ids and combined per row: `[N, dim]`.
    fn embed(&mut self, table: &str, ids: &str, combiner: Combiner, base: &str) -> Result<String, ExportError> {
        let (safe, mask) = self.masked(ids)?;
        let rows = self.g.op("Gather", &[table, &safe], vec![("axis", Attr::Int(0))], &format!("{base}/rows"));
        let kept = self.g.op("Mul", &[&rows, &mask], vec![], &format!("{base}/kept"));
        let axes = self.g.longs("axes_1", &[1], &[1]);
        let summed = self.g.op("ReduceSum", &[&kept, &axes], vec![("keepdims", Attr::Int(0))], &format!("{base}/sum"));
        if combiner == Combiner::Sum {
            return Ok(summed);
        }
        let count = self.g.op("ReduceSum", &[&mask, &axes], vec![("keepdims", Attr::Int(0))], &format!("{base}/count"));
        let one = self.g.floats("one", &[], &[1.0]);
        let mut count = self.g.op("Max", &[&count, &one], vec![], &format!("{base}/count_at_least_1"));
        if combiner == Combiner::Sqrtn {
            count = self.g.op("Sqrt", &[&count], vec![], &format!("{base}/sqrt_count"));
        }
        Ok(self.g.op("Div", &[&summed, &count], vec![], &format!("{base}/{}", combiner_word(combiner))))
    }

    /// Counts of each id per row, `[N, width]`.
    fn multi_hot(&mut self, ids: &str, width: u64, base: &str) -> Result<String, ExportError> {
        let (safe, mask) = self.masked(ids)?;
        let depth = self.g.longs(&format!("{base}/depth"), &[], &[width as i64]);
        let values = self.g.floats("one_hot_values", &[2], &[0.0, 1.0]);
        let hot =
            self.g.op("OneHot", &[&safe, &depth, &values], vec![("axis", Attr::Int(-1))], &format!("{base}/one_hot"));
        let kept = self.g.op("Mul", &[&hot, &mask], vec![], &format!("{base}/kept"));
        let axes = self.g.longs("axes_1", &[1], &[1]);
        Ok(self.g.op("ReduceSum", &[&kept, &axes], vec![("keepdims", Attr::Int(0))], &format!("{base}/multi_hot")))
    }

    /// The dense value of a column in `scope`, as `lower::Model::dense` computes it.
    fn dense(&mut self, name: &str, scope: &str) -> Result<String, ExportError> {
        let key = (scope.to_string(), name.to_string());
        if let Some(v) = self.dense.get(&key) {
            return Ok(v.clone());
        }
        let value = match self.feature(name)?.clone() {
            FeatureKind::Numeric { .. } => self.numeric(name)?,
            FeatureKind::Bucketized { .. } => {
                let width = self.width(name);
                self.multi_hot(name, width, &format!("{scope}/{name}"))?
            }
            FeatureKind::Indicator { source } => {
                let width = self.width(name);
                self.multi_hot(&source, width, &format!("{scope}/{name}"))?
            }
            FeatureKind::Embedding { source, combiner, .. } => {
                let table = self.weight(&format!("{scope}/{name}/embedding_weights"))?;
                self.embed(&table, &source, combiner, &format!("{scope}/{name}"))?
            }
            FeatureKind::Categorical { .. } | FeatureKind::Crossed { .. } => {
                return Err(ExportError::Bug(format!("`{name}` is a sparse column in a dense layer")))
            }
        };
        self.dense.insert(key, value.clone());
        Ok(value)
    }

    /// The model's logits, `[N, logits]`.
    fn logits(&mut self) -> Result<String, ExportError> {
        let plan = self.plan;
        let mut logits = None;
        if let Some(dnn) = &plan.model.dnn {
            logits = Some(self.dnn(dnn)?);
        }
        if let Some(linear) = &plan.model.linear {
            let l = self.linear(&linear.inputs)?;
            logits = Some(match logits {
                Some(d) => self.g.op("Add", &[&d, &l], vec![], "wide_and_deep/logits"),
                None => l,
            });
        }
        if logits.is_none() && plan.model.kind.is_baseline() {
            // The bias alone, once per row.
            let bias = self.weight("baseline/bias")?;
            let rows = self
                .inputs
                .first()
                .map(|i| i.name.clone())
                .ok_or_else(|| ExportError::Bug("a baseline without its `rows` input".into()))?;
            let n = self.g.op("Shape", &[&rows], vec![("end", Attr::Int(1))], "baseline/rows");
            let width = self.g.longs("baseline/width", &[1], &[plan.model.head.logits as i64]);
            let shape = self.g.op("Concat", &[&n, &width], vec![("axis", Attr::Int(0))], "baseline/shape");
            logits = Some(self.g.op("Expand", &[&bias, &shape], vec![], "baseline/logits"));
        }
        logits.ok_or_else(|| ExportError::Bug("a model without logits".into()))
    }

    fn dnn(&mut self, dnn: &DnnPlan) -> Result<String, ExportError> {
        let mut parts = Vec::with_capacity(dnn.spec.inputs.len());
        for name in &dnn.spec.inputs {
            parts.push(self.dense(name, DNN_SCOPE)?);
        }
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let mut h = if parts.len() == 1 {
            parts[0].clone()
        } else {
            self.g.op("Concat", &refs, vec![("axis", Attr::Int(1))], &format!("{DNN_SCOPE}/concat"))
        };
        for i in 0..dnn.spec.hidden_units.len() {
            let p = format!("dnn/hiddenlayer_{i}");
            let kernel = self.weight(&format!("{p}/kernel"))?;
            let bias = self.weight(&format!("{p}/bias"))?;
            h = self.g.op("Gemm", &[&h, &kernel, &bias], vec![], &format!("{p}/linear"));
            h = self.activate(&h, dnn.spec.activation, &p);
            // Dropout is training only.
            if dnn.spec.batch_norm {
                let n = format!("{p}/batchnorm_{i}");
                let gamma = self.weight(&format!("{n}/gamma"))?;
                let beta = self.weight(&format!("{n}/beta"))?;
                let mean = self.weight(&format!("{n}/moving_mean"))?;
                let variance = self.weight(&format!("{n}/moving_variance"))?;
                h = self.g.op(
                    "BatchNormalization",
                    &[&h, &gamma, &beta, &mean, &variance],
                    vec![("epsilon", Attr::Float(NORM_EPSILON))],
                    &format!("{n}/output"),
                );
            }
        }
        let kernel = self.weight("dnn/logits/kernel")?;
        let bias = self.weight("dnn/logits/bias")?;
        Ok(self.g.op("Gemm", &[&h, &kernel, &bias], vec![], "dnn/logits/output"))
    }

    fn activate(&mut self, x: &str, activation: Activation, layer: &str) -> String {
        let base = format!("{layer}/{}", activation_word(activation));
        match activation {
            Activation::Relu => self.g.op("Relu", &[x], vec![], &base),
            Activation::Relu6 => {
                let lo = self.g.floats("zero", &[], &[0.0]);
                let hi = self.g.floats("six", &[], &[6.0]);
                self.g.op("Clip", &[x, &lo, &hi], vec![], &base)
            }
            Activation::Elu => self.g.op("Elu", &[x], vec![("alpha", Attr::Float(1.0))], &base),
            // ONNX's default alpha and gamma are torch's constants.
            Activation::Selu => self.g.op("Selu", &[x], vec![], &base),
            Activation::Gelu => {
                // The exact GELU, x·Φ(x) = x·(1 + erf(x/√2))/2; ONNX's own Gelu needs opset 20.
                let root2 = self.g.floats("sqrt_2", &[], &[std::f32::consts::SQRT_2]);
                let one = self.g.floats("one", &[], &[1.0]);
                let half = self.g.floats("half", &[], &[0.5]);
                let scaled = self.g.op("Div", &[x, &root2], vec![], &format!("{base}/scaled"));
                let erf = self.g.op("Erf", &[&scaled], vec![], &format!("{base}/erf"));
                let cdf = self.g.op("Add", &[&erf, &one], vec![], &format!("{base}/cdf2"));
                let product = self.g.op("Mul", &[x, &cdf], vec![], &format!("{base}/product"));
                self.g.op("Mul", &[&product, &half], vec![], &base)
            }
            Activation::Tanh => self.g.op("Tanh", &[x], vec![], &base),
            Activation::Sigmoid => self.g.op("Sigmoid", &[x], vec![], &base),
            Activation::Swish => {
                let s = self.g.op("Sigmoid", &[x], vec![], &format!("{base}/sigmoid"));
                self.g.op("Mul", &[x, &s], vec![], &base)
            }
            Activation::LeakyRelu => self.g.op("LeakyRelu", &[x], vec![("alpha", Attr::Float(0.2))], &base),
            Activation::Linear => x.to_string(),
        }
    }

    /// The linear part's logits, its bias included, summed in the order training sums them.
    fn linear(&mut self, inputs: &[String]) -> Result<String, ExportError> {
        let mut sum = self.weight(&format!("{LINEAR_SCOPE}/bias_weights"))?;
        for name in inputs {
            let weights = self.weight(&format!("{LINEAR_SCOPE}/{name}/weights"))?;
            let base = format!("{LINEAR_SCOPE}/{name}");
            let part = match self.feature(name)?.clone() {
                FeatureKind::Categorical { .. } | FeatureKind::Bucketized { .. } | FeatureKind::Crossed { .. } => {
                    self.embed(&weights, name, Combiner::Sum, &base)?
                }
                FeatureKind::Indicator { source } => self.embed(&weights, &source, Combiner::Sum, &base)?,
                FeatureKind::Numeric { .. } | FeatureKind::Embedding { .. } => {
                    let x = self.dense(name, LINEAR_SCOPE)?;
                    self.g.op("MatMul", &[&x, &weights], vec![], &format!("{base}/weighted"))
                }
            };
            sum = self.g.op("Add", &[&sum, &part], vec![], &format!("{LINEAR_SCOPE}/sum"));
        }
        Ok(sum)
    }

    /// The head's outputs from the logits, as `est predict` computes them.
    fn head(&mut self, logits: &str) -> Result<(), ExportError> {
        let plan = self.plan;
        let head = &plan.model.head;
        if head.kind == HeadKind::Regression {
            self.g.op_as("Identity", &[logits], vec![], "predictions");
            return Ok(());
        }
        self.g.op_as("Identity", &[logits], vec![], "logits");
        let class_ids = match head.kind {
            HeadKind::Binary => {
                let p = self.g.op_as("Sigmoid", &[logits], vec![], "logistic");
                let one = self.g.floats("one", &[], &[1.0]);
                let q = self.g.op("Sub", &[&one, &p], vec![], "head/negative");
                self.g.op_as("Concat", &[&q, &p], vec![("axis", Attr::Int(1))], "probabilities");
                let half = self.g.floats("half", &[], &[0.5]);
                let positive = self.g.op("Greater", &[&p, &half], vec![], "head/positive");
                self.g.op_as("Cast", &[&positive], vec![("to", Attr::Int(TYPE_INT64 as i64))], "class_ids")
            }
            _ => {
                self.g.op_as("Softmax", &[logits], vec![("axis", Attr::Int(-1))], "probabilities");
                // ONNX's ArgMax takes the first of equal maxima, as est does.
                self.g.op_as("ArgMax", &[logits], vec![("axis", Attr::Int(1)), ("keepdims", Attr::Int(1))], "class_ids")
            }
        };
        let n = head.n_classes.unwrap_or(2) as i64;
        let names: Vec<String> = match &plan.data.label_vocabulary {
            Some(v) => v.clone(),
            None => (0..n).map(|i| i.to_string()).collect(),
        };
        let attributes = vec![
            ("keys_int64s", Attr::Ints((0..n).collect())),
            ("values_strings", Attr::Strings(names)),
            ("default_string", Attr::Str("")),
        ];
        self.g.ml_op("LabelEncoder", &[&class_ids], attributes, "classes", true);
        Ok(())
    }
}

fn combiner_word(c: Combiner) -> &'static str {
    match c {
        Combiner::Mean => "mean",
        Combiner::Sum => "sum",
        Combiner::Sqrtn => "sqrtn",
    }
}

fn activation_word(a: Activation) -> String {
    serde_json::to_value(a).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}
