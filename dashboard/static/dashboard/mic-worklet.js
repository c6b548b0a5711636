/* Microphone capture for the browser test call: resample to the call's rate, 20 ms frames of int16.
 *
 * Runs in the audio thread. A box filter over each output sample's span of input samples keeps
 * the worst aliasing out when going down from 44.1/48 kHz; good enough for a voice test.
 */
class MicCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const rate = (options.processorOptions && options.processorOptions.targetRate) || 24000;
    this.step = sampleRate / rate; // input samples per output sample
    this.frameSize = Math.round(rate * 0.02);
    this.frame = new Int16Array(this.frameSize);
    this.filled = 0;
    this.energy = 0;
    this.tail = new Float32Array(0);
    this.pos = 0; // where the next output sample starts, in `tail + input` samples
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    const data = new Float32Array(this.tail.length + channel.length);
    data.set(this.tail);
    data.set(channel, this.tail.length);
    const step = this.step;
    while (this.pos + Math.max(step, 1) < data.length) {
      let value;
      if (step <= 1) {
        const i = Math.floor(this.pos);
        const f = this.pos - i;
        value = data[i] * (1 - f) + data[i + 1] * f;
      } else {
        const start = Math.floor(this.pos);
        const end = Math.max(start + 1, Math.floor(this.pos + step));
        let sum = 0;
        for (let i = start; i < end; i++) sum += data[i];
        value = sum / (end - start);
      }
      const clipped = Math.max(-1, Math.min(1, value));
      this.frame[this.filled++] = clipped < 0 ? clipped * 0x8000 : clipped * 0x7fff;
      this.energy += clipped * clipped;
      this.pos += step;
      if (this.filled === this.frameSize) {
        const level = Math.sqrt(this.energy / this.filled);
        this.port.postMessage({ frame: this.frame.buffer, level }, [this.frame.buffer]);
        this.frame = new Int16Array(this.frameSize); // the old one was handed over
        this.filled = 0;
        this.energy = 0;
      }
    }
    const keep = Math.floor(this.pos);
    this.tail = data.slice(keep);
    this.pos -= keep;
    return true;
  }
}

registerProcessor("mic-capture", MicCapture);
