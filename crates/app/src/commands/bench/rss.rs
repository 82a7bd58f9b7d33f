//! Resident memory of a process from `/proc/<pid>/status` (Linux): the current resident set
//! (`VmRSS`), its high-water mark (`VmHWM`) and the anonymous part (`RssAnon`: heap and
//! stacks, without the mapped binary's pages, which processes of one binary share).

/// All in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub rss: u64,
    pub peak: u64,
    pub anon: u64,
}

/// Reads `VmRSS` and `VmHWM` (kB) out of a status file's text.
pub fn parse_status(text: &str) -> Option<Memory> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some(Memory {
        rss: field("VmRSS:")?,
        peak: field("VmHWM:")?,
        anon: field("RssAnon:").unwrap_or(0),
    })
}

pub fn memory(pid: u32) -> Option<Memory> {
    parse_status(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// This process.
pub fn own() -> Option<Memory> {
    memory(std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_in_bytes() {
        let text = "Name:\tgamelan\nVmPeak:\t  99999 kB\nVmHWM:\t    8192 kB\nVmRSS:\t    4096 kB\nRssAnon:\t    1024 kB\n";
        assert_eq!(
            parse_status(text),
            Some(Memory {
                rss: 4096 * 1024,
                peak: 8192 * 1024,
                anon: 1024 * 1024,
            })
        );
        assert_eq!(parse_status("Name:\tx\n"), None);
    }

    #[test]
    fn own_memory_is_readable_on_linux() {
        let m = own().expect("/proc/self/status");
        assert!(m.peak >= m.rss && m.rss > 0);
    }
}
