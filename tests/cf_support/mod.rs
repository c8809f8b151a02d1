//! Workspaces on the Cloudflare backend against a D1 contract server
//! (`d1ops_testkit::d1_contract`). Include after `mod common;`.
#![allow(dead_code)]

use std::sync::Arc;

use crate::common::{CloudflareSide, Ws};
use d1ops_testkit::d1_contract::D1Server;

/// A fresh contract server whose account holds an empty production database, and a
/// workspace on the Cloudflare backend pointing at it.
pub fn cloudflare_ws() -> (Arc<D1Server>, Ws) {
    let server = Arc::new(D1Server::start());
    let production_id = server.create_database("app-production");
    let ws = Ws::on_cloudflare(side(&server, &production_id));
    (server, ws)
}

/// What [`Ws::on_cloudflare`] needs from `server`.
pub fn side(server: &Arc<D1Server>, production_id: &str) -> CloudflareSide {
    let (named, by_id) = (server.clone(), server.clone());
    CloudflareSide {
        base: server.base(),
        token: server.token().to_string(),
        account: server.account_id().to_string(),
        production_id: production_id.to_string(),
        file_named: Box::new(move |name| {
            named
                .databases()
                .into_iter()
                .find(|(_, n)| n == name)
                .map(|(id, _)| named.db_path(&id))
        }),
        file_of: Box::new(move |id| by_id.db_path(id)),
        keep: Box::new(server.clone()),
    }
}
