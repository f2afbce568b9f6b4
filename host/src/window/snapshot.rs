//! Checkpoints and rebalances of a [`WindowOperator`]: every key's state written, decoded
//! and restored, and the state of revoked input partitions dropped.

use super::buffer::bytes_of;
use super::key_windows::KeyWindows;
use super::operator::{Due, KeySnapshot, KeyState, WindowOperator};
use super::panes::PaneStacks;

/// Checkpoints: the state of every key, written and read back.
impl WindowOperator {
    /// Every key's window state, encoded (postcard): what a checkpoint keeps of this
    /// operator. Pane states are left out: they are rebuilt from the events.
    pub fn snapshot(&self) -> Result<Vec<u8>, postcard::Error> {
        let keys: Vec<&KeyState> = self.states.iter().flatten().collect();
        postcard::to_allocvec(&keys)
    }

    /// Decodes what [`snapshot`](Self::snapshot) wrote, key by key, for
    /// [`restore`](Self::restore) (on this operator or on another worker's).
    pub fn decode_snapshot(bytes: &[u8]) -> Result<Vec<KeySnapshot>, postcard::Error> {
        let keys: Vec<KeyState> = postcard::from_bytes(bytes)?;
        Ok(keys.into_iter().map(KeySnapshot).collect())
    }

    /// Takes back one key's checkpointed state. The key must not be held already (a
    /// checkpoint holds each key once); its timers and the counters follow its windows.
    pub fn restore(&mut self, key: KeySnapshot) {
        let KeySnapshot(mut st) = key;
        let windows = match &st.windows {
            KeyWindows::Panes { step, live, .. } => live.count(i64::MIN, i64::MAX, *step),
            KeyWindows::Sessions { windows, .. } => windows.len() as u64,
        };
        let bytes = bytes_of(&st.events);
        self.open_windows = self.open_windows.saturating_add(windows);
        self.buffered += st.events.len();
        self.buffered_bytes = self.buffered_bytes.saturating_add(bytes);
        // The timers are set afresh from the windows.
        st.queued = None;
        st.cleanup_at = None;
        st.stacks = PaneStacks::default();
        let id = self.state_id(st.key.clone());
        *self.state(id) = st;
        self.resync(id);
    }
}

/// Consumer-group rebalances: a key's state remembers the input partition its events come
/// from, so that the state of a revoked partition's keys can be dropped.
impl WindowOperator {
    /// Sets the input partition of the events placed from now on. Each key's state records
    /// the partition of its latest event: topics are partitioned by key, so a key lives in
    /// one partition.
    pub fn set_partition(&mut self, partition: u32) {
        self.partition = partition;
    }

    /// Drops, without firing anything, the state of every key whose latest event came from
    /// one of `partitions` (revoked by a rebalance: their new owner rebuilds these windows
    /// from the committed offsets). Returns how many keys were dropped.
    pub fn drop_partitions(&mut self, partitions: &[u32]) -> usize {
        let ids: Vec<u32> = (0..self.states.len() as u32)
            .filter(|&id| {
                self.states[id as usize]
                    .as_ref()
                    .is_some_and(|st| partitions.contains(&st.partition))
            })
            .collect();
        for &id in &ids {
            let Some(mut st) = self.states[id as usize].take() else {
                continue;
            };
            if let Some((end, start)) = st.queued {
                self.queue.remove(&Due {
                    end,
                    start,
                    key: id,
                });
            }
            if let Some(at) = st.cleanup_at {
                self.cleanup.remove(&(at, id));
            }
            let windows = match &mut st.windows {
                KeyWindows::Panes { step, live, .. } => live.remove_through(i64::MAX, *step),
                KeyWindows::Sessions { windows, .. } => windows.len() as u64,
            };
            let bytes = bytes_of(&st.events);
            self.open_windows = self.open_windows.saturating_sub(windows);
            self.buffered = self.buffered.saturating_sub(st.events.len());
            self.buffered_bytes = self.buffered_bytes.saturating_sub(bytes);
            self.ids.remove(&st.key);
            self.free.push(id);
        }
        ids.len()
    }
}
