// Starts the real mqrtc binary (MQRTC_BIN) on free ports in a temp dir and
// waits for ports.json; kill -9 and restart on the same ports.

import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, unlinkSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';

const BIN = process.env.MQRTC_BIN;

/** The environment without the tests' own MQRTC_* variables (the appliance reads MQRTC_* as config). */
const applianceEnv = () => ({
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MQRTC_'))),
  RUST_LOG: 'info,rmqtt=warn,sled=warn',
});

export class Appliance {
  constructor(dir, args) {
    Object.assign(this, { dir, args });
  }

  /** `mqrtc serve --dev` with `config` (TOML text) in a fresh temp dir;
   * without `--dev`, the demo tenant is made first as an operator would
   * (`mqrtc instance demo`). */
  static async start({ config = '', args = ['--dev'] } = {}) {
    assert.ok(BIN, 'MQRTC_BIN is not set (run through cargo test: tests/it/js_sdk.rs)');
    const dir = mkdtempSync(path.join(tmpdir(), 'mqrtc-js-'));
    writeFileSync(path.join(dir, 'mqrtc.toml'), config);
    if (!args.includes('--dev') && !args.includes('--standard-mqtt')) {
      execFileSync(BIN, ['instance', 'demo', '--data-dir', dir], { encoding: 'utf8', env: applianceEnv() });
    }
    const a = new Appliance(dir, args);
    await a.launch(null);
    return a;
  }

  async launch(ports) {
    const file = path.join(this.dir, 'ports.json');
    if (existsSync(file)) unlinkSync(file);
    const p = ports || { mqtt: 0, mqtts: 0, ws: 0, wss: 0, http: 0, https: 0 };
    const log = openSync(path.join(this.dir, 'mqrtc.log'), 'a');
    this.child = spawn(BIN, ['serve', '--data-dir', this.dir, '--config', path.join(this.dir, 'mqrtc.toml'),
      '--mqtt-port', p.mqtt, '--mqtts-port', p.mqtts, '--ws-port', p.ws, '--wss-port', p.wss, '--http-port', p.http, '--https-port', p.https,
      ...this.args].map(String), { stdio: ['ignore', 'pipe', log], env: applianceEnv() });
    this.stdout = this.stdout || '';
    this.child.stdout.on('data', (d) => { this.stdout += d; });
    const until = Date.now() + 60000;
    for (;;) {
      if (existsSync(file)) {
        try { this.ports = JSON.parse(readFileSync(file, 'utf8')); break; } catch (_) { /* being written */ }
      }
      assert.ok(this.child.exitCode === null, `mqrtc exited during start-up:\n${this.log()}`);
      assert.ok(Date.now() < until, `mqrtc not ready in 60 s:\n${this.log()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    this.ws = `ws://127.0.0.1:${this.ports.ws}/mqtt`;
    this.http = `http://127.0.0.1:${this.ports.http}`;
  }

  /** The demo access key from demo-tenant.txt: [AccessKeyId, AccessKeySecret]. */
  demoKey() {
    const text = readFileSync(path.join(this.dir, 'demo-tenant.txt'), 'utf8');
    const field = (name) => text.split('\n').map((l) => l.trim()).find((l) => l.startsWith(name))?.slice(name.length).trim();
    return [field('AccessKeyId:'), field('AccessKeySecret:')];
  }

  /** Runs `mqrtc ARGS --data-dir DIR --json` and returns its JSON output. */
  cli(args) {
    const out = execFileSync(BIN, [...args, '--data-dir', this.dir, '--json'], { encoding: 'utf8', env: applianceEnv() });
    return JSON.parse(out);
  }

  log() {
    try { return readFileSync(path.join(this.dir, 'mqrtc.log'), 'utf8'); } catch (_) { return ''; }
  }

  async kill9AndRestartSamePorts() {
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGKILL');
    await exited;
    await this.launch(this.ports);
  }

  async stop() {
    if (this.child.exitCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Resolves with the first `name` event of `target` whose detail satisfies `pred`. */
export function next(target, name, pred = () => true, ms = 15000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { target.removeEventListener(name, on); reject(new Error(`no ${name} within ${ms} ms`)); }, ms);
    function on(e) {
      if (!pred(e.detail)) return;
      clearTimeout(timer);
      target.removeEventListener(name, on);
      resolve(e.detail);
    }
    target.addEventListener(name, on);
  });
}
