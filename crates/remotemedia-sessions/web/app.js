// The live-session page: microphone → AudioWorklet → s16le binary frames over the
// session WebSocket; events, text and audio from the pipeline shown and played.
'use strict';
const $ = (id) => document.getElementById(id);
let ws = null, ctx = null, source = null, node = null, stream = null, playAt = 0;

function log(text, cls) {
  const li = document.createElement('li');
  li.textContent = text;
  if (cls) li.className = cls;
  $('events').prepend(li);
}

function status(text) { $('status').textContent = text; }

async function loadPipelines() {
  const headers = {};
  const token = $('token').value;
  if (token) headers['Authorization'] = 'Bearer ' + token;
  const res = await fetch('v1/pipelines', { headers });
  if (!res.ok) { status('cannot list pipelines: ' + (await res.text())); return; }
  const body = await res.json();
  const sel = $('pipeline');
  sel.innerHTML = '';
  for (const p of body.pipelines) {
    const o = document.createElement('option');
    o.value = p.name;
    o.textContent = p.name + (p.description ? ' — ' + p.description : '');
    sel.append(o);
  }
  const wanted = new URLSearchParams(location.search).get('pipeline');
  if (wanted) sel.value = wanted;
}

function toS16(samples) {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const x = Math.max(-1, Math.min(1, samples[i]));
    out[i] = x < 0 ? Math.round(x * 32768) : Math.round(x * 32767);
  }
  return out.buffer;
}

function playS16(header, bytes) {
  const pcm = new Int16Array(bytes);
  const frames = pcm.length / header.channels;
  const buf = ctx.createBuffer(header.channels, frames, header.sample_rate);
  for (let c = 0; c < header.channels; c++) {
    const data = buf.getChannelData(c);
    for (let i = 0; i < frames; i++) data[i] = pcm[i * header.channels + c] / 32768;
  }
  const src = ctx.createBufferSource();
  src.buffer = buf;
  src.connect(ctx.destination);
  playAt = Math.max(playAt, ctx.currentTime);
  src.start(playAt);
  playAt += buf.duration;
}

function show(msg) {
  const item = msg.item;
  if (item && typeof item === 'object' && item.type) {
    if (item.type === 'speech_start') { $('speaking').textContent = 'speaking'; $('speaking').className = 'on'; }
    if (item.type === 'speech_end') { $('speaking').textContent = 'silence'; $('speaking').className = ''; }
    const ms = (msg.pts_us ?? item.pts_us ?? 0) / 1000;
    log(`${item.type} @ ${ms.toFixed(0)} ms` + (item.duration_ms !== undefined ? ` (${item.duration_ms} ms)` : ''), 'event ' + item.type);
    return;
  }
  const text = typeof item === 'string' ? item : (item && typeof item.text === 'string' ? item.text : null);
  if (text !== null) { $('text').textContent += text + ' '; log(`${msg.sink}: ${text}`, 'text'); return; }
  log(`${msg.sink}: ${JSON.stringify(item)}`);
}

async function start() {
  $('start').disabled = true;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true } });
  } catch (e) { status('no microphone: ' + e.message); $('start').disabled = false; return; }
  ctx = new AudioContext();
  await ctx.audioWorklet.addModule('worklet.js');
  source = ctx.createMediaStreamSource(stream);
  node = new AudioWorkletNode(ctx, 'remotemedia-capture');
  source.connect(node);
  const url = new URL('v1/sessions/' + encodeURIComponent($('pipeline').value), location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const protocols = ['remotemedia'];
  if ($('token').value) protocols.push('bearer.' + $('token').value);
  ws = new WebSocket(url, protocols);
  ws.binaryType = 'arraybuffer';
  let audioHeader = null, ready = false;
  ws.onopen = () => {
    ws.send(JSON.stringify({ type: 'start', input: { format: 's16le', sample_rate: ctx.sampleRate, channels: 1 } }));
    status('connecting');
  };
  ws.onmessage = (ev) => {
    if (typeof ev.data !== 'string') { if (audioHeader) playS16(audioHeader, ev.data); audioHeader = null; return; }
    const msg = JSON.parse(ev.data);
    switch (msg.type) {
      case 'ready': ready = true; status('live (' + msg.session + ')'); $('flush').disabled = false; $('stop').disabled = false; break;
      case 'output': show(msg); break;
      case 'audio': audioHeader = msg; break;
      case 'flushed': log('flushed'); break;
      case 'error': log('error: ' + msg.message, 'error'); status('error'); break;
      case 'summary': log('summary: ' + JSON.stringify(msg.metrics.latency_us)); break;
    }
  };
  ws.onclose = (ev) => { status('closed' + (ev.reason ? ': ' + ev.reason : '')); stop(false); };
  node.port.onmessage = (ev) => {
    $('level').firstElementChild.style.width = Math.min(100, ev.data.rms * 400) + '%';
    if (ready && ws.readyState === WebSocket.OPEN) ws.send(toS16(ev.data.samples));
  };
}

function stop(sendEnd = true) {
  if (sendEnd && ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'end' }));
  if (node) { node.port.onmessage = null; node.disconnect(); node = null; }
  if (stream) { stream.getTracks().forEach((t) => t.stop()); stream = null; }
  $('start').disabled = false; $('flush').disabled = true; $('stop').disabled = true;
}

$('start').onclick = start;
$('stop').onclick = () => stop(true);
$('flush').onclick = () => {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'flush' }));
  playAt = 0;
};
$('token').onchange = loadPipelines;
loadPipelines();
