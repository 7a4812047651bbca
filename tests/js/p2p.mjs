// P2P through mqrtc with MQTT.js (the browser MQTT client), over ws:// or
// wss:// (or mqtt://): the receiver's persistent session is created, it goes
// away, a QoS 1 P2P message is sent, and it must arrive when it returns.
// Usage: node p2p.mjs <url> [caFile]
import mqtt from "mqtt";
import fs from "node:fs";

const [url, ca] = process.argv.slice(2);
const opts = (clientId) => ({
  clientId,
  clean: false,
  protocolVersion: 4,
  reconnectPeriod: 0,
  connectTimeout: 10_000,
  ...(ca ? { ca: fs.readFileSync(ca) } : {}),
});
const receiver = "GID_web@@@js-bob";
const topic = `rtc_event/p2p/${receiver}`;

const connect = (id) =>
  new Promise((resolve, reject) => {
    const c = mqtt.connect(url, opts(id));
    c.once("connect", () => resolve(c));
    c.once("error", reject);
  });

const fail = (why) => {
  console.log(JSON.stringify({ ok: false, why: String(why) }));
  process.exit(1);
};
setTimeout(() => fail("timeout"), 20_000);

try {
  const bob = await connect(receiver);
  await bob.endAsync();
  const alice = await connect("GID_demo@@@js-alice");
  await alice.publishAsync(topic, "offer-from-mqtt.js", { qos: 1 });
  await alice.endAsync();
  const back = mqtt.connect(url, opts(receiver));
  back.on("message", async (t, payload) => {
    const ok = t === topic && payload.toString() === "offer-from-mqtt.js";
    console.log(JSON.stringify({ ok, topic: t, payload: payload.toString() }));
    await back.endAsync();
    process.exit(ok ? 0 : 1);
  });
  back.once("error", fail);
} catch (e) {
  fail(e);
}
