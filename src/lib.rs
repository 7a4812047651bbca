#![forbid(unsafe_code)]
//! mqrtc: the signaling side of an audio/video calling app on one box.
//!
//! An embedded MQTT broker that keeps the cloud MQTT service's wire
//! conventions (client ids, parent topics, P2P, auth strings), the bridge
//! through which the controller sees uplinks and publishes downlinks, and
//! the appliance around them (configuration, storage, HTTP).
//!
//! With `default-features = false` only [`client`] (the Rust SDK), the call
//! types ([`calls`]), the wire protocol ([`controller::protocol`]) and the
//! RTC join parameters ([`rtc::token`]) are built.

#[cfg(feature = "server")]
pub mod admin;
#[cfg(feature = "server")]
pub mod app;
#[cfg(feature = "server")]
pub mod auth;
#[cfg(feature = "server")]
pub mod backup;
#[cfg(feature = "server")]
pub mod bench;
#[cfg(feature = "server")]
pub mod bridge;
#[cfg(feature = "server")]
pub mod broker;
pub mod calls;
#[cfg(feature = "server")]
pub mod certs;
#[cfg(feature = "server")]
pub mod cli;
pub mod client;
#[cfg(feature = "server")]
pub mod config;
pub mod controller;
#[cfg(feature = "server")]
pub mod demo;
#[cfg(feature = "server")]
pub mod device;
#[cfg(feature = "server")]
pub mod directory;
#[cfg(feature = "server")]
pub mod health;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod ops;
#[cfg(feature = "server")]
pub mod policy;
#[cfg(feature = "server")]
pub mod private;
pub mod probe;
pub mod rtc;
pub mod signature;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod tarpit;
#[cfg(feature = "server")]
pub mod upstream;
#[cfg(feature = "server")]
pub mod webhooks;
