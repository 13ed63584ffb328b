"""The Silero VAD model run from Python through onnxruntime, the way the `silero-vad`
package's ONNX wrapper runs it: the reference `VoiceActivity` is checked against.

    python vad_reference.py AUDIO.wav [--model silero_vad.onnx] [--bench N]

Reads a mono 16-bit PCM WAV at 8000 or 16000 Hz, cuts it into windows of 512 samples
(256 at 8 kHz; the last one padded with zeros), and runs each through the model with
the recurrent state and the previous window's last 64 samples (32 at 8 kHz) carried
over, on 1 intra-op and 1 inter-op thread. Prints JSON: the rate, the window and the
speech probability of each window. With `--bench N`, runs the whole file N times more
and adds the mean time per window in microseconds.

The model defaults to `silero_vad/data/silero_vad.onnx` of the installed `silero-vad`
package (found without importing it, which would import torch). Needs numpy and
onnxruntime.
"""

import argparse
import importlib.util
import json
import os
import sys
import time
import wave

import numpy as np
import onnxruntime


def default_model():
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("silero-vad is not installed: pip install silero-vad (or pass --model)")
    return os.path.join(list(spec.submodule_search_locations)[0], "data", "silero_vad.onnx")


def read_wav(path):
    with wave.open(path, "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            sys.exit(f"{path}: expected mono 16-bit PCM")
        rate = w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return data.astype(np.float32) / 32768.0, rate


class Silero:
    def __init__(self, model, rate):
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            model, sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.rate = rate
        self.window = 512 if rate == 16000 else 256
        self.context_size = 64 if rate == 16000 else 32
        self.sr = np.array(rate, dtype=np.int64)
        self.reset()

    def reset(self):
        self.state = np.zeros((2, 1, 128), dtype=np.float32)
        self.context = np.zeros((1, self.context_size), dtype=np.float32)

    def __call__(self, chunk):
        x = np.concatenate([self.context, chunk[np.newaxis, :]], axis=1)
        out, self.state = self.session.run(
            None, {"input": x, "state": self.state, "sr": self.sr}
        )
        self.context = x[:, -self.context_size :]
        return float(out[0, 0])


def windows(samples, size):
    pad = (-len(samples)) % size
    if pad:
        samples = np.concatenate([samples, np.zeros(pad, dtype=np.float32)])
    return [samples[i : i + size] for i in range(0, len(samples), size)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("wav")
    ap.add_argument("--model", default=None)
    ap.add_argument("--bench", type=int, default=0, metavar="N")
    args = ap.parse_args()
    samples, rate = read_wav(args.wav)
    if rate not in (8000, 16000):
        sys.exit(f"{args.wav}: expected 8000 or 16000 Hz, got {rate}")
    vad = Silero(args.model or default_model(), rate)
    chunks = windows(samples, vad.window)
    probs = [vad(c) for c in chunks]
    result = {"rate": rate, "window": vad.window, "probs": probs}
    if args.bench > 0:
        start = time.perf_counter()
        for _ in range(args.bench):
            vad.reset()
            for c in chunks:
                vad(c)
        elapsed = time.perf_counter() - start
        result["us_per_window"] = elapsed / (args.bench * len(chunks)) * 1e6
        result["onnxruntime"] = onnxruntime.__version__
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
