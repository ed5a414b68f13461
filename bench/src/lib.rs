//! What the bench binaries share.

/// CPU time of all threads of this process, in ns (sum of /proc/self/task/*/schedstat run times;
/// a thread that has ended is no longer counted, so measure between points where none ends).
pub fn cpu_ns() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("schedstat")).ok())
        .filter_map(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum()
}
