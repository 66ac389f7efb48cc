#!/usr/bin/env node
// SMSC simulator for the CellCelly SMS channel tests, on the npm `smpp` 0.5 server.
//
//   node smsc.js --port 2775 --system-id cellcelly --password secret [--host 127.0.0.1]
//
// Writes one JSON object per line on stdout for everything that happens (listening, bind,
// submit_sm with its decoded fields and raw short_message hex, deliver_sm_resp, generic_nack,
// enquire_link, unbind, close, error). Reads commands as JSON lines on stdin:
//   {"cmd": "deliver", "source_addr": "905321234567", "destination_addr": "5555",
//    "text": "KALAN", "data_coding": 8}                      -> a deliver_sm, text encoded by npm smpp
//   {"cmd": "deliver", ..., "short_message_hex": "0500..", "esm_class": 64}   -> raw octets as given
//   {"cmd": "deliver", ..., "text": "...", "udh_hex": "050003aa0201"}          -> UDH + encoded text
//   {"cmd": "raw", "hex": "..."}          -> bytes written as they are (malformed PDUs)
//   {"cmd": "fail_submits", "count": 1, "status": 88}    -> the next submit_sm get this status
//   {"cmd": "mute_submits", "count": 2}   -> the next submit_sm get no response at all
//   {"cmd": "unbind"}                     -> the SMSC unbinds the ESME
//   {"cmd": "close"}                      -> every connection dropped
// Every command is answered with {"event": "ack", "id": <its id>} once done (or "nak" with why).
'use strict';

const smpp = require('smpp');

function arg(name, fallback) {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const host = arg('host', '127.0.0.1');
const port = Number(arg('port', '2775'));
const systemId = arg('system-id', 'cellcelly');
const password = arg('password', 'secret');

function emit(event, fields) {
  process.stdout.write(JSON.stringify(Object.assign({ event: event, ts: Date.now() / 1000 }, fields || {})) + '\n');
}

// keep the raw octets of every short_message we receive, beside npm smpp's own decoding of them
const messageFilter = smpp.filters.message;
const decodeMessage = messageFilter.decode;
messageFilter.decode = function (value, skipUdh) {
  if (Buffer.isBuffer(value)) {
    this.raw_short_message = value.toString('hex');
  }
  return decodeMessage.call(this, value, skipUdh);
};

let sessionIds = 0;
let messageIds = 0;
const bound = new Set();
let failures = { count: 0, status: 0 };
let muted = 0;  // submit_sm left without a response (a stuck SMSC)

const server = smpp.createServer(function (session) {
  const sid = ++sessionIds;
  emit('connect', { session: sid });
  session.on('error', function (e) {
    emit('error', { session: sid, error: String(e && e.message || e) });
  });
  session.on('close', function () {
    bound.delete(session);
    emit('close', { session: sid });
  });
  function onBind(pdu) {
    let status = 0;
    if (pdu.system_id !== systemId) {
      status = smpp.ESME_RINVSYSID;
    } else if (pdu.password !== password) {
      status = smpp.ESME_RINVPASWD;
    }
    emit('bind', {
      session: sid, command: pdu.command, system_id: pdu.system_id, system_type: pdu.system_type,
      interface_version: pdu.interface_version, ok: status === 0, status: status,
    });
    session.send(pdu.response({ command_status: status, system_id: 'cellcelly-smsc' }));
    if (status === 0) {
      session.sid = sid;
      bound.add(session);
    }
  }
  session.on('bind_transceiver', onBind);
  session.on('bind_transmitter', onBind);
  session.on('bind_receiver', onBind);
  session.on('submit_sm', function (pdu) {
    if (!bound.has(session)) {
      emit('submit_sm_unbound', { session: sid });
      session.send(pdu.response({ command_status: smpp.ESME_RINVBNDSTS }));
      return;
    }
    const sm = pdu.short_message || {};
    if (muted > 0) {
      muted -= 1;
      emit('submit_sm_muted', { session: sid, sequence: pdu.sequence_number });
      return;
    }
    let status = 0;
    if (failures.count > 0) {
      failures.count -= 1;
      status = failures.status;
    }
    const messageId = status ? '' : 'm' + (++messageIds);
    emit('submit_sm', {
      session: sid, sequence: pdu.sequence_number, status: status, message_id: messageId,
      service_type: pdu.service_type,
      source_addr: pdu.source_addr, source_addr_ton: pdu.source_addr_ton, source_addr_npi: pdu.source_addr_npi,
      destination_addr: pdu.destination_addr, dest_addr_ton: pdu.dest_addr_ton, dest_addr_npi: pdu.dest_addr_npi,
      esm_class: pdu.esm_class, data_coding: pdu.data_coding, registered_delivery: pdu.registered_delivery,
      short_message_hex: pdu.raw_short_message || '',
      message: typeof sm.message === 'string' ? sm.message : null,
      udh: (sm.udh || []).map(function (b) { return b.toString('hex'); }),
    });
    session.send(pdu.response({ command_status: status, message_id: messageId }));
  });
  session.on('enquire_link', function (pdu) {
    emit('enquire_link', { session: sid, sequence: pdu.sequence_number });
    session.send(pdu.response());
  });
  session.on('unbind', function (pdu) {
    emit('unbind', { session: sid });
    bound.delete(session);
    session.send(pdu.response());
    session.close();
  });
  session.on('deliver_sm_resp', function (pdu) {
    emit('deliver_sm_resp', { session: sid, sequence: pdu.sequence_number, command_status: pdu.command_status });
  });
  session.on('unbind_resp', function () {
    emit('unbind_resp', { session: sid });
    session.close();
  });
  session.on('generic_nack', function (pdu) {
    emit('generic_nack', { session: sid, sequence: pdu.sequence_number, command_status: pdu.command_status });
  });
  session.on('pdu', function (pdu) {
    const handled = ['bind_transceiver', 'bind_transmitter', 'bind_receiver', 'submit_sm', 'enquire_link',
      'unbind', 'deliver_sm_resp', 'unbind_resp', 'generic_nack'];
    if (handled.indexOf(pdu.command) < 0) {
      emit('pdu', { session: sid, command: pdu.command, command_id: pdu.command_id, sequence: pdu.sequence_number });
    }
  });
});

function target() {
  // the ESME bound last: after a reconnect the old session may not have closed yet
  let last = null;
  bound.forEach(function (s) { last = s; });
  if (!last) {
    throw new Error('no bound ESME');
  }
  return last;
}

function deliver(cmd) {
  const session = target();
  const options = {
    service_type: cmd.service_type || '',
    source_addr: cmd.source_addr || '',
    source_addr_ton: cmd.source_addr_ton === undefined ? 1 : cmd.source_addr_ton,
    source_addr_npi: cmd.source_addr_npi === undefined ? 1 : cmd.source_addr_npi,
    destination_addr: cmd.destination_addr || '5555',
    dest_addr_ton: cmd.dest_addr_ton || 0,
    dest_addr_npi: cmd.dest_addr_npi || 0,
    esm_class: cmd.esm_class || 0,
    data_coding: cmd.data_coding === undefined ? 0 : cmd.data_coding,
  };
  if (cmd.short_message_hex !== undefined) {
    options.short_message = Buffer.from(cmd.short_message_hex, 'hex');
  } else if (cmd.udh_hex) {
    options.short_message = { udh: Buffer.from(cmd.udh_hex, 'hex'), message: cmd.text };
  } else {
    options.short_message = cmd.text || '';
  }
  const pdu = new smpp.PDU('deliver_sm', options);
  session.send(pdu, null, function (sent) {
    emit('deliver_sm_sent', { session: session.sid, id: cmd.id, sequence: sent.sequence_number });
  });
}

function handle(cmd) {
  switch (cmd.cmd) {
    case 'deliver':
      deliver(cmd);
      break;
    case 'raw':
      target().socket.write(Buffer.from(cmd.hex, 'hex'));
      break;
    case 'fail_submits':
      failures = { count: cmd.count || 1, status: cmd.status || smpp.ESME_RSYSERR };
      break;
    case 'mute_submits':
      muted = cmd.count || 1;
      break;
    case 'unbind':
      target().unbind();
      break;
    case 'close':
      server.sessions.slice().forEach(function (s) { s.destroy(); });
      break;
    default:
      throw new Error('unknown command ' + cmd.cmd);
  }
}

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', function (chunk) {
  input += chunk;
  let nl;
  while ((nl = input.indexOf('\n')) >= 0) {
    const line = input.slice(0, nl).trim();
    input = input.slice(nl + 1);
    if (!line) {
      continue;
    }
    let cmd = {};
    try {
      cmd = JSON.parse(line);
      handle(cmd);
      emit('ack', { id: cmd.id });
    } catch (e) {
      emit('nak', { id: cmd.id, error: String(e && e.message || e) });
    }
  }
});
process.stdin.on('end', function () {
  process.exit(0);  // the test that started us is gone
});
process.on('SIGTERM', function () {
  process.exit(0);
});

server.on('error', function (e) {
  emit('error', { error: String(e && e.message || e) });
  process.exit(1);
});
server.listen(port, host, function () {
  emit('listening', { host: host, port: port });
});
