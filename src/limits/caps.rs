//! Caps on open streams, for the whole process and per client address. Each stream holds a
//! socket (a file descriptor) for as long as it is open; without a cap, enough streams use up
//! the process's open-file limit and then nothing answers: not health checks, not metrics,
//! not publishing. The cap keeps descriptors in reserve for those, and new streams past it get
//! 503 with `Retry-After`, which `EventSource` and the product's clients back off on.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Why a stream was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapReached {
    /// The process holds `max_streams` streams.
    Process(usize),
    /// This address holds `max_streams_per_address` streams.
    Address(usize),
}

/// The open streams, counted.
pub struct StreamCaps {
    max: usize,
    per_address: Option<usize>,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// One admitted stream's place under the caps; dropping it frees the place.
pub struct StreamSlot {
    caps: Arc<StreamCaps>,
    address: Option<IpAddr>,
}

impl StreamCaps {
    /// `per_address` of `None` counts the total only.
    pub fn new(max: usize, per_address: Option<usize>) -> Arc<StreamCaps> {
        Arc::new(StreamCaps {
            max,
            per_address,
            open: Mutex::new(Open::default()),
        })
    }

    /// The most streams this process takes.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Admits a stream from `address` (unknown: counted in the total only).
    pub fn admit(self: &Arc<Self>, address: Option<IpAddr>) -> Result<StreamSlot, CapReached> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.total >= self.max {
            return Err(CapReached::Process(self.max));
        }
        let counted = match (address, self.per_address) {
            (Some(address), Some(cap)) => {
                let held = open.by_address.entry(address).or_default();
                if *held >= cap {
                    return Err(CapReached::Address(cap));
                }
                *held += 1;
                Some(address)
            }
            _ => None,
        };
        open.total += 1;
        Ok(StreamSlot {
            caps: self.clone(),
            address: counted,
        })
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.open.lock().map_or(0, |o| o.total)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.caps.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(address) = self.address {
            if let Some(held) = open.by_address.get_mut(&address) {
                *held -= 1;
                if *held == 0 {
                    open.by_address.remove(&address);
                }
            }
        }
    }
}

/// The open-file limit of this process (soft), if it can be read.
pub fn open_file_limit() -> Option<usize> {
    rlimit::getrlimit(rlimit::Resource::NOFILE)
        .ok()
        .map(|(soft, _)| usize::try_from(soft).unwrap_or(usize::MAX))
}

/// Descriptors this process holds now (0 where `/proc` cannot say).
pub fn open_files() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |entries| entries.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caps_hold_and_a_dropped_slot_frees_its_place() {
        let caps = StreamCaps::new(3, Some(2));
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let first = caps.admit(Some(a)).expect("1");
        let _second = caps.admit(Some(a)).expect("2");
        assert_eq!(caps.admit(Some(a)).err(), Some(CapReached::Address(2)));
        let _third = caps.admit(Some(b)).expect("3");
        assert_eq!(caps.admit(Some(b)).err(), Some(CapReached::Process(3)));
        drop(first);
        assert_eq!(caps.open(), 2);
        assert!(
            caps.admit(Some(a)).is_ok(),
            "the freed place is taken again"
        );
    }
}
