//! The platform's `stats:` line (`stats: key=value key=value ...`, printed with `--stats`, and
//! `RunReport::stats_line` in process): one parser, and `stat` to read one value from a child's
//! stdout, from a stats line, or from pairs already parsed.

/// The `key=value` pairs of the first line of `text` that starts with `stats:`, if any.
pub fn parse_stats(text: &str) -> Option<Vec<(String, String)>> {
    let line = text.lines().find_map(|l| l.strip_prefix("stats:"))?;
    let pairs = line.split_whitespace().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.into(), v.into()));
    Some(pairs.collect())
}

/// What a stats value can be read from: a child's stdout (bytes), text holding the `stats:`
/// line, or the pairs `parse_stats` returned.
pub trait StatsSource {
    /// The pairs; panics when there is no stats line.
    fn stats_pairs(&self) -> Vec<(String, String)>;
}

impl StatsSource for str {
    fn stats_pairs(&self) -> Vec<(String, String)> {
        parse_stats(self).unwrap_or_else(|| panic!("no stats line in:\n{self}"))
    }
}

impl StatsSource for String {
    fn stats_pairs(&self) -> Vec<(String, String)> {
        self.as_str().stats_pairs()
    }
}

impl StatsSource for [u8] {
    fn stats_pairs(&self) -> Vec<(String, String)> {
        String::from_utf8_lossy(self).stats_pairs()
    }
}

impl StatsSource for Vec<u8> {
    fn stats_pairs(&self) -> Vec<(String, String)> {
        self.as_slice().stats_pairs()
    }
}

impl StatsSource for [(String, String)] {
    fn stats_pairs(&self) -> Vec<(String, String)> {
        self.to_vec()
    }
}

impl StatsSource for Vec<(String, String)> {
    fn stats_pairs(&self) -> Vec<(String, String)> {
        self.clone()
    }
}

/// The value of `key` in the stats of `source`; panics when there is none.
pub fn stat<S: StatsSource + ?Sized>(source: &S, key: &str) -> String {
    let pairs = source.stats_pairs();
    match pairs.iter().find(|(k, _)| k == key) {
        Some((_, v)) => v.clone(),
        None => panic!("no {key} in the stats: {pairs:?}"),
    }
}

/// `stat` as an integer; panics when it is not one.
pub fn stat_u64<S: StatsSource + ?Sized>(source: &S, key: &str) -> u64 {
    let value = stat(source, key);
    value.parse().unwrap_or_else(|_| panic!("{key}={value} is not an integer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_stats_line_among_other_output() {
        let out = b"hello\nstats: frames=60 latency_ms=12.50 alloc_counting=true\nbye\n".to_vec();
        assert_eq!(stat_u64(&out, "frames"), 60);
        assert_eq!(stat(&out, "latency_ms"), "12.50");
        let pairs = parse_stats("stats: a=1 b=2").unwrap();
        assert_eq!(stat(&pairs, "b"), "2");
        assert_eq!(stat(pairs.as_slice(), "a"), "1");
        assert!(parse_stats("no stats here").is_none());
    }

    #[test]
    #[should_panic(expected = "no missing in the stats")]
    fn a_missing_key_panics() {
        stat("stats: a=1", "missing");
    }
}
