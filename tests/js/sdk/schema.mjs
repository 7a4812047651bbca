// Validates every protocol message a client sends (uplink) and receives
// (downlink) against docs/protocol.schema.json, generated from the Rust
// types. Violations are collected and checked by the last test.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Ajv2020 from 'ajv/dist/2020.js';

const file = process.env.MQRTC_PROTOCOL_SCHEMA ?? fileURLToPath(new URL('../../../docs/protocol.schema.json', import.meta.url));
const schema = JSON.parse(readFileSync(file, 'utf8'));
const validate = new Ajv2020({ strict: false, allErrors: true }).compile(schema);

export const checked = { messages: 0, violations: [] };

function check(direction, topic, payload) {
  let msg;
  try { msg = JSON.parse(payload.toString()); } catch (_) { return; }
  checked.messages += 1;
  if (!validate(msg)) checked.violations.push({ direction, topic, msg, errors: validate.errors.slice(0, 3) });
}

/** Watches a connected SDK client's protocol traffic. */
export function watchSchema(client) {
  const up = client.o.uplinkTopic;
  const down = client.inbox(client.o.downlinkParent);
  client.mqtt.on('packetsend', (p) => { if (p.cmd === 'publish' && p.topic === up) check('sent', p.topic, p.payload); });
  client.mqtt.on('message', (topic, payload) => { if (topic === down) check('received', topic, payload); });
}
