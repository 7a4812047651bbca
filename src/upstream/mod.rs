//! `mqrtc controller`: the controller, the RTC token issuer and the mock
//! RTC service without the embedded broker, as an MQTT 5 client of an
//! external broker (EMQX, HiveMQ, mosquitto, the cloud MQTT service), plus
//! the HTTP authentication endpoint that lets EMQX enforce the appliance's
//! logins and topic rules (`docs/scale-out.md`).

pub mod bridge;
pub mod cli;
pub mod config;
pub mod emqx;
mod http;
mod run;

pub use config::{Presence, Upstream};
pub use run::{run, start, Started};
