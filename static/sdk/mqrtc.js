// mqrtc JavaScript SDK: a device of the cloud MQTT + RTC solution in a
// browser or Node. It logs in (Signature, DeviceCredential or Token),
// connects over MQTT-over-WebSocket with clean session off and QoS 1,
// drops duplicate (by message id, remembered across reloads) and stale
// (ts + ttl + skew) messages, syncs after every (re)connect, retries
// requests with the same `req` until answered, and turns docs/protocol.md
// into methods and events. Same behaviour as the Rust SDK (docs/sdk.md).
//
//   import mqtt from '/static/vendor/mqtt/mqtt.esm.js';
//   import { Client } from '/static/sdk/mqrtc.js';
//   const alice = new Client({ mqtt, url: 'ws://127.0.0.1:8083/mqtt', clientId: 'GID_web@@@alice' });
//   alice.addEventListener('call', (e) => console.log(e.detail.type, e.detail.body));
//   await alice.connect();
//   const { call, join } = await alice.startCall(['bob']);

import { CallBook } from './book.js';
import { Dedup, clientIdProblem, defaultStorage, deviceOf, login } from './auth.js';

export { clientId, clientIdProblem, deviceOf, signature, login } from './auth.js';
export * as rtc from './rtc.js';

/** Protocol version. */
export const VERSION = 1;
/** A message's time to live when it names none. */
export const DEFAULT_TTL = 30000;

/** The controller answered with an error (`code` as in docs/protocol.md). */
export class RefusedError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    Object.assign(this, { name: 'RefusedError', code });
  }
}

/** No answer within the request's time to live. */
export class TimeoutError extends Error {
  constructor(type) {
    super(`no answer to ${type} within its time to live`);
    this.name = 'TimeoutError';
  }
}

const newId = () => (globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random()}`).replace(/-/g, '');

/** Reconnect delay after `n` failures: min·2^(n-1), at most max, times [0.5, 1). */
export const backoff = (n, min = 250, max = 30000) => Math.min(max, min * 2 ** Math.min(16, Math.max(0, n - 1))) * (0.5 + Math.random() / 2);

const DEFAULTS = {
  uplinkTopic: 'rtc_up/call',
  downlinkParent: 'rtc_down',
  p2pParents: ['rtc_event'],
  keepalive: 30,
  requestTtl: 30000,
  retryEvery: 3000,
  clockSkew: 30000,
  dedupCapacity: 4096,
  autoRinging: true,
  backoffMin: 250,
  backoffMax: 30000,
};

/**
 * One device. Events (`addEventListener`): `connected` {sessionPresent},
 * `disconnected` {reason, retryIn}, `synced` {calls, invites, joins},
 * `call` {type, body} plus the same as an event named by the type
 * (`call.invite`, `call.ended`, …), `message` {topic, envelope, payload} for
 * device-to-device P2P, `unknown` (a downlink type this SDK does not know),
 * `token-expiring` {type, expireTime}, `token-invalid` {type, code}.
 */
export class Client extends EventTarget {
  constructor(options) {
    super();
    const o = { ...DEFAULTS, ...options };
    const problem = clientIdProblem(o.clientId);
    if (problem) throw new Error(`client id ${o.clientId}: ${problem}`);
    if (!o.mqtt?.connect) throw new Error('options.mqtt: the MQTT.js module (with connect)');
    this.o = o;
    this.clientId = o.clientId;
    this.user = deviceOf(o.clientId);
    this.book = new CallBook();
    this.stats = { duplicates: 0, stale: 0, reconnects: 0 };
    this.pending = new Map();
    // The appliance's clock minus ours (ms), learned from answers to our own
    // requests: freshness is judged on the appliance's clock.
    this.offset = 0;
    this.connected = false;
    this.failures = 0;
    this.dedup = new Dedup(o.storage ?? defaultStorage(), `mqrtc.dedup.${o.clientId}`, o.dedupCapacity);
  }

  inbox(parent) {
    return `${parent}/p2p/${this.clientId}`;
  }

  emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }

  /** Connects (and keeps reconnecting); resolves after the first connect and its sync. */
  async connect() {
    const creds = await login(this.o.credentials, this.clientId);
    const synced = new Promise((resolve) => this.addEventListener('synced', resolve, { once: true }));
    this.mqtt = this.o.mqtt.connect(this.o.url, {
      clientId: this.clientId,
      ...creds,
      clean: false,
      protocolVersion: 4,
      keepalive: this.o.keepalive,
      reconnectPeriod: backoff(1, this.o.backoffMin, this.o.backoffMax),
      connectTimeout: 10000,
      resubscribe: false,
      ...(this.o.mqttOptions || {}),
    });
    this.mqtt.on('connect', (ack) => this.onConnect(ack));
    this.mqtt.on('message', (topic, payload) => this.onMessage(topic, payload));
    this.mqtt.on('close', () => this.onClose('connection closed'));
    this.mqtt.on('error', (e) => { this.lastError = e.message; });
    await synced;
    return this;
  }

  onConnect(ack) {
    if (this.ever) this.stats.reconnects += 1;
    this.ever = true;
    this.failures = 0;
    this.mqtt.options.reconnectPeriod = backoff(1, this.o.backoffMin, this.o.backoffMax);
    const inboxes = [this.o.downlinkParent, ...this.o.p2pParents].map((p) => this.inbox(p));
    // "connected" and the sync wait for the SUBACK: on a standard broker
    // that is when P2P messages start to arrive.
    this.mqtt.subscribe(inboxes, { qos: 1 }, () => {
      this.connected = true;
      this.emit('connected', { sessionPresent: !!ack?.sessionPresent });
      for (const p of this.pending.values()) p.send();
      this.sync().catch((e) => this.emit('sync-failed', { error: e }));
    });
  }

  onClose(reason) {
    if (this.closing) return;
    const wasConnected = this.connected;
    this.connected = false;
    this.failures += 1;
    const retryIn = backoff(this.failures, this.o.backoffMin, this.o.backoffMax);
    if (this.mqtt) this.mqtt.options.reconnectPeriod = retryIn;
    if (wasConnected || this.failures === 1) this.emit('disconnected', { reason: this.lastError || reason, retryIn });
  }

  /** Whether a message is fresh and new (counts what it drops). */
  admit(env) {
    const ttl = env.ttl ?? DEFAULT_TTL;
    if (env.ts + ttl + this.o.clockSkew < Date.now() + this.offset) {
      this.stats.stale += 1;
      return false;
    }
    if (!this.dedup.first(env.id)) {
      this.stats.duplicates += 1;
      return false;
    }
    return true;
  }

  onMessage(topic, payload) {
    const text = new TextDecoder().decode(payload);
    if (topic.startsWith('$SYS/')) return this.notice(topic.slice(5), text);
    let env = null;
    try { env = JSON.parse(text); } catch (_) { env = null; }
    if (!env || typeof env !== 'object' || typeof env.id !== 'string' || typeof env.ts !== 'number') {
      return this.emit('message', { topic, envelope: null, payload: text });
    }
    const fromController = topic === this.inbox(this.o.downlinkParent);
    // An answer to a request still waiting is fresh by construction: its stamp tells the appliance's clock.
    if (fromController && (env.type === 'result' || env.type === 'error') && this.pending.has(env.req)) {
      const sample = env.ts - Date.now();
      if (Math.abs(sample - this.offset) > this.o.clockSkew / 2) this.offset = sample;
    }
    if (!this.admit(env)) return;
    // Only the controller can publish to our downlink inbox: a device-to-
    // device message cannot pose as an answer or a call event.
    if (!fromController) return this.emit('message', { topic, envelope: env, payload: text });
    if (env.type === 'result' || env.type === 'error') {
      const p = this.pending.get(env.req);
      if (!p) return; // the answer to a retry already answered
      // Not stored (the appliance's disk or database failed): the next retry, same `req`, may be.
      if (env.type === 'error' && env.body?.code === 'unavailable') return;
      this.pending.delete(env.req);
      if (env.type === 'result') p.resolve(env.body);
      else p.reject(new RefusedError(env.body?.code ?? 'unknown', env.body?.message ?? ''));
      return;
    }
    if (!env.type?.startsWith('call.')) return this.emit('unknown', env);
    const e = { type: env.type, body: env.body };
    this.book.apply(e);
    if (e.type === 'call.invite' && this.o.autoRinging) this.ringing(e.body.call.call_id).catch(() => {});
    this.emit('call', e);
    this.emit(e.type, e.body);
  }

  notice(kind, text) {
    let v = {};
    try { v = JSON.parse(text); } catch (_) { v = {}; }
    if (kind === 'tokenExpireNotice') this.emit('token-expiring', { type: v.type, expireTime: v.expireTime });
    if (kind === 'tokenInvalidNotice') this.emit('token-invalid', { type: v.type, code: v.code });
  }

  envelope(type, req, ttl, body) {
    return { v: VERSION, id: newId(), type, ...(req ? { req } : {}), ts: Date.now() + this.offset, ttl, body };
  }

  /** Sends request `type` and resolves to its answer's body; retried with the same `req` every `retryEvery` while connected. */
  request(type, body = {}) {
    const deadline = Date.now() + this.o.requestTtl;
    return new Promise((resolve, reject) => {
      let timer = null;
      const finish = () => { clearTimeout(timer); this.pending.delete(p.req); };
      const p = {
        req: newId(),
        resolve: (v) => { finish(); resolve(v); },
        reject: (e) => {
          // Judged stale by an appliance whose clock this answer just taught us: once more, as a new request.
          if (e instanceof RefusedError && e.code === 'stale' && !p.clockRetried && this.offset !== p.offsetSent) {
            p.clockRetried = true;
            this.pending.delete(p.req);
            p.req = newId();
            this.pending.set(p.req, p);
            p.sent = false;
            p.send();
            return;
          }
          finish();
          reject(e);
        },
        sent: false,
        clockRetried: false,
        offsetSent: this.offset,
        send: () => {
          const left = deadline - Date.now();
          if (left <= 0) return p.reject(new TimeoutError(type));
          // While disconnected the first copy waits in MQTT.js's queue; more would pile up.
          if (!p.sent || this.connected) {
            p.offsetSent = this.offset;
            this.mqtt.publish(this.o.uplinkTopic, JSON.stringify(this.envelope(type, p.req, left, body)), { qos: 1 });
            p.sent = true;
          }
          clearTimeout(timer);
          timer = setTimeout(p.send, Math.min(this.o.retryEvery, left));
        },
      };
      this.pending.set(p.req, p);
      p.send();
    });
  }

  /** `call.start`: to one user (1:1) or several (meeting); resolves to `{call, join, unreachable}`. */
  async startCall(to, { media = 'video', kind, title } = {}) {
    const body = { to, media, ...(kind ? { kind } : {}), ...(title ? { title } : {}) };
    const j = await this.request('call.start', body);
    this.book.joined(j.call);
    return j;
  }

  async accept(callId) {
    const j = await this.request('call.accept', { call_id: callId });
    this.book.joined(j.call);
    return j;
  }

  async decline(callId) { await this.request('call.decline', { call_id: callId }); this.book.forget(callId); }
  async cancel(callId) { await this.request('call.cancel', { call_id: callId }); this.book.forget(callId); }
  async hangup(callId) { await this.request('call.leave', { call_id: callId }); this.book.forget(callId); }
  async end(callId) { await this.request('call.end', { call_id: callId }); this.book.forget(callId); }
  async invite(callId, to) {
    const j = await this.request('call.invite', { call_id: callId, to });
    this.book.joined(j.call);
    return j;
  }
  mute(callId, { muted = true, media = 'audio', target } = {}) {
    return this.request('call.mute', { call_id: callId, muted, media, ...(target ? { target } : {}) });
  }
  remove(callId, target) { return this.request('call.remove', { call_id: callId, target }); }
  transferHost(callId, to) { return this.request('call.transfer_host', { call_id: callId, to }); }
  ringing(callId) { return this.request('call.ringing', { call_id: callId }); }

  /** `contacts`: the instance's users the controller has seen, `[{user, online, devices}]`. */
  async contacts() {
    return (await this.request('contacts', {})).users;
  }

  /** `sync`: replaces the call book; emits `synced`. */
  async sync() {
    const s = await this.request('sync', {});
    this.book.replace(s);
    this.emit('synced', s);
    return s;
  }

  /** A device-to-device P2P message on `{parent}/p2p/{target}`; resolves to its id. */
  sendP2p(target, type, body, { parent = this.o.p2pParents[0], ttl = DEFAULT_TTL } = {}) {
    const env = this.envelope(type, null, ttl, body);
    return new Promise((resolve, reject) => {
      this.mqtt.publish(`${parent}/p2p/${target}`, JSON.stringify(env), { qos: 1 }, (err) => (err ? reject(err) : resolve(env.id)));
    });
  }

  /** Presents a fresh token on `$SYS/uploadToken` and uses it for later reconnects. */
  async refreshToken(type, token) {
    const c = this.o.credentials;
    if (c?.mode !== 'token') throw new Error('refreshToken needs token credentials');
    c.tokens = { ...(c.tokens || {}), [type]: token };
    this.mqtt.publish('$SYS/uploadToken', JSON.stringify({ token, type }), { qos: 1 });
    this.mqtt.options.password = (await login(c, this.clientId)).password;
  }

  /** Sends DISCONNECT and closes, keeping the broker session; pending requests fail. */
  close() {
    this.closing = true;
    for (const p of [...this.pending.values()]) p.reject(new Error('the client is closed'));
    return new Promise((resolve) => (this.mqtt ? this.mqtt.end(false, {}, () => resolve()) : resolve()));
  }
}
