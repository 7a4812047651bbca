// Client ids, the cloud service's three auth modes, and the dedup store:
// the parts of the SDK that need no connection.

const enc = new TextEncoder();

/** Why a client id is not `GroupID@@@DeviceID` (null when it is fine). */
export function clientIdProblem(id) {
  if (typeof id !== 'string') return 'not a string';
  if (id.length > 64) return `too long (${id.length} > 64 characters)`;
  const at = id.indexOf('@@@');
  if (at < 0) return 'no @@@ between Group ID and Device ID';
  const [group, device] = [id.slice(0, at), id.slice(at + 3)];
  if (!/^GID[_-]/.test(group) || group.length < 7 || group.length > 64) {
    return `Group ID ${group}: starts with GID_ or GID- and has 7 to 64 characters`;
  }
  if (!device || /[/+#@\s]/.test(device)) return `Device ID ${device}: not empty, no / + # @ or spaces`;
  return null;
}

/** `GroupID@@@DeviceID`, checked. */
export function clientId(group, device) {
  const id = `${group}@@@${device}`;
  const p = clientIdProblem(id);
  if (p) throw new Error(`client id ${id}: ${p}`);
  return id;
}

/** The Device ID (the user) of a client id. */
export const deviceOf = (id) => id.slice(id.indexOf('@@@') + 3);

const b64 = (bytes) => {
  let s = '';
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s);
};

/** Base64(HMAC-SHA1(secret, clientId)) with WebCrypto. */
export async function signature(secret, id) {
  const key = await crypto.subtle.importKey('raw', enc.encode(secret), { name: 'HMAC', hash: 'SHA-1' }, false, ['sign']);
  return b64(await crypto.subtle.sign('HMAC', key, enc.encode(id)));
}

/**
 * MQTT username and password for `credentials`:
 * `{mode: 'none'}`, `{mode: 'signature', instance, keyId, secret}`,
 * `{mode: 'device', instance, keyId, secret}` (DeviceCredential),
 * `{mode: 'token', instance, keyId, tokens: {R?, W?, RW?}}`,
 * `{mode: 'plain', username, password}`.
 */
export async function login(credentials = { mode: 'none' }, id) {
  const c = credentials;
  switch (c.mode) {
    case 'none': return {};
    case 'plain': return { username: c.username, password: c.password };
    case 'signature': return { username: `Signature|${c.keyId}|${c.instance}`, password: await signature(c.secret, id) };
    case 'device': return { username: `DeviceCredential|${c.keyId}|${c.instance}`, password: await signature(c.secret, id) };
    case 'token': {
      const parts = Object.entries(c.tokens || {}).flatMap(([k, t]) => [k, t]);
      return { username: `Token|${c.keyId}|${c.instance}`, password: parts.join('|') };
    }
    default: throw new Error(`unknown credentials mode ${c.mode}`);
  }
}

function memoryStorage() {
  const m = new Map();
  return { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => m.set(k, String(v)) };
}

/** The storage the SDK keeps its dedup ids in: localStorage where there is one. */
export const defaultStorage = () => globalThis.localStorage ?? memoryStorage();

/** Message ids seen lately (the newest `capacity`), kept in `storage` so a page reload still drops a late duplicate. */
export class Dedup {
  constructor(storage, key, capacity = 4096) {
    Object.assign(this, { storage, key, capacity });
    let ids = [];
    try { ids = JSON.parse(storage.getItem(key) || '[]'); } catch (_) { ids = []; }
    this.order = Array.isArray(ids) ? ids.slice(-capacity) : [];
    this.seen = new Set(this.order);
  }

  /** True the first time `id` is offered. */
  first(id) {
    if (this.seen.has(id)) return false;
    this.seen.add(id);
    this.order.push(id);
    if (this.order.length > this.capacity) this.seen.delete(this.order.shift());
    try { this.storage.setItem(this.key, JSON.stringify(this.order)); } catch (_) { /* full storage: memory only */ }
    return true;
  }
}
