//! A stateful inline-source class gives the same outputs in the cpython and process hosts.

use remotemedia_core::executor::{run_pipeline, RunOptions};
use remotemedia_core::manifest::{self, Format};
use remotemedia_core::Data;

#[test]
fn stateful_source_class_runs_in_cpython_and_process_hosts() {
    for rt in ["cpython", "process"] {
        let m = format!(
            r#"{{"version":"v1","metadata":{{"name":"t"}},"nodes":[{{"id":"py","node_type":"PythonNode","params":{{"class":"Add","runtime":"{rt}","source":"class Add:\n    def __init__(self, n=1):\n        self.n = n\n        self.count = 0\n    def process(self, x):\n        self.count += 1\n        return x + self.n + self.count\n","init":{{"n":10}}}}}}],"connections":[]}}"#
        );
        let reg = remotemedia_python::registry();
        let p = manifest::load_str(&m, Format::Json, &reg).unwrap();
        let r = run_pipeline(
            &p,
            &reg,
            vec![Data::Int(1), Data::Int(2)],
            &RunOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{rt}: {}", e.error));
        assert_eq!(
            r.outputs[0].items,
            vec![Data::Int(12), Data::Int(14)],
            "host {rt}"
        );
    }
}
