// The softphone in headless Chromium with a fake camera and microphone:
// real WebRTC media between browser pages through the appliance's
// signaling. Run inside a network namespace that has only loopback
// (tests/it/phone.rs does `unshare -n`), so no packet leaves 127.0.0.1.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { launch, openPage, axeCheck, noErrors, shot, eventually } from './lib.mjs';
import { Appliance } from '../sdk/appliance.mjs';

let a, browser;
const pages = {};
const children = [];

const MEDIA_FLAGS = [
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--autoplay-policy=no-user-gesture-required',
];

async function phone(user) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 760 } });
  const page = await openPage(context);
  await page.goto(`${a.http}/phone`);
  if (user === 'alice') await axeCheck(page, 'phone sign-in');
  await page.click(`button.pick[data-id="GID_web@@@${user}"]`);
  await page.click('#signin-go');
  await page.waitForSelector('#idle:not([hidden])');
  assert.equal(await page.textContent('#conn'), 'connected');
  pages[user] = page;
  return page;
}

const state = (page) => page.evaluate(() => window.mqrtcPhone.state);
const stats = (page) => page.evaluate(() => window.mqrtcPhone.mesh?.stats() ?? null);

/** Waits until `page` has `peers` connected peers whose inbound audio and video bytes grow. */
async function mediaFlows(page, peers, what) {
  const first = await eventually(async () => {
    const s = await stats(page);
    return s && s.connected >= peers && s.videoBytes > 0 && s.audioBytes > 0 ? s : null;
  }, 10000, `${what}: media from ${peers} peer(s)`);
  const later = await eventually(async () => {
    const s = await stats(page);
    return s.videoBytes > first.videoBytes && s.audioBytes > first.audioBytes ? s : null;
  }, 5000, `${what}: media keeps flowing`);
  return later;
}

async function dial(page, to) {
  await page.fill('#dial-to', to);
  await page.click('#dial-go');
  await page.waitForSelector('#outgoing:not([hidden]), #incall:not([hidden])');
}

async function answer(page) {
  await page.waitForSelector('#incoming:not([hidden])', { timeout: 10000 });
  await page.click('#in-accept');
  await page.waitForSelector('#incall:not([hidden])');
}

before(async () => {
  a = await Appliance.start({ config: '[controller]\nring_timeout_secs = 20\n' });
  browser = await launch(MEDIA_FLAGS);
});

after(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  await browser?.close();
  await a?.stop();
});

test('alice calls bob, bob accepts: media flows both ways, mute shows, hang up closes both', async () => {
  const alice = await phone('alice');
  const bob = await phone('bob');
  // Contacts: bob shows up online (the list refreshes by itself).
  await alice.waitForSelector('#contacts li[data-user="bob"] .presence.online', { timeout: 15000 });
  await axeCheck(alice, 'phone idle');
  await shot(alice, 'phone-idle');
  await dial(alice, 'bob');
  await bob.waitForSelector('#incoming:not([hidden])');
  assert.equal(await bob.textContent('#in-from'), 'alice');
  assert.ok(await bob.evaluate(() => window.mqrtcPhone.ringer.ringing), 'a ringtone plays');
  await axeCheck(bob, 'phone ringing');
  await shot(bob, 'phone-ringing');
  await answer(bob);
  await alice.waitForSelector('#incall:not([hidden])');
  await mediaFlows(alice, 1, 'alice');
  await mediaFlows(bob, 1, 'bob');
  await bob.waitForFunction(() => document.querySelector('figure[data-user="alice"] video')?.videoWidth > 0);
  await alice.click('#mute-mic');
  await bob.waitForFunction(() => /alice.*microphone muted/.test(document.querySelector('#people').textContent));
  await eventually(async () => /rtt \d+ ms/.test(await alice.textContent('#quality')), 5000, 'quality indicator');
  await axeCheck(alice, 'phone in a call');
  await shot(alice, 'phone-in-call');
  await alice.click('#hangup');
  await bob.waitForSelector('#idle:not([hidden])');
  await alice.waitForSelector('#idle:not([hidden])');
  assert.equal(await bob.evaluate(() => window.mqrtcPhone.mesh), null, 'peer connection closed');
  assert.match(await bob.textContent('#history'), /call ended \(hangup\) with .*alice/);
  noErrors(alice, 'alice');
  noErrors(bob, 'bob');
});

test('a three-person meeting: every page receives media from both others', async () => {
  const carol = await phone('carol');
  const { alice, bob } = pages;
  // A 1:1 call becomes a meeting when the host invites more.
  await dial(alice, 'bob');
  await answer(bob);
  await alice.fill('#invite-to', 'carol');
  await alice.click('#invite button[type=submit]');
  await answer(carol);
  for (const [name, p] of Object.entries({ alice, bob, carol })) await mediaFlows(p, 2, name);
  assert.equal(await carol.locator('#grid figure').count(), 3);
  assert.equal(await alice.isVisible('#end-all'), true, 'the host can end for all');
  await axeCheck(alice, 'phone meeting');
  await shot(alice, 'phone-meeting');
  // The host mutes bob: bob's own page and carol's show it.
  await alice.click('button[aria-label="Mute bob"]');
  await carol.waitForFunction(() => /bob: .*microphone muted/.test(document.querySelector('#people').textContent));
  // The host removes carol: her page leaves, the others stop her media.
  await alice.click('button[aria-label="Remove carol"]');
  await carol.waitForSelector('#idle:not([hidden])');
  assert.equal(await carol.evaluate(() => window.mqrtcPhone.mesh), null);
  assert.match(await carol.textContent('#history'), /removed from a call/);
  for (const p of [alice, bob]) {
    await p.waitForFunction(() => !document.querySelector('figure[data-user="carol"]'));
    await eventually(async () => (await stats(p)).connected === 1, 5000, 'carol\'s connection closed');
  }
  // The host hands over: bob gets the host's controls.
  await alice.click('button[aria-label="Make host bob"]');
  await bob.waitForSelector('#host-badge:not([hidden])');
  await bob.waitForSelector('#end-all:not([hidden])');
  await bob.click('#end-all');
  for (const p of [alice, bob]) await p.waitForSelector('#idle:not([hidden])');
});

test('an audio-only call, and a device credential sign-in', async () => {
  const cred = a.cli(['device', 'create', 'GID_web@@@erin', '--instance', 'mqrtc-demo']);
  const context = await browser.newContext();
  const erin = await openPage(context);
  await erin.goto(`${a.http}/phone`);
  await erin.fill('#f-client', 'GID_web@@@erin');
  await erin.selectOption('#f-mode', 'device');
  await erin.fill('#f-key', cred.id);
  await erin.fill('#f-secret', 'not the secret');
  await erin.click('#signin-go');
  await erin.waitForSelector('#signin-error:not([hidden])');
  await erin.reload();
  await erin.fill('#f-client', 'GID_web@@@erin');
  await erin.selectOption('#f-mode', 'device');
  await erin.fill('#f-key', cred.id);
  await erin.fill('#f-secret', cred.secret);
  await erin.click('#signin-go');
  await erin.waitForSelector('#idle:not([hidden])');
  const { alice } = pages;
  await alice.check('#dial-audio');
  await dial(alice, 'erin');
  await answer(erin);
  await eventually(async () => {
    const s = await stats(erin);
    return s && s.connected === 1 && s.audioBytes > 0 ? s : null;
  }, 10000, 'audio flows');
  assert.equal((await stats(erin)).videoBytes, 0, 'no video in an audio-only call');
  await erin.click('#hangup');
  await alice.waitForSelector('#idle:not([hidden])');
  await alice.uncheck('#dial-audio');
});

test('a browser calls mqrtc device: signaling works, the page says the device sends no media', async () => {
  const dave = spawn(process.env.MQRTC_BIN, ['device', '--id', 'GID_demo@@@dave', '--host', '127.0.0.1',
    '--mqtt-port', String(a.ports.mqtt), '--http-port', String(a.ports.http), '--auto-answer', '--json'],
  { stdio: ['ignore', 'pipe', 'pipe'], env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MQRTC_'))) });
  children.push(dave);
  let out = '';
  dave.stdout.on('data', (d) => { out += d; });
  await eventually(() => out.includes('sync'), 15000, `dave ready: ${out}`);
  const { alice } = pages;
  await dial(alice, 'dave');
  await alice.waitForSelector('#incall:not([hidden])', { timeout: 10000 });
  await alice.waitForFunction(() => /dave: sends no media/.test(document.querySelector('#grid').textContent), null, { timeout: 10000 });
  await alice.click('#hangup');
  await alice.waitForSelector('#idle:not([hidden])');
  dave.kill('SIGTERM');
});

test('kill -9 of the appliance mid-call: media keeps flowing and the pages recover the call through sync', async () => {
  const { alice, bob } = pages;
  await dial(alice, 'bob');
  await answer(bob);
  await mediaFlows(bob, 1, 'bob before');
  const callId = await alice.evaluate(() => window.mqrtcPhone.call.call_id);
  await a.kill9AndRestartSamePorts();
  const during = await mediaFlows(bob, 1, 'bob while the appliance restarts');
  assert.ok(during.connected === 1);
  for (const p of [alice, bob]) {
    await eventually(async () => (await p.textContent('#conn')) === 'connected', 20000, 'reconnected');
    await eventually(async () => (await state(p)) === 'incall', 5000, 'still in the call after sync');
  }
  assert.equal(await bob.evaluate(() => window.mqrtcPhone.call.call_id), callId);
  await mediaFlows(alice, 1, 'alice after');
  await alice.click('#hangup');
  await bob.waitForSelector('#idle:not([hidden])', { timeout: 10000 });
});
