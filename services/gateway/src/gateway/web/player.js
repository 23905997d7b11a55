// Reply audio through Web Audio: each chunk is scheduled right after the previous one, so
// chunks play without gaps; stop() silences everything at once and says how much was heard.

export function decodeAudioChunk(bytes, fallbackRate) {
  // WAV (RIFF, PCM16) or raw PCM16 little-endian: to Float32 samples and a sample rate.
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let rate = fallbackRate;
  let channels = 1;
  let offset = 0;
  let length = bytes.byteLength;
  if (length >= 12 && view.getUint32(0, false) === 0x52494646 && view.getUint32(8, false) === 0x57415645) {
    let p = 12;
    while (p + 8 <= bytes.byteLength) {
      const id = view.getUint32(p, false);
      let size = view.getUint32(p + 4, true);
      if (id === 0x666d7420) {
        channels = view.getUint16(p + 10, true);
        rate = view.getUint32(p + 12, true);
      } else if (id === 0x64617461) {
        offset = p + 8;
        // Streamed WAVs carry a placeholder size: the data runs to the end.
        if (size === 0 || size === 0xffffffff || offset + size > bytes.byteLength) size = bytes.byteLength - offset;
        length = size;
        break;
      }
      p += 8 + size + (size % 2);
    }
  }
  const frames = Math.floor(length / 2 / channels);
  const samples = new Float32Array(frames);
  for (let i = 0; i < frames; i++) {
    let sum = 0;
    for (let c = 0; c < channels; c++) sum += view.getInt16(offset + (i * channels + c) * 2, true);
    samples[i] = sum / channels / 32768;
  }
  return { samples, rate };
}

export class Player {
  constructor(stats) {
    this.stats = stats; // the page's counters: scheduledSamples, scheduledSeconds
    this.context = null;
    this.output = null;
    this.sources = new Set();
    this.chunks = []; // [start, duration] on the context's clock, for what was heard
    this.nextTime = 0;
    this.onIdle = null;
  }

  /** Create or resume the context (call from a user gesture: browsers block audio before one). */
  unlock() {
    if (!this.context) {
      this.context = new AudioContext({ latencyHint: "interactive" });
      this.output = this.context.createGain();
      this.output.connect(this.context.destination);
    }
    if (this.context.state === "suspended") this.context.resume();
  }

  get playing() {
    return this.sources.size > 0;
  }

  /** Schedule Float32 samples at `rate` right after what is already scheduled. */
  enqueue(samples, rate) {
    if (!samples.length) return;
    this.unlock();
    const context = this.context;
    const buffer = context.createBuffer(1, samples.length, rate);
    buffer.copyToChannel(samples, 0);
    const source = context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.output);
    // A chunk that arrives after the previous one ended starts a little ahead of "now".
    const when = Math.max(this.nextTime, context.currentTime + 0.04);
    source.start(when);
    this.nextTime = when + buffer.duration;
    this.chunks.push([when, buffer.duration]);
    this.sources.add(source);
    this.stats.scheduledSamples += samples.length;
    this.stats.scheduledSeconds += buffer.duration;
    this.stats.playing = true;
    source.onended = () => {
      this.sources.delete(source);
      if (!this.sources.size) {
        this.stats.playing = false;
        if (this.onIdle) this.onIdle();
      }
    };
  }

  /** Seconds of the current reply that have played so far. */
  heardSeconds() {
    if (!this.context) return 0;
    const now = this.context.currentTime;
    let heard = 0;
    for (const [start, duration] of this.chunks) heard += Math.min(duration, Math.max(0, now - start));
    return heard;
  }

  /** Seconds scheduled for the current reply. */
  scheduledSeconds() {
    return this.chunks.reduce((sum, [, duration]) => sum + duration, 0);
  }

  /** Silence everything now; returns the seconds that were heard. */
  stop() {
    const heard = this.heardSeconds();
    for (const source of this.sources) {
      source.onended = null;
      try {
        source.stop();
      } catch {
        // never started: nothing to stop
      }
      source.disconnect();
    }
    this.sources.clear();
    this.stats.playing = false;
    this.reset();
    return heard;
  }

  /** Forget the current reply's timeline (a new reply starts). */
  reset() {
    this.chunks = [];
    this.nextTime = 0;
  }
}
