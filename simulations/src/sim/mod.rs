//! The simulated world: nodes holding real `crdt::PollState`s, clients
//! casting votes through relays, pushes and `crdt::sync` sessions carried as
//! encoded bytes over [`Net`], and the fault schedule, all driven by one
//! event queue on simulated time and one seed (three ChaCha streams of it:
//! clients, links, timers).
//!
//! Nothing here reads the wall clock or iterates a hash map: the trace of a
//! run is a function of the scenario and the seed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use crdt::sync::{Config, Initiator, Message, Path, Responder, SetView};
use crdt::{
    Eligibility, EntryHash, Inserted, Poll, PollDraft, PollState, PublicKey, SecretKey, Signature,
    Vote, VoteBody, VoteId,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::check::{Check, Violation};
use crate::docs::{DocReplica, DocSession};
use crate::net::{Dropped, Net, Sent};
use crate::queue::{millis, secs, Micros, Queue};
use crate::replica::Replica;
use crate::scenario::{Fault, Reconnect, Scenario, Strategy};
use crate::stats::{Counters, Memory, Sample, VoteTimes};
use crate::trace::{Kind, Record, Trace, NONE};

mod clients;
mod documents;
mod end;
mod faults;
mod replication;
mod sessions;
mod votes;

use votes::all_entries;
pub(crate) use votes::{entries_messages, make_polls, make_vote};

/// A deliberate bug, to show what the checker reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injection {
    /// Node 0 acknowledges one vote, cast after a third of the voting time,
    /// without storing it.
    LoseAckedVote,
}

/// How to run a scenario.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// A deliberate bug, if any.
    pub injection: Option<Injection>,
}

/// Everything a finished run produced, before it is written out.
#[derive(Debug)]
pub struct Outcome {
    /// The scenario as run.
    pub scenario: Scenario,
    /// The seed used.
    pub seed: u64,
    /// SHA-256 of the event trace.
    pub trace_hash: String,
    /// Trace records.
    pub trace_events: u64,
    /// Events processed.
    pub events: u64,
    /// Counters.
    pub counters: Counters,
    /// Per-node samples over time.
    pub samples: Vec<Sample>,
    /// Per-vote times.
    pub votes: Vec<VoteTimes>,
    /// Times at which faults cleared (heal, restart, release, link up,
    /// clients back online).
    pub clearings: Vec<Micros>,
    /// Per clearing: when every vote accepted before it had been on every
    /// node (`None` if that never happened).
    pub converged_after: Vec<Option<Micros>>,
    /// When every node last became complete and stayed so, if it did.
    pub quiescent_at: Option<Micros>,
    /// Invariant violations, with the trace excerpt of the first.
    pub check: Check,
    /// The replicas' size at the end of the run.
    pub memory: Memory,
}

#[derive(Debug)]
enum Event {
    Arrival,
    Attempt {
        vote: u32,
        attempt: u32,
    },
    Request {
        vote: u32,
        node: u16,
    },
    Accept {
        vote: u32,
        node: u16,
        incarnation: u32,
    },
    Ack {
        vote: u32,
        node: u16,
    },
    AckTimeout {
        vote: u32,
        attempt: u32,
    },
    PushFlush {
        node: u16,
    },
    SyncRound {
        node: u16,
    },
    Deliver {
        from: u16,
        to: u16,
        epoch: u32,
        wire: Wire,
    },
    SessionTick {
        session: u64,
    },
    Sample,
    Fault(Action),
}

#[derive(Debug, Clone)]
enum Wire {
    Push(Rc<Vec<u8>>),
    /// A baseline document's group commits (automerge changes, a yrs update).
    DocPush {
        poll: u16,
        bytes: Rc<Vec<u8>>,
    },
    Sync {
        session: u64,
        to_initiator: bool,
        bytes: Vec<u8>,
    },
}

impl Wire {
    fn len(&self) -> usize {
        match self {
            Wire::Push(bytes) | Wire::DocPush { bytes, .. } => bytes.len(),
            Wire::Sync { bytes, .. } => bytes.len(),
        }
    }
}

#[derive(Debug, Clone)]
enum Action {
    Partition(Vec<Vec<usize>>),
    Heal,
    Hold(usize, usize),
    Release(usize, usize),
    Cut(usize, usize),
    Restore(usize, usize),
    Crash(usize),
    Restart(usize),
    DropInFlight,
    ClientsOffline,
    ClientsOnline,
}

#[derive(Debug)]
struct Node {
    region: usize,
    up: bool,
    incarnation: u32,
    replicas: Vec<Replica>,
    /// automerge and yrs strategies: the node's document of each poll (the
    /// replicas above then only mirror what the documents hold, for the
    /// checks); empty for votemesh and naive.
    docs: Vec<DocReplica>,
    /// What this node acknowledged to clients: flushed before the ack, so it
    /// survives a crash. Entries learned from peers live in memory only.
    durable: BTreeSet<u32>,
    push_buf: Vec<u32>,
    push_scheduled: bool,
    ingest_free_at: Micros,
    held: u64,
    next_peer: usize,
    bytes_sent: u64,
    messages_sent: u64,
}

#[derive(Debug)]
struct VoteRec {
    vote: Vote,
    poll: u16,
    relay: u32,
    offline_until: Micros,
    attempt: u32,
    holders: u32,
    accepted: bool,
    times: VoteTimes,
}

#[derive(Debug)]
enum Machine {
    Votemesh {
        initiator: Box<Initiator>,
        responder: Option<Box<Responder>>,
    },
    Naive,
    /// automerge's sync protocol or the yrs state-vector exchange.
    Doc {
        initiator: DocSession,
        responder: Option<DocSession>,
    },
}

#[derive(Debug)]
struct Session {
    poll: usize,
    initiator: usize,
    responder: usize,
    incarnations: (u32, u32),
    machine: Machine,
    last_activity: Micros,
    done: (bool, bool),
}

/// The simulator.
pub struct Sim {
    scenario: Scenario,
    seed: u64,
    injection: Option<Injection>,
    injected: bool,
    /// Clients: arrivals, votes, offline spells, retries, the access path.
    rng: ChaCha8Rng,
    /// Node-to-node links: loss and jitter.
    net_rng: ChaCha8Rng,
    /// Sync timers: phases and jittered intervals.
    timer_rng: ChaCha8Rng,
    queue: Queue<Event>,
    trace: Trace,
    net: Net,
    polls: Vec<Poll>,
    nodes: Vec<Node>,
    votes: Vec<VoteRec>,
    index: HashMap<EntryHash, u32>,
    truth: Vec<PollState>,
    accepted: u64,
    complete: usize,
    complete_since: Option<Micros>,
    sessions: BTreeMap<u64, Session>,
    active: BTreeSet<(usize, usize, usize)>,
    next_session: u64,
    held: Vec<(usize, usize, Wire)>,
    clients_offline: bool,
    clearings: Vec<Micros>,
    /// Per clearing: the votes accepted by then and not yet on every node.
    open_clearings: Vec<(usize, BTreeSet<u32>)>,
    converged_after: Vec<Option<Micros>>,
    counters: Counters,
    samples: Vec<Sample>,
    check: Check,
    events: u64,
    now: Micros,
    end: Micros,
    stop_votes: Micros,
    sync_config: Config,
}

impl Sim {
    /// Builds the world and schedules the first events.
    ///
    /// # Panics
    ///
    /// If the scenario's strategy is automerge or yrs in a build without the
    /// `baselines` feature (`Scenario::load` and `Scenario::set` refuse it).
    pub fn new(scenario: Scenario, options: &Options) -> Sim {
        assert!(
            Strategy::available().contains(&scenario.sync.strategy),
            "strategy {} needs the `baselines` feature",
            scenario.sync.strategy.name()
        );
        let seed = options.seed.unwrap_or(scenario.seed);
        let polls = make_polls(scenario.topology.polls, scenario.topology.options);
        let region: Vec<usize> = (0..scenario.nodes())
            .map(|n| n / scenario.topology.nodes_per_region)
            .collect();
        let strategy = scenario.sync.strategy;
        let nodes = region
            .iter()
            .enumerate()
            .map(|(node, &region)| Node {
                region,
                up: true,
                incarnation: 0,
                replicas: polls.iter().cloned().map(Replica::new).collect(),
                docs: DocReplica::for_polls(strategy, polls.len(), node, 0),
                durable: BTreeSet::new(),
                push_buf: Vec::new(),
                push_scheduled: false,
                ingest_free_at: 0,
                held: 0,
                next_peer: 0,
                bytes_sent: 0,
                messages_sent: 0,
            })
            .collect();
        let sync_config = Config {
            timeout_ms: scenario.sync.session_timeout_ms as u64,
            ..Config::default()
        };
        let mut sim = Sim {
            seed,
            injection: options.injection,
            injected: false,
            rng: stream(seed, 0),
            net_rng: stream(seed, 1),
            timer_rng: stream(seed, 2),
            queue: Queue::default(),
            trace: Trace::new(scenario.keep_trace),
            net: Net::new(region, scenario.links.clone()),
            truth: polls.iter().cloned().map(PollState::new).collect(),
            polls,
            nodes,
            votes: Vec::new(),
            index: HashMap::new(),
            accepted: 0,
            complete: scenario.nodes(),
            complete_since: Some(0),
            sessions: BTreeMap::new(),
            active: BTreeSet::new(),
            next_session: 0,
            held: Vec::new(),
            clients_offline: false,
            clearings: Vec::new(),
            open_clearings: Vec::new(),
            converged_after: Vec::new(),
            counters: Counters::default(),
            samples: Vec::new(),
            check: Check::default(),
            events: 0,
            now: 0,
            end: secs(scenario.duration_s),
            stop_votes: secs(scenario.votes.stop_at_s),
            sync_config,
            scenario,
        };
        sim.schedule_start();
        sim
    }

    fn schedule_start(&mut self) {
        // Fixed-count runs cast at the middle of each slot.
        let first = match self.scenario.votes.count {
            Some(_) => self.next_arrival_gap() / 2,
            None => self.next_arrival_gap(),
        };
        self.queue.push(first, Event::Arrival);
        self.queue.push(0, Event::Sample);

        // Sync rounds start at random phases so nodes do not tick in lockstep.
        let interval = secs(self.scenario.sync.interval_s);
        for node in 0..self.nodes.len() {
            let phase = self.timer_rng.gen_range(0..interval.max(1));
            self.queue
                .push(phase, Event::SyncRound { node: node as u16 });
        }

        for fault in self.scenario.faults.clone() {
            for (at, action) in actions(&fault) {
                self.queue.push(at, Event::Fault(action));
            }
        }
    }

    /// Runs to the end; `progress` hears the simulated time now and then.
    pub fn run(mut self, progress: &mut dyn FnMut(Micros)) -> Outcome {
        while let Some((at, event)) = self.queue.pop() {
            if at > self.end {
                break;
            }
            self.now = at;
            self.events += 1;
            if self.events.is_multiple_of(8192) {
                progress(at);
            }
            self.handle(event);
        }
        self.now = self.end;
        progress(self.end);
        self.finish()
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Arrival => self.on_arrival(),
            Event::Attempt { vote, attempt } => self.on_attempt(vote, attempt),
            Event::Request { vote, node } => self.on_request(vote, node as usize),
            Event::Accept {
                vote,
                node,
                incarnation,
            } => self.on_accept(vote, node as usize, incarnation),
            Event::Ack { vote, node } => self.on_ack(vote, node as usize),
            Event::AckTimeout { vote, attempt } => self.on_ack_timeout(vote, attempt),
            Event::PushFlush { node } => self.on_push_flush(node as usize),
            Event::SyncRound { node } => self.on_sync_round(node as usize),
            Event::Deliver {
                from,
                to,
                epoch,
                wire,
            } => self.on_deliver(from as usize, to as usize, epoch, wire),
            Event::SessionTick { session } => self.on_session_tick(session),
            Event::Sample => self.on_sample(),
            Event::Fault(action) => self.on_fault(action),
        }
    }

    fn record(&mut self, kind: Kind, node: u32, peer: u32, vote: u32, extra: u64) {
        self.trace.push(Record {
            at: self.now,
            kind,
            node,
            peer,
            vote,
            extra,
        });
    }
}

/// One ChaCha stream of the run's seed. Separate streams for clients, links
/// and timers keep the votes and their arrival times identical across
/// strategies and sync settings run with the same seed (common random
/// numbers), so comparisons see the same workload.
fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Splits the fault schedule into timed actions.
fn actions(fault: &Fault) -> Vec<(Micros, Action)> {
    match fault.clone() {
        Fault::Partition { at_s, groups } => vec![(secs(at_s), Action::Partition(groups))],
        Fault::Heal { at_s } => vec![(secs(at_s), Action::Heal)],
        Fault::Hold { at_s, a, b } => vec![(secs(at_s), Action::Hold(a, b))],
        Fault::Release { at_s, a, b } => vec![(secs(at_s), Action::Release(a, b))],
        Fault::Crash { at_s, node } => vec![(secs(at_s), Action::Crash(node))],
        Fault::Restart { at_s, node } => vec![(secs(at_s), Action::Restart(node))],
        Fault::DropInFlight { at_s } => vec![(secs(at_s), Action::DropInFlight)],
        Fault::ClientsOffline { at_s, until_s } => vec![
            (secs(at_s), Action::ClientsOffline),
            (secs(until_s), Action::ClientsOnline),
        ],
        Fault::Flap {
            a,
            b,
            from_s,
            until_s,
            period_s,
        } => {
            let mut out = Vec::new();
            let mut t = from_s;
            while t < until_s {
                out.push((secs(t), Action::Cut(a, b)));
                let up = (t + period_s / 2.0).min(until_s);
                out.push((secs(up), Action::Restore(a, b)));
                t += period_s.max(1e-3);
            }
            out
        }
    }
}
