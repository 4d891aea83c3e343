//! What can go wrong in a planning round: reading the library and writing the schedule.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum PlannerError {
    #[error(transparent)]
    Store(#[from] StoreError),
}
