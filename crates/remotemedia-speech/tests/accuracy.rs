//! Accuracy of `VoiceActivity` on a corpus made here: espeak-ng sentences separated by
//! known silences of 0.3–2 s, clean and mixed with white and pink noise at 20, 10 and
//! 5 dB SNR. Per 32 ms frame: precision, recall, F1; and the boundary error of the
//! utterances. Targets: silero F1 ≥ 0.95 clean and ≥ 0.90 at 10 dB SNR.

mod support;

use support::*;

struct Row {
    name: String,
    silero: Option<Scores>,
    energy: Scores,
}

fn evaluate(samples: &[f32], truth: &[bool], engine: &str) -> Scores {
    let events = run_node(&format!("{{ engine: {engine} }}"), samples, 320, 0);
    let segs = segments_of(&events);
    let got = frames_of(&segs, truth.len());
    eprintln!("  {engine}: {} utterances", segs.len());
    score(truth, &got, &segments_of_frames(truth), &segs)
}

#[test]
fn silero_meets_its_targets_and_energy_is_reported_beside_it() {
    let Some(clean) = corpus() else { return };
    let model = model();
    let t = truth(clean);
    let speech_s = t.iter().filter(|&&x| x).count() as f64 * FRAME as f64 / f64::from(RATE);
    eprintln!(
        "corpus: {:.1} s, {:.1} s of speech in {} utterances",
        clean.len() as f64 / f64::from(RATE),
        speech_s,
        segments_of_frames(&t).len()
    );
    assert_eq!(
        segments_of_frames(&t).len(),
        12,
        "the truth finds each sentence"
    );

    let mut cases: Vec<(String, Vec<f32>)> = vec![("clean".into(), clean.to_vec())];
    for (kind, seed) in [(Noise::White, 11), (Noise::Pink, 12)] {
        for snr in [20.0, 10.0, 5.0] {
            cases.push((
                format!("{kind:?} {snr} dB").to_lowercase(),
                mix(clean, &t, kind, snr, seed),
            ));
        }
    }
    let rows: Vec<Row> = cases
        .iter()
        .map(|(name, s)| Row {
            name: name.clone(),
            silero: model.as_ref().map(|_| evaluate(s, &t, "silero")),
            energy: evaluate(s, &t, "energy"),
        })
        .collect();
    eprintln!(
        "{:<14} {:>27}   {:>27}",
        "", "silero P / R / F1 / bound ms", "energy P / R / F1 / bound ms"
    );
    let fmt = |s: &Scores| {
        format!(
            "{:.3} / {:.3} / {:.3} / {:>5.0}",
            s.precision, s.recall, s.f1, s.boundary_ms
        )
    };
    for r in &rows {
        eprintln!(
            "{:<14} {:>27}   {:>27}",
            r.name,
            r.silero.as_ref().map_or("-".to_string(), fmt),
            fmt(&r.energy)
        );
    }
    // The energy engine must work on clean speech at least.
    assert!(
        rows[0].energy.f1 >= 0.9,
        "energy clean F1 {}",
        rows[0].energy.f1
    );
    if model.is_none() {
        return;
    }
    let f1 = |name: &str| {
        rows.iter()
            .find(|r| r.name == name)
            .and_then(|r| r.silero)
            .map(|s| s.f1)
            .unwrap()
    };
    assert!(f1("clean") >= 0.95, "silero clean F1 {}", f1("clean"));
    for name in ["white 20 db", "pink 20 db", "white 10 db", "pink 10 db"] {
        assert!(f1(name) >= 0.90, "silero {name} F1 {}", f1(name));
    }
    let clean = rows[0].silero.unwrap();
    assert!(
        clean.boundary_ms < 100.0,
        "silero clean boundary error {} ms",
        clean.boundary_ms
    );
}

#[test]
fn silero_at_8khz() {
    let (Some(clean), Some(_)) = (corpus(), model()) else {
        return;
    };
    let t = truth(clean);
    let truth_segs = segments_of_frames(&t);
    for (name, s, target) in [
        ("clean", clean.to_vec(), 0.95),
        ("pink 10 db", mix(clean, &t, Noise::Pink, 10.0, 21), 0.90),
    ] {
        let s8 = sox_resample(&s, 8_000);
        let segs = segments_of(&run_node_at("{}", &s8, 8_000, 160, 0));
        let sc = score(&t, &frames_of(&segs, t.len()), &truth_segs, &segs);
        eprintln!(
            "8 kHz {name}: P {:.3} R {:.3} F1 {:.3}, boundaries {:.0} ms",
            sc.precision, sc.recall, sc.f1, sc.boundary_ms
        );
        assert!(sc.f1 >= target, "8 kHz {name}: F1 {}", sc.f1);
    }
}
