//! The post-promotion watch record of a release: an opaque JSON document the engine writes
//! when a promotion completes and again when the window's verdict is final. The store keeps
//! it; it does not interpret it.
use rusqlite::params;

use super::{Result, Store, optional};

impl Store {
    /// The release's watch record, if one was written.
    pub fn release_watch(&self, id: &str) -> Result<Option<String>> {
        Ok(optional(
            self.conn
                .query_row("SELECT watch FROM releases WHERE id = ?1", [id], |r| {
                    r.get::<_, Option<String>>(0)
                }),
        )?
        .flatten())
    }

    /// Replaces the release's watch record.
    pub fn set_release_watch(&self, id: &str, json: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE releases SET watch = ?2 WHERE id = ?1",
            params![id, json],
        )?;
        Ok(())
    }
}
