// Interop client: the `ws` package (an independent RFC 6455 implementation)
// against ordertrack. Prints one JSON line per thing it observes so the pytest
// side can assert on them: {"open"}, {"message":...}, {"pong"}, {"close":code}.
// usage: node ws_client.js URL WANT_MESSAGES TIMEOUT_MS
const WebSocket = require('ws');
const [url, want, timeoutMs] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const ws = new WebSocket(url, { perMessageDeflate: false });
let got = 0;
const timer = setTimeout(() => { out({ timeout: true }); ws.terminate(); }, timeoutMs);
ws.on('open', () => { out({ open: true }); ws.ping('interop'); });
ws.on('pong', (data) => out({ pong: data.toString() }));
ws.on('message', (data, isBinary) => {
  out({ message: JSON.parse(data.toString()), binary: isBinary });
  if (++got >= want) ws.close(1000, 'done');
});
ws.on('unexpected-response', (req, res) => { out({ status: res.statusCode }); clearTimeout(timer); req.destroy(); });
ws.on('close', (code, reason) => { out({ close: code, reason: reason.toString() }); clearTimeout(timer); });
ws.on('error', (e) => out({ error: String(e.message || e) }));
