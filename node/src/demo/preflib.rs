//! Reads PrefLib `.soi` ballot files (strict orders, incomplete lists).
//!
//! Header lines start with `# ` (`NUMBER ALTERNATIVES`, `NUMBER VOTERS`,
//! `ALTERNATIVE NAME i: ...`); each data line is `COUNT: a,b,c`, meaning COUNT
//! identical ballots ranking candidate `a` first, `b` second and so on.

use std::collections::BTreeMap;

use anyhow::{bail, ensure, Context};

/// A parsed election: candidate names and every ballot's ranking.
#[derive(Debug, Clone)]
pub(crate) struct Election {
    pub(crate) title: String,
    /// Candidate names, index = PrefLib id - 1.
    pub(crate) candidates: Vec<String>,
    /// `(count, ranking)`, rankings as 0-based candidate indices.
    pub(crate) orders: Vec<(u64, Vec<u32>)>,
    /// `NUMBER VOTERS` from the header.
    pub(crate) voters: u64,
}

impl Election {
    pub(crate) fn parse(text: &str) -> anyhow::Result<Election> {
        let mut title = String::new();
        let mut names = BTreeMap::new();
        let mut declared_candidates = None;
        let mut voters = None;
        let mut orders = Vec::new();

        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(header) = line.strip_prefix('#') {
                let (key, value) = header.split_once(':').unwrap_or((header, ""));
                let (key, value) = (key.trim(), value.trim());
                if key == "TITLE" {
                    title = value.to_string();
                } else if key == "NUMBER ALTERNATIVES" {
                    declared_candidates = Some(value.parse::<usize>()?);
                } else if key == "NUMBER VOTERS" {
                    voters = Some(value.parse::<u64>()?);
                } else if let Some(id) = key.strip_prefix("ALTERNATIVE NAME ") {
                    names.insert(id.trim().parse::<u32>()?, value.to_string());
                }
                continue;
            }
            let order = parse_order(line).with_context(|| format!("line {}", number + 1))?;
            orders.push(order);
        }

        let declared = declared_candidates.context("missing NUMBER ALTERNATIVES header")?;
        ensure!(
            names.len() == declared,
            "{} names for {declared} alternatives",
            names.len()
        );
        let candidates: Vec<String> = (1..=declared as u32)
            .map(|id| {
                names
                    .get(&id)
                    .cloned()
                    .with_context(|| format!("no name for alternative {id}"))
            })
            .collect::<anyhow::Result<_>>()?;
        for (_, ranking) in &orders {
            if let Some(bad) = ranking.iter().find(|&&c| c as usize >= declared) {
                bail!("candidate id {} out of range 1..={declared}", bad + 1);
            }
        }

        let voters = voters.context("missing NUMBER VOTERS header")?;
        let counted: u64 = orders.iter().map(|(n, _)| n).sum();
        ensure!(
            counted == voters,
            "ballot counts add up to {counted}, header says {voters}"
        );
        Ok(Election {
            title,
            candidates,
            orders,
            voters,
        })
    }

    /// Ballots per first preference, indexed like `candidates`.
    pub(crate) fn first_preferences(&self) -> Vec<u64> {
        let mut counts = vec![0; self.candidates.len()];
        for (n, ranking) in &self.orders {
            if let Some(first) = ranking.first() {
                counts[*first as usize] += n;
            }
        }
        counts
    }

    /// Every ballot's first preference, one item per ballot with one.
    pub(crate) fn ballots(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.voters as usize);
        for (n, ranking) in &self.orders {
            if let Some(first) = ranking.first() {
                out.extend(std::iter::repeat_n(*first, *n as usize));
            }
        }
        out
    }
}

fn parse_order(line: &str) -> anyhow::Result<(u64, Vec<u32>)> {
    let (count, rest) = line.split_once(':').context("expected `COUNT: a,b,c`")?;
    let count = count.trim().parse::<u64>().context("ballot count")?;
    let mut ranking = Vec::new();
    for item in rest.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        ensure!(!item.starts_with('{'), "ties are not supported: {item}");
        let id: u32 = item
            .parse()
            .with_context(|| format!("candidate id {item:?}"))?;
        ensure!(id >= 1, "candidate ids start at 1");
        ensure!(!ranking.contains(&(id - 1)), "candidate {id} ranked twice");
        ranking.push(id - 1);
    }
    Ok((count, ranking))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = "# TITLE: Tiny\n# NUMBER ALTERNATIVES: 3\n# NUMBER VOTERS: 5\n\
        # ALTERNATIVE NAME 1: Ann\n# ALTERNATIVE NAME 2: Bo\n# ALTERNATIVE NAME 3: Cy\n\
        3: 2,1\n1: 3\n1: 1,3,2\n";

    #[test]
    fn parses_counts_and_first_preferences() {
        let e = Election::parse(SMALL).unwrap();

        assert_eq!(e.candidates, ["Ann", "Bo", "Cy"]);
        assert_eq!(e.first_preferences(), vec![1, 3, 1]);
        assert_eq!(e.ballots().len(), 5);
    }

    #[test]
    fn refuses_inconsistent_files() {
        assert!(Election::parse(&SMALL.replace("VOTERS: 5", "VOTERS: 6")).is_err());
        assert!(Election::parse(&SMALL.replace("1: 3\n", "1: 4\n")).is_err());
        assert!(Election::parse(&SMALL.replace("1: 3\n", "1: 3,3\n")).is_err());
    }
}
