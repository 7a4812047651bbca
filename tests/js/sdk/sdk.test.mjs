// The JavaScript SDK (static/sdk/mqrtc.js) against the real appliance over
// MQTT over WebSocket, with MQTT.js from npm: the Rust SDK's scenarios
// (tests/it/sdk.rs). Every message sent and received is validated against
// docs/protocol.schema.json.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { Client, rtc } from '../../../static/sdk/mqrtc.js';
import { Appliance, next } from './appliance.mjs';
import { watchSchema, checked } from './schema.mjs';

const RING = 'ring_timeout_secs = 2';
const running = [];
const clients = [];

async function appliance(config = '') {
  const a = await Appliance.start({ config: `[controller]\n${config}\n` });
  running.push(a);
  return a;
}

async function device(a, clientId, extra = {}) {
  const c = new Client({ mqtt, url: a.ws, clientId, mqttOptions: { reconnectPeriod: 200 }, ...extra });
  clients.push(c);
  await c.connect();
  watchSchema(c);
  return c;
}

after(async () => {
  for (const c of clients) await c.close().catch(() => {});
  for (const a of running) await a.stop();
});

test('a full call with two devices of one user: ring both, accept on one, RTC, mute, hang up', async () => {
  const a = await appliance();
  const alice = await device(a, 'GID_demo@@@alice');
  const bobWeb = await device(a, 'GID_web@@@bob');
  const bobPhone = await device(a, 'GID_demo@@@bob');
  const rings = [next(bobWeb, 'call.invite'), next(bobPhone, 'call.invite')];
  const started = await alice.startCall(['bob'], { media: 'video' });
  assert.equal(started.call.kind, 'call');
  const [inv] = await Promise.all(rings);
  assert.equal(inv.from, 'alice');
  assert.equal(inv.call.call_id, started.call.call_id);
  const elsewhere = next(bobPhone, 'call.answered_elsewhere');
  const accepted = next(alice, 'call.participant', (b) => b.user === 'bob' && b.state === 'accepted');
  const joined = await bobWeb.accept(inv.call.call_id);
  assert.equal((await elsewhere).device, 'GID_web@@@bob', 'a full client id');
  await accepted;
  const inChannel = next(alice, 'call.participant', (b) => b.user === 'bob' && b.state === 'joined');
  const seatA = await rtc.join(started.join);
  const seatB = await rtc.join(joined.join);
  assert.deepEqual(seatB.members.sort(), ['alice', 'bob']);
  assert.ok(seatA.session && seatB.session);
  await inChannel;
  const muted = next(bobWeb, 'call.muted', (b) => b.user === 'alice');
  await alice.mute(started.call.call_id, { media: 'audio', muted: true });
  assert.equal((await muted).muted, true);
  assert.equal(bobWeb.book.calls.get(started.call.call_id).participants.alice.audio_muted, true);
  const ended = next(bobWeb, 'call.ended');
  await alice.hangup(started.call.call_id);
  assert.equal((await ended).reason, 'hangup');
  assert.equal(bobWeb.book.calls.size, 0);
  assert.equal(bobPhone.book.invites.size, 0);
});

test('a callee offline rings when back within the time to live, and gets a missed call after it', async () => {
  const a = await appliance(RING);
  const alice = await device(a, 'GID_demo@@@alice');
  let bob = await device(a, 'GID_web@@@bob');
  await bob.close();
  const first = await alice.startCall(['bob']);
  bob = await device(a, 'GID_web@@@bob');
  // Within the ring time: the invitation waited in the session, or sync shows it.
  const ringing = bob.book.invites.has(first.call.call_id) ? null : await next(bob, 'call.invite');
  assert.ok(ringing === null || ringing.call.call_id === first.call.call_id);
  await bob.decline(first.call.call_id);
  await bob.close();
  const ended = next(alice, 'call.ended', (b) => b.reason === 'no_answer');
  const second = await alice.startCall(['bob']);
  assert.equal((await ended).call_id, second.call.call_id);
  const invites = [];
  bob = new Client({ mqtt, url: a.ws, clientId: 'GID_web@@@bob' });
  clients.push(bob);
  bob.addEventListener('call.invite', (e) => invites.push(e.detail));
  const missed = next(bob, 'call.missed', (b) => b.call_id === second.call.call_id);
  await bob.connect();
  await missed;
  assert.deepEqual(invites, [], 'no ring after the time to live');
  assert.equal(bob.book.invites.size, 0);
  assert.ok(bob.book.missed.some((m) => m.call_id === second.call.call_id));
});

test('a duplicate is seen once, also after a reload; a stale message is dropped', async () => {
  const a = await appliance();
  const storage = new Map();
  const store = { getItem: (k) => storage.get(k) ?? null, setItem: (k, v) => storage.set(k, v) };
  let bob = await device(a, 'GID_web@@@bob', { storage: store });
  const alice = await device(a, 'GID_demo@@@alice');
  const seen = [];
  const listen = (c) => c.addEventListener('message', (e) => seen.push(e.detail.envelope?.id));
  listen(bob);
  const env = { v: 1, id: 'dup-1', type: 'chat', ts: Date.now(), ttl: 60000, body: { text: 'hi' } };
  const send = (e) => new Promise((r) => alice.mqtt.publish('rtc_event/p2p/GID_web@@@bob', JSON.stringify(e), { qos: 1 }, r));
  // Listen before sending: the message may reach bob before alice's PUBACK.
  const marker1 = next(bob, 'message', (d) => d.envelope?.id === 'marker-1');
  await send(env);
  await send(env);
  await send({ ...env, id: 'stale-1', ts: Date.now() - 10 * 60000 });
  await send({ ...env, id: 'marker-1' });
  await marker1;
  assert.deepEqual(seen, ['dup-1', 'marker-1']);
  assert.equal(bob.stats.duplicates, 1);
  assert.equal(bob.stats.stale, 1);
  // A page reload: a new client with the same storage still drops it.
  await bob.close();
  bob = await device(a, 'GID_web@@@bob', { storage: store });
  seen.length = 0;
  listen(bob);
  const marker2 = next(bob, 'message', (d) => d.envelope?.id === 'marker-2');
  await send(env);
  await send({ ...env, id: 'marker-2' });
  await marker2;
  assert.deepEqual(seen, ['marker-2']);
  assert.equal(bob.stats.duplicates, 1);
});

test('kill -9 of the appliance mid-call: both reconnect, a mute sent meanwhile applies, both agree after sync', async () => {
  const a = await appliance();
  const alice = await device(a, 'GID_demo@@@alice');
  const bob = await device(a, 'GID_web@@@bob');
  const invite = next(bob, 'call.invite');
  const started = await alice.startCall(['bob']);
  await invite;
  await bob.accept(started.call.call_id);
  const callId = started.call.call_id;
  const gone = Promise.all([next(alice, 'disconnected'), next(bob, 'disconnected')]);
  // Listen before the restart: the clients may be back before this line runs again.
  const back = Promise.all([next(alice, 'synced', () => true, 30000), next(bob, 'synced', () => true, 30000)]);
  await a.kill9AndRestartSamePorts();
  await gone;
  const mute = alice.mute(callId, { media: 'video', muted: true });
  await back;
  await mute;
  const s = await bob.sync();
  const view = s.calls.find((c) => c.call_id === callId);
  assert.ok(view, 'bob is still in the call');
  assert.equal(view.participants.alice.video_muted, true, 'the mute sent during the outage applied');
  const mine = (await alice.sync()).calls.find((c) => c.call_id === callId);
  assert.deepEqual(mine.participants, view.participants, 'both see the same call');
  assert.equal(mine.state, view.state);
  assert.ok(alice.stats.reconnects >= 1 && bob.stats.reconnects >= 1);
});

test('contacts: the instance users seen, online or not', async () => {
  const a = await appliance();
  const alice = await device(a, 'GID_demo@@@alice');
  const bob = await device(a, 'GID_web@@@bob');
  const carol = await device(a, 'GID_web@@@carol');
  await carol.close();
  let users = await alice.contacts();
  for (let i = 0; i < 100 && users.find((u) => u.user === 'carol')?.online; i++) {
    await new Promise((r) => setTimeout(r, 50));
    users = await alice.contacts();
  }
  const by = Object.fromEntries(users.map((u) => [u.user, u.online]));
  assert.deepEqual(by, { bob: true, carol: false });
  assert.ok(!users.some((u) => u.user === 'alice'), 'not yourself');
  await bob.close();
  // Presence follows the broker's disconnect event, which can come a moment
  // after close() returns: ask again (for at most 5 s) until it shows.
  let later = await alice.contacts();
  for (let i = 0; i < 100 && later.find((u) => u.user === 'bob').online; i++) {
    await new Promise((r) => setTimeout(r, 50));
    later = await alice.contacts();
  }
  assert.equal(later.find((u) => u.user === 'bob').online, false);
});

test('an appliance whose clock is an hour off: requests are answered, nothing is dropped as stale', async () => {
  const a = await Appliance.start({ config: `[controller]\n${RING}\n`, args: ['--dev', '--fault-injection'] });
  running.push(a);
  // Net shifts: an hour ahead of the devices, then an hour behind.
  for (const [ms, name] of [[3600000, 'ahead'], [-7200000, 'behind']]) {
    const r = await fetch(`${a.http}/debug/faults/clock-shift`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ms }),
    });
    assert.equal(r.status, 202);
    const alice = await device(a, `GID_demo@@@alice-${name}`);
    const bob = await device(a, `GID_demo@@@bob-${name}`);
    const invited = next(bob, 'call.invite');
    const j = await alice.startCall([`bob-${name}`], { media: 'audio' });
    await invited;
    await bob.accept(j.call.call_id);
    const ended = next(bob, 'call.ended');
    await alice.hangup(j.call.call_id);
    await ended;
    assert.equal(bob.stats.stale, 0, `${name}: nothing dropped as stale`);
    assert.ok(Math.abs(alice.offset - (name === 'ahead' ? 3600000 : -3600000)) < 15000, `${name}: offset ${alice.offset}`);
    await alice.close();
    await bob.close();
  }
});

test('client ids and logins are checked before connecting', async () => {
  assert.throws(() => new Client({ mqtt, url: 'ws://x', clientId: 'alice' }), /@@@/);
  assert.throws(() => new Client({ mqtt, url: 'ws://x', clientId: 'GRP@@@alice' }), /GID_/);
  assert.throws(() => new Client({ mqtt, url: 'ws://x', clientId: 'GID_web@@@a/b' }), /Device ID/);
});

test('the three logins: Signature, DeviceCredential, Token with a refresh; a wrong secret is refused', async () => {
  const a = await Appliance.start({ args: [] });
  running.push(a);
  const [keyId, secret] = a.demoKey();
  assert.ok(keyId && secret, 'demo key in demo-tenant.txt');
  const instance = 'mqrtc-demo';
  const sig = await device(a, 'GID_web@@@sig', { credentials: { mode: 'signature', instance, keyId, secret } });
  assert.ok(sig.connected);
  const cred = a.cli(['device', 'create', 'GID_web@@@dev', '--instance', instance]);
  const dev = await device(a, 'GID_web@@@dev', { credentials: { mode: 'device', instance, keyId: cred.id, secret: cred.secret } });
  assert.ok(dev.connected);
  const tok = a.cli(['token', 'create', '--instance', instance, '--type', 'RW', '--resource', 'rtc_up,rtc_down,rtc_event', '--ttl', '3600']);
  const t = await device(a, 'GID_web@@@tok', { credentials: { mode: 'token', instance, keyId, tokens: { RW: tok.token } } });
  const fresh = a.cli(['token', 'create', '--instance', instance, '--type', 'RW', '--resource', 'rtc_up,rtc_down,rtc_event', '--ttl', '7200']);
  await t.refreshToken('RW', fresh.token);
  assert.equal(t.mqtt.options.password, `RW|${fresh.token}`, 'later reconnects use the fresh token');
  await t.sync();
  const bad = new Client({ mqtt, url: a.ws, clientId: 'GID_web@@@bad', credentials: { mode: 'signature', instance, keyId, secret: 'wrong' } });
  clients.push(bad);
  const refused = next(bad, 'disconnected');
  bad.connect().catch(() => {});
  await refused;
  assert.match(bad.lastError || '', /Bad username or password|Not authorized|rc 4|4/i);
  assert.equal(bad.connected, false);
});

test('every protocol message sent and received matched docs/protocol.schema.json', () => {
  assert.ok(checked.messages > 20, `only ${checked.messages} messages checked`);
  assert.deepEqual(checked.violations, []);
});
