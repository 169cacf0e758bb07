//! The kernel's CPU-list notation (`0-3,8,10-11`), as /sys prints it and
//! systemd's `CPUAffinity=` reads it: parsed into sorted CPU numbers and
//! written back.

use std::fmt::Write as _;

/// Highest CPU number a list may name: far above any machine gonets runs
/// on, low enough that a typo (`0-99999999`) is refused, not allocated.
pub(crate) const CPU_MAX: usize = 65_535;

/// Parses `text` (empty or blank: no CPUs) into sorted, distinct CPU numbers.
pub(crate) fn parse(text: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.trim().is_empty()) {
        let part = part.trim();
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (number(a, text)?, number(b, text)?),
            None => {
                let n = number(part, text)?;
                (n, n)
            }
        };
        if first > last {
            return Err(format!("CPU list {text:?}: range {part} runs backwards"));
        }
        cpus.extend(first..=last);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

fn number(text: &str, whole: &str) -> Result<usize, String> {
    let n: usize = text
        .trim()
        .parse()
        .map_err(|_| format!("CPU list {whole:?}: {text:?} is not a CPU number"))?;
    if n > CPU_MAX {
        return Err(format!(
            "CPU list {whole:?}: CPU {n} is above the highest accepted, {CPU_MAX}"
        ));
    }
    Ok(n)
}

/// Writes sorted, distinct `cpus` with runs as ranges (`[0,1,2,5]` → `0-2,5`).
pub(crate) fn format(cpus: &[usize]) -> String {
    assert!(
        cpus.windows(2).all(|w| w[0] < w[1]),
        "CPU lists are written from sorted, distinct numbers"
    );
    let mut out = String::new();
    let mut i = 0;
    // Each pass writes one run and moves past it.
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            let _ = write!(out, "{start}");
        } else {
            let _ = write!(out, "{start}-{end}");
        }
        i += 1;
    }
    out
}

/// `cpus` sorted and deduplicated, for [`format`].
pub(crate) fn sorted(cpus: &[usize]) -> Vec<usize> {
    let mut v = cpus.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_ranges_and_singles_when_parsed_then_sorted_distinct_cpus() {
        assert_eq!(parse("8,0-2,2,10-11").unwrap(), vec![0, 1, 2, 8, 10, 11]);
        assert_eq!(parse("").unwrap(), Vec::<usize>::new());
        assert_eq!(parse(" \n").unwrap(), Vec::<usize>::new());
    }

    #[test]
    fn given_garbage_or_a_huge_cpu_when_parsed_then_refused_with_the_text() {
        assert!(parse("0-x").unwrap_err().contains("\"x\""));
        assert!(parse("3-1").unwrap_err().contains("backwards"));
        assert!(parse("0-99999999").unwrap_err().contains("above"));
    }

    #[test]
    fn given_cpus_when_formatted_then_runs_are_ranges_and_parse_back() {
        let cpus = vec![0, 1, 2, 5, 7, 8];
        assert_eq!(format(&cpus), "0-2,5,7-8");
        assert_eq!(parse(&format(&cpus)).unwrap(), cpus);
        assert_eq!(format(&[]), "");
    }
}
