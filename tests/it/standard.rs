//! `--standard-mqtt`: an ordinary MQTT broker for clients that know nothing
//! of the cloud conventions.

use crate::common::{python, run, text, Appliance};

#[test]
fn plain_mqtt_behaviour_with_paho() {
    let a = Appliance::start(&["--standard-mqtt"]);
    let p = a.ports.mqtt.to_string();
    let o = python("paho_standard.py", &["--port", &p]);
    assert!(o.status.success(), "{}\nlog:\n{}", text(&o), a.log());
}

#[test]
fn any_client_id_and_topic_with_mosquitto() {
    let a = Appliance::start(&["--standard-mqtt"]);
    let p = a.ports.mqtt.to_string();
    let o = run(
        "mosquitto_pub",
        &[
            "-p",
            &p,
            "-i",
            "thermostat",
            "-q",
            "1",
            "-t",
            "anything/at/all",
            "-m",
            "x",
            "-d",
        ],
    );
    assert!(
        text(&o).contains("received PUBACK (Mid: 1, RC:0)"),
        "{}",
        text(&o)
    );
    let o = run("mosquitto_sub", &["-p", &p, "-t", "#", "-W", "1", "-d"]);
    assert!(text(&o).contains("Subscribed (mid: 1): 0"), "{}", text(&o));
}
