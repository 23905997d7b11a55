// Talking to the gateway: a live WebSocket session (live recognition or a conversation), and a
// fallback that uploads a finished recording to the file API when live recognition is missing.

import { PageError, apiUrl, apiKey, explain, wsUrl } from "./api.js";

// Audio queued while the socket opens: a second of PCM16 at 16 kHz is 32 kB.
const MAX_QUEUED_BYTES = 4 * 1024 * 1024;

export function errorFromEvent(event) {
  const error = event.error || {};
  const code = error.code || event.code || "error";
  const message = error.message || event.message || "";
  return new PageError(code, explain(code, 0, message) || message || `The gateway reported ${code}.`);
}

/**
 * One WebSocket session. `start` is the first message; audio chunks queue until `readyType`
 * arrives. Server events go to onEvent; onEnd(error|null) is called once when it is over.
 */
export class LiveSession {
  constructor(path, { start, readyType, params, onEvent, onEnd }) {
    this.path = path;
    this.start = start;
    this.readyType = readyType;
    this.params = params || {};
    this.onEvent = onEvent;
    this.onEnd = onEnd;
    this.socket = null;
    this.ready = false;
    this.ended = false;
    this.queue = [];
    this.queued = 0;
    this.sentBytes = 0;
  }

  /** Resolves once the server is ready; rejects with a PageError (code "unavailable" if no socket). */
  open() {
    return new Promise((resolve, reject) => {
      let opened = false;
      let settled = false;
      const settle = (error) => {
        if (settled) return;
        settled = true;
        if (error) reject(error);
        else resolve(this);
      };
      const socket = new WebSocket(wsUrl(this.path, this.params));
      socket.binaryType = "arraybuffer";
      this.socket = socket;
      socket.onopen = () => {
        opened = true;
        if (this.start) socket.send(JSON.stringify(this.start));
        if (!this.readyType) this.markReady(settle);
      };
      socket.onmessage = (message) => {
        if (typeof message.data !== "string") {
          this.onEvent({ type: "binary", data: message.data });
          return;
        }
        let event;
        try {
          event = JSON.parse(message.data);
        } catch {
          return;
        }
        if (event.type === "error") {
          const error = errorFromEvent(event);
          if (!this.ready) {
            settle(error);
            this.finish(error);
            return;
          }
          this.onEvent(event);
          return;
        }
        if (!this.ready && event.type === this.readyType) this.markReady(settle);
        this.onEvent(event);
      };
      socket.onclose = (close) => {
        let error = null;
        if (!opened) {
          error = new PageError(
            "unavailable",
            "The gateway is unreachable or does not offer this live service.",
            String(close.code),
          );
        } else if (!this.ready) {
          error = new PageError("closed", `The gateway closed the session (${close.reason || close.code}).`);
        }
        settle(error);
        this.finish(error);
      };
    });
  }

  markReady(settle) {
    this.ready = true;
    for (const chunk of this.queue) this.socket.send(chunk);
    this.queue = [];
    this.queued = 0;
    settle(null);
  }

  get isOpen() {
    return !this.ended && this.socket !== null && this.socket.readyState <= WebSocket.OPEN;
  }

  sendAudio(chunk) {
    if (this.ended) return;
    this.sentBytes += chunk.byteLength;
    if (this.ready) {
      this.socket.send(chunk);
      return;
    }
    if (this.queued + chunk.byteLength > MAX_QUEUED_BYTES) return;
    this.queue.push(chunk);
    this.queued += chunk.byteLength;
  }

  send(message) {
    if (this.ended || !this.socket || this.socket.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  finish(error) {
    if (this.ended) return;
    this.ended = true;
    this.onEnd(error);
  }

  close() {
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) this.socket.close(1000, "done");
  }
}

/** Wrap PCM16 mono chunks in a WAV file. */
export function wavFile(chunks, rate) {
  const length = chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0);
  const bytes = new Uint8Array(44 + length);
  const view = new DataView(bytes.buffer);
  const text = (offset, value) => [...value].forEach((c, i) => view.setUint8(offset + i, c.charCodeAt(0)));
  text(0, "RIFF");
  view.setUint32(4, 36 + length, true);
  text(8, "WAVE");
  text(12, "fmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true);
  view.setUint16(22, 1, true);
  view.setUint32(24, rate, true);
  view.setUint32(28, rate * 2, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  text(36, "data");
  view.setUint32(40, length, true);
  let offset = 44;
  for (const chunk of chunks) {
    bytes.set(new Uint8Array(chunk), offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

/** A recording uploaded whole to `POST api/voice/transcribe` when it ends. */
export class FileTurn {
  constructor(format) {
    this.format = format;
    this.chunks = [];
    this.sentBytes = 0;
  }

  sendAudio(chunk) {
    this.chunks.push(chunk);
    this.sentBytes += chunk.byteLength;
  }

  async finish(language) {
    const body =
      this.format.format === "pcm16"
        ? new Blob([wavFile(this.chunks, this.format.sample_rate)], { type: "audio/wav" })
        : new Blob(this.chunks, { type: "audio/webm" });
    const form = new FormData();
    form.append("file", body, this.format.format === "pcm16" ? "speech.wav" : "speech.webm");
    if (language) form.append("language", language);
    const headers = apiKey() ? { Authorization: `Bearer ${apiKey()}` } : {};
    let response;
    try {
      response = await fetch(apiUrl("api/voice/transcribe"), { method: "POST", body: form, headers });
    } catch {
      throw new PageError("unreachable", "The gateway is unreachable. Is it running?");
    }
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = answer.error || {};
      const message = explain(error.code, response.status, error.message, response.headers.get("Retry-After"));
      throw new PageError(error.code || "error", message || error.message || `HTTP ${response.status}`);
    }
    return answer;
  }
}
