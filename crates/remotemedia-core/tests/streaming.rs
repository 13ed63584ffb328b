//! Streaming sessions: ordering, end of stream, failure, and bounded memory under
//! backpressure.

mod common;

use common::{load, registry};
use remotemedia_core::executor::{start_session, RunOptions};
use remotemedia_core::plan::Plan;
use remotemedia_core::Data;

const SLOW_TAIL: &str = r#"
version: v1
metadata: { name: slow-tail }
nodes:
  - { id: src, node_type: PassThrough }
  - { id: add, node_type: Calculator, params: { operation: add, operand: 1 } }
  - { id: slow, node_type: Probe, params: { dedicated: true, spin_us: SPIN } }
connections: [ {from: src, to: add}, {from: add, to: slow} ]
"#;

#[test]
fn a_million_items_with_a_slow_tail_stay_within_the_queue_bounds() {
    const N: i64 = 1_000_000;
    let (r, _) = registry();
    let p = load(&SLOW_TAIL.replace("SPIN", "1"), &r);
    let opts = RunOptions {
        batch_size: 64,
        channel_capacity: 4,
        force_threads: true,
        ..RunOptions::default()
    };
    let (tx, mut rx) = start_session(Plan::build(&p, &r).unwrap(), &opts)
        .unwrap()
        .into_split();
    let sender = std::thread::spawn(move || {
        let mut next = 0;
        while next < N {
            let batch: Vec<Data> = (next..(next + 500).min(N)).map(Data::Int).collect();
            next += batch.len() as i64;
            tx.send_batch(batch).unwrap();
        }
    });
    let mut expected = 1;
    while let Some((_, batch)) = rx.recv_batch() {
        for item in batch {
            assert_eq!(item, Data::Int(expected), "order along the path");
            expected += 1;
        }
    }
    sender.join().unwrap();
    assert_eq!(expected - 1, N, "every item came out");
    let res = rx.finish().unwrap();
    // Buffered = waiting in the queue (at most `capacity` batches) plus the one batch the
    // receiving stage has just taken off it.
    let bound = ((opts.channel_capacity + 1) * opts.batch_size) as u64;
    for q in &res.metrics.queues {
        assert_eq!((q.capacity_batches + 1) * q.max_batch, bound as usize);
        assert!(
            q.peak_items <= bound,
            "queue before `{}` held {} items, bound {bound}",
            q.stage_head,
            q.peak_items
        );
    }
    // The slow stage's queue really filled up: the sender was held back, not buffered.
    let slow_q = res
        .metrics
        .queues
        .iter()
        .find(|q| q.stage_head == "slow")
        .unwrap();
    assert!(slow_q.peak_items >= bound / 2, "{slow_q:?}");
    assert_eq!(res.metrics.items_in, N as u64);
    assert_eq!(res.metrics.node("slow").unwrap().items_out, N as u64);
}

#[test]
fn recv_ends_when_the_sender_is_dropped() {
    let (r, _) = registry();
    let p = load(&SLOW_TAIL.replace("SPIN", "0"), &r);
    let (tx, mut rx) = start_session(Plan::build(&p, &r).unwrap(), &RunOptions::default())
        .unwrap()
        .into_split();
    // From another thread, as documented: every queue is bounded, so a sender that
    // also has to receive could fill them all and wait for itself.
    let sender = std::thread::spawn(move || {
        for i in 0..10 {
            tx.send(Data::Int(i)).unwrap();
        }
        drop(tx);
    });
    let mut got = Vec::new();
    while let Some(item) = rx.recv() {
        assert_eq!(rx.sink_ids()[item.sink], "slow");
        got.push(item.item.as_i64().unwrap());
    }
    assert_eq!(got, (1..=10).collect::<Vec<_>>());
    sender.join().unwrap();
    let res = rx.finish().unwrap();
    assert_eq!(res.metrics.items_out, 10);
}

#[test]
fn a_failure_ends_the_session_and_finish_reports_it() {
    let (r, _) = registry();
    let yaml = SLOW_TAIL
        .replace("SPIN", "0")
        .replace("dedicated: true,", "dedicated: true, fail_on: 6,");
    let p = load(&yaml, &r);
    let (tx, mut rx) = start_session(Plan::build(&p, &r).unwrap(), &RunOptions::default())
        .unwrap()
        .into_split();
    let sender = std::thread::spawn(move || {
        let mut accepted = 0;
        for i in 0..100_000 {
            if tx.send(Data::Int(i)).is_err() {
                break;
            }
            accepted += 1;
        }
        accepted
    });
    let mut got = 0;
    while rx.recv().is_some() {
        got += 1;
    }
    let accepted = sender.join().unwrap();
    assert!(
        accepted < 100_000,
        "sends fail once the pipeline has failed"
    );
    let f = rx.finish().unwrap_err();
    let e = f.error.node_error().unwrap();
    assert_eq!(
        (e.node_id.as_str(), e.input_preview.as_deref()),
        ("slow", Some("6"))
    );
    assert_eq!(
        got, 5,
        "the outputs before the failing item, and nothing after it"
    );
}

#[test]
fn async_send_and_receive() {
    let (r, _) = registry();
    let p = load(&SLOW_TAIL.replace("SPIN", "0"), &r);
    let (tx, mut rx) = start_session(Plan::build(&p, &r).unwrap(), &RunOptions::default())
        .unwrap()
        .into_split();
    let producer = std::thread::spawn(move || {
        futures_lite_block_on(async {
            for i in 0..100 {
                tx.send_async(Data::Int(i)).await.unwrap();
            }
        })
    });
    let total = futures_lite_block_on(async {
        let mut n = 0;
        while let Some((_, b)) = rx.recv_batch_async().await {
            n += b.len();
        }
        n
    });
    producer.join().unwrap();
    assert_eq!(total, 100);
}

/// A minimal executor for the async test: polls with a thread-parking waker.
fn futures_lite_block_on<F: std::future::Future>(fut: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}
