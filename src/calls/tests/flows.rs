use super::*;

#[test]
fn one_to_one_call_from_invite_to_hangup() {
    let mut e = engine();
    let (alice, bob_phone, bob_web) = (dev("alice", "demo"), dev("bob", "demo"), dev("bob", "web"));
    let fx = e.apply(req(&alice, "r1", start_call("bob")), T0, "c1");
    let Ok(ReplyBody::Joined { join, call, .. }) = reply(&fx) else {
        panic!("{fx:?}")
    };
    assert_eq!(
        (join.channel.as_str(), join.user.as_str()),
        ("chc1", "alice")
    );
    assert_eq!(call.state, CallState::Ringing);
    assert!(fx.contains(&Effect::OpenChannel {
        channel: "chc1".into(),
        call_id: "c1".into()
    }));
    assert!(
        got(&fx, &bob_phone.client_id, "call.invite")
            && got(&fx, &bob_web.client_id, "call.invite"),
        "all bob's devices ring"
    );
    assert!(fx.iter().any(|f| matches!(f, Effect::SetTimer { timer: Timer { kind: TimerKind::Ring(u), .. }, at } if u == "bob" && *at == T0 + 30_000)));

    let fx = e.apply(
        req(
            &bob_web,
            "r2",
            Command::Ringing {
                call_id: "c1".into(),
            },
        ),
        T0 + 100,
        "-",
    );
    assert!(
        got(&fx, &alice.client_id, "call.participant"),
        "the caller hears it ring"
    );
    assert_eq!(state_of(&e, "c1", "bob"), PState::Ringing);

    let fx = e.apply(
        req(
            &bob_phone,
            "r3",
            Command::Accept {
                call_id: "c1".into(),
            },
        ),
        T0 + 2_000,
        "-",
    );
    let Ok(ReplyBody::Joined { join, .. }) = reply(&fx) else {
        panic!("{fx:?}")
    };
    assert_eq!(join.user, "bob");
    assert!(got(&fx, &bob_web.client_id, "call.answered_elsewhere"));
    assert!(got(&fx, &alice.client_id, "call.participant"));
    assert!(fx.contains(&Effect::CancelTimer(Timer {
        call_id: "c1".into(),
        kind: TimerKind::Ring("bob".into())
    })));
    assert_eq!(e.call("c1").unwrap().state, CallState::Active);

    let fx = e.apply(
        Input::RtcJoined {
            channel: "chc1".into(),
            user: "bob".into(),
        },
        T0 + 3_000,
        "-",
    );
    assert_eq!(state_of(&e, "c1", "bob"), PState::Joined);
    assert!(got(&fx, &alice.client_id, "call.participant"));

    let fx = e.apply(
        req(
            &bob_phone,
            "r4",
            Command::Leave {
                call_id: "c1".into(),
            },
        ),
        T0 + 60_000,
        "-",
    );
    assert!(matches!(reply(&fx), Ok(ReplyBody::Done { .. })));
    assert!(got(&fx, &alice.client_id, "call.ended"));
    assert!(fx.contains(&Effect::CloseChannel {
        channel: "chc1".into()
    }));
    assert_eq!(
        e.call("c1").unwrap().state,
        CallState::Ended(EndReason::Hangup)
    );
}

#[test]
fn decline_ends_a_one_to_one_call() {
    let mut e = engine();
    let (alice, bob) = (dev("alice", "demo"), dev("bob", "demo"));
    e.apply(req(&alice, "r1", start_call("bob")), T0, "c1");
    let fx = e.apply(
        req(
            &bob,
            "r2",
            Command::Decline {
                call_id: "c1".into(),
            },
        ),
        T0 + 1_000,
        "-",
    );
    assert!(reply(&fx).is_ok());
    assert!(
        got(&fx, &dev("bob", "web").client_id, "call.cancelled"),
        "bob's other device stops ringing"
    );
    assert!(events_to(&fx, &alice.client_id).contains(&Event::Ended {
        call_id: "c1".into(),
        reason: EndReason::Declined
    }));
    assert_eq!(
        e.call("c1").unwrap().state,
        CallState::Ended(EndReason::Declined)
    );
}

#[test]
fn cancel_by_the_caller_stops_the_ringing_and_leaves_a_missed_call() {
    let mut e = engine();
    let (alice, bob) = (dev("alice", "demo"), dev("bob", "demo"));
    e.apply(req(&alice, "r1", start_call("bob")), T0, "c1");
    let fx = e.apply(
        req(
            &bob,
            "x",
            Command::Cancel {
                call_id: "c1".into(),
            },
        ),
        T0,
        "-",
    );
    assert_eq!(
        reply(&fx),
        Err(CallError::NotHost),
        "only the caller cancels"
    );
    let fx = e.apply(
        req(
            &alice,
            "r2",
            Command::Cancel {
                call_id: "c1".into(),
            },
        ),
        T0 + 500,
        "-",
    );
    assert!(reply(&fx).is_ok());
    for d in [&bob.client_id, &dev("bob", "web").client_id] {
        assert!(got(&fx, d, "call.cancelled") && got(&fx, d, "call.missed"));
    }
    assert!(fx.contains(&Effect::CloseChannel {
        channel: "chc1".into()
    }));
    let missed_ttl = fx.iter().find_map(|f| match f {
        Effect::Notify {
            event: Event::Missed { .. },
            ttl,
            ..
        } => Some(*ttl),
        _ => None,
    });
    assert_eq!(
        missed_ttl,
        Some(Rules::default().missed_ttl),
        "a missed call waits for an offline phone"
    );
}

#[test]
fn no_answer_after_the_ring_timeout() {
    let mut e = engine();
    let alice = dev("alice", "demo");
    e.apply(req(&alice, "r1", start_call("bob")), T0, "c1");
    let ring = Input::Timer(Timer {
        call_id: "c1".into(),
        kind: TimerKind::Ring("bob".into()),
    });
    assert!(
        e.apply(ring.clone(), T0 + 29_999, "-").is_empty(),
        "an early timer does nothing"
    );
    let fx = e.apply(ring, T0 + 30_000, "-");
    assert!(got(&fx, &dev("bob", "web").client_id, "call.missed"));
    assert!(events_to(&fx, &alice.client_id).contains(&Event::Ended {
        call_id: "c1".into(),
        reason: EndReason::NoAnswer
    }));
    assert_eq!(state_of(&e, "c1", "bob"), PState::NoAnswer);
}

#[test]
fn busy_callee_rejects_or_waits() {
    let mut e = engine();
    let (alice, bob, carol) = (
        dev("alice", "demo"),
        dev("bob", "demo"),
        dev("carol", "demo"),
    );
    e.apply(req(&alice, "r1", start_call("bob")), T0, "c1");
    e.apply(
        req(
            &bob,
            "r2",
            Command::Accept {
                call_id: "c1".into(),
            },
        ),
        T0,
        "-",
    );
    let fx = e.apply(req(&carol, "r3", start_call("bob")), T0 + 1, "c2");
    assert_eq!(reply(&fx), Err(CallError::Busy));
    assert!(e.call("c2").is_none(), "nothing created");

    e.rules.busy = engine::BusyPolicy::Waiting;
    let fx = e.apply(req(&carol, "r4", start_call("bob")), T0 + 2, "c3");
    assert!(reply(&fx).is_ok());
    let waiting = events_to(&fx, &bob.client_id)
        .into_iter()
        .any(|ev| matches!(ev, Event::Invite { waiting: true, .. }));
    assert!(waiting, "call waiting: the invite says so");
}

#[test]
fn unknown_users_and_bad_requests() {
    let mut e = engine();
    let alice = dev("alice", "demo");
    assert_eq!(
        reply(&e.apply(req(&alice, "a", start_call("nobody")), T0, "c1")),
        Err(CallError::UnknownUser)
    );
    assert_eq!(
        reply(&e.apply(req(&alice, "b", start_call("alice")), T0, "c2")),
        Err(CallError::BadRequest)
    );
    let two = Command::Start {
        to: vec!["bob".into(), "carol".into()],
        kind: Kind::Call,
        media: Media::Audio,
        title: None,
    };
    assert_eq!(
        reply(&e.apply(req(&alice, "c", two), T0, "c3")),
        Err(CallError::BadRequest),
        "1:1 has one callee"
    );
    let other = Device {
        client_id: "GID_x@@@eve".into(),
        user: "eve".into(),
        instance: "other".into(),
    };
    e.apply(req(&alice, "d", start_call("bob")), T0, "c4");
    let fx = e.apply(
        req(
            &other,
            "e",
            Command::Accept {
                call_id: "c4".into(),
            },
        ),
        T0,
        "-",
    );
    assert_eq!(
        reply(&fx),
        Err(CallError::NotFound),
        "another instance cannot see the call"
    );
}

#[test]
fn sync_reports_calls_and_pending_invites() {
    let mut e = engine();
    let (alice, bob, carol) = (
        dev("alice", "demo"),
        dev("bob", "demo"),
        dev("carol", "demo"),
    );
    e.apply(req(&alice, "r1", start_call("bob")), T0, "c1");
    e.rules.busy = engine::BusyPolicy::Waiting; // alice is in c1: let carol's call wait
    e.apply(req(&carol, "r2", start_call("alice")), T0, "c2");
    let Ok(ReplyBody::Snapshot {
        calls,
        invites,
        joins,
    }) = reply(&e.apply(req(&alice, "s", Command::Sync), T0 + 10, "-"))
    else {
        panic!()
    };
    assert_eq!(
        calls.iter().map(|c| c.call_id.as_str()).collect::<Vec<_>>(),
        vec!["c1"]
    );
    assert_eq!(
        invites
            .iter()
            .map(|c| c.call_id.as_str())
            .collect::<Vec<_>>(),
        vec!["c2"]
    );
    assert_eq!(joins[0].channel, "chc1");
    let Ok(ReplyBody::Snapshot { invites, .. }) =
        reply(&e.apply(req(&bob, "s2", Command::Sync), T0 + 40_000, "-"))
    else {
        panic!()
    };
    assert!(
        invites.is_empty(),
        "an invitation past its ring time is not pending"
    );
}

#[test]
fn contacts_list_the_instance_users_with_presence_and_are_not_remembered() {
    let mut e = engine();
    let alice = dev("alice", "demo");
    e.apply(Input::Presence(dev("bob", "web"), true), T0, "-");
    e.apply(Input::Presence(dev("carol", "demo"), true), T0, "-");
    e.apply(Input::Presence(dev("carol", "demo"), false), T0, "-");
    let mut other = dev("erin", "demo");
    other.instance = "acme".into();
    e.apply(Input::Presence(other, true), T0, "-");
    let fx = e.apply(req(&alice, "c1", Command::Contacts), T0, "-");
    let Ok(ReplyBody::Contacts { users }) = reply(&fx) else {
        panic!("contacts: {fx:?}")
    };
    let seen: Vec<(&str, bool, usize)> = users
        .iter()
        .map(|c| (c.user.as_str(), c.online, c.devices))
        .collect();
    assert_eq!(
        seen,
        [("bob", true, 2), ("carol", false, 1), ("dave", false, 1)],
        "same instance only, the sender left out, online if any device is"
    );
    // Asked again with the same request id, the answer is read afresh.
    e.apply(Input::Presence(dev("dave", "demo"), true), T0, "-");
    let fx = e.apply(req(&alice, "c1", Command::Contacts), T0 + 1, "-");
    let Ok(ReplyBody::Contacts { users }) = reply(&fx) else {
        panic!()
    };
    assert!(users.iter().any(|c| c.user == "dave" && c.online));
}
