//! est's one integration test binary: each module is one area of behaviour.

#[cfg(feature = "torch")]
mod backprop;
mod cli;
mod common;
mod compile;
mod data;
#[cfg(feature = "torch")]
mod events;
mod fingerprint;
mod fuzz;
#[cfg(feature = "torch")]
mod guard;
#[cfg(feature = "torch")]
mod optimizers;
#[cfg(feature = "torch")]
mod reliability;
#[cfg(feature = "torch")]
mod store;
#[cfg(feature = "torch")]
mod training;
#[cfg(feature = "torch")]
mod watch;
