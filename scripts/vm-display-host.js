#!/usr/bin/env node
// Host side of the test VM's screen dumps (see scripts/vm-display.sh):
//   node vm-display-host.js <qmp socket> <snap port socket> <snapshot dir>
// Connects to qemu's QMP socket and to the guest's "snap" virtio-serial port (both unix sockets qemu serves),
// and answers each line "SNAP <name>" from the guest with "ok" once QMP screendump wrote <dir>/<name>.ppm,
// or "error <message>". Exits when qemu closes the port.
'use strict';
const net = require('node:net');
const path = require('node:path');
const { setTimeout } = require('node:timers');

const [qmpPath, snapPath, dir] = process.argv.slice(2);
if (!qmpPath || !snapPath || !dir) {
  console.error('usage: vm-display-host.js <qmp socket> <snap socket> <snapshot dir>');
  process.exit(2);
}

/** Connects to a unix socket, retrying while qemu has not created it yet. */
function connect(p) {
  return new Promise((resolve) => {
    const attempt = () => {
      const s = net.connect(p);
      s.once('connect', () => resolve(s));
      s.once('error', () => setTimeout(attempt, 50));
    };
    attempt();
  });
}

/** Splits a stream into lines, calling `onLine` for each. */
function lines(stream, onLine) {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    buf += chunk;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (line) onLine(line);
    }
  });
}

async function main() {
  const qmp = await connect(qmpPath);
  const pending = []; // resolvers of QMP commands, in order (QMP answers in order)
  let greeted;
  const greeting = new Promise((r) => (greeted = r));
  lines(qmp, (line) => {
    const msg = JSON.parse(line);
    if (msg.QMP) greeted();
    else if ('return' in msg || 'error' in msg) pending.shift()?.(msg);
  });
  const command = (execute, args) =>
    new Promise((resolve) => {
      pending.push(resolve);
      qmp.write(JSON.stringify(args ? { execute, arguments: args } : { execute }) + '\n');
    });
  await greeting;
  await command('qmp_capabilities');

  const port = await connect(snapPath);
  let queue = Promise.resolve();
  lines(port, (line) => {
    queue = queue.then(async () => {
      const m = /^SNAP ([A-Za-z0-9._-]{1,100})$/.exec(line);
      if (!m) return port.write(`error bad request ${JSON.stringify(line)}\n`);
      const reply = await command('screendump', { filename: path.join(dir, `${m[1]}.ppm`) });
      port.write(reply.error ? `error ${reply.error.desc}\n` : 'ok\n');
    });
  });
  port.on('close', () => process.exit(0));
  qmp.on('close', () => process.exit(0));
}

main().catch((err) => {
  console.error(`vm-display-host: ${err.message}`);
  process.exit(1);
});
