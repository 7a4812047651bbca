#![forbid(unsafe_code)]
//! mqrtc: the signaling side of an audio/video calling app on one box.
//!
//! An embedded MQTT broker that keeps the cloud MQTT service's wire
//! conventions (client ids, parent topics, P2P, auth strings), the bridge
//! through which the controller sees uplinks and publishes downlinks, and
//! the appliance around them (configuration, storage, HTTP).

pub mod admin;
pub mod app;
pub mod auth;
pub mod bench;
pub mod bridge;
pub mod broker;
pub mod calls;
pub mod certs;
pub mod cli;
pub mod client;
pub mod config;
pub mod controller;
pub mod device;
pub mod directory;
pub mod health;
pub mod http;
pub mod ops;
pub mod policy;
pub mod probe;
pub mod rtc;
pub mod store;
pub mod tarpit;
