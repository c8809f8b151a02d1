//! Production's own figures for a gate on a schema-only preview (`preview_seed = "schema"`):
//! the preview holds no rows, so every check that depends on data says so and uses what D1
//! tells of production — its size from the database's metadata, and row counts by a
//! read-only `count(*)` bounded per table (a table larger than the bound stays unknown rather
//! than being scanned). Reads only; production is never written.
use super::Engine;
use crate::backend::ProductionFigures;

/// Rows counted per table at most (a larger table is "unknown"); at least the gate's own
/// `index_rows_warn`, so the large-table rule can tell.
const COUNT_LIMIT: u64 = 100_000;

impl Engine {
    /// Production's figures, or empty ones (everything unknown) when D1 cannot say.
    pub(super) fn schema_only_figures(&self) -> ProductionFigures {
        let limit = COUNT_LIMIT.max(self.ws.config.gate.index_rows_warn);
        self.backend
            .production_figures(&self.ws.config.migrations_table, limit)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "production's figures for a schema-only preview could not be read");
                ProductionFigures {
                    row_limit: limit,
                    ..ProductionFigures::default()
                }
            })
    }
}
