//! Decoding a token allocates nothing: the forward pass and the sampler work in buffers
//! allocated when the session and sampler were made. A counting global allocator (for this test
//! binary only) proves it, with one and two kernel threads.

mod common;

use bitnet_engine::{LoadOptions, Model, Sampler, SamplingParams};
use bitnet_test_support::alloc::{Counting, fewest_allocations};

#[global_allocator]
static GLOBAL: Counting = Counting;

fn decode_allocations(threads: usize) -> usize {
    let opts = LoadOptions {
        threads,
        ..LoadOptions::default()
    };
    let model = Model::load(&common::fixture("i2s/model-i2_s.gguf"), &opts).unwrap();
    let mut session = model.new_session();
    let params = SamplingParams {
        temperature: 0.9,
        repeat_penalty: 1.1,
        presence_penalty: 0.5,
        frequency_penalty: 0.3,
        seed: 3,
        ..SamplingParams::default()
    };
    let mut sampler = Sampler::new(params, model.config().vocab_size).unwrap();
    let mut history = Vec::with_capacity(128);
    history.extend_from_slice(&[1u32, 10, 20, 30]);
    let logits = model.forward(&mut session, &history).unwrap();
    let mut next = sampler.sample(logits, &history);
    // Warm-up steps (thread pool start-up, lazy initialisation).
    for _ in 0..3 {
        history.push(next);
        let logits = model.forward(&mut session, &[next]).unwrap();
        next = sampler.sample(logits, &history);
    }
    // Three windows of 16 steps: a per-token allocation shows in each.
    fewest_allocations(3, || {
        for _ in 0..16 {
            history.push(next);
            let logits = model.forward(&mut session, &[next]).unwrap();
            next = sampler.sample(logits, &history);
        }
    })
}

#[test]
fn decoding_allocates_nothing_per_token() {
    assert_eq!(
        decode_allocations(1),
        0,
        "allocations in 16 decode steps, 1 thread"
    );
    assert_eq!(
        decode_allocations(2),
        0,
        "allocations in 16 decode steps, 2 threads"
    );
}
