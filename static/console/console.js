// The console's only script: forms and buttons that call /api/v1 with the
// session cookie, local times, the overview's live numbers and chart, and
// the live topic tail. No framework, no build step.

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

function localTimes(root = document) {
  for (const el of $$('[data-time]', root)) {
    const ms = Number(el.dataset.time);
    if (ms > 0) el.textContent = new Date(ms).toLocaleString();
  }
}

// A form's fields as the API's JSON: checkboxes are booleans,
// data-kind="list" is a comma-separated list, data-kind="number" a number.
function formBody(form) {
  const body = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    if (el.type === 'checkbox') body[el.name] = el.checked;
    else if (el.dataset.kind === 'list') body[el.name] = el.value.split(',').map((s) => s.trim()).filter(Boolean);
    else if (el.dataset.kind === 'number') body[el.name] = Number(el.value);
    else body[el.name] = el.value;
  }
  return body;
}

function showError(near, message) {
  let box = near.tagName === 'FORM' ? $('.error', near) : null;
  if (!box) {
    box = document.createElement('p');
    box.className = 'error';
    box.setAttribute('role', 'alert');
    near.insertAdjacentElement('afterend', box);
  }
  box.hidden = false;
  box.textContent = message;
}

function showSecret(answer) {
  const dialog = $('#secret-dialog');
  $('#secret-body').textContent = JSON.stringify(answer, null, 2);
  dialog.addEventListener('close', () => location.reload(), { once: true });
  dialog.showModal();
}

async function callApi(url, method, body, near) {
  let res;
  try {
    res = await fetch(url, {
      method,
      credentials: 'same-origin',
      headers: body ? { 'content-type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
  } catch (e) {
    showError(near, `The appliance did not answer: ${e.message}`);
    return;
  }
  const answer = await res.json().catch(() => ({}));
  if (!res.ok) {
    showError(near, answer.message || `HTTP ${res.status}`);
    return;
  }
  if (answer.secret || answer.token || answer.key) showSecret(answer);
  else location.reload();
}

document.addEventListener('submit', (ev) => {
  const form = ev.target;
  const url = form.dataset.api || form.dataset.apiTemplate;
  if (!url) return;
  ev.preventDefault();
  const body = formBody(form);
  const target = url.replace(/\{(\w+)\}/g, (_, k) => {
    const v = encodeURIComponent(body[k] ?? '');
    delete body[k];
    return v;
  });
  callApi(target, form.dataset.method || 'POST', body, form);
});

document.addEventListener('click', (ev) => {
  const btn = ev.target.closest('button[data-api]');
  if (!btn) return;
  ev.preventDefault();
  if (btn.dataset.confirm && !confirm(btn.dataset.confirm)) return;
  callApi(btn.dataset.api, btn.dataset.method || 'POST', null, btn);
});

function drawChart(svg, series) {
  const W = 900, H = 220, pad = 24;
  const lines = [
    ['conn', (s) => s.connections],
    ['in', (s) => s.in_per_sec],
    ['calls', (s) => s.active_calls],
  ];
  const parts = [`<line class="axis" x1="${pad}" y1="${H - pad}" x2="${W}" y2="${H - pad}"/>`];
  // A fixed 15-minute window ending at the newest sample.
  const end = series.length ? series[series.length - 1].at : 0;
  const span = 15 * 60 * 1000;
  for (const [cls, get] of lines) {
    const max = Math.max(1, ...series.map(get));
    const pts = series.map((s) => {
      const x = pad + ((s.at - (end - span)) * (W - pad)) / span;
      const y = H - pad - (get(s) / max) * (H - 2 * pad);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    });
    parts.push(`<polyline class="${cls}" points="${pts.join(' ')}"/>`);
    $(`#max-${cls}`).textContent = String(Math.round(max * 10) / 10);
  }
  svg.innerHTML = parts.join('');
}

async function liveOverview(root) {
  const tick = async () => {
    try {
      const res = await fetch(root.dataset.live, { credentials: 'same-origin' });
      if (!res.ok) return;
      const o = await res.json();
      const last = o.series[o.series.length - 1] || { in_per_sec: 0, out_per_sec: 0 };
      $('#v-connections').textContent = o.connections;
      $('#v-in').textContent = last.in_per_sec.toFixed(1);
      $('#v-out').textContent = last.out_per_sec.toFixed(1);
      $('#v-active').textContent = o.calls.active;
      $('#v-ringing').textContent = o.calls.ringing;
      $('#v-setups').textContent = o.calls.setups_last_minute;
      $('#r-auth').textContent = o.broker.auth_failures;
      $('#r-sub').textContent = o.broker.subscribe_refusals;
      $('#r-pub').textContent = o.broker.publish_refusals;
      for (const k of ['broker', 'controller', 'rtc']) {
        const el = $(`#st-${k}`);
        el.textContent = o.status[k];
        el.className = `status ${o.status[k]}`;
      }
      drawChart($('#chart'), o.series);
    } catch (_) { /* the next tick tries again */ }
  };
  await tick();
  setInterval(tick, 5000);
}

function tailView() {
  const form = $('#tail-form');
  const tbody = $('#tail tbody');
  const state = $('#tail-state');
  let source = null;
  const stop = () => {
    if (source) source.close();
    source = null;
    $('#tail-stop').disabled = true;
    state.textContent = 'not watching';
  };
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    stop();
    const filter = $('#tail-filter').value;
    source = new EventSource(`/api/v1/tail?filter=${encodeURIComponent(filter)}`);
    source.addEventListener('open', () => { state.textContent = `watching ${filter}`; });
    source.addEventListener('message', (e) => {
      const m = JSON.parse(e.data);
      const tr = document.createElement('tr');
      for (const v of [new Date(m.at).toLocaleTimeString(), m.from, m.topic, String(m.qos), m.payload]) {
        const td = document.createElement('td');
        td.textContent = v;
        tr.append(td);
      }
      tbody.prepend(tr);
      while (tbody.rows.length > 500) tbody.deleteRow(-1);
    });
    source.addEventListener('lagged', (e) => { state.textContent = `watching ${filter} (missed ${e.data} while busy)`; });
    source.addEventListener('error', () => { state.textContent = 'connection lost; retrying'; });
    $('#tail-stop').disabled = false;
  });
  $('#tail-stop').addEventListener('click', stop);
}

// Lists marked data-refresh reload their rows by themselves (same URL,
// same server-side paging), so a device that connects shows up.
function autoRefresh(table) {
  const swap = async () => {
    try {
      const res = await fetch(location.href, { credentials: 'same-origin' });
      if (!res.ok) return;
      const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
      const fresh = doc.getElementById(table.id);
      if (!fresh) return;
      table.tBodies[0].replaceWith(fresh.tBodies[0]);
      for (const id of ['device-count']) {
        const a = document.getElementById(id), b = doc.getElementById(id);
        if (a && b) a.replaceWith(b);
      }
      localTimes(table);
    } catch (_) { /* next round */ }
  };
  setInterval(swap, Number(table.dataset.refresh));
}

localTimes();
for (const t of $$('table[data-refresh]')) autoRefresh(t);
if ($('#overview')) liveOverview($('#overview'));
if ($('#tail-form')) tailView();
