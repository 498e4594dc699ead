//! Capacity probes measured as work done in a fixed window (issue 21).
//!
//! At the minute's probe instant a validator sends each worker it probes a fresh random
//! nonce. The worker then runs as many probe *jobs* as it can for `window` on the shard it
//! is probed on: job `j`'s input is [`crate::probe::probe_input`] of `positions`
//! positions from [`job_seed`] (the account's probe seed, the nonce and `j`), a fresh
//! prefill on the shard's executor (not through the serving batcher, so K accounts'
//! concurrent jobs batch no better than one account's). It runs [`STREAMS`] jobs at
//! once, more than a machine has cores, so one account keeps the machine as busy as K
//! accounts' concurrent probes would, and answers with the commitment
//! ([`ActivationCommitment`], the spot checks' top-k form) of every job it finished
//! within the window ([`run_window`]).
//!
//! The prober credits the number of finished jobs (layer-positions per second of the
//! window) and re-runs a sample of them ([`expected_commitment`]). Because every probe of
//! a minute covers the same wall-clock window, accounts sharing a machine share its
//! window: their jobs add up to what the machine does in it, however they are
//! interleaved or ordered. The nonce makes the inputs unknown before the instant, so
//! nothing can be computed ahead.

use crate::commitment::ActivationCommitment;
use crate::error::Result;
use crate::executor::{ExecInput, ShardExecutor};
use crate::messages::ShardInput;
use crate::probe::probe_input_for;
use crate::spot_check::work_topk;
use neuroshard_primitives::{blake2_256, Hash};
use parity_scale_codec::Encode;
use std::time::{Duration, Instant};

/// Jobs a worker runs at once (each a prefill whose products use the kernels' pool).
pub const STREAMS: usize = 4;
/// Most jobs one answer may carry (a bound on the answer's size and the prober's work).
pub const MAX_JOBS: usize = 4096;

/// What is left of the probe window `fires_at_ms .. fires_at_ms + window_ms` at Unix
/// millisecond `now_ms` (at most the window): every probe of a minute works in the same
/// wall-clock interval, so a machine's accounts whose probes arrive one after another
/// (relayed, or queued) do not get windows of their own.
pub fn window_left(fires_at_ms: u64, window_ms: u32, now_ms: u64) -> Duration {
    let end = fires_at_ms.saturating_add(u64::from(window_ms));
    Duration::from_millis(end.saturating_sub(now_ms).min(u64::from(window_ms)))
}

/// A machine of fixed capacity, for tests (`--fault-probe-jobs-per-sec`): every probe job
/// of the process, whichever window it belongs to, waits for its turn on one clock that
/// lets `rate` jobs start a second. Wall-clock capacity then no longer depends on what
/// else the host runs, so tests can compare one machine registered once with the same
/// machine behind many accounts; the real hardware's answer to that question (do K
/// concurrent windows get more out of the cores than one?) is `bench verify`'s.
#[derive(Debug)]
pub struct JobPacer {
    period: Duration,
    next: std::sync::Mutex<Instant>,
}

impl JobPacer {
    /// A pacer letting `rate` jobs (at least 1) start per second.
    pub fn new(rate: u32) -> Self {
        Self {
            period: Duration::from_secs(1) / rate.max(1),
            next: std::sync::Mutex::new(Instant::now()),
        }
    }

    /// Blocks until this caller's turn: turns are `period` apart, and one not taken
    /// (nobody waiting) is not saved up for a burst later.
    pub fn wait_turn(&self) {
        let turn = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let turn = (*next).max(Instant::now());
            *next = turn + self.period;
            turn
        };
        std::thread::sleep(turn.saturating_duration_since(Instant::now()));
    }
}

/// Unix milliseconds now.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The seed of job `job` of a probe: the account's probe seed of the minute, the
/// prober's nonce and the job's index.
pub fn job_seed(input_seed: &Hash, nonce: &Hash, job: u32) -> Hash {
    blake2_256(&(b"neuroshard/probe/job", input_seed, nonce, job).encode())
}

/// Runs probe jobs on `exec` for `window` (see the module docs) and returns each job
/// finished within it with its encoded commitment, in job order. A job that fails ends
/// the stream that ran it.
pub fn run_window(
    exec: &ShardExecutor,
    (input_seed, nonce): (&Hash, &Hash),
    positions: usize,
    window: Duration,
    pace: Option<&JobPacer>,
) -> Vec<(u32, Vec<u8>)> {
    let started = Instant::now();
    let next = std::sync::atomic::AtomicU32::new(0);
    let mut done: Vec<(u32, Vec<u8>)> = std::thread::scope(|scope| {
        let streams: Vec<_> = (0..STREAMS)
            .map(|_| {
                let next = &next;
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    while started.elapsed() < window {
                        if let Some(pace) = pace {
                            pace.wait_turn();
                        }
                        let job = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if job as usize >= MAX_JOBS {
                            break;
                        }
                        let seed = (input_seed, nonce);
                        let Ok(commitment) = expected_commitment(exec, seed, job, positions) else {
                            break;
                        };
                        if started.elapsed() <= window {
                            mine.push((job, commitment.encode()));
                        }
                    }
                    mine
                })
            })
            .collect();
        streams
            .into_iter()
            .flat_map(|s| s.join().unwrap_or_default())
            .collect()
    });
    done.sort_by_key(|(job, _)| *job);
    done
}

/// What job `job` of a probe commits to: the top-k of the change `exec`'s layers make
/// to the job's input (no LM head on the last shard, so a layer-position costs alike on
/// every shard). The worker and the prober's re-run compute it the same way.
pub fn expected_commitment(
    exec: &ShardExecutor,
    (input_seed, nonce): (&Hash, &Hash),
    job: u32,
    positions: usize,
) -> Result<ActivationCommitment> {
    let input = probe_input_for(exec, &job_seed(input_seed, nonce, job), positions)?;
    let hidden_in;
    let exec_input = match &input {
        ShardInput::Tokens(t) => ExecInput::Tokens(t),
        ShardInput::Hidden(a) => {
            hidden_in = a.to_tensor()?;
            ExecInput::Hidden(&hidden_in)
        }
    };
    let out = exec.forward(&mut exec.new_cache(), exec_input.clone(), 0)?;
    let topk = work_topk(exec, &exec_input, &out)?;
    Ok(ActivationCommitment::from_positions(0, &topk))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::{ModelSource, ModelWeights, Precision};

    #[test]
    fn late_probes_get_what_is_left_of_the_shared_window() {
        let ms = Duration::from_millis;
        assert_eq!(
            window_left(10_000, 1_000, 9_000),
            ms(1_000),
            "early: the window"
        );
        assert_eq!(window_left(10_000, 1_000, 10_000), ms(1_000));
        assert_eq!(window_left(10_000, 1_000, 10_300), ms(700));
        assert_eq!(window_left(10_000, 1_000, 12_000), ms(0));
    }

    #[test]
    fn finished_jobs_match_their_re_runs_and_other_nonces_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let source: ModelSource = crate::tiny::write_tiny_llama(dir.path(), 5).unwrap();
        let w = ModelWeights::load(&source, None, Precision::Native).unwrap();
        for (a, b) in [(0usize, 2usize), (2, 5)] {
            let exec = ShardExecutor::new(w.slice(a..b).unwrap()).unwrap();
            let (seed, nonce) = (Hash::repeat_byte(1), Hash::repeat_byte(2));
            let done = run_window(&exec, (&seed, &nonce), 8, Duration::from_millis(200), None);
            assert!(done.len() > STREAMS, "jobs finished: {}", done.len());
            for (job, bytes) in done.iter().take(3) {
                let claimed = ActivationCommitment::decode(bytes).unwrap();
                let ours = expected_commitment(&exec, (&seed, &nonce), *job, 8).unwrap();
                assert!(ours.matches(&claimed), "job {job}");
                let other = expected_commitment(&exec, (&seed, &seed), *job, 8).unwrap();
                assert!(!other.matches(&claimed), "job {job} under another nonce");
            }
        }
    }
}
