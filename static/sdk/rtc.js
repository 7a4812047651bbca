// The appliance's mock RTC service: enter and leave a channel with the join
// parameters the controller handed out (a real RTC SDK takes its place).

async function post(url, body) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const answer = await res.json().catch(() => ({}));
  if (!res.ok) throw Object.assign(new Error(`${res.status} ${answer.error || ''}: ${answer.message || ''}`), { status: res.status, code: answer.error });
  return answer;
}

/**
 * Joins with the single-parameter token, saying which client id to reach
 * this member at; resolves to `{session, channel, members, peers}` where
 * `peers` is `[{userid, client_id}]` (client_id null for a member that did
 * not say, e.g. a device with no media).
 */
export function join(join, clientId, base = join.gslb[0]) {
  return post(`${base}/join`, { token: join.token_b64, ...(clientId ? { client_id: clientId } : {}) });
}

/** Leaves a channel. */
export function leave(join, session, base = join.gslb[0]) {
  return post(`${base}/leave`, { channel: join.channel, userid: join.userid, session });
}

/**
 * `{channel, call_id, open, members, peers}` of a channel. `base` overrides
 * the gslb address (a page served over HTTPS uses its own origin's
 * `/rtc/v1`, since browsers block plain-HTTP requests from secure pages).
 */
export async function channel(join, base = join.gslb[0]) {
  const res = await fetch(`${base}/channels/${encodeURIComponent(join.channel)}`);
  if (!res.ok) throw new Error(`channel ${join.channel}: ${res.status}`);
  return res.json();
}
