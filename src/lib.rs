//! VVTV: an autonomous 24/7 TV station in one daemon. Each module is one room.

pub mod actor;
pub mod broadcaster;
pub mod business_logic;
pub mod config;
pub mod curator;
pub mod factory;
pub mod http;
pub mod media;
pub mod planner;
pub mod shutdown;
pub mod station;
pub mod store;
