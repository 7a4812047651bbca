use super::*;

#[test]
fn two_devices_accepting_at_once_first_wins() {
    let mut e = engine();
    let (alice, phone, web) = (dev("alice", "demo"), dev("bob", "demo"), dev("bob", "web"));
    e.apply(req(&alice, "r1", start_call("bob")), T0, "c1");
    let first = e.apply(
        req(
            &web,
            "a1",
            Command::Accept {
                call_id: "c1".into(),
            },
        ),
        T0 + 10,
        "-",
    );
    let second = e.apply(
        req(
            &phone,
            "a2",
            Command::Accept {
                call_id: "c1".into(),
            },
        ),
        T0 + 10,
        "-",
    );
    assert!(matches!(reply(&first), Ok(ReplyBody::Joined { .. })));
    assert_eq!(reply(&second), Err(CallError::AnsweredElsewhere));
    assert_eq!(
        e.call("c1").unwrap().participants["bob"].device.as_deref(),
        Some(web.client_id.as_str())
    );
}

#[test]
fn accept_after_cancel_is_refused() {
    let mut e = engine();
    let (alice, bob) = (dev("alice", "demo"), dev("bob", "demo"));
    e.apply(req(&alice, "r1", start_call("bob")), T0, "c1");
    e.apply(
        req(
            &alice,
            "r2",
            Command::Cancel {
                call_id: "c1".into(),
            },
        ),
        T0 + 1,
        "-",
    );
    let fx = e.apply(
        req(
            &bob,
            "a",
            Command::Accept {
                call_id: "c1".into(),
            },
        ),
        T0 + 2,
        "-",
    );
    assert_eq!(reply(&fx), Err(CallError::Ended));
    assert_eq!(fx.len(), 1, "nothing but the error");
}

#[test]
fn accept_at_the_ring_timeout_whichever_comes_first() {
    // The timer is processed first: the accept finds the call over.
    let mut e = engine();
    let (alice, bob) = (dev("alice", "demo"), dev("bob", "demo"));
    e.apply(req(&alice, "r1", start_call("bob")), T0, "c1");
    let ring = Input::Timer(Timer {
        call_id: "c1".into(),
        kind: TimerKind::Ring("bob".into()),
    });
    e.apply(ring.clone(), T0 + 30_000, "-");
    let fx = e.apply(
        req(
            &bob,
            "a",
            Command::Accept {
                call_id: "c1".into(),
            },
        ),
        T0 + 30_000,
        "-",
    );
    assert_eq!(reply(&fx), Err(CallError::Ended));

    // The accept is processed first: the late timer changes nothing.
    let mut e = engine();
    e.apply(req(&alice, "r1", start_call("bob")), T0, "c1");
    let fx = e.apply(
        req(
            &bob,
            "a",
            Command::Accept {
                call_id: "c1".into(),
            },
        ),
        T0 + 30_000,
        "-",
    );
    assert!(reply(&fx).is_ok());
    assert!(e.apply(ring, T0 + 30_000, "-").is_empty());
    assert_eq!(e.call("c1").unwrap().state, CallState::Active);
}

#[test]
fn a_duplicate_request_gets_the_same_answer_and_changes_nothing() {
    let mut e = engine();
    let alice = dev("alice", "demo");
    let first = e.apply(req(&alice, "r1", start_call("bob")), T0, "c1");
    let again = e.apply(req(&alice, "r1", start_call("bob")), T0 + 5, "c2");
    assert_eq!(reply(&again), reply(&first));
    assert_eq!(
        again.len(),
        1,
        "only the reply: no second invite, no second call"
    );
    assert!(e.call("c2").is_none());
    // Even after a state change, the retry of an old request replays its answer.
    let bob = dev("bob", "demo");
    let acc = e.apply(
        req(
            &bob,
            "a1",
            Command::Accept {
                call_id: "c1".into(),
            },
        ),
        T0 + 10,
        "-",
    );
    e.apply(
        req(
            &bob,
            "l1",
            Command::Leave {
                call_id: "c1".into(),
            },
        ),
        T0 + 20,
        "-",
    );
    assert_eq!(
        reply(&e.apply(
            req(
                &bob,
                "a1",
                Command::Accept {
                    call_id: "c1".into()
                }
            ),
            T0 + 30,
            "-"
        )),
        reply(&acc)
    );
}

#[test]
fn a_request_older_than_its_time_to_live_is_refused_unapplied() {
    let mut e = engine();
    let alice = dev("alice", "demo");
    let old = Input::Request {
        from: alice.clone(),
        req: "r1".into(),
        sent_at: T0,
        ttl: 10_000,
        cmd: start_call("bob"),
    };
    let fx = e.apply(old, T0 + 10_001, "c1");
    assert_eq!(reply(&fx), Err(CallError::Stale));
    assert_eq!(fx.len(), 1);
    assert!(e.call("c1").is_none());
}

#[test]
fn replies_and_ended_calls_are_forgotten_after_the_memory() {
    let mut e = engine();
    let alice = dev("alice", "demo");
    e.apply(req(&alice, "r1", start_call("bob")), T0, "c1");
    e.apply(
        req(
            &alice,
            "r2",
            Command::Cancel {
                call_id: "c1".into(),
            },
        ),
        T0,
        "-",
    );
    let memory = e.rules.reply_memory;
    assert!(e.prune(T0 + memory - 1).is_empty());
    assert_eq!(e.prune(T0 + memory + 1), vec!["c1".to_string()]);
    let later = Input::Request {
        from: alice.clone(),
        req: "r1".into(),
        sent_at: T0 + memory,
        ttl: 60_000,
        cmd: start_call("bob"),
    };
    let fx = e.apply(later, T0 + memory + 2, "c9");
    assert!(
        reply(&fx).is_ok(),
        "after the memory the same request id is new"
    );
}

#[test]
fn a_restored_engine_continues_where_it_was() {
    let mut e = engine();
    let alice = dev("alice", "demo");
    e.apply(req(&alice, "r1", start_call("bob")), T0, "c1");
    let call = e.call("c1").unwrap().clone();
    let mut fresh = Engine::new(Rules::default());
    for (u, g) in [("alice", "demo"), ("bob", "demo"), ("bob", "web")] {
        fresh.restore_device(dev(u, g));
    }
    fresh.restore_call(call);
    let ring = Input::Timer(Timer {
        call_id: "c1".into(),
        kind: TimerKind::Ring("bob".into()),
    });
    let fx = fresh.apply(ring, T0 + 30_000, "-");
    assert!(
        got(&fx, &alice.client_id, "call.ended"),
        "the timer resumes on the restored call"
    );
}
