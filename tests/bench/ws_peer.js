'use strict';
// The peer scripts/bench-ws.sh measures ordertrack against: the WebSocket layer
// of the original NestJS design, reduced to what it does per event. A Node
// `ws` server that broadcasts each body POSTed to /publish, as one text frame,
// to every connected client. It does no authentication, no persistence and no
// per-user filtering: only the transport ordertrack's hub is compared with.
//
//   node tests/bench/ws_peer.js --port 18185 [--workers 1]
//
// With --workers N > 1 it runs N processes with Node's cluster module (the
// primary hands accepted connections round-robin to the workers); a publish
// reaching one worker is relayed over the cluster IPC channel to all of them,
// the way a NestJS deployment relays through an adapter. The primary prints
// "peer ready" on stdout once every worker listens.
const cluster = require('node:cluster');
const http = require('node:http');
const { WebSocketServer, WebSocket } = require('ws');

function arg(name, def) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}
const port = Number(arg('--port', '18185'));
const workers = Number(arg('--workers', '1'));
const maxBody = 65536;

function serve(relay) {
  const server = http.createServer((req, res) => {
    if (req.method !== 'POST' || req.url !== '/publish') {
      res.writeHead(404, { 'Content-Length': '0' });
      res.end();
      return;
    }
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size <= maxBody) chunks.push(c);
    });
    req.on('end', () => {
      if (size > maxBody) {
        res.writeHead(413, { 'Content-Length': '0' });
        res.end();
        return;
      }
      relay(Buffer.concat(chunks));
      res.writeHead(204);
      res.end();
    });
  });
  server.keepAliveTimeout = 60000;
  const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: maxBody });
  wss.on('connection', (sock) => {
    sock.on('error', () => sock.terminate());
  });
  // The best idiomatic broadcast: the JSON is encoded once (the body as a
  // Buffer) and the same Buffer is handed to every socket; ws frames it per
  // socket. A gateway that JSON.stringify()s per client would be slower.
  const broadcast = (buf) => {
    for (const c of wss.clients) if (c.readyState === WebSocket.OPEN) c.send(buf, { binary: false });
  };
  server.listen(port, '127.0.0.1', 4096, () => {
    if (cluster.isWorker) process.send({ ready: true });
    else console.log('peer ready');
  });
  return broadcast;
}

if (workers <= 1) {
  const broadcast = serve((buf) => broadcast(buf));
} else if (cluster.isPrimary) {
  cluster.schedulingPolicy = cluster.SCHED_RR;
  let ready = 0;
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on('message', (from, msg) => {
    if (msg && msg.ready) {
      if (++ready === workers) console.log('peer ready');
      return;
    }
    for (const id in cluster.workers) cluster.workers[id].send(msg);
  });
  cluster.on('exit', () => process.exit(1)); // a dead worker spoils the measure: stop loudly
  const stop = () => {
    for (const id in cluster.workers) cluster.workers[id].kill();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  const broadcast = serve((buf) => process.send(buf.toString('utf8')));
  process.on('message', (msg) => {
    if (typeof msg === 'string') broadcast(Buffer.from(msg, 'utf8'));
  });
}
