// The client's picture of its calls, kept from replies, events and sync
// snapshots; a snapshot replaces everything (as in the Rust SDK's CallBook).

export class CallBook {
  constructor() {
    this.calls = new Map();
    this.invites = new Map();
    this.missed = [];
  }

  replace(snapshot) {
    this.calls = new Map(snapshot.calls.map((c) => [c.call_id, c]));
    this.invites = new Map(snapshot.invites.map((c) => [c.call_id, c]));
  }

  joined(call) {
    this.invites.delete(call.call_id);
    this.calls.set(call.call_id, call);
  }

  forget(callId) {
    this.invites.delete(callId);
    this.calls.delete(callId);
  }

  /** Applies a call event `{type, body}`. */
  apply({ type, body: b }) {
    switch (type) {
      case 'call.invite':
        if (!this.calls.has(b.call.call_id)) this.invites.set(b.call.call_id, b.call);
        break;
      case 'call.participant':
        for (const c of [this.calls.get(b.call_id), this.invites.get(b.call_id)]) {
          if (!c) continue;
          // Someone new in a 1:1 call: it became a meeting (call.invite).
          if (!c.participants[b.user] && c.kind === 'call') c.kind = 'meeting';
          const p = (c.participants[b.user] ??= { state: b.state, audio_muted: false, video_muted: false });
          p.state = b.state;
          if (b.state === 'accepted' || b.state === 'joined') c.state = 'active';
        }
        break;
      case 'call.answered_elsewhere':
      case 'call.cancelled':
        this.invites.delete(b.call_id);
        break;
      case 'call.ended':
      case 'call.removed':
        this.forget(b.call_id);
        break;
      case 'call.missed':
        this.invites.delete(b.call_id);
        this.missed.push({ call_id: b.call_id, from: b.from, at: b.at, media: b.media });
        break;
      case 'call.muted': {
        const p = this.calls.get(b.call_id)?.participants[b.user];
        if (p) p[b.media === 'video' ? 'video_muted' : 'audio_muted'] = b.muted;
        break;
      }
      case 'call.host': {
        const c = this.calls.get(b.call_id);
        if (c) c.host = b.user;
        break;
      }
      default:
    }
  }
}
