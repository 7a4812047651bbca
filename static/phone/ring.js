// A ringtone made with WebAudio (no sound files): two tones, 1 s on, 2 s off.

export class Ringer {
  start() {
    this.stop();
    const Ctx = globalThis.AudioContext || globalThis.webkitAudioContext;
    if (!Ctx) return;
    this.ctx = new Ctx();
    const ring = () => {
      const t = this.ctx.currentTime;
      for (const f of [440, 480]) {
        const o = this.ctx.createOscillator();
        const g = this.ctx.createGain();
        o.frequency.value = f;
        g.gain.setValueAtTime(0.08, t);
        g.gain.setValueAtTime(0, t + 1);
        o.connect(g).connect(this.ctx.destination);
        o.start(t);
        o.stop(t + 1);
      }
    };
    ring();
    this.timer = setInterval(ring, 3000);
    this.ringing = true;
  }

  stop() {
    clearInterval(this.timer);
    this.ctx?.close().catch(() => {});
    this.ctx = null;
    this.ringing = false;
  }
}
