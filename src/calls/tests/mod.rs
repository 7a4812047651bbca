//! State machine tests: each flow and race of issue 4, time as a parameter.

mod flows;
mod meetings;
mod races;

use super::*;

pub(super) const T0: Millis = 1_800_000_000_000;

/// A device of the demo instance: `dev("bob", "web")` is `GID_web@@@bob`.
pub(super) fn dev(user: &str, group: &str) -> Device {
    Device {
        client_id: format!("GID_{group}@@@{user}"),
        user: user.into(),
        instance: "demo".into(),
    }
}

/// An engine that knows alice (phone), bob (phone, web), carol and dave (phone).
pub(super) fn engine() -> Engine {
    let mut e = Engine::new(Rules::default());
    for (u, g) in [
        ("alice", "demo"),
        ("bob", "demo"),
        ("bob", "web"),
        ("carol", "demo"),
        ("dave", "demo"),
    ] {
        e.apply(Input::DeviceSeen(dev(u, g)), T0, "-");
    }
    e
}

pub(super) fn req(from: &Device, req: &str, cmd: Command) -> Input {
    Input::Request {
        from: from.clone(),
        req: req.into(),
        sent_at: T0,
        ttl: 60_000,
        cmd,
    }
}

pub(super) fn start_call(to: &str) -> Command {
    Command::Start {
        to: vec![to.into()],
        kind: Kind::Call,
        media: Media::Video,
        title: None,
    }
}

/// The reply in `fx`.
pub(super) fn reply(fx: &[Effect]) -> Result<ReplyBody, CallError> {
    fx.iter()
        .find_map(|e| match e {
            Effect::Reply { result, .. } => Some(result.clone()),
            _ => None,
        })
        .expect("a reply")
}

/// Events sent to `client_id` in `fx`.
pub(super) fn events_to(fx: &[Effect], client_id: &str) -> Vec<Event> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Notify { to, event, .. } if to.iter().any(|t| t == client_id) => {
                Some(event.clone())
            }
            _ => None,
        })
        .collect()
}

/// Whether `fx` holds an event of the given serde type name for `client_id`.
pub(super) fn got(fx: &[Effect], client_id: &str, kind: &str) -> bool {
    events_to(fx, client_id)
        .iter()
        .any(|e| serde_json::to_value(e).unwrap()["type"] == kind)
}

pub(super) fn state_of(e: &Engine, call: &str, user: &str) -> PState {
    e.call(call).unwrap().participants[user].state
}
