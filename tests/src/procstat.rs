//! CPU time and resident memory of a running process, from Linux's `/proc/<pid>`, for the
//! idle tests: a process that only waits on sockets, channels and conditions uses next to no
//! CPU, so its CPU time over a few seconds of wall time tells a spinning thread apart.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// Kernel clock ticks per second (`getconf CLK_TCK`; 100 on every common Linux).
pub fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// `utime + stime` (in clock ticks) and the name from a `stat` file of `/proc`.
fn cpu_ticks_of(stat_file: &Path) -> anyhow::Result<(String, u64)> {
    let text = std::fs::read_to_string(stat_file)
        .with_context(|| format!("reading {}", stat_file.display()))?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split at the last ')'.
    let open = text.find('(').context("no '(' in stat")?;
    let close = text.rfind(')').context("no ')' in stat")?;
    let name = text[open + 1..close].to_owned();
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // After the name: state is field 3 of proc(5), so utime (14) and stime (15) are 11 and 12.
    let tick = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("field {} of {}: {text}", i + 3, stat_file.display()))
    };
    Ok((name, tick(11)? + tick(12)?))
}

/// CPU time used so far by the whole process (all threads, including finished ones).
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let (_, ticks) = cpu_ticks_of(Path::new(&format!("/proc/{pid}/stat")))?;
    Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}

/// Per thread: its name and the CPU time it used so far.
pub fn thread_cpu_times(pid: u32) -> anyhow::Result<Vec<(u32, String, Duration)>> {
    let hz = clock_ticks() as f64;
    let mut out = Vec::new();
    let dir = format!("/proc/{pid}/task");
    for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {dir}"))? {
        let entry = entry?;
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        // A thread may end between listing and reading: skip it.
        if let Ok((name, ticks)) = cpu_ticks_of(&entry.path().join("stat")) {
            out.push((tid, name, Duration::from_secs_f64(ticks as f64 / hz)));
        }
    }
    Ok(out)
}

/// Resident set size (`VmRSS` of `/proc/<pid>/status`), in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let line = text
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .with_context(|| format!("no VmRSS in {path}"))?;
    line.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("unreadable {line:?} in {path}"))
}

/// What a process used over a measured window of wall time.
#[derive(Debug, Clone)]
pub struct Usage {
    pub name: String,
    pub pid: u32,
    pub wall: Duration,
    pub cpu: Duration,
    pub rss_kib: u64,
    /// The threads that used CPU in the window, busiest first: (tid, name, CPU time).
    pub busiest_threads: Vec<(u32, String, Duration)>,
}

impl Usage {
    /// CPU time per wall time: 1.0 is one core busy all the time.
    pub fn share_of_a_core(&self) -> f64 {
        self.cpu.as_secs_f64() / self.wall.as_secs_f64().max(f64::EPSILON)
    }
}

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (pid {}): {:.2} % of a core over {:.1} s ({} ms CPU), {:.1} MiB resident",
            self.name,
            self.pid,
            self.share_of_a_core() * 100.0,
            self.wall.as_secs_f64(),
            self.cpu.as_millis(),
            self.rss_kib as f64 / 1024.0
        )?;
        for (tid, name, cpu) in self.busiest_threads.iter().take(5) {
            write!(f, "; thread {name} ({tid}) {} ms", cpu.as_millis())?;
        }
        Ok(())
    }
}

/// Measures every `(name, pid)` over the same `window` of wall time. The caller's thread
/// simply waits out the window: this is the measurement itself, not a synchronisation.
pub fn measure(processes: &[(&str, u32)], window: Duration) -> anyhow::Result<Vec<Usage>> {
    let mut before = Vec::new();
    for (_, pid) in processes {
        before.push((cpu_time(*pid)?, thread_cpu_times(*pid)?));
    }
    let started = Instant::now();
    std::thread::sleep(window);
    let wall = started.elapsed();
    let mut out = Vec::new();
    for ((name, pid), (cpu0, threads0)) in processes.iter().zip(before) {
        let Some(cpu) = cpu_time(*pid)?.checked_sub(cpu0) else {
            bail!("{name}: CPU time went backwards (pid {pid} reused?)");
        };
        let mut busiest: Vec<(u32, String, Duration)> = thread_cpu_times(*pid)?
            .into_iter()
            .map(|(tid, tname, t1)| {
                let t0 = threads0
                    .iter()
                    .find(|(id, _, _)| *id == tid)
                    .map_or(Duration::ZERO, |(_, _, t)| *t);
                (tid, tname, t1.saturating_sub(t0))
            })
            .filter(|(_, _, d)| !d.is_zero())
            .collect();
        busiest.sort_by_key(|t| std::cmp::Reverse(t.2));
        out.push(Usage {
            name: (*name).to_owned(),
            pid: *pid,
            wall,
            cpu,
            rss_kib: rss_kib(*pid)?,
            busiest_threads: busiest,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_measured() {
        let pid = std::process::id();
        assert!(rss_kib(pid).unwrap() > 0);
        assert!(!thread_cpu_times(pid).unwrap().is_empty());
        let usage = measure(&[("self", pid)], Duration::from_millis(10)).unwrap();
        assert_eq!(usage.len(), 1);
        assert!(usage[0].wall >= Duration::from_millis(10));
    }

    #[test]
    fn names_with_spaces_and_parentheses_are_skipped_correctly() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("stat");
        std::fs::write(
            &f,
            "42 (gamelan (x) y) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 9 0 1 1 1",
        )
        .unwrap();
        assert_eq!(cpu_ticks_of(&f).unwrap(), ("gamelan (x) y".to_owned(), 12));
    }
}
