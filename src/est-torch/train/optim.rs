//! Optimizers written on tensors, so their state is named tensors a checkpoint can hold (tch's
//! own optimizers hide it). Each update rule follows torch.optim's arithmetic (FTRL follows
//! Keras, as torch has none), and is tested against them.

use std::sync::Mutex;

use tch::{Kind, Tensor};

use crate::crew::Crew;

use est::pipeline::{Optimizer, OptimizerKind, Scope};

use super::direct::TouchedRows;
use super::snapshot::Write;
use crate::lower::Done;
use crate::memory::{slice, slice_mut};

/// One optimizer over the model parameters of its scope.
pub struct OptimizerState {
    /// The optimizer block it follows.
    pub config: Optimizer,
    /// Indexes of the model parameters it updates.
    pub params: Vec<usize>,
    /// Per parameter, one tensor per slot in `config.kind.slots()` order.
    pub slots: Vec<Vec<Tensor>>,
    /// Updates applied so far (Adam's bias correction counts them).
    pub step: i64,
}

impl OptimizerState {
    /// Fresh state for parameters shaped like `shapes`.
    pub fn new(config: &Optimizer, params: Vec<usize>, like: &[&Tensor]) -> Result<OptimizerState, tch::TchError> {
        let slot_names = config.kind.slots();
        let mut slots = Vec::with_capacity(like.len());
        for p in like {
            let mut per = Vec::with_capacity(slot_names.len());
            for name in &slot_names {
                let init = match (&config.kind, *name) {
                    (OptimizerKind::Adagrad { initial_accumulator, .. }, "accumulator")
                    | (OptimizerKind::Ftrl { initial_accumulator, .. }, "accumulator") => *initial_accumulator,
                    _ => 0.0,
                };
                per.push(Tensor::f_full_like(p, init)?.f_detach()?);
            }
            slots.push(per);
        }
        Ok(OptimizerState { config: config.clone(), params, slots, step: 0 })
    }

    /// The name a slot tensor has in checkpoints.
    pub fn slot_name(scope: Scope, param: &str, slot: &str) -> String {
        format!("optimizer/{}/{param}/{slot}", scope.word())
    }

    /// The name its update count has in checkpoints.
    pub fn step_name(scope: Scope) -> String {
        format!("optimizer/{}/step", scope.word())
    }

    /// Applies one update to `params` with their `grads` at learning rate `lr`.
    pub fn apply(&mut self, params: &[Tensor], grads: &[Tensor], lr: f64) -> Result<(), tch::TchError> {
        self.step += 1;
        let _guard = tch::no_grad_guard();
        for ((param, grad), slots) in params.iter().zip(grads).zip(self.slots.iter_mut()) {
            rule(&self.config, self.step, param, grad, slots, lr)?;
        }
        Ok(())
    }

    /// Whether an update of a gradient's touched rows alone is the update to make: where a zero
    /// gradient leaves a variable and its state exactly as they are (Adagrad; plain SGD; FTRL
    /// after its first update, which sets every weight from its state, without shrinkage and at
    /// the learning-rate power -0.5, whose root is exact), or where the block asks for `lazy`.
    pub fn updates_rows(&self) -> bool {
        let c = &self.config;
        if c.lazy {
            return true;
        }
        if c.weight_decay != 0.0 || c.clip_norm.is_some() {
            return false;
        }
        match c.kind {
            OptimizerKind::Adagrad { .. } => true,
            OptimizerKind::Sgd { momentum, .. } => momentum == 0.0,
            OptimizerKind::Ftrl { l2_shrinkage, learning_rate_power, .. } => {
                l2_shrinkage == 0.0 && learning_rate_power == -0.5 && self.step > 0
            }
            OptimizerKind::Adam { .. } | OptimizerKind::Rmsprop { .. } => false,
        }
    }

    /// What `update_rows` with these touched members writes.
    pub fn writes<'a>(&self, touched: &'a [TouchedRows]) -> Write<'a> {
        if touched.is_empty() || !self.updates_rows() || self.slots.len() != 1 {
            Write::All
        } else {
            Write::Rows(touched)
        }
    }

    /// As `update`, for a gradient `grad` of `flat` that is zero in the members `touched` lists
    /// but for their touched rows: where `updates_rows`, only those rows and the other members
    /// are updated, in place.
    pub fn update_rows(
        &mut self,
        flat: &Tensor,
        grad: &Tensor,
        touched: &[TouchedRows],
        step: u64,
    ) -> Result<(), tch::TchError> {
        if !matches!(self.writes(touched), Write::Rows(_)) {
            return self.update(flat, vec![grad.shallow_clone()], step);
        }
        let lr = super::schedule::learning_rate(self.config.learning_rate, self.config.decay.as_ref(), step);
        let ranges = ranges(flat.numel(), touched);
        if let Some(done) = self.apply_fused_ranges(flat, grad, &ranges, lr) {
            return done;
        }
        let _guard = tch::no_grad_guard();
        let index: Vec<i64> = ranges.iter().flat_map(|&(start, len)| (start..start + len).map(|i| i as i64)).collect();
        let index = Tensor::f_from_slice(&index)?.f_to_device(flat.device())?;
        let param = flat.f_index_select(0, &index)?;
        let g = grad.f_index_select(0, &index)?;
        let mut slots: Vec<Tensor> =
            self.slots[0].iter().map(|s| s.f_index_select(0, &index)).collect::<Result<_, _>>()?;
        if let Some(clip) = self.config.clip_norm {
            clip_global_norm(std::slice::from_ref(&g), clip)?;
        }
        self.step += 1;
        rule(&self.config, self.step, &param, &g, &mut slots, lr)?;
        flat.shallow_clone().f_index_copy_(0, &index, &param).done()?;
        for (slot, rows) in self.slots[0].iter_mut().zip(&slots) {
            slot.f_index_copy_(0, &index, rows).done()?;
        }
        Ok(())
    }

    /// Adagrad's fused update of the element `ranges` of `flat` alone; `None` as for `apply_fused`.
    fn apply_fused_ranges(
        &mut self,
        flat: &Tensor,
        grad: &Tensor,
        ranges: &[(usize, usize)],
        lr: f64,
    ) -> Option<Result<(), tch::TchError>> {
        let OptimizerKind::Adagrad { epsilon, .. } = self.config.kind else { return None };
        let acc = self.slots.first()?.first()?;
        if self.config.weight_decay != 0.0 || self.config.clip_norm.is_some() {
            return None;
        }
        // SAFETY: as in `apply_fused`.
        let (p, a, g) = unsafe { (slice_mut::<f32>(flat)?, slice_mut::<f32>(acc)?, slice::<f32>(grad)?) };
        if a.len() != p.len() || g.len() != p.len() || ranges.iter().any(|&(s, n)| s + n > p.len()) {
            return None;
        }
        self.step += 1;
        let (neg_lr, epsilon) = (-lr as f32, epsilon as f32);
        let parts: Vec<Mutex<Part>> = parts(p, a, g, ranges).into_iter().map(Mutex::new).collect();
        let done = Crew::shared().run(parts.len(), &|i| {
            if let Ok(mut part) = parts[i].lock() {
                let Part { p, a, g, base, ranges } = &mut *part;
                for &(s, n) in *ranges {
                    let s = s - *base;
                    adagrad(&mut p[s..s + n], &mut a[s..s + n], &g[s..s + n], neg_lr, epsilon);
                }
            }
        });
        Some(done.map_err(|e| tch::TchError::Torch(e.to_string())))
    }
}

/// The ranges `ranges` (ascending, apart) of a flat buffer, its accumulator and its gradient,
/// in a few parts of about as many elements each, which the crew updates side by side.
struct Part<'a> {
    p: &'a mut [f32],
    a: &'a mut [f32],
    g: &'a [f32],
    /// Where `p`, `a` and `g` start in the flat buffer.
    base: usize,
    ranges: &'a [(usize, usize)],
}

fn parts<'a>(
    mut p: &'a mut [f32],
    mut a: &'a mut [f32],
    mut g: &'a [f32],
    ranges: &'a [(usize, usize)],
) -> Vec<Part<'a>> {
    const PARTS: usize = 8;
    if !ranges.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0) {
        return vec![Part { p, a, g, base: 0, ranges }];
    }
    let total: usize = ranges.iter().map(|r| r.1).sum();
    let mut out = Vec::with_capacity(PARTS);
    let (mut at, mut first, mut elements) = (0, 0, 0);
    for (i, &(_, n)) in ranges.iter().enumerate() {
        elements += n;
        let last = i + 1 == ranges.len();
        if !last && elements * PARTS < total * (out.len() + 1) {
            continue;
        }
        let (lo, hi) = (ranges[first].0, ranges[i].0 + ranges[i].1);
        let (part_p, rest_p) = std::mem::take(&mut p).split_at_mut(hi - at);
        let (part_a, rest_a) = std::mem::take(&mut a).split_at_mut(hi - at);
        let (part_g, rest_g) = g.split_at(hi - at);
        (p, a, g) = (rest_p, rest_a, rest_g);
        let skip = lo - at;
        out.push(Part {
            p: &mut part_p[skip..],
            a: &mut part_a[skip..],
            g: &part_g[skip..],
            base: lo,
            ranges: &ranges[first..=i],
        });
        (at, first) = (hi, i + 1);
    }
    out
}

/// The element ranges of a flat buffer of `total` elements to update: every member but the
/// `touched` ones whole, and the touched rows of those.
fn ranges(total: usize, touched: &[TouchedRows]) -> Vec<(usize, usize)> {
    let mut members: Vec<&TouchedRows> = touched.iter().collect();
    members.sort_by_key(|m| m.offset);
    let mut out = Vec::new();
    let mut at = 0;
    for m in members {
        if m.offset > at {
            out.push((at, m.offset - at));
        }
        let mut rows = m.rows.clone();
        rows.sort_unstable();
        out.extend(rows.into_iter().map(|r| (m.offset + r as usize * m.width, m.width)));
        at = at.max(m.offset + m.len);
    }
    if at < total {
        out.push((at, total - at));
    }
    out
}

/// One update of `param` from `grad` and its optimizer's `slots`, the `step`th, at rate `lr`.
fn rule(
    config: &Optimizer,
    step: i64,
    param: &Tensor,
    grad: &Tensor,
    slots: &mut [Tensor],
    lr: f64,
) -> Result<(), tch::TchError> {
    let wd = config.weight_decay;
    {
        {
            let mut p = param.shallow_clone();
            let g = if wd != 0.0 { grad.f_add(&param.f_mul_scalar(wd)?)? } else { grad.shallow_clone() };
            match config.kind {
                OptimizerKind::Adagrad { epsilon, .. } => {
                    let acc = &mut slots[0];
                    acc.f_addcmul_(&g, &g).done()?;
                    let mut std = acc.f_sqrt()?;
                    std.f_add_scalar_(epsilon).done()?;
                    p.f_addcdiv_(&g.f_mul_scalar(-lr)?, &std).done()?;
                }
                OptimizerKind::Adam { beta1, beta2, epsilon, amsgrad } => {
                    let (m, rest) = slots.split_at_mut(1);
                    let m = &mut m[0];
                    m.f_lerp_(&g, 1.0 - beta1).done()?;
                    let v = &mut rest[0];
                    v.f_mul_scalar_(beta2).done()?;
                    v.f_add_(&g.f_mul(&g)?.f_mul_scalar(1.0 - beta2)?).done()?;
                    let bias1 = 1.0 - beta1.powi(step as i32);
                    let bias2_sqrt = (1.0 - beta2.powi(step as i32)).sqrt();
                    let second = if amsgrad {
                        let (v, max) = rest.split_at_mut(1);
                        let max = &mut max[0];
                        let new_max = max.f_maximum(&v[0])?;
                        max.f_copy_(&new_max)?;
                        max.shallow_clone()
                    } else {
                        rest[0].shallow_clone()
                    };
                    let denom = second.f_sqrt()?.f_div_scalar(bias2_sqrt)?.f_add_scalar(epsilon)?;
                    p.f_sub_(&m.f_div(&denom)?.f_mul_scalar(lr / bias1)?).done()?;
                }
                OptimizerKind::Sgd { momentum, nesterov } => {
                    if momentum > 0.0 {
                        let buf = &mut slots[0];
                        // A zero buffer makes the first step `buf = grad`, as torch's clone does.
                        buf.f_mul_scalar_(momentum).done()?;
                        buf.f_add_(&g).done()?;
                        let direction =
                            if nesterov { g.f_add(&buf.f_mul_scalar(momentum)?)? } else { buf.shallow_clone() };
                        p.f_sub_(&direction.f_mul_scalar(lr)?).done()?;
                    } else {
                        p.f_sub_(&g.f_mul_scalar(lr)?).done()?;
                    }
                }
                OptimizerKind::Rmsprop { rho, momentum, epsilon, centered } => {
                    let sq = &mut slots[0];
                    sq.f_mul_scalar_(rho).done()?;
                    sq.f_add_(&g.f_mul(&g)?.f_mul_scalar(1.0 - rho)?).done()?;
                    let mut next = 1;
                    let has_momentum = momentum > 0.0;
                    let buf_index = if has_momentum {
                        next += 1;
                        Some(1)
                    } else {
                        None
                    };
                    let avg = if centered {
                        slots[next].f_lerp_(&g, 1.0 - rho).done()?;
                        let ga = &slots[next];
                        slots[0].f_sub(&ga.f_mul(ga)?)?.f_sqrt()?
                    } else {
                        slots[0].f_sqrt()?
                    }
                    .f_add_scalar(epsilon)?;
                    match buf_index {
                        Some(i) => {
                            let buf = &mut slots[i];
                            buf.f_mul_scalar_(momentum).done()?;
                            buf.f_add_(&g.f_div(&avg)?).done()?;
                            p.f_sub_(&buf.f_mul_scalar(lr)?).done()?;
                        }
                        None => {
                            p.f_sub_(&g.f_div(&avg)?.f_mul_scalar(lr)?).done()?;
                        }
                    }
                }
                OptimizerKind::Ftrl { learning_rate_power, l1, l2, l2_shrinkage, beta, .. } => {
                    let power = -learning_rate_power;
                    let (acc, lin) = slots.split_at_mut(1);
                    let (acc, lin) = (&mut acc[0], &mut lin[0]);
                    let shrunk = if l2_shrinkage > 0.0 {
                        g.f_add(&param.f_mul_scalar(2.0 * l2_shrinkage)?)?
                    } else {
                        g.shallow_clone()
                    };
                    let new_acc = acc.f_add(&g.f_mul(&g)?)?;
                    let new_pow = new_acc.f_pow_tensor_scalar(power)?;
                    let sigma = new_pow.f_sub(&acc.f_pow_tensor_scalar(power)?)?.f_div_scalar(lr)?;
                    lin.f_add_(&shrunk.f_sub(&sigma.f_mul(param)?)?).done()?;
                    let quadratic = new_pow.f_add_scalar(beta)?.f_div_scalar(lr)?.f_add_scalar(2.0 * l2)?;
                    let clipped = lin.f_clamp(-l1, l1)?;
                    let value = clipped.f_sub(lin)?.f_div(&quadratic)?;
                    p.f_copy_(&value)?;
                    acc.f_copy_(&new_acc)?;
                }
            }
        }
    }
    Ok(())
}

impl OptimizerState {
    /// One update of the flat buffer `flat` from the gradients of its members, `parts`, laid
    /// end to end, before global step `step` moves (the learning rate follows the decay there).
    pub fn update(&mut self, flat: &Tensor, parts: Vec<Tensor>, step: u64) -> Result<(), tch::TchError> {
        let lr = super::schedule::learning_rate(self.config.learning_rate, self.config.decay.as_ref(), step);
        if let Some(done) = self.apply_fused(flat, &parts, lr) {
            return done;
        }
        let grads = [if parts.len() == 1 { parts[0].shallow_clone() } else { Tensor::f_cat(&parts, 0)? }];
        if let Some(clip) = self.config.clip_norm {
            clip_global_norm(&grads, clip)?;
        }
        self.apply(std::slice::from_ref(flat), &grads, lr)
    }

    /// Adagrad's update of the CPU float buffer `flat` from its gradient, given as `parts` laid
    /// end to end, in one pass over the memory: `apply`'s arithmetic element by element, without
    /// the concatenated gradient, four passes and three temporaries the tensor form takes.
    /// `None`, with nothing changed, where it does not apply (another optimizer, weight decay,
    /// gradient clipping, another device or layout): `apply` then does.
    pub fn apply_fused(&mut self, flat: &Tensor, parts: &[Tensor], lr: f64) -> Option<Result<(), tch::TchError>> {
        let OptimizerKind::Adagrad { epsilon, .. } = self.config.kind else { return None };
        let acc = self.slots.first()?.first()?;
        if self.config.weight_decay != 0.0 || self.config.clip_norm.is_some() || self.slots.len() != 1 {
            return None;
        }
        // SAFETY: the variables and their accumulator are distinct buffers, and the gradients
        // (autograd's or the written-out step's) alias neither; nothing else reads or writes
        // any of them while these slices live.
        let (p, a, g) = unsafe {
            (
                slice_mut::<f32>(flat),
                slice_mut::<f32>(acc),
                parts.iter().map(|part| slice::<f32>(part)).collect::<Option<Vec<_>>>(),
            )
        };
        let (p, a, g) = (p?, a?, g?);
        if a.len() != p.len() || g.iter().map(|g| g.len()).sum::<usize>() != p.len() {
            return None;
        }
        self.step += 1;
        let mut at = 0;
        for g in g {
            adagrad(&mut p[at..at + g.len()], &mut a[at..at + g.len()], g, -lr as f32, epsilon as f32);
            at += g.len();
        }
        Some(Ok(()))
    }
}

/// `acc += g²; p += (g × -lr) / (√acc + ε)`, each operation rounded to f32 in turn. libtorch's
/// kernels for the tensor form may fuse or vectorise differently, so the two agree to within
/// rounding, not bit for bit.
fn adagrad(p: &mut [f32], acc: &mut [f32], g: &[f32], neg_lr: f32, epsilon: f32) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor has AVX2.
        return unsafe { adagrad_avx2(p, acc, g, neg_lr, epsilon) };
    }
    adagrad_with(p, acc, g, neg_lr, epsilon)
}

/// `adagrad` eight lanes at a time: the lanes are elements, so the results are the same bits
/// (no fused multiply-add, which would round differently from a processor without one).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn adagrad_avx2(p: &mut [f32], acc: &mut [f32], g: &[f32], neg_lr: f32, epsilon: f32) {
    adagrad_with(p, acc, g, neg_lr, epsilon)
}

#[inline(always)]
fn adagrad_with(p: &mut [f32], acc: &mut [f32], g: &[f32], neg_lr: f32, epsilon: f32) {
    for ((p, a), &g) in p.iter_mut().zip(acc.iter_mut()).zip(g) {
        *a += g * g;
        *p += (g * neg_lr) / (a.sqrt() + epsilon);
    }
}

/// Scales `grads` so their global norm is at most `clip` (tf.clip_by_global_norm), on device.
pub fn clip_global_norm(grads: &[Tensor], clip: f64) -> Result<(), tch::TchError> {
    let _guard = tch::no_grad_guard();
    let mut total: Option<Tensor> = None;
    for g in grads {
        let s = g.f_mul(g)?.f_sum(Kind::Float)?;
        total = Some(match total {
            Some(t) => t.f_add(&s)?,
            None => s,
        });
    }
    let Some(total) = total else { return Ok(()) };
    let norm = total.f_sqrt()?;
    let scale = norm.f_clamp_min(clip)?.f_reciprocal()?.f_mul_scalar(clip)?;
    for g in grads {
        let mut g = g.shallow_clone();
        g.f_mul_(&scale).done()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parts;

    #[test]
    fn parts_cover_each_range_once_in_its_place() {
        let len = 1000;
        let ranges: Vec<(usize, usize)> = vec![(0, 300), (310, 8), (400, 8), (408, 8), (700, 8), (992, 8)];
        let (mut p, mut a) = (vec![0f32; len], vec![0f32; len]);
        let g: Vec<f32> = (0..len).map(|i| i as f32).collect();
        let parts = parts(&mut p, &mut a, &g, &ranges);
        assert!(parts.len() > 1);
        let mut seen = Vec::new();
        for part in parts {
            for &(s, n) in part.ranges {
                let at = s - part.base;
                assert_eq!(part.g[at], s as f32);
                part.p[at..at + n].fill(1.0);
                seen.push((s, n));
            }
        }
        assert_eq!(seen, ranges);
        let written: usize = p.iter().filter(|&&v| v == 1.0).count();
        assert_eq!(written, ranges.iter().map(|r| r.1).sum::<usize>());
        // Ranges out of order make one part of the whole buffer.
        let (mut p, mut a) = (vec![0f32; len], vec![0f32; len]);
        assert_eq!(super::parts(&mut p, &mut a, &g, &[(500, 8), (0, 8)]).len(), 1);
    }
}
