//! The `est-torch` crate's integration tests: training through the real binaries, and the
//! libtorch parts held to autograd, torch's losses, torch.optim, TensorBoard and safetensors. One test binary,
//! since each links libtorch.

mod backprop;
mod common;
mod events;
mod export;
mod guard;
mod inputs;
mod losses;
mod optimizers;
mod reliability;
mod saving;
mod sparse;
mod stopping;
mod store;
mod training;
mod watch;
