//! Projects and their DSN keys (Sentry's `Project`, `ProjectKey`): what save-event authenticates
//! against.

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    pub id: u64,
    pub organization_id: u64,
    pub slug: String,
    #[serde(default)]
    pub platform: Option<String>,
    /// Stack-trace rules (Sentry's project option `sentry:grouping_enhancements`), run after the
    /// built-in rules of the grouping config; empty for none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub grouping_enhancements: String,
    /// Server-side fingerprinting rules (`sentry:fingerprinting_rules`); empty for none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fingerprinting_rules: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectKey {
    pub public_key: String,
    pub key_id: u64,
    pub project: Project,
    pub active: bool,
}

/// Outcome of authenticating an ingest request by its DSN public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyCheck {
    Valid(ProjectKey),
    /// Unknown key, inactive key, or a key of another project: 403.
    Forbidden(&'static str),
}

/// Sentry/Relay semantics: the key must exist, be active, and belong to the project in the path.
pub fn check_key(key: Option<ProjectKey>, path_project_id: u64) -> KeyCheck {
    match key {
        None => KeyCheck::Forbidden("invalid api key"),
        Some(k) if !k.active => KeyCheck::Forbidden("project key disabled"),
        Some(k) if k.project.id != path_project_id => {
            KeyCheck::Forbidden("project key does not belong to the project")
        }
        Some(k) => KeyCheck::Valid(k),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(active: bool, project: u64) -> ProjectKey {
        ProjectKey {
            public_key: "k".into(),
            key_id: 7,
            project: Project { id: project, organization_id: 1, slug: "p".into(), ..Default::default() },
            active,
        }
    }

    #[test]
    fn key_checks() {
        assert!(matches!(check_key(Some(key(true, 42)), 42), KeyCheck::Valid(_)));
        assert_eq!(check_key(None, 42), KeyCheck::Forbidden("invalid api key"));
        assert!(matches!(check_key(Some(key(false, 42)), 42), KeyCheck::Forbidden(_)));
        assert!(matches!(check_key(Some(key(true, 43)), 42), KeyCheck::Forbidden(_)));
    }
}
