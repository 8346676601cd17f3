//! A project's grouping configuration — the stack-trace rules (the built-in rules of
//! `newstyle:2023-01-11` followed by the project's) and its server-side fingerprinting rules — and
//! the per-warm-Lambda cache of compiled configurations.
//!
//! The rules are stored as text on the project (Sentry's project options
//! `sentry:grouping_enhancements` and `sentry:fingerprinting_rules`); save-event compiles them once
//! per project and rule text, as Sentry caches compiled rules by the hash of their text. Rules that
//! no longer parse (written by something other than the seed loader, which refuses them) are
//! ignored with a warning, as Sentry falls back to no project rules.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use super::enhancers::{Enhancements, RuleError};
use super::fingerprinting::{FingerprintRuleError, FingerprintingRules};

/// The most text either rule set may have (the project rides on every DSN-key item, and a
/// DynamoDB item holds 400 KB).
pub const MAX_RULES_BYTES: usize = 64 * 1024;

#[derive(Clone, Debug)]
pub struct GroupingConfig {
    pub enhancements: Arc<Enhancements>,
    pub fingerprinting: Arc<FingerprintingRules>,
}

/// Why a project's rules are refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GroupingRulesError {
    #[error("grouping_enhancements: {0}")]
    Stacktrace(#[from] RuleError),
    #[error("fingerprinting_rules: {0}")]
    Fingerprinting(#[from] FingerprintRuleError),
    #[error("{0} is longer than {MAX_RULES_BYTES} bytes")]
    TooLong(&'static str),
}

static BUILTIN: LazyLock<Arc<GroupingConfig>> = LazyLock::new(|| {
    Arc::new(GroupingConfig {
        enhancements: Enhancements::shared_builtin(),
        fingerprinting: Arc::new(FingerprintingRules::default()),
    })
});

impl GroupingConfig {
    /// The default configuration: built-in stack-trace rules, no fingerprinting rules.
    pub fn builtin() -> &'static GroupingConfig {
        &BUILTIN
    }

    /// [`GroupingConfig::builtin`], shared.
    pub fn shared_builtin() -> Arc<GroupingConfig> {
        BUILTIN.clone()
    }

    /// Compiles a project's rules (empty text = none).
    pub fn compile(stacktrace_rules: &str, fingerprinting_rules: &str) -> Result<Self, GroupingRulesError> {
        if stacktrace_rules.len() > MAX_RULES_BYTES {
            return Err(GroupingRulesError::TooLong("grouping_enhancements"));
        }
        if fingerprinting_rules.len() > MAX_RULES_BYTES {
            return Err(GroupingRulesError::TooLong("fingerprinting_rules"));
        }
        let enhancements = if stacktrace_rules.trim().is_empty() {
            BUILTIN.enhancements.clone()
        } else {
            Arc::new(Enhancements::with_project_rules(stacktrace_rules)?)
        };
        Ok(Self { enhancements, fingerprinting: Arc::new(FingerprintingRules::parse(fingerprinting_rules)?) })
    }
}

/// Compiled configurations per project, keyed by the rule texts they were compiled from (a project
/// whose rules change gets a fresh compile). Bounded: past `capacity` projects it starts over.
pub struct GroupingConfigCache {
    capacity: usize,
    entries: Mutex<HashMap<u64, CachedConfig>>,
}

/// The rule texts a configuration was compiled from, and the configuration.
type CachedConfig = (String, String, Arc<GroupingConfig>);

impl Default for GroupingConfigCache {
    fn default() -> Self {
        Self::new(1_000)
    }
}

impl GroupingConfigCache {
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), entries: Mutex::new(HashMap::new()) }
    }

    /// The configuration of project `project_id` with these rule texts.
    pub fn get(
        &self,
        project_id: u64,
        stacktrace_rules: &str,
        fingerprinting_rules: &str,
    ) -> Arc<GroupingConfig> {
        if stacktrace_rules.is_empty() && fingerprinting_rules.is_empty() {
            return GroupingConfig::shared_builtin();
        }
        if let Ok(entries) = self.entries.lock()
            && let Some((s, f, config)) = entries.get(&project_id)
            && s == stacktrace_rules
            && f == fingerprinting_rules
        {
            return config.clone();
        }
        let config = match GroupingConfig::compile(stacktrace_rules, fingerprinting_rules) {
            Ok(config) => Arc::new(config),
            Err(e) => {
                tracing::warn!(project_id, error = %e, "project grouping rules ignored");
                GroupingConfig::shared_builtin()
            }
        };
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= self.capacity {
                entries.clear();
            }
            entries.insert(
                project_id,
                (stacktrace_rules.to_owned(), fingerprinting_rules.to_owned(), config.clone()),
            );
        }
        config
    }
}
