//! Integration tests: the real `mqrtc` binary on free ports in a temp dir,
//! driven by clients nobody here wrote (mosquitto, paho-mqtt, rumqttc).

mod common;

mod api;
mod auth;
mod backup;
mod bridge;
mod calls;
mod cli;
mod conformance;
mod console;
mod container;
mod conventions;
mod failover;
mod faults;
mod hostile;
mod https;
mod js_sdk;
mod logs;
mod metrics;
mod packaging;
mod persistence;
mod phone;
mod rust_client;
mod scaleout;
mod sdk;
mod security;
mod standard;
mod state_store;
mod transports;
mod upgrade;
mod webhooks;
