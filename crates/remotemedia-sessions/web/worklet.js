// Captures the microphone in the audio thread and posts 20 ms blocks of float
// samples (mono: the first channel) with their RMS level to the page.
class Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = Math.round(sampleRate / 50);
    this.buf = new Float32Array(this.block);
    this.n = 0;
  }
  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (!ch) return true;
    for (let i = 0; i < ch.length; i++) {
      this.buf[this.n++] = ch[i];
      if (this.n === this.block) {
        let sum = 0;
        for (let j = 0; j < this.block; j++) sum += this.buf[j] * this.buf[j];
        this.port.postMessage({ samples: this.buf.slice(0), rms: Math.sqrt(sum / this.block) });
        this.n = 0;
      }
    }
    return true;
  }
}
registerProcessor('remotemedia-capture', Capture);
