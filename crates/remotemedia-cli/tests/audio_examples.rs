//! The commands of README.md's "Audio" section, run exactly as written (with the
//! `remotemedia` of this build first on the `PATH`), in order, in one directory with
//! the repository's `examples/`, and their results checked.

mod support;

use support::{readme_commands, run_as_written, wav_spec};

#[test]
fn the_readme_audio_commands_run_as_written() {
    let commands = readme_commands("audio-examples", &["remotemedia"]);
    assert_eq!(commands.len(), 6, "{commands:#?}");
    let dir = tempfile::tempdir().unwrap();
    let stdouts = run_as_written(dir.path(), &commands);
    // The tone: 3 s at 48 kHz stereo.
    assert_eq!(wav_spec(&dir.path().join("tone.wav")), (48_000, 2, 144_000));
    // Resampled: 3 s at 16 kHz, the exact ratio.
    assert_eq!(
        wav_spec(&dir.path().join("tone-16k.wav")),
        (16_000, 2, 48_000)
    );
    // Downmixed: mono, same length.
    assert_eq!(wav_spec(&dir.path().join("mono.wav")), (48_000, 1, 144_000));
    // The level meter: 6 events of 500 ms, a half-scale sine is -9 dBFS RMS, -6 dBFS peak.
    for text in [&stdouts[3], &stdouts[4], &stdouts[5]] {
        let events: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(events.len(), 6, "{text}");
        for (k, e) in events.iter().enumerate() {
            assert_eq!(e["type"], "level");
            // Each event is stamped with the end of the 500 ms it measured.
            assert_eq!(e["pts_us"], 500_000 * (k as i64 + 1), "{e}");
            let rms = e["rms_dbfs"][0].as_f64().unwrap();
            let peak = e["peak_dbfs"][0].as_f64().unwrap();
            assert!((rms - -9.03).abs() < 0.1, "{e}");
            assert!((peak - -6.02).abs() < 0.1, "{e}");
        }
    }
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("metrics.json")).unwrap()).unwrap();
    assert!(metrics.to_string().contains("p99"), "{metrics}");
}
