//! Where a plan computes: the device it asks for, if this machine has it, and how many threads
//! libtorch uses on the CPU.

use est::pipeline::Threads;
use est::plan::Plan;
use tch::Device;

use super::TrainError;

/// Models smaller than this many multiply-adds per training step run on one thread: an OpenMP
/// team spends more time in barriers than it saves on them (iris runs faster alone).
const THREADED_WORK: u64 = 1_000_000;

/// Sets libtorch's thread count for the plan: `auto` gives small models one thread and large
/// ones every core.
pub fn configure_threads(plan: &Plan) {
    let n = match plan.train.threads {
        Threads::Fixed(n) => n,
        Threads::Auto => {
            let kernels: u64 = plan
                .model
                .variables
                .iter()
                .filter(|v| v.name.ends_with("/kernel"))
                .map(|v| v.shape.iter().product::<u64>())
                .sum();
            let linear = plan.model.linear.as_ref().map_or(0, |l| l.inputs.len() as u64 * plan.model.head.logits);
            if (kernels + linear) * plan.train.batch_size as u64 >= THREADED_WORK {
                est::data::cores()
            } else {
                1
            }
        }
    };
    tch::set_num_threads(n as i32);
}

/// The device the plan asks for, if this machine has it.
pub fn device(plan: &Plan) -> Result<Device, TrainError> {
    let unavailable = |reason: String| TrainError::Device { device: String::from(plan.train.device.clone()), reason };
    match plan.train.device {
        est::pipeline::Device::Cpu => Ok(Device::Cpu),
        est::pipeline::Device::Auto => Ok(if tch::Cuda::is_available() { Device::Cuda(0) } else { Device::Cpu }),
        est::pipeline::Device::Cuda(index) => {
            let i = index.unwrap_or(0);
            if !tch::Cuda::is_available() {
                return Err(unavailable("CUDA is not available on this machine".into()));
            }
            if i as i64 >= tch::Cuda::device_count() {
                return Err(unavailable(format!("this machine has {} CUDA devices", tch::Cuda::device_count())));
            }
            Ok(Device::Cuda(i))
        }
    }
}
