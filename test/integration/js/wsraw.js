// A raw WebSocket peer (the `ws` package) for framing cases MQTT.js does not produce:
// fragmented frames, several packets per frame, text frames, no subprotocol, and watching the
// close code the broker sends. Plan in argv[2]; events as JSON lines.
'use strict';
const fs = require('fs');
const WebSocket = require('ws');

const plan = JSON.parse(process.argv[2]);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const hex = (s) => Buffer.from(s, 'hex');
const opts = { ca: fs.readFileSync(plan.ca), servername: 'localhost', rejectUnauthorized: true };
if (plan.cert) {
  opts.cert = fs.readFileSync(plan.cert);
  opts.key = fs.readFileSync(plan.key);
}
const ws = new WebSocket(plan.url, plan.protocols || [], opts);
ws.on('open', () => {
  out({ event: 'open', protocol: ws.protocol });
  for (const step of plan.send || []) {
    for (let i = 0; i < (step.repeat || 1); i++) {
      if (step.text) ws.send(step.text, { binary: false });
      else ws.send(hex(step.hex), { binary: true, fin: step.fin !== false });
    }
  }
});
ws.on('message', (data, isBinary) => out({ event: 'message', hex: Buffer.from(data).toString('hex'), binary: isBinary }));
ws.on('unexpected-response', (req, res) => { out({ event: 'http', status: res.statusCode }); process.exit(0); });
ws.on('error', (e) => out({ event: 'error', message: e.message }));
ws.on('close', (code, reason) => { out({ event: 'close', code, reason: reason.toString() }); process.exit(0); });
setTimeout(() => { out({ event: 'timeout' }); process.exit(3); }, plan.timeout || 10000);
