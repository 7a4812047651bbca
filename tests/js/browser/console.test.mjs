// The web console in headless Chromium against the real appliance (started
// by tests/it/console.rs, which passes where it listens in the environment):
// what a person clicks is what this clicks.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import { launch, openPage, axeCheck, noErrors, shot, eventually } from './lib.mjs';

const env = (k) => {
  const v = process.env[k];
  assert.ok(v, `${k} is not set (run through cargo test: tests/it/console.rs)`);
  return v;
};
const BASE = env('MQRTC_HTTP');
const MQTT_PORT = env('MQRTC_MQTT_PORT');
const PASSWORD = env('MQRTC_PASSWORD');
const BIN = env('MQRTC_BIN');
const [DEMO_KEY, DEMO_SECRET] = [env('MQRTC_DEMO_KEY_ID'), env('MQRTC_DEMO_SECRET')];
const HTTP_PORT = new URL(BASE).port;
const DATA_DIR = env('MQRTC_TEST_DATA_DIR');

let browser, context, page;
const children = [];

function start(cmd, args) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.out = '';
  child.stdout.on('data', (d) => { child.out += d; });
  child.stderr.on('data', (d) => { child.out += d; });
  child.done = new Promise((r) => child.on('exit', (code) => r(code)));
  children.push(child);
  return child;
}

const signature = (secret, clientId) => createHmac('sha1', secret).update(clientId).digest('base64');

/** Visits a console page, checks accessibility and console errors. */
async function visit(url, name, { screenshot = true } = {}) {
  page.errors.length = 0;
  const res = await page.goto(BASE + url);
  assert.equal(res.status(), 200, `${url}: HTTP ${res.status()}`);
  await axeCheck(page, url);
  noErrors(page, url);
  if (screenshot) await shot(page, `console-${name}`);
}

before(async () => {
  browser = await launch();
  context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  page = await openPage(context);
  page.on('dialog', (d) => d.accept());
});

after(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  await browser?.close();
});

test('a wrong password is refused, the right one opens the overview', async () => {
  await page.goto(`${BASE}/console`);
  assert.match(page.url(), /\/console\/login/, 'no session: the sign-in page');
  await axeCheck(page, 'login');
  await shot(page, 'console-login');
  await page.fill('#password', 'not the password');
  const [refused] = await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  assert.equal(refused.status(), 401);
  assert.match(await page.textContent('.error'), /Wrong name or password/);
  page.errors.length = 0; // the browser logs the expected 401
  await page.fill('#password', PASSWORD);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  assert.equal(new URL(page.url()).pathname, '/console');
  const cookie = (await context.cookies()).find((c) => c.name === 'mqrtc_session');
  assert.ok(cookie.httpOnly, 'session cookie is HttpOnly');
  assert.equal(cookie.sameSite, 'Strict');
  // The chart and numbers come from /api/v1/stats with the session cookie.
  await page.waitForSelector('#chart polyline', { state: 'attached' });
  await visit('/console', 'overview', { screenshot: false });
});

test('provisioning: an instance, a parent topic, a Group ID and a device credential', async () => {
  await visit('/console/provisioning', 'provisioning', { screenshot: false });
  const submit = async (label, fields) => {
    const form = page.locator(`form[aria-label="${label}"]`);
    for (const [name, value] of Object.entries(fields)) {
      const el = form.locator(`[name="${name}"]`);
      if ((await el.evaluate((e) => e.tagName)) === 'SELECT') await el.selectOption(value);
      else await el.fill(value);
    }
    await Promise.all([page.waitForEvent('load'), form.locator('button[type=submit]').click()]);
  };
  await submit('Create an instance', { id: 'acme', name: 'Acme Corp' });
  await submit('Create a parent topic', { name: 'acme_event', instance: 'acme', role: 'event' });
  await submit('Create a Group ID', { id: 'GID_acme', instance: 'acme' });
  // A bad Group ID gets the CLI's message, and nothing is created.
  const form = page.locator('form[aria-label="Create a Group ID"]');
  await form.locator('[name=id]').fill('acme-no-prefix');
  await form.locator('button[type=submit]').click();
  await eventually(async () => (await form.locator('.error').textContent()).includes('GID'), 5000, 'group error');
  page.errors.length = 0; // the browser logs the expected 400
  // A device credential: its secret is shown once, in a dialog.
  const dev = page.locator('form[aria-label="Create a device credential"]');
  await dev.locator('[name=client_id]').fill('GID_acme@@@user42');
  await dev.locator('[name=instance]').selectOption('acme');
  await dev.locator('button[type=submit]').click();
  await page.waitForSelector('#secret-dialog[open]');
  const secret = JSON.parse(await page.textContent('#secret-body'));
  assert.match(secret.id, /./);
  assert.match(secret.secret, /./);
  await shot(page, 'console-secret-once');
  await Promise.all([page.waitForEvent('load'), page.click('#secret-close')]);
  const rows = await page.textContent('main');
  for (const want of ['Acme Corp', 'acme_event', 'GID_acme', 'GID_acme@@@user42']) assert.ok(rows.includes(want), want);
  assert.ok(!rows.includes('acme-no-prefix'));
  await visit('/console/provisioning', 'provisioning');
  process.env.DEVICE_KEY_ID = secret.id;
  process.env.DEVICE_SECRET = secret.secret;
});

test('a device appears live, its page explains it, and a kick ends it', async () => {
  await visit('/console/devices', 'devices-empty', { screenshot: false });
  const id = 'GID_acme@@@user42';
  const sub = start('mosquitto_sub', [
    '-V', '5', '-h', '127.0.0.1', '-p', MQTT_PORT, '-i', id, '-k', '30',
    '-u', `DeviceCredential|${process.env.DEVICE_KEY_ID}|acme`,
    '-P', signature(process.env.DEVICE_SECRET, id), '-t', 'acme_event/room1/#',
  ]);
  // The list refreshes itself: no reload here.
  const row = page.locator(`#devices tr[data-client="${id}"]`);
  await row.waitFor({ timeout: 15000 });
  assert.match(await row.textContent(), /online/);
  await shot(page, 'console-devices');
  await Promise.all([page.waitForEvent('load'), row.locator('a').click()]);
  assert.equal(await page.textContent('#session-state'), 'online');
  assert.match(await page.textContent('main'), /acme_event\/room1\/#/);
  await axeCheck(page, 'device page');
  noErrors(page, 'device page');
  await shot(page, 'console-device');
  await Promise.all([page.waitForEvent('load'), page.click('#kick')]);
  assert.equal(await sub.done, 0, `mosquitto_sub was told to go:\n${sub.out}`);
  // The disconnect is recorded as the broker closes the session.
  await eventually(async () => {
    await page.reload();
    return /disconnected/.test(await page.textContent('#history'));
  }, 5000, 'history shows the disconnect');
  assert.match(await page.textContent('#history'), /ByAdminKick/);
  assert.equal(await page.locator('#session-state').count(), 0, 'no session kept (clean start)');
  await page.goto(`${BASE}/console/devices`);
  assert.equal(await page.locator(`#devices tr[data-client="${id}"]`).count(), 0);
});

test('a call between two mqrtc devices, and its timeline as a sequence diagram', async () => {
  // A webhook endpoint for the demo tenant: the call's page lists its deliveries.
  const received = [];
  const receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => { received.push({ id: req.headers['webhook-id'], body }); res.writeHead(204); res.end(); });
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  receiver.unref(); // a failed assertion must not leave the test process waiting on it
  const hook = start(BIN, ['webhook', 'set', '--instance', 'mqrtc-demo', '--url', `http://127.0.0.1:${receiver.address().port}/hooks`, '--data-dir', DATA_DIR]);
  assert.equal(await hook.done, 0, `webhook set:\n${hook.out}`);
  const login = ['--host', '127.0.0.1', '--mqtt-port', MQTT_PORT, '--http-port', HTTP_PORT, '--instance', 'mqrtc-demo', '--key-id', DEMO_KEY, '--secret', DEMO_SECRET];
  const bob = start(BIN, ['device', '--id', 'GID_web@@@bob', ...login, '--auto-answer', '--json']);
  await eventually(() => bob.out.includes('synced') || bob.out.includes('"sync'), 15000, `bob ready:\n${bob.out}`);
  const alice = start(BIN, ['device', '--id', 'GID_demo@@@alice', ...login, '--hangup-after', '2', 'call', 'bob']);
  assert.equal(await alice.done, 0, `alice's call:\n${alice.out}`);
  await page.goto(`${BASE}/console/calls?user=alice`);
  await axeCheck(page, 'calls');
  noErrors(page, 'calls');
  await shot(page, 'console-calls');
  const link = page.locator('#calls tbody tr a').first();
  const callId = await link.textContent();
  await Promise.all([page.waitForEvent('load'), link.click()]);
  const lanes = await page.locator('#sequence .lane text').allTextContents();
  for (const want of ['alice (GID_demo)', 'bob (GID_web)', 'controller', 'RTC service']) assert.ok(lanes.includes(want), `${want} in ${lanes}`);
  const labels = await page.locator('#sequence .arrow text:not(.t)').allTextContents();
  for (const want of ['call.start', 'call.invite', 'call.accept', 'rtc.joined', 'call.leave', 'call.ended']) assert.ok(labels.includes(want), `${want} in ${labels}`);
  await axeCheck(page, 'call page');
  noErrors(page, 'call page');
  await shot(page, 'console-call');
  const exported = await page.evaluate(async (href) => (await fetch(href)).json(), await page.getAttribute('#export', 'href'));
  assert.equal(exported.call_id, callId);
  assert.equal(exported.messages.length, await page.locator('#messages tbody tr').count());
  // The webhook events of the call, each delivered (the page is reloaded until they are).
  const wanted = ['call.started', 'call.answered', 'call.ended'];
  await eventually(async () => {
    await page.reload();
    const rows = await page.locator('#webhooks tbody tr').allTextContents();
    return wanted.every((t) => rows.some((r) => r.includes(t) && r.includes('delivered') && r.includes('HTTP 204')));
  }, 15000, 'the call page lists its delivered webhooks');
  for (const t of wanted) assert.ok(received.some((r) => JSON.parse(r.body).type === t && JSON.parse(r.body).data.call_id === callId), `${t} received`);
  await axeCheck(page, 'call page with webhooks');
  noErrors(page, 'call page with webhooks');
  const off = start(BIN, ['webhook', 'delete', '--instance', 'mqrtc-demo', '--data-dir', DATA_DIR]);
  assert.equal(await off.done, 0, `webhook delete:\n${off.out}`);
  receiver.close();
  bob.kill('SIGTERM');
});

test('RTC channels, live tail and API keys pages', async () => {
  await visit('/console/channels', 'channels');
  await visit('/console/tail', 'tail', { screenshot: false });
  await page.fill('#tail-filter', 'rtc_event/#');
  await page.click('#tail-start');
  await eventually(async () => (await page.textContent('#tail-state')).startsWith('watching'), 5000, 'tail open');
  const pub = start('mosquitto_pub', ['-V', '5', '-h', '127.0.0.1', '-p', MQTT_PORT, '-i', 'GID_demo@@@tailer',
    '-u', `Signature|${DEMO_KEY}|mqrtc-demo`, '-P', signature(DEMO_SECRET, 'GID_demo@@@tailer'),
    '-t', 'rtc_event/room9/hello', '-m', 'hello from mosquitto_pub', '-q', '1']);
  assert.equal(await pub.done, 0, pub.out);
  await page.locator('#tail tbody tr', { hasText: 'hello from mosquitto_pub' }).waitFor({ timeout: 10000 });
  noErrors(page, 'tail');
  await shot(page, 'console-tail');
  await page.click('#tail-stop');
  await visit('/console/api-keys', 'api-keys', { screenshot: false });
  const form = page.locator('form[aria-label="Create an API key"]');
  await form.locator('[name=name]').fill('monitoring');
  await form.locator('button[type=submit]').click();
  await page.waitForSelector('#secret-dialog[open]');
  const key = JSON.parse(await page.textContent('#secret-body')).key;
  await Promise.all([page.waitForEvent('load'), page.click('#secret-close')]);
  const res = await fetch(`${BASE}/api/v1/connections`, { headers: { authorization: `Bearer ${key}` } });
  assert.equal(res.status, 200);
  await visit('/console/api-keys', 'api-keys');
});

test('the overview shows what happened, and updates by itself', async () => {
  await visit('/console', 'overview', { screenshot: false });
  const before = await page.locator('#chart polyline.conn').getAttribute('points');
  // The page polls every 5 s and the appliance samples every 5 s.
  await eventually(async () => (await page.locator('#chart polyline.conn').getAttribute('points')) !== before, 12000, 'chart updates');
  assert.ok(Number(await page.textContent('#r-auth')) === 0);
  noErrors(page, 'overview');
  await shot(page, 'console-overview');
});

test('no session or a foreign Origin changes nothing', async () => {
  const cookie = (await context.cookies()).find((c) => c.name === 'mqrtc_session');
  const post = (headers) => fetch(`${BASE}/api/v1/instances`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ id: 'evil' }),
  });
  assert.equal((await post({})).status, 401, 'no session');
  assert.equal((await post({ cookie: `mqrtc_session=${cookie.value}`, origin: 'http://evil.example' })).status, 403, 'foreign Origin');
  assert.equal((await post({ cookie: `mqrtc_session=${cookie.value}` })).status, 403, 'no Origin at all');
  // A form on another site posting to the sign-out or sign-in is refused too.
  const out = await fetch(`${BASE}/console/logout`, { method: 'POST', headers: { cookie: `mqrtc_session=${cookie.value}`, origin: 'http://evil.example' }, redirect: 'manual' });
  assert.equal(out.status, 403);
  // Still signed in, and no instance "evil".
  await page.goto(`${BASE}/console/provisioning`);
  assert.ok(!(await page.textContent('main')).includes('evil'));
  // Sign-out ends the session for good.
  await Promise.all([page.waitForEvent('load'), page.click('text=Sign out')]);
  assert.match(page.url(), /\/console\/login/);
  const again = await fetch(`${BASE}/api/v1/instances`, { headers: { cookie: `mqrtc_session=${cookie.value}` } });
  assert.equal(again.status, 401, 'the old cookie no longer works');
});
