//! Resamples raw little-endian `f32` audio (interleaved) from a file into another, and
//! prints how long the in-memory resampling took (array to array, file reading and
//! writing not counted; wall and thread CPU time), as JSON on stdout. Used by `python/benchmarks/benchmark_resample.py`.
//!
//! ```text
//! resample_file FROM TO CHANNELS QUALITY RUNS INPUT.f32 OUTPUT.f32
//! ```

use std::process::ExitCode;
use std::time::Instant;

use remotemedia_audio::resample::{Quality, Resampler};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// CPU time of this thread in seconds: unlike wall time, not stretched when other
/// processes share the cores.
fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill in.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [from, to, channels, quality, runs, input, output] = args.as_slice() else {
        return Err(
            "usage: resample_file FROM TO CHANNELS QUALITY RUNS INPUT.f32 OUTPUT.f32".into(),
        );
    };
    let number = |name: &str, v: &str| v.parse::<u32>().map_err(|e| format!("{name} `{v}`: {e}"));
    let (from, to) = (number("FROM", from)?, number("TO", to)?);
    let channels = u16::try_from(number("CHANNELS", channels)?).map_err(|e| e.to_string())?;
    let runs = number("RUNS", runs)?.max(1);
    let quality = Quality::from_name_ignoring_case(quality)
        .ok_or_else(|| format!("QUALITY `{quality}`: expected low, medium, high or best"))?;
    let bytes = std::fs::read(input).map_err(|e| format!("{input}: {e}"))?;
    if bytes.len() % (4 * usize::from(channels.max(1))) != 0 {
        return Err(format!(
            "{input}: not a whole number of {channels}-channel f32 frames"
        ));
    }
    let samples: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let (mut times, mut cpu) = (Vec::new(), Vec::new());
    let mut out = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let cpu_start = thread_cpu_s();
        let mut r = Resampler::new(from, to, channels, quality).map_err(|e| e.to_string())?;
        let frames = (samples.len() / usize::from(channels)) as u64;
        out = Vec::with_capacity(r.output_len(frames) as usize * usize::from(channels));
        r.process(&samples, &mut out);
        r.flush(&mut out);
        times.push(start.elapsed().as_secs_f64());
        cpu.push(thread_cpu_s() - cpu_start);
    }
    let raw: Vec<u8> = out.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(output, raw).map_err(|e| format!("{output}: {e}"))?;
    let list = |v: &[f64]| {
        v.iter()
            .map(|t| format!("{t:.6}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "{{\"frames_out\": {}, \"times_s\": [{}], \"cpu_s\": [{}]}}",
        out.len() / usize::from(channels),
        list(&times),
        list(&cpu)
    );
    Ok(())
}
