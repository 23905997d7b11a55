// AudioWorklet processor: the microphone at the context's rate in, 16 kHz mono PCM16 out.
// Resampling is a windowed-sinc low-pass evaluated at each output instant, with state kept
// across render quanta, so chunk edges add no clicks and no aliasing from 48 kHz input.

const TAPS_PER_SIDE = 16; // per output-sample period: enough stop-band for speech recognition

class Pcm16Capture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    this.outRate = opts.targetRate || 16000;
    this.step = sampleRate / this.outRate; // input samples per output sample
    this.cutoff = Math.min(1, 1 / this.step) * 0.92; // as a fraction of the input Nyquist
    this.half = Math.ceil(TAPS_PER_SIDE * Math.max(1, this.step));
    this.chunk = Math.round((this.outRate * (opts.chunkMs || 40)) / 1000);
    this.history = new Float32Array(this.half); // zeros before the first sample
    this.pos = this.half; // the next output instant, in history's sample coordinates
    this.out = new Int16Array(this.chunk);
    this.filled = 0;
    this.energy = 0;
    this.port.onmessage = (event) => {
      if (event.data === "flush") this.flush();
    };
  }

  kernel(x) {
    if (x === 0) return this.cutoff;
    const w = 0.5 + 0.5 * Math.cos((Math.PI * x) / (this.half + 1)); // Hann
    const a = Math.PI * this.cutoff * x;
    return (this.cutoff * Math.sin(a)) / a * w;
  }

  flush() {
    if (this.filled === 0) return;
    const pcm = this.out.slice(0, this.filled);
    const level = Math.sqrt(this.energy / this.filled);
    this.port.postMessage({ pcm: pcm.buffer, level }, [pcm.buffer]);
    this.filled = 0;
    this.energy = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const n = channels[0].length;
    const buffer = new Float32Array(this.history.length + n);
    buffer.set(this.history);
    const base = this.history.length;
    for (let c = 0; c < channels.length; c++) {
      const data = channels[c];
      for (let i = 0; i < n; i++) buffer[base + i] += data[i] / channels.length;
    }
    while (this.pos + this.half < buffer.length) {
      const center = Math.floor(this.pos);
      let y = 0;
      for (let k = center - this.half + 1; k <= center + this.half; k++) {
        y += buffer[k] * this.kernel(this.pos - k);
      }
      const clipped = Math.max(-1, Math.min(1, y));
      this.energy += clipped * clipped;
      this.out[this.filled++] = clipped < 0 ? clipped * 0x8000 : clipped * 0x7fff;
      if (this.filled === this.chunk) this.flush();
      this.pos += this.step;
    }
    const drop = Math.floor(this.pos) - this.half;
    this.history = buffer.slice(Math.max(0, drop));
    this.pos -= Math.max(0, drop);
    return true;
  }
}

registerProcessor("pcm16-capture", Pcm16Capture);
