/* The browser test call: this page plays 46elks' part, so the call runs through the same
 * CallSession as a phone call. It captures the microphone, sends `audio` in the format the
 * server asks for with `listening`, plays the `audio` it gets after `sending`, clears playback on
 * `interrupt` (and ignores audio until the next `sending`), answers `sync` once what came before
 * has played, and ends with `bye`. */
(function () {
  "use strict";

  const live = window.VoiceLive;
  const root = document.getElementById("talk");
  const button = document.getElementById("call-button");
  const statusEl = document.getElementById("talk-status");
  const levelEl = document.getElementById("mic-level");
  const transcript = document.getElementById("talk-transcript");
  const resultEl = document.getElementById("talk-result");

  const stats = { sentFrames: 0, sentMs: 0, audioMessages: 0, audioBytes: 0, heardMs: 0, interrupts: 0, syncs: 0 };
  const state = { phase: "idle", callPk: null, ws: null, ctx: null, stream: null, node: null, ended: false };
  const seenLines = new Map(); // call pk -> lines, for lines that arrive before we know our call

  // ------------------------------------------------------------------ audio formats (G.711, PCM)

  function formatInfo(name) {
    if (name === "ulaw" || name === "alaw") return { name, rate: 8000, bytes: 1 };
    const match = /^pcm_(\d+)$/.exec(name || "");
    if (match) return { name, rate: Number(match[1]), bytes: 2 };
    return null;
  }

  function ulawEncode(sample) {
    const BIAS = 0x84;
    let sign = 0;
    if (sample < 0) {
      sample = -sample;
      sign = 0x80;
    }
    sample = Math.min(sample, 32635) + BIAS;
    let exponent = 7;
    for (let mask = 0x4000; (sample & mask) === 0 && exponent > 0; mask >>= 1) exponent--;
    const mantissa = (sample >> (exponent + 3)) & 0x0f;
    return ~(sign | (exponent << 4) | mantissa) & 0xff;
  }

  function ulawDecode(byte) {
    byte = ~byte & 0xff;
    const sign = byte & 0x80;
    const exponent = (byte >> 4) & 0x07;
    const mantissa = byte & 0x0f;
    const sample = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    return sign ? -sample : sample;
  }

  function alawEncode(sample) {
    const sign = sample >= 0 ? 0x80 : 0;
    const magnitude = Math.min(Math.abs(sample), 32767) >> 3;
    let code;
    if (magnitude < 32) {
      code = magnitude >> 1;
    } else {
      const exponent = 32 - Math.clz32(magnitude) - 5;
      code = (exponent << 4) | ((magnitude >> exponent) & 0x0f);
    }
    return (sign | code) ^ 0x55;
  }

  function alawDecode(byte) {
    byte ^= 0x55;
    const sign = byte & 0x80;
    const exponent = (byte >> 4) & 0x07;
    let sample = ((byte & 0x0f) << 4) + 8;
    if (exponent > 0) sample = (sample + 0x100) << (exponent - 1);
    return sign ? sample : -sample;
  }

  function encode(int16, fmt) {
    if (fmt.bytes === 2) return new Uint8Array(int16.buffer, int16.byteOffset, int16.byteLength);
    const out = new Uint8Array(int16.length);
    const fn = fmt.name === "ulaw" ? ulawEncode : alawEncode;
    for (let i = 0; i < int16.length; i++) out[i] = fn(int16[i]);
    return out;
  }

  function decode(bytes, fmt) {
    if (fmt.bytes === 2) {
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const out = new Float32Array(bytes.byteLength >> 1);
      for (let i = 0; i < out.length; i++) out[i] = view.getInt16(2 * i, true) / 32768;
      return out;
    }
    const fn = fmt.name === "ulaw" ? ulawDecode : alawDecode;
    const out = new Float32Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) out[i] = fn(bytes[i]) / 32768;
    return out;
  }

  function toBase64(bytes) {
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(binary);
  }

  function fromBase64(text) {
    const binary = atob(text);
    const out = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
    return out;
  }

  // ------------------------------------------------------------------ playback (46elks' buffer)

  const player = {
    format: null,
    accepting: false,
    sources: new Set(),
    playEnd: 0,
    syncTimers: new Set(),

    enqueue(bytes) {
      const ctx = state.ctx;
      const samples = decode(bytes, this.format);
      if (!samples.length) return;
      const buffer = ctx.createBuffer(1, samples.length, this.format.rate);
      buffer.copyToChannel(samples, 0);
      const source = ctx.createBufferSource();
      source.buffer = buffer;
      source.connect(ctx.destination);
      const at = Math.max(ctx.currentTime + 0.02, this.playEnd);
      source.start(at);
      this.playEnd = at + buffer.duration;
      this.sources.add(source);
      source.onended = () => this.sources.delete(source);
      stats.heardMs += buffer.duration * 1000;
    },

    remainingMs() {
      return state.ctx ? Math.max(0, this.playEnd - state.ctx.currentTime) * 1000 : 0;
    },

    clear() {
      this.sources.forEach((source) => {
        try {
          source.stop();
        } catch (err) {
          /* already stopped */
        }
      });
      this.sources.clear();
      this.playEnd = state.ctx ? state.ctx.currentTime : 0;
    },

    // `sync`: answer once everything sent before it has played (at once after an interrupt).
    sync() {
      const timer = setTimeout(() => {
        this.syncTimers.delete(timer);
        answerSync();
      }, this.remainingMs());
      this.syncTimers.add(timer);
    },

    flushSyncs() {
      this.syncTimers.forEach((timer) => {
        clearTimeout(timer);
        answerSync();
      });
      this.syncTimers.clear();
    },
  };

  function answerSync() {
    stats.syncs += 1;
    send({ t: "sync" });
  }

  // ------------------------------------------------------------------ the call

  function send(obj) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(obj));
  }

  function setPhase(phase, text) {
    state.phase = phase;
    button.dataset.state = phase;
    button.textContent = phase === "idle" || phase === "ended" ? "Start call" : "Hang up";
    button.disabled = phase === "ending";
    if (text) statusEl.textContent = text;
    root.dataset.phase = phase;
  }

  function showStats() {
    document.getElementById("stat-sent").textContent = `${(stats.sentMs / 1000).toFixed(1)} s`;
    document.getElementById("stat-heard").textContent = `${(stats.heardMs / 1000).toFixed(1)} s`;
    document.getElementById("stat-interrupts").textContent = String(stats.interrupts);
  }
  setInterval(() => {
    if (state.phase === "talking") {
      const speaking = player.remainingMs() > 0;
      statusEl.textContent = speaking ? "The assistant is speaking… (talk to interrupt it)" : "Listening: go ahead and speak.";
    }
    showStats();
  }, 250);

  function micError(err) {
    const name = err && err.name;
    if (name === "NotAllowedError" || name === "SecurityError") {
      return "The browser was not allowed to use the microphone. Allow it (the icon in the address bar) and try again.";
    }
    if (name === "NotFoundError" || name === "OverconstrainedError") return "No microphone was found on this computer.";
    if (name === "NotReadableError") return "The microphone is busy in another program. Close it there and try again.";
    return `The microphone could not be started (${name || err}).`;
  }

  async function start() {
    resultEl.hidden = true;
    transcript.replaceChildren();
    Object.keys(stats).forEach((k) => { stats[k] = 0; });
    state.ended = false;
    state.callPk = null;
    if (!window.isSecureContext || !navigator.mediaDevices || !window.AudioWorkletNode) {
      setPhase("idle", "The microphone only works on a secure page: open this site over https:// (or on localhost).");
      return;
    }
    setPhase("connecting", "Starting the microphone…");
    try {
      state.ctx = new AudioContext();
      await state.ctx.resume();
      state.stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
      });
      await state.ctx.audioWorklet.addModule(root.dataset.worklet);
    } catch (err) {
      cleanupAudio();
      setPhase("idle", micError(err));
      return;
    }
    setPhase("connecting", "Calling…");
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${root.dataset.socket}`);
    state.ws = ws;
    ws.onmessage = (event) => onServerMessage(event.data);
    ws.onclose = () => finish();
  }

  function startCapture(fmt) {
    const ctx = state.ctx;
    const source = ctx.createMediaStreamSource(state.stream);
    const node = new AudioWorkletNode(ctx, "mic-capture", { processorOptions: { targetRate: fmt.rate } });
    const mute = ctx.createGain();
    mute.gain.value = 0;
    source.connect(node);
    node.connect(mute);
    mute.connect(ctx.destination);
    node.port.onmessage = (event) => {
      levelEl.style.width = `${Math.min(100, Math.round(event.data.level * 400))}%`;
      if (state.ended) return;
      const frame = new Int16Array(event.data.frame);
      send({ t: "audio", data: toBase64(encode(frame, fmt)) });
      stats.sentFrames += 1;
      stats.sentMs += (frame.length / fmt.rate) * 1000;
    };
    state.node = node;
    state.source = source;
  }

  function onServerMessage(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch (err) {
      return;
    }
    switch (msg.t) {
      case "info":
        state.callPk = msg.call;
        (seenLines.get(msg.call) || []).forEach((line) => live.upsertLine(transcript, line));
        break;
      case "listening": {
        const fmt = formatInfo(msg.format);
        if (!fmt) {
          hangUp(`The server asked for audio as ${msg.format}, which this page cannot make.`);
          return;
        }
        if (!state.node) startCapture(fmt);
        setPhase("talking", "Connected. Say something.");
        break;
      }
      case "sending":
        player.format = formatInfo(msg.format);
        player.accepting = Boolean(player.format);
        break;
      case "audio":
        if (!player.accepting || !msg.data) return;
        stats.audioMessages += 1;
        {
          const bytes = fromBase64(msg.data);
          stats.audioBytes += bytes.length;
          player.enqueue(bytes);
        }
        break;
      case "interrupt":
        stats.interrupts += 1;
        player.clear();
        player.accepting = false;
        player.flushSyncs();
        break;
      case "sync":
        player.sync();
        break;
      case "bye":
        // The server ends the call; like 46elks, answer with our own bye, which is the last word.
        state.ended = true;
        setPhase("ending", "The assistant ended the call.");
        setTimeout(() => send({ t: "bye", reason: "done", message: "Call finished" }), player.remainingMs());
        break;
      default:
        break;
    }
  }

  function hangUp(why) {
    if (!state.ws || state.ended) return;
    state.ended = true;
    setPhase("ending", why || "Hanging up…");
    player.clear();
    player.flushSyncs();
    const ws = state.ws;
    if (ws.readyState === WebSocket.CONNECTING) {
      ws.close();
      return;
    }
    send({ t: "bye", reason: "hangup", message: why || "Hung up in the browser." });
    // The server closes the socket once the call is recorded; do it ourselves if it does not.
    setTimeout(() => ws.readyState !== WebSocket.CLOSED && ws.close(), 5000);
  }

  function cleanupAudio() {
    if (state.stream) state.stream.getTracks().forEach((track) => track.stop());
    if (state.node) state.node.port.onmessage = null;
    if (state.ctx) state.ctx.close();
    state.stream = state.node = state.source = state.ctx = null;
    player.sources.clear();
    player.syncTimers.forEach(clearTimeout);
    player.syncTimers.clear();
    player.accepting = false;
    player.playEnd = 0;
    levelEl.style.width = "0";
  }

  async function finish() {
    const wasTalking = state.phase === "talking" || state.phase === "ending";
    state.ended = true;
    state.ws = null;
    cleanupAudio();
    setPhase("ended", wasTalking ? "The call has ended." : "The call could not be started: the server refused it. Are you still logged in?");
    showStats();
    if (state.callPk === null) return;
    try {
      const response = await fetch(root.dataset.callUrl.replace("/0/", `/${state.callPk}/`));
      if (response.ok) {
        resultEl.innerHTML = await response.text();
        resultEl.hidden = false;
        transcript.replaceChildren();
      }
    } catch (err) {
      /* the live transcript stays */
    }
  }

  button.addEventListener("click", () => {
    if (state.phase === "idle" || state.phase === "ended") start();
    else if (state.phase === "talking" || state.phase === "connecting") hangUp();
  });
  window.addEventListener("pagehide", () => hangUp("The caller left the page."));

  // The conversation, as the dashboard sees it.
  live.connect("/ws/dashboard/", (message) => {
    if (message.type !== "line") return;
    if (!seenLines.has(message.call)) seenLines.set(message.call, []);
    seenLines.get(message.call).push(message);
    if (message.call === state.callPk) live.upsertLine(transcript, message);
  });

  // For tests and the curious: what this page sent, received and played.
  window.voiceTestCall = { stats, state, codecs: { ulawEncode, ulawDecode, alawEncode, alawDecode } };
})();
