// The softphone: sign in as a device, dial, ring, answer, and talk with
// WebRTC media (media.js) through the appliance's signaling (the SDK).

import mqtt from '/static/vendor/mqtt/mqtt.esm.js';
import { Client, clientIdProblem, deviceOf } from '/static/sdk/mqrtc.js';
import { Mesh } from './media.js';
import { Ringer } from './ring.js';

const $ = (s) => document.querySelector(s);
const cfg = document.body.dataset;
const show = (id) => { for (const s of ['signin', 'idle', 'outgoing', 'incoming', 'incall']) $(`#${s}`).hidden = s !== id; };
const say = (el, text) => { el.textContent = text; el.hidden = !text; };

const phone = { state: 'signin', client: null, mesh: null, call: null, local: null, ringer: new Ringer() };
window.mqrtcPhone = phone;

function wsUrl() {
  const secure = location.protocol === 'https:';
  return `${secure ? 'wss' : 'ws'}://${location.hostname}:${secure ? cfg.wssPort : cfg.wsPort}/mqtt`;
}

function credentials(f) {
  const mode = f.mode.value;
  const c = { mode, instance: f.instance.value, keyId: f.key_id.value };
  if (mode === 'token') c.tokens = { RW: f.secret.value };
  else c.secret = f.secret.value;
  return mode === 'none' ? { mode } : c;
}

// ---- history and contacts (kept in this browser) ----
const store = globalThis.localStorage;
const key = (what) => `mqrtc.phone.${what}.${phone.client?.clientId}`;
const load = (what) => { try { return JSON.parse(store.getItem(key(what)) || '[]'); } catch (_) { return []; } };
function remember(entry) {
  const h = [entry, ...load('history')].slice(0, 30);
  store.setItem(key('history'), JSON.stringify(h));
  renderLists();
}

// The instance's users the controller has seen, with their online state.
async function refreshContacts() {
  if (phone.state === 'signin' || !phone.client?.connected) return;
  try {
    phone.contacts = await phone.client.contacts();
  } catch (_) { return; }
  renderContacts();
}

function renderContacts() {
  $('#contacts').replaceChildren(...(phone.contacts || []).map((c) => {
    const li = document.createElement('li');
    li.dataset.user = c.user;
    const b = document.createElement('button');
    b.textContent = `Call ${c.user}`;
    b.addEventListener('click', () => dial([c.user], false));
    const state = document.createElement('span');
    state.className = `presence ${c.online ? 'online' : 'offline'}`;
    state.textContent = c.online ? 'online' : 'offline';
    li.append(b, ' ', state);
    return li;
  }));
}

function renderLists() {
  const missed = phone.client.book.missed.map((m) => ({ text: `missed call from ${m.from}`, at: m.at }));
  const recent = load('history').map((h) => ({ text: `${h.what} with ${h.with.join(', ')}`, at: h.at }));
  $('#history').replaceChildren(...[...missed, ...recent].sort((a, b) => b.at - a.at).slice(0, 20).map((e) => {
    const li = document.createElement('li');
    li.textContent = `${new Date(e.at).toLocaleString()}: ${e.text}`;
    return li;
  }));
}

// ---- signing in ----
async function signIn(ev) {
  ev.preventDefault();
  const f = ev.target;
  const id = f.client_id.value.trim();
  const problem = clientIdProblem(id);
  if (problem) return say($('#signin-error'), `Client id: ${problem}`);
  say($('#signin-error'), '');
  $('#signin-go').disabled = true;
  const client = new Client({ mqtt, url: wsUrl(), clientId: id, credentials: credentials(f) });
  phone.client = client;
  client.addEventListener('connected', () => setConn('connected'));
  client.addEventListener('disconnected', (e) => {
    setConn(phone.state === 'signin' ? 'offline' : 'reconnecting');
    if (phone.state === 'signin') say($('#signin-error'), `Cannot connect: ${e.detail.reason}`);
  });
  client.addEventListener('synced', (e) => { reconcile(e.detail); refreshContacts(); });
  client.addEventListener('call', (e) => onCall(e.detail));
  try {
    await client.connect();
  } catch (e) {
    say($('#signin-error'), e.message);
    $('#signin-go').disabled = false;
    return;
  }
  store.setItem('mqrtc.phone.last', id);
  $('#me').textContent = `${deviceOf(id)} (${id})`;
  $('#signout').hidden = false;
  phone.state = 'idle';
  show('idle');
  renderLists();
  refreshContacts();
  setInterval(refreshContacts, 5000);
}

function setConn(state) {
  const el = $('#conn');
  el.textContent = state;
  el.className = `conn ${state}`;
  phone.connection = state;
}

// ---- local media ----
async function localMedia(audioOnly) {
  if (phone.local) return phone.local;
  phone.local = await navigator.mediaDevices.getUserMedia(audioOnly ? { audio: true } : { audio: true, video: { width: 640, height: 480 } });
  $('#local').srcObject = phone.local;
  await listDevices();
  return phone.local;
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [sel, kind] of [['#pick-mic', 'audioinput'], ['#pick-cam', 'videoinput']]) {
    const current = phone.local?.getTracks().find((t) => `${t.kind}input` === kind)?.getSettings().deviceId;
    $(sel).replaceChildren(...devices.filter((d) => d.kind === kind).map((d, i) => new Option(d.label || `${kind} ${i + 1}`, d.deviceId, false, d.deviceId === current)));
  }
}

async function pickDevice(kind, deviceId) {
  const s = await navigator.mediaDevices.getUserMedia(kind === 'audio' ? { audio: { deviceId: { exact: deviceId } } } : { video: { deviceId: { exact: deviceId } } });
  const [track] = s.getTracks();
  const old = phone.local.getTracks().find((t) => t.kind === kind);
  if (old) { phone.local.removeTrack(old); old.stop(); }
  phone.local.addTrack(track);
  await phone.mesh?.replaceTrack(track);
}

function stopLocal() {
  for (const t of phone.local?.getTracks() || []) t.stop();
  phone.local = null;
}

// ---- calls ----
async function dial(to, audioOnly) {
  say($('#call-error'), '');
  try {
    await localMedia(audioOnly);
    phone.state = 'outgoing';
    $('#out-to').textContent = to.join(', ');
    show('outgoing');
    const started = await phone.client.startCall(to, { media: audioOnly ? 'audio' : 'video' });
    phone.call = started.call;
    if (started.unreachable.length) $('#out-state').textContent = `cannot reach ${started.unreachable.join(', ')}`;
    await enterMedia(started.join);
  } catch (e) {
    backToIdle();
    say($('#call-error'), `Call failed: ${e.message}`);
  }
}

async function enterMedia(join) {
  const mesh = new Mesh(phone.client, phone.local, JSON.parse(cfg.iceServers || '[]'));
  phone.mesh = mesh;
  mesh.addEventListener('remote', (e) => tile(e.detail.user).querySelector('video').srcObject = e.detail.stream);
  mesh.addEventListener('gone', (e) => tile(e.detail.user).remove());
  mesh.addEventListener('no-media', (e) => { tile(e.detail.user).querySelector('figcaption').textContent = `${e.detail.user}: sends no media`; });
  mesh.addEventListener('state', () => layout());
  await mesh.enter(join);
}

function tile(user) {
  let t = document.querySelector(`figure[data-user="${CSS.escape(user)}"]`);
  if (!t) {
    t = document.createElement('figure');
    t.className = 'tile';
    t.dataset.user = user;
    const v = document.createElement('video');
    v.autoplay = true;
    v.playsInline = true;
    const cap = document.createElement('figcaption');
    cap.textContent = user;
    t.append(v, cap);
    $('#grid').append(t);
    layout();
  }
  return t;
}

function layout() {
  const n = document.querySelectorAll('#grid figure').length;
  $('#grid').className = `grid ${n <= 2 ? 'one' : 'many'}`;
}

function inCall() {
  if (phone.state === 'incall') return;
  phone.state = 'incall';
  phone.ringer.stop();
  phone.started = Date.now();
  show('incall');
  renderPeople();
  clearInterval(phone.tick);
  phone.tick = setInterval(tickCall, 1000);
}

async function tickCall() {
  const s = Math.floor((Date.now() - phone.started) / 1000);
  $('#timer').textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
  if (!phone.mesh) return;
  const st = await phone.mesh.stats();
  const loss = st.received ? ((100 * st.lost) / (st.lost + st.received)).toFixed(1) : '0.0';
  $('#quality').textContent = st.connected ? `quality: rtt ${st.rtt === null ? '–' : Math.round(st.rtt)} ms, loss ${loss} %` : 'quality: no media yet';
}

function backToIdle() {
  phone.ringer.stop();
  clearInterval(phone.tick);
  const mesh = phone.mesh;
  phone.mesh = null;
  mesh?.leave().catch(() => {});
  stopLocal();
  for (const f of document.querySelectorAll('#grid figure[data-user]')) f.remove();
  phone.call = null;
  phone.state = 'idle';
  show('idle');
  renderLists();
}

function renderPeople() {
  const c = phone.call;
  if (!c) return;
  const me = phone.client.user;
  const host = c.host === me;
  $('#host-badge').hidden = !host;
  $('#end-all').hidden = !(host && c.kind === 'meeting');
  $('#people').replaceChildren(...Object.entries(c.participants).map(([u, p]) => {
    const li = document.createElement('li');
    li.dataset.user = u;
    li.textContent = `${u}${u === c.host ? ' (host)' : ''}: ${p.state}${p.audio_muted ? ', microphone muted' : ''}${p.video_muted ? ', camera off' : ''}`;
    if (host && u !== me && ['accepted', 'joined'].includes(p.state)) {
      for (const [label, act] of [['Mute', () => phone.client.mute(c.call_id, { target: u, media: 'audio', muted: true })],
        ['Remove', () => phone.client.remove(c.call_id, u)], ['Make host', () => phone.client.transferHost(c.call_id, u)]]) {
        const b = document.createElement('button');
        b.textContent = label;
        b.className = 'small';
        b.setAttribute('aria-label', `${label} ${u}`);
        b.addEventListener('click', () => act().catch((e) => say($('#call-error'), e.message)));
        li.append(' ', b);
      }
    }
    return li;
  }));
  for (const [u, p] of Object.entries(c.participants)) {
    const cap = document.querySelector(`figure[data-user="${CSS.escape(u)}"] figcaption`);
    if (cap && !cap.textContent.includes('no media')) cap.textContent = `${u}${p.audio_muted ? ' (muted)' : ''}${p.video_muted ? ' (camera off)' : ''}`;
  }
}

function onCall({ type, body }) {
  const mine = phone.call && body.call_id === phone.call.call_id;
  if (phone.call && mine) phone.call = phone.client.book.calls.get(phone.call.call_id) ?? phone.call;
  switch (type) {
    case 'call.invite':
      if (phone.state !== 'idle') return;
      phone.invite = body;
      phone.state = 'incoming';
      $('#in-from').textContent = body.from;
      $('#in-kind').textContent = `${body.call.kind === 'meeting' ? 'meeting' : 'call'}, ${body.call.media}${body.waiting ? ' (you are in another call)' : ''}`;
      show('incoming');
      phone.ringer.start();
      break;
    case 'call.cancelled':
    case 'call.answered_elsewhere':
      if (phone.state === 'incoming' && phone.invite?.call.call_id === body.call_id) {
        remember({ what: type === 'call.cancelled' ? 'missed call' : 'answered on another device', with: [phone.invite.from], at: Date.now() });
        backToIdle();
      }
      break;
    case 'call.participant':
      if (!mine) return;
      if (['accepted', 'joined'].includes(body.state)) inCall();
      if (body.state === 'joined') phone.mesh?.refresh();
      if (['left', 'removed', 'declined', 'no_answer', 'busy'].includes(body.state)) phone.mesh?.drop(body.user);
      renderPeople();
      break;
    case 'call.muted':
    case 'call.host':
      if (mine) renderPeople();
      break;
    case 'call.ended':
    case 'call.removed':
      if (!mine) return;
      remember({ what: type === 'call.removed' ? 'removed from a call' : `call ended (${body.reason})`, with: Object.keys(phone.call.participants), at: Date.now() });
      backToIdle();
      break;
    default:
  }
}

// After a reconnect the sync answer is the truth: a call that is gone ends here too.
function reconcile(snapshot) {
  if (phone.call && !snapshot.calls.some((c) => c.call_id === phone.call.call_id)) backToIdle();
  else if (phone.call) { phone.call = snapshot.calls.find((c) => c.call_id === phone.call.call_id); renderPeople(); }
  if (phone.state === 'incoming' && !snapshot.invites.some((c) => c.call_id === phone.invite.call.call_id)) backToIdle();
  if (phone.state === 'idle' && snapshot.invites.length) onCall({ type: 'call.invite', body: { call: snapshot.invites[0], from: snapshot.invites[0].host, waiting: false } });
}

async function accept() {
  phone.ringer.stop();
  const inv = phone.invite;
  try {
    await localMedia(inv.call.media === 'audio');
    const j = await phone.client.accept(inv.call.call_id);
    phone.call = j.call;
    inCall();
    await enterMedia(j.join);
  } catch (e) {
    backToIdle();
    say($('#call-error'), `Could not answer: ${e.message}`);
  }
}

function toggle(button, kind, media) {
  const off = button.getAttribute('aria-pressed') !== 'true';
  for (const t of phone.local?.getTracks() || []) if (t.kind === kind) t.enabled = !off;
  button.setAttribute('aria-pressed', String(off));
  button.textContent = kind === 'audio' ? (off ? 'Unmute microphone' : 'Mute microphone') : (off ? 'Turn camera on' : 'Turn camera off');
  if (phone.call) phone.client.mute(phone.call.call_id, { media, muted: off }).catch((e) => say($('#call-error'), e.message));
}

// ---- wiring ----
$('#signin-form').addEventListener('submit', signIn);
for (const b of document.querySelectorAll('.pick')) b.addEventListener('click', () => { $('#f-client').value = b.dataset.id; });
$('#f-mode').addEventListener('change', () => { $('#f-creds').hidden = $('#f-mode').value === 'none'; });
$('#f-creds').hidden = $('#f-mode').value === 'none';
$('#f-client').value = cfg.clientId || store?.getItem('mqrtc.phone.last') || '';
$('#dial').addEventListener('submit', (e) => {
  e.preventDefault();
  dial($('#dial-to').value.split(',').map((s) => s.trim()).filter(Boolean), $('#dial-audio').checked);
});
$('#out-cancel').addEventListener('click', () => { if (phone.call) phone.client.cancel(phone.call.call_id).catch(() => {}); backToIdle(); });
$('#in-accept').addEventListener('click', accept);
$('#in-decline').addEventListener('click', () => { phone.client.decline(phone.invite.call.call_id).catch(() => {}); remember({ what: 'declined call', with: [phone.invite.from], at: Date.now() }); backToIdle(); });
$('#hangup').addEventListener('click', () => { const c = phone.call; if (c) phone.client.hangup(c.call_id).catch(() => {}); remember({ what: 'call', with: Object.keys(c?.participants || {}), at: Date.now() }); backToIdle(); });
$('#end-all').addEventListener('click', () => phone.call && phone.client.end(phone.call.call_id).catch((e) => say($('#call-error'), e.message)));
$('#mute-mic').addEventListener('click', (e) => toggle(e.target, 'audio', 'audio'));
$('#mute-cam').addEventListener('click', (e) => toggle(e.target, 'video', 'video'));
$('#pick-mic').addEventListener('change', (e) => pickDevice('audio', e.target.value));
$('#pick-cam').addEventListener('change', (e) => pickDevice('video', e.target.value));
$('#invite').addEventListener('submit', (e) => {
  e.preventDefault();
  const to = $('#invite-to').value.split(',').map((s) => s.trim()).filter(Boolean);
  phone.client.invite(phone.call.call_id, to).then((j) => { phone.call = j.call; renderPeople(); }).catch((err) => say($('#call-error'), err.message));
});
$('#signout').addEventListener('click', async () => { backToIdle(); await phone.client?.close(); location.reload(); });
show('signin');
