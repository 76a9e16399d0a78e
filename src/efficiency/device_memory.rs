//! Peak memory on a CUDA device: the high-water mark of the device's default memory pool
//! (`CU_MEMPOOL_ATTR_USED_MEM_HIGH`). candle allocates every device tensor from that pool
//! (`cuMemAllocAsync`, where the device supports memory pools, as every GPU since Pascal with
//! CUDA >= 11.2 does), so the mark is the most memory the process's tensors held at once: what
//! PyTorch reports as `max_memory_allocated`, without the caching allocator's slack. Written
//! here because candle exposes no memory statistics; it is three driver calls through the
//! `cudarc` bindings candle re-exports.

use candle_core::Device;

/// The pool's high-water mark of `device` in MiB since the process started or the last
/// [`reset_peak_device`]; `None` on the CPU, on builds without CUDA, or where the device
/// allocates outside a memory pool.
pub fn peak_device_mib(device: &Device) -> Option<f64> {
    imp::used_high(device).map(|b| b as f64 / (1024.0 * 1024.0))
}

/// Start a new high-water mark of `device`'s pool (at the memory in use now).
pub fn reset_peak_device(device: &Device) {
    imp::reset(device)
}

#[cfg(feature = "cuda")]
mod imp {
    use candle_core::Device;
    use candle_core::cuda_backend::cudarc::driver::sys;

    fn pool(device: &Device) -> Option<sys::CUmemoryPool> {
        let Device::Cuda(d) = device else {
            return None;
        };
        let stream = d.cuda_stream();
        let dev = stream.context().cu_device();
        let mut pool = std::ptr::null_mut();
        // SAFETY: a valid device handle of a live context; the out-pointer is a local.
        let r = unsafe { sys::cuDeviceGetDefaultMemPool(&mut pool, dev) };
        (r == sys::CUresult::CUDA_SUCCESS).then_some(pool)
    }

    pub(super) fn used_high(device: &Device) -> Option<u64> {
        let pool = pool(device)?;
        let mut v: u64 = 0;
        // SAFETY: USED_MEM_HIGH is a cuuint64_t attribute; `v` outlives the call.
        let r = unsafe {
            sys::cuMemPoolGetAttribute(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
                (&mut v as *mut u64).cast(),
            )
        };
        (r == sys::CUresult::CUDA_SUCCESS && v > 0).then_some(v)
    }

    pub(super) fn reset(device: &Device) {
        if let Some(pool) = pool(device) {
            let mut zero: u64 = 0;
            // SAFETY: as above; setting the high-water attribute to 0 resets it (CUDA docs).
            unsafe {
                sys::cuMemPoolSetAttribute(
                    pool,
                    sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
                    (&mut zero as *mut u64).cast(),
                );
            }
        }
    }
}

#[cfg(not(feature = "cuda"))]
mod imp {
    use candle_core::Device;

    pub(super) fn used_high(_: &Device) -> Option<u64> {
        None
    }

    pub(super) fn reset(_: &Device) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_has_no_device_pool() {
        assert_eq!(peak_device_mib(&Device::Cpu), None);
        reset_peak_device(&Device::Cpu);
    }
}
