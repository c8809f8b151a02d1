//! `adopt`: makes another existing database the workspace's production, deliberately. The
//! configured database is the database: when `d1ops.toml` names a production other than the
//! one the state store recorded, every command refuses (naming both ids) until the operator
//! either puts the old id back or adopts the new one here — after reading the new database's
//! ledger, under a typed confirmation (the CLI's), with an audit event. Never while an
//! operation holds the production lock; never a database the backend cannot find.
use serde::Serialize;
use serde_json::json;

use super::{Engine, EngineError, EngineOptions, PRODUCTION, Result, connect, resolve_actor};
use crate::backend::{DatabaseRef, LedgerRow};
use crate::store::Store;
use crate::workspace::Workspace;

/// What adopting a database would do, read before anything changes.
#[derive(Debug, Clone, Serialize)]
pub struct AdoptPlan {
    /// The production the state store records now (`None`: none yet).
    pub from: Option<String>,
    /// The database to adopt (the id `d1ops.toml` names).
    pub to: String,
    /// How the backend shows it (`D1 database <id> (account …)`).
    pub database: String,
    pub size_bytes: Option<u64>,
    /// The adopted database's migrations ledger, in apply order.
    pub ledger: Vec<LedgerRow>,
    /// Migrations its ledger lists that d1ops has no record of applying to production.
    pub unrecorded: Vec<String>,
    /// Migrations d1ops recorded as applied to production that its ledger does not list.
    pub missing: Vec<String>,
}

/// What `adopt` did.
#[derive(Debug, Clone, Serialize)]
pub struct AdoptOutcome {
    pub from: Option<String>,
    pub to: String,
    pub ledger_rows: usize,
}

/// The refusal for a production id that does not match the recorded one.
pub(super) fn mismatch(configured: &str, recorded: &str) -> EngineError {
    EngineError::Refused(format!(
        "d1ops.toml names production database {configured}, but this workspace's production is {recorded} (recorded in .d1ops/state.sqlite); d1ops does not switch production silently: put {recorded} back in d1ops.toml, or adopt the new one deliberately with `d1ops adopt --database-id {configured}`"
    ))
}

impl Engine {
    /// Opens a workspace for `adopt`: like [`Engine::open`] but without the production check
    /// (a mismatch is what adopt settles) and without recovery (adopt refuses while a lock
    /// is held, so there is nothing it could settle on the wrong database).
    pub fn open_for_adopt(root: &std::path::Path, opts: EngineOptions) -> Result<Engine> {
        let actor = resolve_actor(opts.actor.as_deref())?;
        let ws = Workspace::load(root)?;
        let store = Store::open(&ws.state_dir())?;
        let backend = connect::backend_for(&ws)?;
        Ok(Engine {
            ws,
            store,
            backend,
            actor,
            readonly: opts.readonly,
            recovered: None,
        })
    }

    /// Reads what adopting `database_id` would mean. Refused when it is not the database
    /// `d1ops.toml` names (the configuration stays the one source of production's id), when
    /// an operation holds the production lock, or when the database cannot be found.
    pub fn adopt_plan(&self, database_id: &str) -> Result<AdoptPlan> {
        let wanted = database_id.trim();
        let configured = self.backend.production_ref();
        if wanted.is_empty() || wanted != configured.id {
            return Err(EngineError::Refused(format!(
                "d1ops.toml names production database {}; set database_id there to {wanted} first, then adopt it",
                configured.id
            )));
        }
        if let Some(lock) = self.store.lock()? {
            return Err(EngineError::Refused(format!(
                "the {} of {} holds the production lock; production cannot be switched under it",
                lock.operation.as_str(),
                lock.release_id
            )));
        }
        let from = self.store.production()?.database_id;
        let db = DatabaseRef::new(wanted);
        let Some(info) = self.backend.database_info(&db)? else {
            return Err(EngineError::Refused(format!(
                "{} does not exist; nothing to adopt",
                self.backend.describe(&db)
            )));
        };
        let ledger = self.backend.ledger(&db, &self.ws.config.migrations_table)?;
        let recorded = self.store.applied_checksums(PRODUCTION)?;
        let unrecorded = ledger
            .iter()
            .filter(|r| !recorded.contains_key(&r.name))
            .map(|r| r.name.clone())
            .collect();
        let missing = recorded
            .keys()
            .filter(|n| !ledger.iter().any(|r| &r.name == *n))
            .cloned()
            .collect();
        Ok(AdoptPlan {
            from,
            to: wanted.to_string(),
            database: self.backend.describe(&db),
            size_bytes: info.size_bytes,
            ledger,
            unrecorded,
            missing,
        })
    }

    /// Records `plan.to` as production, with the audit event, in one store transaction.
    /// The plan is re-read first: a lock taken or a ledger changed since is not adopted blind.
    pub fn adopt(&mut self, plan: &AdoptPlan) -> Result<AdoptOutcome> {
        self.ensure_writable("adopt")?;
        let now = self.adopt_plan(&plan.to)?;
        if now.from != plan.from || now.ledger != plan.ledger {
            return Err(EngineError::Refused(
                "production or the adopted database's ledger changed since the plan was read; run adopt again".into(),
            ));
        }
        let actor = self.actor.clone();
        self.store.atomically(|s| -> Result<()> {
            s.set_env_database(PRODUCTION, Some(&now.to))?;
            s.audit(
                &actor,
                "production.adopted",
                None,
                Some(PRODUCTION),
                &json!({
                    "from": now.from,
                    "to": now.to,
                    "ledger_rows": now.ledger.len(),
                    "ledger_head": now.ledger.last().map(|r| r.name.clone()),
                    "unrecorded": now.unrecorded,
                    "missing": now.missing,
                }),
            )?;
            Ok(())
        })?;
        Ok(AdoptOutcome {
            from: now.from,
            to: now.to,
            ledger_rows: now.ledger.len(),
        })
    }
}
