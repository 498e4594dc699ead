//! Pipeline behaviour on the tiny random Llama: failover with replay (acceptance 3),
//! shard-count independence, f16 wire format, work records and activation commitments.

mod common;

use common::*;
use neuroshard_inference::commitment::CHUNK_POSITIONS;
use neuroshard_inference::{
    decode, ActivationCommitment, DecodeOptions, Hop, InProcessTransport, NgramDrafter,
    PipelineClient, Shard, ShardTransport, WireDType,
};
use std::sync::Arc;

#[test]
fn failover_mid_generation_gives_the_same_output() {
    let (w, hash) = tiny_model();
    let ranges = [(0, 2), (2, 4), (4, 6)];
    let main = transports(&w, hash, &ranges);
    let backup = Arc::new(InProcessTransport::new(Arc::new(
        Shard::new(w.slice(2..4).unwrap(), hash).unwrap(),
    )));
    let opts = DecodeOptions {
        max_tokens: 40,
        ..Default::default()
    };
    let prompt = [1u32, 10, 20, 30, 40, 10, 20];
    for speculative in [false, true] {
        main[1].set_alive(true);
        let reference = {
            let mut c = client(&main, hash, 1);
            let mut ngram = NgramDrafter::default();
            let d = if speculative {
                Some(&mut ngram as &mut dyn neuroshard_inference::Drafter)
            } else {
                None
            };
            decode(&mut c, &prompt, &opts, d, &mut |_| {})
                .unwrap()
                .tokens
        };
        let hops = vec![
            Hop::new(vec![main[0].clone() as Arc<dyn ShardTransport>]),
            Hop::new(vec![
                main[1].clone() as Arc<dyn ShardTransport>,
                backup.clone(),
            ]),
            Hop::new(vec![main[2].clone() as Arc<dyn ShardTransport>]),
        ];
        let mut c = PipelineClient::new(hash, [2; 16], hops).unwrap();
        let mut seen = 0;
        let victim = main[1].clone();
        let mut ngram = NgramDrafter::default();
        let d = if speculative {
            Some(&mut ngram as &mut dyn neuroshard_inference::Drafter)
        } else {
            None
        };
        let out = decode(&mut c, &prompt, &opts, d, &mut |_| {
            seen += 1;
            if seen == 15 {
                victim.set_alive(false);
            }
        })
        .unwrap();
        assert_eq!(out.tokens, reference, "speculative={speculative}");
        assert_eq!(c.failovers(), 1);
        assert!(backup.shard().cached_len(&[2; 16]) >= prompt.len() + 15);
        backup.shard().truncate_session(&[2; 16], 3).unwrap();
        assert_eq!(backup.shard().cached_len(&[2; 16]), 3);
        backup.shard().end_session(&[2; 16]);
    }
}

#[test]
fn shard_layout_and_f16_wire_do_not_change_greedy_output() {
    let (w, hash) = tiny_model();
    let prompt = [1u32, 3, 5, 7, 11, 13];
    let opts = DecodeOptions {
        max_tokens: 24,
        ..Default::default()
    };
    let one = decode(
        &mut client(&transports(&w, hash, &[(0, 6)]), hash, 1),
        &prompt,
        &opts,
        None,
        &mut |_| {},
    )
    .unwrap();
    let six_ranges: Vec<(usize, usize)> = (0..6).map(|i| (i, i + 1)).collect();
    let six = decode(
        &mut client(&transports(&w, hash, &six_ranges), hash, 1),
        &prompt,
        &opts,
        None,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(one.tokens, six.tokens);
    let mut half =
        client(&transports(&w, hash, &[(0, 3), (3, 6)]), hash, 1).with_wire(WireDType::F16);
    let h = decode(&mut half, &prompt, &opts, None, &mut |_| {}).unwrap();
    // f16 rounding between hops may flip a near tie late; the start must agree.
    assert_eq!(h.tokens[..8], one.tokens[..8]);
}

#[test]
fn work_records_carry_verifiable_commitments() {
    let (w, hash) = tiny_model();
    let ts = transports(&w, hash, &[(0, 2), (2, 4), (4, 6)]);
    let mut c = client(&ts, hash, 3);
    let prompt: Vec<u32> = (1..40).collect();
    let opts = DecodeOptions {
        max_tokens: 30,
        ..Default::default()
    };
    let out = decode(
        &mut c,
        &prompt,
        &opts,
        Some(&mut NgramDrafter::default()),
        &mut |_| {},
    )
    .unwrap();
    let until = out.accepted_positions as u32;
    assert_eq!(until as usize, prompt.len() + 29);
    let records = record_served(&ts, &c, until);
    assert_eq!(records.len(), 3);
    for (r, range) in records.iter().zip([(0, 2), (2, 4), (4, 6)]) {
        let work = &r.record;
        assert_eq!(
            (work.position_start, work.position_end, work.seq),
            (0, until, 0)
        );
        assert_eq!((work.layers.start, work.layers.end), range);
        assert_eq!(work.model, hash);
        assert_eq!(work.session, c.session());
        assert_eq!(work.commitment, r.commitment.hash());
        let bytes = r.commitment.encode();
        assert_eq!(
            ActivationCommitment::decode(&bytes).as_ref(),
            Some(&r.commitment)
        );
        // One record per position: a norm and the largest values, 20 bytes.
        assert_eq!(r.commitment.positions.len(), until as usize);
        let per_32 = (bytes.len() - 10) * CHUNK_POSITIONS / until as usize;
        assert!(per_32 <= 640, "commitment is {per_32} bytes per 32 tokens");
    }
    // A record that claims other inputs than the hop was sent fails the client's check.
    let served = c.served(until);
    let mut forged = records[1].record.clone();
    forged.input_commitment = records[0].record.input_commitment;
    assert!(served[1].check(&forged).is_err());
    let mut short = records[1].record.clone();
    short.position_end -= 1;
    assert!(served[1].check(&short).is_err());
    // A validator re-running the middle shard on the same tokens gets a matching
    // commitment; a shard with other weights does not.
    let tokens: Vec<u32> = prompt
        .iter()
        .chain(&out.tokens)
        .copied()
        .take(until as usize)
        .collect();
    let recompute = |weights: &neuroshard_inference::ModelWeights| {
        let ts = transports(weights, hash, &[(0, 2), (2, 4), (4, 6)]);
        let mut c = client(&ts, hash, 9);
        c.forward(&tokens, 0, neuroshard_inference::HeadMode::Argmax)
            .unwrap();
        record_served(&ts, &c, until)
    };
    let again = recompute(&w);
    for (a, b) in records.iter().zip(&again) {
        assert!(a.commitment.matches(&b.commitment));
    }
    let dir = tempfile::tempdir().unwrap();
    neuroshard_inference::tiny::write_tiny_llama(dir.path(), 1234).unwrap();
    let other = neuroshard_inference::ModelWeights::load(
        &neuroshard_inference::ModelSource::Safetensors(dir.path().into()),
        None,
        neuroshard_inference::Precision::Native,
    )
    .unwrap();
    let forged = recompute(&other);
    assert!(!records[1].commitment.matches(&forged[1].commitment));
    // A second record continues where the first ended, with the next sequence number.
    let more = decode(
        &mut c,
        &tokens,
        &DecodeOptions {
            max_tokens: 5,
            ..Default::default()
        },
        None,
        &mut |_| {},
    )
    .unwrap();
    let next = record_served(&ts, &c, more.accepted_positions as u32);
    assert_eq!(
        (next[0].record.seq, next[0].record.position_start),
        (1, until)
    );
}

/// A transport that remembers the largest request it was sent.
struct Sizes {
    inner: Arc<InProcessTransport>,
    largest: std::sync::atomic::AtomicUsize,
}

impl ShardTransport for Sizes {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn layers(&self) -> neuroshard_primitives::LayerRange {
        self.inner.layers()
    }
    fn model(&self) -> neuroshard_primitives::Hash {
        self.inner.model()
    }
    fn forward(
        &self,
        req: &neuroshard_inference::ShardRequest,
    ) -> neuroshard_inference::Result<neuroshard_inference::ShardResponse> {
        let n = req.input.positions() as usize;
        self.largest
            .fetch_max(n, std::sync::atomic::Ordering::SeqCst);
        self.inner.forward(req)
    }
    fn end_session(&self, session: &neuroshard_primitives::SessionId) {
        self.inner.end_session(session)
    }
}

/// Requests of at most 8 positions (a long prompt in pieces, and a failover's replay in
/// pieces) give the output of unbounded ones, and the observer gets a turn between the
/// pieces, at each position they reach.
#[test]
fn bounded_requests_give_the_same_output_with_a_turn_between_them() {
    let (w, hash) = tiny_model();
    let main = transports(&w, hash, &[(0, 3), (3, 6)]);
    let backup = Arc::new(InProcessTransport::new(Arc::new(
        Shard::new(w.slice(3..6).unwrap(), hash).unwrap(),
    )));
    let prompt: Vec<u32> = (1..=21).collect();
    let unbounded = DecodeOptions {
        max_tokens: 24,
        ..Default::default()
    };
    let reference = decode(
        &mut client(&main, hash, 1),
        &prompt,
        &unbounded,
        None,
        &mut |_| {},
    )
    .unwrap()
    .tokens;
    let sizes: Vec<Arc<Sizes>> = [main[0].clone(), main[1].clone(), backup.clone()]
        .into_iter()
        .map(|inner| {
            Arc::new(Sizes {
                inner,
                largest: Default::default(),
            })
        })
        .collect();
    let hops = vec![
        Hop::new(vec![sizes[0].clone() as Arc<dyn ShardTransport>]),
        Hop::new(vec![
            sizes[1].clone() as Arc<dyn ShardTransport>,
            sizes[2].clone(),
        ]),
    ];
    let mut c = PipelineClient::new(hash, [4; 16], hops).unwrap();

    struct Watch<'a> {
        seen: usize,
        victim: &'a InProcessTransport,
        turns: Vec<usize>,
    }
    impl neuroshard_inference::DecodeObserver for Watch<'_> {
        fn on_token(&mut self, _: u32) -> bool {
            self.seen += 1;
            if self.seen == 10 {
                self.victim.set_alive(false);
            }
            true
        }
        fn before_round(
            &mut self,
            _: &PipelineClient,
            accepted: usize,
        ) -> neuroshard_inference::Result<()> {
            self.turns.push(accepted);
            Ok(())
        }
    }
    let mut watch = Watch {
        seen: 0,
        victim: &main[1],
        turns: Vec::new(),
    };
    let bounded = DecodeOptions {
        max_request: Some(8),
        ..unbounded
    };
    let out =
        neuroshard_inference::decode_until(&mut c, &prompt, &bounded, None, &mut watch).unwrap();
    assert_eq!(out.tokens, reference);
    assert_eq!(c.failovers(), 1);
    for s in &sizes {
        assert!(s.largest.load(std::sync::atomic::Ordering::SeqCst) <= 8);
    }
    // The prompt in pieces of 8, then one turn per round; the replay after the tenth
    // token (30 positions held) in pieces of 8 too.
    assert_eq!(watch.turns[..2], [8, 16]);
    let replay = [8, 16, 24];
    assert!(
        watch.turns.windows(3).any(|w| w == replay),
        "{:?}",
        watch.turns
    );
    main[1].set_alive(true);
}
