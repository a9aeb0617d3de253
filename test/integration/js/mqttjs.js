// MQTT.js over wss:// with a client certificate, driven by a JSON plan (argv[2]).
// Prints one JSON object per line for every event, so a test can follow along.
'use strict';
const fs = require('fs');
const mqtt = require('mqtt');

const plan = JSON.parse(process.argv[2]);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const opts = {
  ca: fs.readFileSync(plan.ca),
  rejectUnauthorized: true,
  servername: 'localhost',
  protocolVersion: plan.protocolVersion || 4,
  clientId: plan.clientId,
  clean: plan.clean !== false,
  connectTimeout: 5000,
  reconnectPeriod: 0,
  keepalive: plan.keepalive || 60,
};
if (plan.cert) {
  opts.cert = fs.readFileSync(plan.cert);
  opts.key = fs.readFileSync(plan.key);
}
if (plan.will) opts.will = plan.will;
if (plan.properties) opts.properties = plan.properties; // CONNECT properties (MQTT 5)
if (plan.autoUseTopicAlias) opts.autoUseTopicAlias = true;
const c = mqtt.connect(plan.url, opts);
let got = 0;
c.on('connect', (ack) => {
  out({ event: 'connect', sessionPresent: ack.sessionPresent });
  const subs = plan.subscribe || [];
  const next = () => {
    for (const p of plan.publish || []) {
      c.publish(p.topic, Buffer.from(p.payload), { qos: p.qos || 0, retain: !!p.retain, properties: p.properties }, (e) =>
        out({ event: 'published', topic: p.topic, error: e ? e.message : null }));
    }
    if (!plan.expect) setTimeout(() => c.end(), 300);
  };
  if (!subs.length) return next();
  c.subscribe(subs.map((s) => s.topic), { qos: subs[0].qos || 0, properties: plan.subscribeProperties }, (e, granted) => {
    out({ event: 'suback', granted: (granted || []).map((g) => g.qos), error: e ? e.message : null });
    process.stdout.write('', next);
  });
});
c.on('message', (topic, payload, packet) => {
  out({ event: 'message', topic, payload: payload.toString('base64'), qos: packet.qos, retain: packet.retain,
        properties: packet.properties || null });
  if (plan.expect && ++got >= plan.expect) c.end();
});
c.on('error', (e) => out({ event: 'error', message: e.message }));
c.on('close', () => { out({ event: 'close' }); process.exit(0); });
setTimeout(() => { out({ event: 'timeout' }); process.exit(3); }, plan.timeout || 10000);
