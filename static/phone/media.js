// WebRTC media between the browsers of a call: a mesh (one peer connection
// per other member, up to 4 people). Offers, answers and ICE candidates
// travel as P2P messages on the event parent topic to the peer's client id
// (`webrtc.offer`, `webrtc.answer`, `webrtc.ice`, `webrtc.bye`). Media starts
// once both have joined the RTC channel: the newcomer finds who is there
// (and under which client id) in the mock RTC service's answer and offers
// to each of them; members already in wait for its offer.

import { rtc } from '/static/sdk/mqrtc.js';

const SIGNAL_TTL = 20000;
// The mock RTC service on the page's own origin: an HTTPS page cannot call
// the plain-HTTP gslb address the controller hands out.
const RTC_BASE = `${globalThis.location?.origin ?? ''}/rtc/v1`;

export class Mesh extends EventTarget {
  /**
   * `client`: a connected SDK Client; `local`: the local MediaStream;
   * `iceServers`: RTCIceServer list (empty: host candidates on the LAN).
   */
  constructor(client, local, iceServers = []) {
    super();
    Object.assign(this, { client, local, iceServers });
    this.peers = new Map(); // client id -> { pc, user, pending: [] }
    this.onMessage = (e) => this.signal(e.detail);
    client.addEventListener('message', this.onMessage);
  }

  emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }

  /** Enters the RTC channel of `join` and offers to everyone already there. */
  async enter(join) {
    this.join = join;
    this.callId = join.call_id;
    const seat = await rtc.join(join, this.client.clientId, RTC_BASE);
    this.session = seat.session;
    this.silent = new Set();
    for (const p of seat.peers) {
      if (p.userid === join.userid) continue;
      if (!p.client_id) this.noMedia(p.userid);
      else await this.offer(p.client_id, p.userid);
    }
    return seat;
  }

  noMedia(user) {
    if (this.silent.has(user)) return;
    this.silent.add(user);
    this.emit('no-media', { user });
  }

  /**
   * Someone joined the channel after us: a browser offers to us by itself;
   * a member that gave no client id (a device without media) is reported.
   */
  async refresh() {
    if (!this.join) return;
    const ch = await rtc.channel(this.join, RTC_BASE).catch(() => null);
    for (const p of ch?.peers || []) if (p.userid !== this.join.userid && !p.client_id) this.noMedia(p.userid);
  }

  send(to, type, body) {
    return this.client.sendP2p(to, type, { call_id: this.callId, from: this.client.clientId, user: this.client.user, ...body }, { ttl: SIGNAL_TTL });
  }

  connection(clientId, user) {
    let p = this.peers.get(clientId);
    if (p) return p;
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    p = { pc, user, pending: [], stream: new MediaStream() };
    this.peers.set(clientId, p);
    for (const t of this.local.getTracks()) pc.addTrack(t, this.local);
    pc.onicecandidate = (e) => { if (e.candidate) this.send(clientId, 'webrtc.ice', { candidate: e.candidate.toJSON() }); };
    pc.ontrack = (e) => {
      p.stream.addTrack(e.track);
      this.emit('remote', { user, clientId, stream: p.stream });
    };
    pc.onconnectionstatechange = () => this.emit('state', { user, clientId, state: pc.connectionState });
    return p;
  }

  async offer(clientId, user) {
    const { pc } = this.connection(clientId, user);
    await pc.setLocalDescription(await pc.createOffer());
    await this.send(clientId, 'webrtc.offer', { sdp: pc.localDescription.sdp });
  }

  async remoteCandidates(p) {
    for (const c of p.pending.splice(0)) await p.pc.addIceCandidate(c).catch(() => {});
  }

  /** Handles a device-to-device message if it is WebRTC signaling of this call. */
  async signal({ envelope: env }) {
    const b = env?.body;
    if (!env?.type?.startsWith('webrtc.') || !b || b.call_id !== this.callId || !b.from) return;
    if (env.type === 'webrtc.bye') return this.drop(b.from);
    const p = this.connection(b.from, b.user);
    if (env.type === 'webrtc.offer') {
      await p.pc.setRemoteDescription({ type: 'offer', sdp: b.sdp });
      await p.pc.setLocalDescription(await p.pc.createAnswer());
      await this.send(b.from, 'webrtc.answer', { sdp: p.pc.localDescription.sdp });
      await this.remoteCandidates(p);
    } else if (env.type === 'webrtc.answer') {
      await p.pc.setRemoteDescription({ type: 'answer', sdp: b.sdp });
      await this.remoteCandidates(p);
    } else if (env.type === 'webrtc.ice') {
      if (p.pc.remoteDescription) await p.pc.addIceCandidate(b.candidate).catch(() => {});
      else p.pending.push(b.candidate);
    }
  }

  /** Stops media with one member (it left, or was removed). */
  drop(clientIdOrUser) {
    for (const [id, p] of this.peers) {
      if (id !== clientIdOrUser && p.user !== clientIdOrUser) continue;
      p.pc.close();
      this.peers.delete(id);
      this.emit('gone', { user: p.user, clientId: id });
    }
  }

  /** Replaces the local track of one kind (device selection) on every connection. */
  async replaceTrack(track) {
    for (const { pc } of this.peers.values()) {
      const sender = pc.getSenders().find((s) => s.track?.kind === track.kind);
      if (sender) await sender.replaceTrack(track);
    }
  }

  /** Leaves: tells the others, closes every connection, leaves the RTC channel. */
  async leave({ quiet = false } = {}) {
    this.client.removeEventListener('message', this.onMessage);
    for (const id of [...this.peers.keys()]) {
      if (!quiet) this.send(id, 'webrtc.bye', {}).catch(() => {});
      this.drop(id);
    }
    if (this.session && this.join) await rtc.leave(this.join, this.session, RTC_BASE).catch(() => {});
    this.session = null;
  }

  /** Round-trip time (ms), packets lost and received, inbound bytes, over all connections. */
  async stats() {
    const out = { rtt: null, lost: 0, received: 0, audioBytes: 0, videoBytes: 0, framesDecoded: 0, connected: 0 };
    for (const { pc } of this.peers.values()) {
      if (pc.connectionState === 'connected') out.connected += 1;
      const report = await pc.getStats();
      report.forEach((s) => {
        if (s.type === 'candidate-pair' && s.state === 'succeeded' && s.currentRoundTripTime !== undefined) {
          out.rtt = Math.max(out.rtt ?? 0, s.currentRoundTripTime * 1000);
        }
        if (s.type === 'inbound-rtp') {
          out.lost += s.packetsLost || 0;
          out.received += s.packetsReceived || 0;
          if (s.kind === 'audio') out.audioBytes += s.bytesReceived || 0;
          if (s.kind === 'video') {
            out.videoBytes += s.bytesReceived || 0;
            out.framesDecoded += s.framesDecoded || 0;
          }
        }
      });
    }
    return out;
  }
}
