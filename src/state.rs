//! Saving and loading the embedded store (and the replay session) to a JSON file, so that separate
//! `postflow invoke` / `seed` runs share state, as a deployed table would.

use std::path::Path;

use shared::adapters::memory::{MemoryStream, MemoryTable};
use shared::ports::StoredRecord;
use shared::storage::item::Item;

use crate::session::Session;

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct SavedState {
    pub items: Vec<Item>,
    #[serde(default)]
    pub records: Vec<StoredRecord>,
    #[serde(default)]
    pub session: Session,
}

pub fn load(path: &Path, table: &MemoryTable, stream: &MemoryStream) -> Result<Session, String> {
    if !path.exists() {
        return Ok(Session::default());
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let state: SavedState = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    table.restore(state.items).map_err(|e| format!("{}: {e}", path.display()))?;
    stream.sink().restore(state.records);
    Ok(state.session)
}

pub fn save(
    path: &Path,
    table: &MemoryTable,
    stream: &MemoryStream,
    session: &Session,
) -> Result<(), String> {
    let items = table.dump().map_err(|e| e.to_string())?;
    let state = SavedState { items, records: stream.sink().records(), session: session.clone() };
    let text = serde_json::to_string_pretty(&state).map_err(|e| e.to_string())?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}
