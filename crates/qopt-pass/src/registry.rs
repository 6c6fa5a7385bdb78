//! The pass registry: one table of every pass (name, one-line summary, typed options,
//! factory) and of aliases that expand to several passes, like LLVM's `PassRegistry.def`.

use crate::Pass;
use crate::options::{OptionSpec, PassOptions};

/// Creates a pass instance from its checked options.
pub type PassFactory = fn(&PassOptions) -> Result<Box<dyn Pass>, String>;

#[derive(Clone, Copy)]
pub struct PassInfo {
    /// kebab-case name used in pipelines.
    pub name: &'static str,
    /// One line for `--list-passes` and the README.
    pub summary: &'static str,
    pub options: &'static [OptionSpec],
    pub create: PassFactory,
}

/// A name that expands to several passes. Options given to the alias go to every expanded
/// pass that declares an option of that name (`calib{method=kl}` sets `thresholds`' method).
#[derive(Clone, Copy, Debug)]
pub struct AliasInfo {
    pub name: &'static str,
    pub summary: &'static str,
    pub expansion: &'static [&'static str],
}

#[derive(Default)]
pub struct Registry {
    passes: Vec<PassInfo>,
    aliases: Vec<AliasInfo>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Register a pass. Names are unique across passes and aliases.
    pub fn register(&mut self, info: PassInfo) {
        assert!(
            self.get(info.name).is_none() && self.alias(info.name).is_none(),
            "pass '{}' registered twice",
            info.name
        );
        self.passes.push(info);
    }

    /// Register an alias; every expanded name must already be a registered pass.
    pub fn register_alias(&mut self, alias: AliasInfo) {
        assert!(
            self.get(alias.name).is_none() && self.alias(alias.name).is_none(),
            "alias '{}' clashes with a registered name",
            alias.name
        );
        for p in alias.expansion {
            assert!(
                self.get(p).is_some(),
                "alias '{}' expands to unknown pass '{p}'",
                alias.name
            );
        }
        self.aliases.push(alias);
    }

    pub fn get(&self, name: &str) -> Option<&PassInfo> {
        self.passes.iter().find(|p| p.name == name)
    }

    pub fn alias(&self, name: &str) -> Option<&AliasInfo> {
        self.aliases.iter().find(|a| a.name == name)
    }

    /// Passes in registration order.
    pub fn passes(&self) -> &[PassInfo] {
        &self.passes
    }

    pub fn aliases(&self) -> &[AliasInfo] {
        &self.aliases
    }

    /// The option specs an alias accepts: the union of its passes' options.
    pub fn alias_options(&self, alias: &AliasInfo) -> Vec<&OptionSpec> {
        let mut out: Vec<&OptionSpec> = Vec::new();
        for p in alias.expansion {
            for o in self.get(p).expect("checked at registration").options {
                if !out.iter().any(|x| x.name == o.name) {
                    out.push(o);
                }
            }
        }
        out
    }

    /// The registered name closest to `name`, for "did you mean" hints.
    pub fn suggest(&self, name: &str) -> Option<&'static str> {
        self.passes
            .iter()
            .map(|p| p.name)
            .chain(self.aliases.iter().map(|a| a.name))
            .map(|n| (edit_distance(name, n), n))
            .filter(|(d, n)| *d <= (n.len().max(name.len()) / 3).max(1))
            .min()
            .map(|(_, n)| n)
    }

    /// The `--list-passes` text: passes, their options, then aliases.
    pub fn listing(&self) -> String {
        let mut s = String::from("Passes:\n");
        let w = self
            .passes
            .iter()
            .map(|p| p.name.len())
            .chain(self.aliases.iter().map(|a| a.name.len()))
            .max()
            .unwrap_or(0);
        for p in &self.passes {
            s.push_str(&format!("  {:w$}  {}\n", p.name, p.summary));
            for o in p.options {
                let def = o
                    .default
                    .map(|d| format!(" (default {d})"))
                    .unwrap_or_default();
                s.push_str(&format!(
                    "  {:w$}    {}={}{}  {}\n",
                    "",
                    o.name,
                    o.kind.describe(),
                    def,
                    o.help
                ));
            }
        }
        if !self.aliases.is_empty() {
            s.push_str("Aliases:\n");
            for a in &self.aliases {
                s.push_str(&format!(
                    "  {:w$}  {} (= {})\n",
                    a.name,
                    a.summary,
                    a.expansion.join(",")
                ));
            }
        }
        s
    }
}

/// Levenshtein distance, for suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + (ca != *cb) as usize)
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "dce"), 3);
        assert_eq!(edit_distance("fuse", "fuse"), 0);
    }
}
