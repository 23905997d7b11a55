// The microphone: an AudioWorklet that hands out 16 kHz PCM16 chunks, or, where worklets are
// missing, a MediaRecorder that hands out WebM/Opus chunks. Opened once, kept while in use.

import { PageError } from "./api.js";

const CHUNK_MS = 40;
const PRE_ROLL_MS = 240; // audio kept from just before a press: the first syllable often starts with it
const RECORDER_TIMESLICE_MS = 250;
export const PCM_RATE = 16000;

export function microphoneError(error) {
  const name = error && error.name;
  if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") {
    return new PageError(
      "mic_refused",
      "Microphone access was refused. Allow the microphone for this page in the browser's site settings, then try again.",
    );
  }
  if (name === "NotFoundError" || name === "OverconstrainedError" || name === "DevicesNotFoundError") {
    return new PageError("mic_missing", "No microphone was found. Plug one in and try again.");
  }
  if (name === "NotReadableError" || name === "AbortError") {
    return new PageError("mic_busy", "The microphone could not be opened: another program may be using it.");
  }
  return new PageError("mic_failed", `The microphone could not be opened (${(error && error.message) || error}).`);
}

export class Capture {
  /** onChunk(ArrayBuffer) while sending; onLevel(0..1) always. */
  constructor({ onChunk, onLevel, forceRecorder = false }) {
    this.onChunk = onChunk;
    this.onLevel = onLevel;
    this.forceRecorder = forceRecorder;
    this.stream = null;
    this.context = null;
    this.node = null;
    this.recorder = null;
    this.sending = false;
    this.preRoll = [];
    this.kind = null; // "worklet" | "recorder"
  }

  /** The `start` fields that describe what this capture sends. */
  get format() {
    if (this.kind === "worklet") return { format: "pcm16", sample_rate: PCM_RATE, channels: 1 };
    return { format: "webm" };
  }

  get isOpen() {
    return this.stream !== null;
  }

  async open() {
    if (this.stream) return;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new PageError(
        "mic_insecure",
        "This browser gives no microphone to this page: open it over https:// (or on localhost).",
      );
    }
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (error) {
      throw microphoneError(error);
    }
    const context = new AudioContext({ latencyHint: "interactive" });
    this.context = context;
    if (!this.forceRecorder && context.audioWorklet && typeof AudioWorkletNode === "function") {
      await context.audioWorklet.addModule(new URL("./capture-worklet.js", import.meta.url));
      const source = context.createMediaStreamSource(this.stream);
      this.node = new AudioWorkletNode(context, "pcm16-capture", {
        numberOfInputs: 1,
        numberOfOutputs: 0,
        processorOptions: { targetRate: PCM_RATE, chunkMs: CHUNK_MS },
      });
      this.node.port.onmessage = (event) => this.pcm(event.data);
      source.connect(this.node);
      this.kind = "worklet";
    } else {
      this.kind = "recorder";
      this.meter(context);
    }
    if (context.state === "suspended") await context.resume();
  }

  pcm({ pcm, level }) {
    this.onLevel(level);
    if (this.sending) {
      this.onChunk(pcm);
      return;
    }
    this.preRoll.push(pcm);
    if (this.preRoll.length > PRE_ROLL_MS / CHUNK_MS) this.preRoll.shift();
  }

  meter(context) {
    // The recorder path still shows a level: an analyser polled on animation frames.
    const analyser = context.createAnalyser();
    analyser.fftSize = 1024;
    context.createMediaStreamSource(this.stream).connect(analyser);
    const data = new Float32Array(analyser.fftSize);
    const tick = () => {
      if (!this.stream) return;
      analyser.getFloatTimeDomainData(data);
      let sum = 0;
      for (const v of data) sum += v * v;
      this.onLevel(Math.sqrt(sum / data.length));
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }

  /** Start handing out chunks (the pre-roll first, for PCM). */
  start() {
    this.sending = true;
    if (this.kind === "worklet") {
      for (const chunk of this.preRoll) this.onChunk(chunk);
      this.preRoll = [];
      return;
    }
    // A recorder's first chunk carries the WebM header: every run is a new stream.
    const type = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm"].find((t) =>
      MediaRecorder.isTypeSupported(t),
    );
    this.recorder = new MediaRecorder(this.stream, type ? { mimeType: type } : {});
    this.recorder.ondataavailable = async (event) => {
      if (event.data && event.data.size) this.onChunk(await event.data.arrayBuffer());
    };
    this.recorder.start(RECORDER_TIMESLICE_MS);
  }

  /** Stop handing out chunks; resolves once the last one was handed out. */
  async stop() {
    if (this.kind === "worklet") {
      this.node.port.postMessage("flush");
      await new Promise((resolve) => setTimeout(resolve, CHUNK_MS));
      this.sending = false;
      return;
    }
    this.sending = false;
    const recorder = this.recorder;
    this.recorder = null;
    if (recorder && recorder.state !== "inactive") {
      const stopped = new Promise((resolve) => recorder.addEventListener("stop", resolve, { once: true }));
      recorder.stop();
      await stopped;
      await new Promise((resolve) => setTimeout(resolve, 0)); // the last dataavailable's arrayBuffer()
    }
  }

  close() {
    this.sending = false;
    if (this.recorder && this.recorder.state !== "inactive") this.recorder.stop();
    this.recorder = null;
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    this.stream = null;
    if (this.context) this.context.close();
    this.context = null;
    this.node = null;
    this.preRoll = [];
    this.onLevel(0);
  }
}
