//! The positions table of a PostgreSQL sink as the source reads it when partitions are
//! assigned ([`PositionStore`]).

use std::collections::HashMap;
use std::sync::Mutex;

use postgres::Client;

use super::{POSITIONS_TABLE, connect, db_error};
use crate::sink::PositionStore;

/// The positions table of a PostgreSQL sink, read when partitions are assigned.
pub(super) struct Positions {
    pub(super) url: String,
    pub(super) pipeline: String,
    pub(super) name: String,
    pub(super) client: Mutex<Option<Client>>,
}

impl PositionStore for Positions {
    fn positions(
        &self,
        partitions: &[(String, i32)],
    ) -> Result<crate::sink::StoredPositions, String> {
        let mut guard = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            *guard = Some(connect(&self.url, &self.name)?);
        }
        let client = guard.as_mut().expect("connected");
        let rows = client
            .query(
                &format!(
                    "SELECT topic, \"partition\", \"offset\", record FROM {POSITIONS_TABLE} WHERE pipeline = $1"
                ),
                &[&self.pipeline],
            )
            .map_err(|e| {
                let why = db_error(&e);
                *guard = None;
                format!("{}: reading {POSITIONS_TABLE}: {why}", self.name)
            })?;
        let mut out = HashMap::new();
        for r in rows {
            let key = (r.get::<_, String>(0), r.get::<_, i32>(1));
            if partitions.is_empty() || partitions.contains(&key) {
                out.insert(key, (r.get::<_, i64>(2), r.get::<_, String>(3)));
            }
        }
        Ok(out)
    }
}
