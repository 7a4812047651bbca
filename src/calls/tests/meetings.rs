use super::*;

fn meeting(e: &mut Engine, with: &[&str]) -> String {
    let alice = dev("alice", "demo");
    let cmd = Command::Start {
        to: with.iter().map(|s| s.to_string()).collect(),
        kind: Kind::Meeting,
        media: Media::Video,
        title: Some("standup".into()),
    };
    let fx = e.apply(req(&alice, "m", cmd), T0, "m1");
    assert!(reply(&fx).is_ok(), "{fx:?}");
    for u in with {
        let fx = e.apply(
            req(
                &dev(u, "demo"),
                &format!("acc-{u}"),
                Command::Accept {
                    call_id: "m1".into(),
                },
            ),
            T0 + 1_000,
            "-",
        );
        assert!(reply(&fx).is_ok());
        e.apply(
            Input::RtcJoined {
                channel: "chm1".into(),
                user: u.to_string(),
            },
            T0 + 2_000,
            "-",
        );
    }
    e.apply(
        Input::RtcJoined {
            channel: "chm1".into(),
            user: "alice".into(),
        },
        T0 + 1_500,
        "-",
    );
    "m1".into()
}

#[test]
fn invite_more_people_during_a_meeting() {
    let mut e = engine();
    let id = meeting(&mut e, &["bob", "carol"]);
    let carol = dev("carol", "demo");
    let fx = e.apply(
        req(
            &carol,
            "i",
            Command::Invite {
                call_id: id.clone(),
                to: vec!["dave".into(), "nobody".into()],
            },
        ),
        T0 + 5_000,
        "-",
    );
    let Ok(ReplyBody::Joined { unreachable, .. }) = reply(&fx) else {
        panic!("{fx:?}")
    };
    assert_eq!(unreachable, vec!["nobody".to_string()]);
    assert!(got(&fx, &dev("dave", "demo").client_id, "call.invite"));
    assert!(
        got(&fx, &dev("alice", "demo").client_id, "call.participant"),
        "everyone sees dave invited"
    );
    let fx = e.apply(
        req(
            &dev("dave", "demo"),
            "a",
            Command::Accept {
                call_id: id.clone(),
            },
        ),
        T0 + 6_000,
        "-",
    );
    assert!(reply(&fx).is_ok());
    assert_eq!(state_of(&e, &id, "dave"), PState::Accepted);
}

#[test]
fn host_mutes_someone_and_everyone_sees_it() {
    let mut e = engine();
    let id = meeting(&mut e, &["bob", "carol"]);
    let (alice, bob, carol) = (
        dev("alice", "demo"),
        dev("bob", "demo"),
        dev("carol", "demo"),
    );
    let by_bob = Command::Mute {
        call_id: id.clone(),
        target: Some("carol".into()),
        media: Media::Audio,
        muted: true,
    };
    assert_eq!(
        reply(&e.apply(req(&bob, "x", by_bob), T0 + 3_000, "-")),
        Err(CallError::NotHost)
    );
    let by_host = Command::Mute {
        call_id: id.clone(),
        target: Some("carol".into()),
        media: Media::Audio,
        muted: true,
    };
    let fx = e.apply(req(&alice, "y", by_host), T0 + 3_000, "-");
    let muted = Event::Muted {
        call_id: id.clone(),
        user: "carol".into(),
        media: Media::Audio,
        muted: true,
        by: "alice".into(),
    };
    for d in [&alice, &bob, &carol] {
        assert!(
            events_to(&fx, &d.client_id).contains(&muted),
            "{} told",
            d.client_id
        );
    }
    assert!(e.call(&id).unwrap().participants["carol"].audio_muted);
    let own = Command::Mute {
        call_id: id.clone(),
        target: None,
        media: Media::Video,
        muted: true,
    };
    let fx = e.apply(req(&bob, "z", own), T0 + 3_500, "-");
    assert!(
        got(&fx, &carol.client_id, "call.muted"),
        "self mute is broadcast"
    );
}

#[test]
fn remove_revokes_rtc_and_tells_everyone() {
    let mut e = engine();
    let id = meeting(&mut e, &["bob", "carol"]);
    let (alice, carol) = (dev("alice", "demo"), dev("carol", "demo"));
    let fx = e.apply(
        req(
            &alice,
            "rm",
            Command::Remove {
                call_id: id.clone(),
                target: "carol".into(),
            },
        ),
        T0 + 4_000,
        "-",
    );
    assert!(reply(&fx).is_ok());
    assert!(fx.contains(&Effect::RevokeRtc {
        channel: "chm1".into(),
        user: "carol".into()
    }));
    assert!(got(&fx, &carol.client_id, "call.removed"));
    assert!(got(&fx, &dev("bob", "demo").client_id, "call.participant"));
    assert_eq!(state_of(&e, &id, "carol"), PState::Removed);
    assert!(!e.call(&id).unwrap().is_over(), "alice and bob go on");
    let fx = e.apply(
        Input::RtcJoined {
            channel: "chm1".into(),
            user: "carol".into(),
        },
        T0 + 5_000,
        "-",
    );
    assert!(fx.is_empty(), "a removed user does not come back in");
}

#[test]
fn host_leaving_hands_over_and_the_last_one_out_ends_it() {
    let mut e = engine();
    let id = meeting(&mut e, &["bob", "carol"]);
    let (alice, bob, carol) = (
        dev("alice", "demo"),
        dev("bob", "demo"),
        dev("carol", "demo"),
    );
    let fx = e.apply(
        req(
            &alice,
            "l",
            Command::Leave {
                call_id: id.clone(),
            },
        ),
        T0 + 10_000,
        "-",
    );
    assert!(events_to(&fx, &bob.client_id)
        .iter()
        .any(|ev| matches!(ev, Event::Host { .. })));
    let host = e.call(&id).unwrap().host.clone();
    assert!(host == "bob" || host == "carol");
    assert!(!e.call(&id).unwrap().is_over());
    e.apply(
        req(
            &bob,
            "l",
            Command::Leave {
                call_id: id.clone(),
            },
        ),
        T0 + 11_000,
        "-",
    );
    let fx = e.apply(
        Input::RtcLeft {
            channel: "chm1".into(),
            user: "carol".into(),
        },
        T0 + 12_000,
        "-",
    );
    assert!(fx.contains(&Effect::CloseChannel {
        channel: "chm1".into()
    }));
    assert_eq!(
        e.call(&id).unwrap().state,
        CallState::Ended(EndReason::Hangup)
    );
    let _ = carol;
}

#[test]
fn end_for_all_transfer_and_max_duration() {
    let mut e = engine();
    let id = meeting(&mut e, &["bob", "carol"]);
    let (alice, bob, carol) = (
        dev("alice", "demo"),
        dev("bob", "demo"),
        dev("carol", "demo"),
    );
    assert_eq!(
        reply(&e.apply(
            req(
                &bob,
                "e",
                Command::End {
                    call_id: id.clone()
                }
            ),
            T0 + 5_000,
            "-"
        )),
        Err(CallError::NotHost)
    );
    let fx = e.apply(
        req(
            &alice,
            "t",
            Command::TransferHost {
                call_id: id.clone(),
                to: "bob".into(),
            },
        ),
        T0 + 5_000,
        "-",
    );
    assert!(got(&fx, &carol.client_id, "call.host"));
    let fx = e.apply(
        req(
            &bob,
            "e2",
            Command::End {
                call_id: id.clone(),
            },
        ),
        T0 + 6_000,
        "-",
    );
    for d in [&alice, &carol] {
        assert!(events_to(&fx, &d.client_id).contains(&Event::Ended {
            call_id: id.clone(),
            reason: EndReason::EndedByHost
        }));
    }

    let mut e = engine();
    let id = meeting(&mut e, &["bob"]);
    let max = e.call(&id).unwrap().max_end_at;
    let fx = e.apply(
        Input::Timer(Timer {
            call_id: id.clone(),
            kind: TimerKind::MaxDuration,
        }),
        max,
        "-",
    );
    assert!(got(&fx, &alice.client_id, "call.ended"));
    assert_eq!(
        e.call(&id).unwrap().state,
        CallState::Ended(EndReason::MaxDuration)
    );
}
