//! The broker: its [`State`] (settings, topic table, metadata image) and the two
//! coordinator drivers whose state lives in internal topics. `Broker` dereferences to
//! `State`, so handlers call the state's operations on it directly; the drivers take
//! `&State`, never `&Broker`, so they do not import the module that owns them.
//!
//! Invariant: opening replays both coordinators before any listener is bound.

use crate::clock::{Clock, SystemClock};
use crate::groups::GroupCoordinator;
use crate::partition::Partition;
use crate::state::State;
use crate::txn::TxnDriver;
use klamm_config::Config;
use std::sync::Arc;
use tokio::sync::mpsc;

pub struct Broker {
    state: State,
    /// The consumer-group coordinator (its state lives in `__consumer_offsets`).
    pub groups: GroupCoordinator,
    /// The transaction coordinator (its state lives in `__transaction_state`).
    pub txns: TxnDriver,
}

impl std::ops::Deref for Broker {
    type Target = State;

    fn deref(&self) -> &State {
        &self.state
    }
}

impl crate::txn::Coordinators for Broker {
    fn txns(&self) -> &TxnDriver {
        &self.txns
    }

    fn groups(&self) -> &GroupCoordinator {
        &self.groups
    }
}

impl Broker {
    /// Opens the data dir (see [`State::open`]) and replays the coordinators. Returns the
    /// broker and the flusher's queue, which `tasks::spawn_broker_tasks` drives.
    pub fn open(
        config: Config,
    ) -> anyhow::Result<(Arc<Broker>, mpsc::UnboundedReceiver<Arc<Partition>>)> {
        Broker::open_with_clock(config, Arc::new(SystemClock))
    }

    /// [`Broker::open`] on the given clock (tests pass a `ManualClock`).
    pub fn open_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<(Arc<Broker>, mpsc::UnboundedReceiver<Arc<Partition>>)> {
        let groups = GroupCoordinator::new(crate::groups::group_config(&config));
        let txns = TxnDriver::new(crate::txn::txn_config(&config));
        let (state, queue) = State::open(config, clock)?;
        let broker = Arc::new(Broker {
            state,
            groups,
            txns,
        });
        broker.groups.replay(&broker)?;
        broker.txns.replay(&broker)?;
        Ok((broker, queue))
    }

    /// Starts the shutdown drain: long polls answer now with what they have, and parked
    /// JoinGroup/SyncGroup requests answer NOT_COORDINATOR, so the requests already read
    /// finish promptly.
    pub fn begin_draining(&self) {
        self.state.signal_draining();
        self.groups.answer_parked_for_shutdown();
    }
}
