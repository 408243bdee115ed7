//! Measurements from outside the protocol: a microsecond clock shared by publisher and
//! subscribers, the server's resident memory, and this process's CPU time.

use serde::Serialize;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Seconds since the UNIX epoch by the wall clock.
pub fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Microseconds since the UNIX epoch, read from a monotonic clock anchored to the wall clock
/// once: the send time written into an event and the receive time compared with it come from
/// the same process, so a wall-clock step during a run cannot bend the latencies.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    anchor: Instant,
    anchor_us: u64,
}

impl Clock {
    pub fn new() -> Self {
        let anchor_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or_default();
        Clock {
            anchor: Instant::now(),
            anchor_us,
        }
    }

    pub fn now_us(&self) -> u64 {
        self.anchor_us + self.anchor.elapsed().as_micros() as u64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// `VmRSS` of process `pid` in KiB, from `/proc/PID/status`; `None` if it cannot be read.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

/// The summed `VmRSS` of `pids` (a server of several processes); `None` if one is unreadable.
/// Pages two of them share are counted in each.
pub fn total_rss_kib(pids: &[u32]) -> Option<u64> {
    pids.iter().map(|&pid| rss_kib(pid)).sum()
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// CPU time this process has used, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CpuTime {
    pub user_secs: f64,
    pub system_secs: f64,
}

impl CpuTime {
    pub fn total(&self) -> f64 {
        self.user_secs + self.system_secs
    }

    pub fn since(&self, earlier: &CpuTime) -> CpuTime {
        CpuTime {
            user_secs: self.user_secs - earlier.user_secs,
            system_secs: self.system_secs - earlier.system_secs,
        }
    }
}

/// Linux reports `utime`/`stime` in clock ticks of `USER_HZ`, which is 100 on every
/// architecture's user-space ABI.
const USER_HZ: f64 = 100.0;

/// This process's CPU time, from `/proc/self/stat`.
pub fn self_cpu() -> Option<CpuTime> {
    parse_stat_cpu(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// The CPU time of process `pid` (all its threads), from `/proc/PID/stat`.
pub fn process_cpu(pid: u32) -> Option<CpuTime> {
    parse_stat_cpu(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The summed CPU time of `pids`; `None` if one is unreadable.
pub fn total_cpu(pids: &[u32]) -> Option<CpuTime> {
    pids.iter().try_fold(CpuTime::default(), |sum, &pid| {
        let cpu = process_cpu(pid)?;
        Some(CpuTime {
            user_secs: sum.user_secs + cpu.user_secs,
            system_secs: sum.system_secs + cpu.system_secs,
        })
    })
}

fn parse_stat_cpu(stat: &str) -> Option<CpuTime> {
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_whitespace();
    // Fields 3 (state) … 13 come first; 14 is utime, 15 stime.
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some(CpuTime {
        user_secs: utime / USER_HZ,
        system_secs: stime / USER_HZ,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_from_a_status_file() {
        let status = "Name:\tx\nVmPeak:\t 9 kB\nVmRSS:\t   12345 kB\nThreads:\t1\n";
        assert_eq!(parse_vm_rss(status), Some(12345));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn cpu_time_is_read_past_a_command_name_with_spaces() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 1 0";
        let cpu = parse_stat_cpu(stat).expect("parses");
        assert_eq!(cpu.user_secs, 2.5);
        assert_eq!(cpu.system_secs, 0.3);
    }

    #[test]
    fn this_process_can_read_its_own_figures() {
        assert!(self_cpu().is_some());
        assert!(process_cpu(std::process::id()).is_some());
        assert!(rss_kib(std::process::id()).is_some_and(|kib| kib > 0));
    }
}
