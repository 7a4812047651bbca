// Benchmark (not a test): time from "Accept" to the first remote video
// frame on both pages, and the CPU the browsers use during a 1:1 call.
// Run by `cargo bench --bench phone` inside a loopback-only network
// namespace; prints a table.

import { readFileSync, readdirSync } from 'node:fs';
import { launch, openPage } from './lib.mjs';
import { Appliance } from '../sdk/appliance.mjs';

const ROUNDS = Number(process.env.ROUNDS || 5);
const CPU_SECS = Number(process.env.CPU_SECS || 10);
const FLAGS = ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--autoplay-policy=no-user-gesture-required'];

/** CPU seconds (user + system) of the chromium processes among `root`'s descendants. */
function cpuSeconds(root) {
  const tick = 100; // USER_HZ on Linux
  const procs = new Map();
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      procs.set(Number(d), { ppid: Number(f[1]), comm, cpu: (Number(f[11]) + Number(f[12])) / tick });
    } catch (_) { /* gone */ }
  }
  let total = 0;
  const todo = [root];
  while (todo.length) {
    const pid = todo.pop();
    const p = procs.get(pid);
    if (p && /^chrom/.test(p.comm)) total += p.cpu;
    for (const [p, v] of procs) if (v.ppid === pid) todo.push(p);
  }
  return total;
}

async function phone(browser, a, user) {
  const page = await openPage(await browser.newContext({ viewport: { width: 800, height: 600 } }));
  await page.goto(`${a.http}/phone`);
  await page.click(`button.pick[data-id="GID_web@@@${user}"]`);
  await page.click('#signin-go');
  await page.waitForSelector('#idle:not([hidden])');
  return page;
}

const firstFrame = (page, from) => page.evaluate((peer) => new Promise((resolve) => {
  const check = () => {
    const v = document.querySelector(`#grid figure[data-user="${peer}"] video`);
    if (v && v.videoWidth > 0) return resolve(Date.now());
    requestAnimationFrame(check);
  };
  check();
}), from);

const a = await Appliance.start({});
const browser = await launch(FLAGS);
const alice = await phone(browser, a, 'alice');
const bob = await phone(browser, a, 'bob');
const rows = [];
for (let i = 0; i < ROUNDS; i += 1) {
  await alice.fill('#dial-to', 'bob');
  await alice.click('#dial-go');
  await bob.waitForSelector('#incoming:not([hidden])');
  const aliceSees = firstFrame(alice, 'bob');
  const bobSees = firstFrame(bob, 'alice');
  const t0 = await bob.evaluate(() => { const t = Date.now(); document.querySelector('#in-accept').click(); return t; });
  const [ta, tb] = await Promise.all([aliceSees, bobSees]);
  rows.push({ bob: tb - t0, alice: ta - t0 });
  if (i === ROUNDS - 1) {
    const pid = process.pid; // the browser is a child of this script
    const c0 = cpuSeconds(pid);
    const w0 = Date.now();
    await new Promise((r) => setTimeout(r, CPU_SECS * 1000));
    const used = cpuSeconds(pid) - c0;
    rows.cpu = (100 * used) / ((Date.now() - w0) / 1000);
  }
  await alice.click('#hangup');
  await bob.waitForSelector('#idle:not([hidden])');
  await alice.waitForSelector('#idle:not([hidden])');
}
const pct = (xs, p) => { const s = [...xs].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
const bobMs = rows.map((r) => r.bob);
const aliceMs = rows.map((r) => r.alice);
console.log(`rounds: ${ROUNDS} (chromium ${browser.version()}, fake 640x480 camera, loopback only)`);
console.log('| from Accept to the first remote video frame | median | max |');
console.log('|---|---|---|');
console.log(`| on the answering page (bob) | ${pct(bobMs, 50)} ms | ${Math.max(...bobMs)} ms |`);
console.log(`| on the calling page (alice) | ${pct(aliceMs, 50)} ms | ${Math.max(...aliceMs)} ms |`);
console.log(`each round: ${rows.map((r) => `${r.bob}/${r.alice}`).join(', ')} ms (bob/alice)`);
console.log(`CPU of the browser (both pages, all its processes) during ${CPU_SECS} s of a 1:1 video call: ${rows.cpu.toFixed(0)} % of one core`);
await browser.close();
await a.stop();
