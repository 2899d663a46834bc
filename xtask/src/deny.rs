//! `cargo xtask deny`: the dependency audit that needs no network, run by `cargo xtask test`.
//!
//! On `cargo metadata` (every package of the lock file, all targets) it checks what
//! cargo-deny's `licenses`, `bans` (multiple-versions) and `sources` checks would, against
//! the same `deny.toml`: each package's SPDX licence expression is satisfied by the
//! `[licenses] allow` list; no crate is in the graph at two semver-incompatible versions
//! (`1.x` and `2.x`, or `0.10` and `0.11`) unless `[bans] skip` names one of them with a
//! reason; every package comes from crates.io or the workspace. The advisory check needs
//! the RustSec database (a git repository), so it runs in CI only, with cargo-deny itself
//! (`.github/workflows/ci.yml`); building cargo-deny here would cost a quarter of an hour on
//! two cores. xtask reads only the subset of `deny.toml` it needs: keep one `allow` licence
//! per line and one `skip` entry (`{ crate = "name@major", reason = "…" }`) per line.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

/// Crates.io, in the two spellings Cargo uses for its index.
const CRATES_IO: [&str; 2] =
    ["registry+https://github.com/rust-lang/crates.io-index", "sparse+https://index.crates.io/"];

pub fn run(sh: &Shell) -> Result<()> {
    let config = std::fs::read_to_string(crate::project_root().join("deny.toml"))
        .context("reading deny.toml")?;
    let policy = Policy::parse(&config)?;
    let json = cmd!(sh, "cargo metadata --format-version 1 --locked --quiet")
        .read()
        .context("cargo metadata")?;
    let metadata: serde_json::Value = serde_json::from_str(&json).context("cargo metadata")?;
    // `packages` also lists what the lock file holds for features nobody enables; the
    // resolve graph is what is built (the graph cargo-deny checks).
    let resolved: BTreeSet<&str> = metadata["resolve"]["nodes"]
        .as_array()
        .context("cargo metadata has no resolve graph")?
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    let packages: Vec<Package> = metadata["packages"]
        .as_array()
        .context("cargo metadata has no packages")?
        .iter()
        .filter(|p| p["id"].as_str().is_some_and(|id| resolved.contains(id)))
        .map(|p| Package {
            name: p["name"].as_str().unwrap_or_default().to_owned(),
            version: p["version"].as_str().unwrap_or_default().to_owned(),
            license: p["license"].as_str().map(str::to_owned),
            source: p["source"].as_str().map(str::to_owned),
        })
        .collect();
    let problems = audit(&policy, &packages);
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("xtask deny: {p}");
        }
        bail!(
            "{} dependency audit problem(s); fix them or allow them in deny.toml",
            problems.len()
        );
    }
    eprintln!(
        "xtask deny: {} packages: licences allowed, no duplicate major versions beyond the {} \
         skipped in deny.toml, every source crates.io or the workspace (advisories: CI)",
        packages.len(),
        policy.skip.len()
    );
    Ok(())
}

/// One package of the graph.
#[derive(Debug, Clone)]
struct Package {
    name: String,
    version: String,
    license: Option<String>,
    /// None for workspace (path) packages.
    source: Option<String>,
}

/// What `deny.toml` allows.
#[derive(Debug, Default)]
struct Policy {
    licenses: BTreeSet<String>,
    /// (crate, semver-compatible version key) pairs left out of the duplicate check.
    skip: Vec<(String, String)>,
}

impl Policy {
    fn parse(text: &str) -> Result<Policy> {
        let mut policy = Policy::default();
        let mut section = String::new();
        let mut in_allow = false;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split(" #").next().unwrap_or("").trim();
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            if line.starts_with('[') {
                section = line.trim_matches(|c| c == '[' || c == ']').to_owned();
                in_allow = false;
                continue;
            }
            if section == "licenses" && line.starts_with("allow") {
                in_allow = true;
            }
            if section == "licenses" && in_allow {
                policy.licenses.extend(quoted(line));
                if line.ends_with(']') {
                    in_allow = false;
                }
            }
            if section == "bans" && line.contains("crate =") {
                let spec = value_of(line, "crate")
                    .with_context(|| format!("deny.toml:{}: a skip entry without crate", i + 1))?;
                let reason = value_of(line, "reason").unwrap_or_default();
                if reason.trim().is_empty() {
                    bail!("deny.toml:{}: skip of {spec} needs a reason", i + 1);
                }
                let (name, version) = spec.split_once('@').with_context(|| {
                    format!("deny.toml:{}: skip {spec:?} must be name@version", i + 1)
                })?;
                policy.skip.push((name.to_owned(), compat_key(version)));
            }
        }
        if policy.licenses.is_empty() {
            bail!("deny.toml: no [licenses] allow list");
        }
        Ok(policy)
    }
}

/// The strings in double quotes on a line.
fn quoted(line: &str) -> Vec<String> {
    line.split('"').skip(1).step_by(2).map(str::to_owned).collect()
}

/// The quoted value of `key = "…"` on a line.
fn value_of(line: &str, key: &str) -> Option<String> {
    let at = line.find(&format!("{key} ="))?;
    quoted(&line[at..]).into_iter().next()
}

/// The part of a version that semver compatibility keeps: the major, or for 0.x the minor
/// (`1.4.2` → `1`, `0.10.7` → `0.10`, `0.0.3` → `0.0.3`). A partial version (from a skip
/// entry) keeps what it has.
fn compat_key(version: &str) -> String {
    let core = version.split(['-', '+']).next().unwrap_or(version);
    let parts: Vec<&str> = core.split('.').collect();
    match parts.as_slice() {
        [major, ..] if *major != "0" => (*major).to_owned(),
        ["0", minor, ..] if *minor != "0" => format!("0.{minor}"),
        ["0", "0", patch, ..] => format!("0.0.{patch}"),
        _ => core.to_owned(),
    }
}

/// Every problem of the graph under the policy.
fn audit(policy: &Policy, packages: &[Package]) -> Vec<String> {
    let mut problems = Vec::new();
    for p in packages {
        match &p.license {
            None => problems.push(format!("{}@{}: no licence expression", p.name, p.version)),
            Some(expr) => match spdx_allowed(expr, &policy.licenses) {
                Ok(true) => {}
                Ok(false) => problems.push(format!(
                    "{}@{}: licence {expr:?} is not allowed by deny.toml",
                    p.name, p.version
                )),
                Err(e) => problems.push(format!("{}@{}: licence {expr:?}: {e}", p.name, p.version)),
            },
        }
        if let Some(source) = &p.source
            && !CRATES_IO.contains(&source.as_str())
        {
            problems.push(format!("{}@{}: source {source} is not crates.io", p.name, p.version));
        }
    }
    let mut versions: BTreeMap<&str, BTreeMap<String, Vec<&str>>> = BTreeMap::new();
    for p in packages {
        versions
            .entry(&p.name)
            .or_default()
            .entry(compat_key(&p.version))
            .or_default()
            .push(&p.version);
    }
    let mut used = vec![false; policy.skip.len()];
    for (name, by_key) in &versions {
        let kept: Vec<&String> = by_key
            .keys()
            .filter(|key| match policy.skip.iter().position(|(n, k)| n == name && k == *key) {
                Some(i) => {
                    used[i] = true;
                    false
                }
                None => true,
            })
            .collect();
        if by_key.len() > 1 && kept.len() > 1 {
            let all: Vec<&str> = by_key.values().flatten().copied().collect();
            problems.push(format!(
                "{name}: in the graph at incompatible versions {}; unify them or skip one in \
                 deny.toml with a reason",
                all.join(", ")
            ));
        }
    }
    for ((name, key), used) in policy.skip.iter().zip(used) {
        let duplicated = versions.get(name.as_str()).is_some_and(|v| v.len() > 1);
        if !used || !duplicated {
            problems.push(format!("deny.toml skips {name}@{key}, which is no longer duplicated"));
        }
    }
    problems
}

/// Whether an SPDX expression (`A OR B`, `A AND (B OR C)`, `A WITH exception`, and the old
/// `A/B` for OR) is satisfied by the allowed licences.
fn spdx_allowed(expr: &str, allowed: &BTreeSet<String>) -> Result<bool> {
    let spaced = expr.replace('(', " ( ").replace(')', " ) ").replace('/', " OR ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    let mut parser = Spdx { tokens: &tokens, at: 0, allowed };
    let ok = parser.or()?;
    if parser.at != tokens.len() {
        bail!("unexpected {:?}", tokens[parser.at]);
    }
    Ok(ok)
}

struct Spdx<'a> {
    tokens: &'a [&'a str],
    at: usize,
    allowed: &'a BTreeSet<String>,
}

impl<'a> Spdx<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.tokens.get(self.at).copied()
    }

    fn or(&mut self) -> Result<bool> {
        let mut ok = self.and()?;
        while self.peek() == Some("OR") {
            self.at += 1;
            ok |= self.and()?;
        }
        Ok(ok)
    }

    fn and(&mut self) -> Result<bool> {
        let mut ok = self.one()?;
        while self.peek() == Some("AND") {
            self.at += 1;
            ok &= self.one()?;
        }
        Ok(ok)
    }

    fn one(&mut self) -> Result<bool> {
        match self.peek() {
            Some("(") => {
                self.at += 1;
                let ok = self.or()?;
                if self.peek() != Some(")") {
                    bail!("unclosed parenthesis");
                }
                self.at += 1;
                Ok(ok)
            }
            Some(id) if !matches!(id, ")" | "AND" | "OR" | "WITH") => {
                self.at += 1;
                let mut id = id.to_owned();
                if self.peek() == Some("WITH") {
                    let exception = self.tokens.get(self.at + 1).context("WITH what")?;
                    id = format!("{id} WITH {exception}");
                    self.at += 2;
                }
                Ok(self.allowed.contains(&id))
            }
            other => bail!("expected a licence, found {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn spdx_expressions() {
        let a = allowed(&["MIT", "Apache-2.0", "Apache-2.0 WITH LLVM-exception"]);
        assert!(spdx_allowed("MIT", &a).unwrap());
        assert!(spdx_allowed("MIT OR GPL-3.0", &a).unwrap());
        assert!(!spdx_allowed("MIT AND GPL-3.0", &a).unwrap());
        assert!(spdx_allowed("(MIT OR GPL-3.0) AND Apache-2.0", &a).unwrap());
        assert!(spdx_allowed("MIT/Apache-2.0", &a).unwrap());
        assert!(spdx_allowed("Apache-2.0 WITH LLVM-exception OR GPL-2.0", &a).unwrap());
        assert!(!spdx_allowed("GPL-2.0 WITH Classpath-exception-2.0", &a).unwrap());
        assert!(!spdx_allowed("LGPL-2.1-or-later", &a).unwrap());
        assert!(spdx_allowed("(MIT", &a).is_err());
        assert!(spdx_allowed("MIT OR", &a).is_err());
    }

    #[test]
    fn versions_group_by_semver_compatibility() {
        assert_eq!(compat_key("1.4.2"), "1");
        assert_eq!(compat_key("0.10.7"), "0.10");
        assert_eq!(compat_key("0.0.3"), "0.0.3");
        assert_eq!(compat_key("2.0.0-rc.15"), "2");
        assert_eq!(compat_key("0.22"), "0.22");
        assert_eq!(compat_key("0.11.1+wasi"), "0.11");
    }

    fn pkg(name: &str, version: &str, license: &str) -> Package {
        Package {
            name: name.into(),
            version: version.into(),
            license: Some(license.into()),
            source: Some(CRATES_IO[0].into()),
        }
    }

    #[test]
    fn the_policy_is_read_and_applied() {
        let policy = Policy::parse(
            "[licenses]\nallow = [\n    \"MIT\",\n    \"Apache-2.0\", # comment\n]\n[bans]\n\
             multiple-versions = \"deny\"\nskip = [\n    { crate = \"syn@1\", reason = \"old \
             macros\" },\n]\n",
        )
        .unwrap();
        assert_eq!(policy.licenses, allowed(&["MIT", "Apache-2.0"]));
        assert_eq!(policy.skip, [("syn".to_owned(), "1".to_owned())]);
        let ok =
            [pkg("syn", "1.0.109", "MIT"), pkg("syn", "2.0.1", "MIT"), pkg("a", "0.1.0", "MIT")];
        assert_eq!(audit(&policy, &ok), Vec::<String>::new());
        let bad = [
            pkg("b", "0.10.1", "MIT"),
            pkg("b", "0.11.0", "MIT"),
            pkg("b", "0.11.2", "MIT"),
            pkg("c", "1.0.0", "GPL-3.0"),
            Package {
                source: Some("git+https://example.com/x".into()),
                ..pkg("d", "1.0.0", "MIT")
            },
        ];
        let problems = audit(&policy, &bad);
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(problems.iter().any(|p| p.contains("b: in the graph at incompatible versions")));
        assert!(problems.iter().any(|p| p.contains("c@1.0.0: licence \"GPL-3.0\" is not allowed")));
        assert!(problems.iter().any(|p| p.contains("d@1.0.0: source git+")));
        assert!(problems.iter().any(|p| p.contains("skips syn@1, which is no longer duplicated")));
        assert!(
            Policy::parse(
                "[licenses]\nallow = [\"MIT\"]\n[bans]\nskip = [\n{ crate = \"x@1\" },\n]"
            )
            .is_err_and(|e| e.to_string().contains("needs a reason"))
        );
    }
}
