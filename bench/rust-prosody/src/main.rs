//! prosody-rust-bench: the Prosody Rust core (crate `prosody`) in the same
//! benchmark runs as prosody-cpp's `prosody-bench consume`: same flags, same
//! handler (record the start, wait, done), same JSON fields on stdout, so
//! bench/run merges the three systems into one table.
//!
//!   prosody-rust-bench consume --bootstrap B --topic T [--records N --live]
//!       [--wait none|fixed:US|uniform:LO-HI] [--concurrency C] [--duration S]
//!       [--timeout S] [--ready-file F] [--group G] [--rss-sample-ms MS]
//!   prosody-rust-bench produce --bootstrap B --topic T --records N [--keys K]
//!       [--in-flight W]
//!
//! `consume` uses Prosody's pipeline consumer with in-memory stores against a
//! real broker (`mock(false)` + `TriggerStoreConfiguration::InMemory`), so no
//! Cassandra is involved. `produce` writes the records `prosody-bench produce`
//! writes (same keys, same ~100-byte JSON) through `ProsodyProducer::send`.
//! Built only by bench/run.

#![recursion_limit = "512"]

use std::convert::Infallible;
use std::future::{Future, ready};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prosody::producer::{ProducerConfiguration, ProsodyProducer};
use prosody::{JsonCodec, Topic};
use prosody::consumer::event_context::EventContext;
use prosody::consumer::message::ConsumerMessage;
use prosody::consumer::middleware::FallibleHandler;
use prosody::consumer::middleware::deduplication::DeduplicationConfigurationBuilder;
use prosody::consumer::middleware::defer::DeferConfigurationBuilder;
use prosody::consumer::middleware::monopolization::MonopolizationConfigurationBuilder;
use prosody::consumer::middleware::retry::RetryConfigurationBuilder;
use prosody::consumer::middleware::scheduler::SchedulerConfigurationBuilder;
use prosody::consumer::middleware::timeout::TimeoutConfigurationBuilder;
use prosody::consumer::middleware::topic::FailureTopicConfiguration;
use prosody::consumer::{
    CommonConfiguration, ConsumerConfiguration, ConsumerSetup, DemandType,
    KeyedStateConfiguration, LowLatencyMiddlewareConfiguration, PipelineMiddlewareConfiguration,
    ProsodyConsumer,
};
use prosody::high_level::config::TriggerStoreConfiguration;
use prosody::telemetry::Telemetry;
use prosody::timers::Trigger;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::{Value, json};

// ------------------------------------------------------------------ options

struct Options {
    /// `consume` or `produce`.
    command: String,
    bootstrap: String,
    topic: String,
    /// consume: `pipeline` or `low_latency` (the crate's third mode,
    /// best-effort, is not public in 0.7.1).
    mode: String,
    group: String,
    records: i64,
    live: bool,
    wait: (i64, i64),
    concurrency: usize,
    max_uncommitted: usize,
    duration_s: f64,
    timeout_s: f64,
    ready_file: String,
    rss_sample_ms: u64,
    /// produce: records are keyed `key-<i % keys>`.
    keys: i64,
    /// produce: sends awaiting their delivery report at once (one tokio
    /// task each). Well below librdkafka's queue.buffering.max.messages
    /// (100,000), so the producer never meets a full queue (its retry sleeps
    /// 100 ms). Chosen by a scan on the mock cluster (200k records, two
    /// rounds): 500 -> 61k/s, 1,000 -> 115k, 2,000 -> 217-225k, 3,000 ->
    /// 227-229k, 4,000 -> 213-219k, 8,000 -> 180-190k, 50,000 -> 141k (more
    /// tasks, more malloc contention: glibc's arena lock led the profile).
    in_flight: usize,
}

fn parse_wait(s: &str) -> Option<(i64, i64)> {
    if s == "none" {
        return Some((0, 0));
    }
    if let Some(v) = s.strip_prefix("fixed:") {
        let us = v.parse().ok()?;
        return Some((us, us));
    }
    let (lo, hi) = s.strip_prefix("uniform:")?.split_once('-')?;
    let (lo, hi): (i64, i64) = (lo.parse().ok()?, hi.parse().ok()?);
    (lo >= 0 && hi >= lo).then_some((lo, hi))
}

fn parse_args() -> Result<Options, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().cloned().unwrap_or_default();
    if command != "consume" && command != "produce" {
        return Err("usage: prosody-rust-bench consume|produce --bootstrap B --topic T [...]".into());
    }
    let mut o = Options {
        command,
        bootstrap: String::new(),
        topic: String::new(),
        mode: "pipeline".into(),
        group: format!("bench-rust-{}", std::process::id()),
        records: 0,
        live: false,
        wait: (0, 0),
        concurrency: 0,
        max_uncommitted: 0,
        duration_s: 0.0,
        timeout_s: 600.0,
        ready_file: String::new(),
        rss_sample_ms: 250,
        keys: 10_000,
        in_flight: 3_000,
    };
    let mut i = 1;
    while i < args.len() {
        let flag = args[i].as_str();
        if flag == "--live" {
            o.live = true;
            i += 1;
            continue;
        }
        let value = args.get(i + 1).ok_or(format!("{flag} needs a value"))?.clone();
        let bad = format!("bad value for {flag}: {value}");
        match flag {
            "--bootstrap" => o.bootstrap = value.clone(),
            "--topic" => o.topic = value.clone(),
            "--group" => o.group = value.clone(),
            "--records" => o.records = value.parse().map_err(|_| bad.clone())?,
            "--wait" => o.wait = parse_wait(&value).ok_or(format!("bad --wait {value}"))?,
            "--concurrency" => o.concurrency = value.parse().map_err(|_| bad.clone())?,
            "--max-uncommitted" => o.max_uncommitted = value.parse().map_err(|_| bad.clone())?,
            "--duration" => o.duration_s = value.parse().map_err(|_| bad.clone())?,
            "--timeout" => o.timeout_s = value.parse().map_err(|_| bad.clone())?,
            "--ready-file" => o.ready_file = value.clone(),
            "--rss-sample-ms" => o.rss_sample_ms = value.parse().map_err(|_| bad.clone())?,
            "--keys" => o.keys = value.parse().map_err(|_| bad.clone())?,
            "--in-flight" => o.in_flight = value.parse().map_err(|_| bad.clone())?,
            "--mode" => o.mode = value.clone(),
            // Accepted for symmetry with prosody-bench; Prosody Rust has no
            // pass-through of librdkafka properties (its prefetch is
            // librdkafka's default).
            "--system" | "--queued-min-messages" | "--queued-max-kbytes" => {}
            _ => return Err(format!("unknown flag {flag}")),
        }
        i += 2;
    }
    if o.bootstrap.is_empty() || o.topic.is_empty() {
        return Err("--bootstrap and --topic are required".into());
    }
    if o.mode != "pipeline" && o.mode != "low_latency" {
        return Err(format!("--mode {} is not one of pipeline, low_latency", o.mode));
    }
    if o.live && o.records <= 0 {
        return Err("--live needs --records".into());
    }
    if o.command == "produce" && (o.records <= 0 || o.keys <= 0 || o.in_flight == 0) {
        return Err("produce needs --records > 0, --keys > 0 and --in-flight > 0".into());
    }
    Ok(o)
}

// ------------------------------------------------------------- measurement

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn proc_status_kb(field: &str) -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix(field).and_then(|r| r.strip_prefix(':')) {
            return rest.trim().trim_end_matches("kB").trim().parse().unwrap_or(-1);
        }
    }
    -1
}

fn wall_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The same per-record wait as prosody-bench (bench/driver.cc WaitSpec).
fn wait_for_record(wait: (i64, i64), partition: i32, offset: i64) -> i64 {
    let (lo, hi) = wait;
    if hi <= lo {
        return lo;
    }
    let h = splitmix64(((partition as u64) << 40) ^ offset as u64);
    lo + (h % (hi - lo + 1) as u64) as i64
}

/// Log-linear latency histogram, the same layout as bench/latency_histogram.h.
struct Histogram {
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    negative: AtomicU64,
    max: AtomicI64,
}

const SUB: u64 = 64;
const EXACT: u64 = 2 * SUB;
const MAX_SHIFT: u64 = 40;

impl Histogram {
    fn new() -> Self {
        let n = (EXACT + MAX_SHIFT * SUB) as usize;
        Self {
            buckets: (0..n).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            negative: AtomicU64::new(0),
            max: AtomicI64::new(0),
        }
    }
    fn index_of(v: u64) -> usize {
        if v < EXACT {
            return v as usize;
        }
        let msb = 63 - u64::from(v.leading_zeros());
        let shift = msb - 6;
        if shift > MAX_SHIFT {
            return (EXACT + MAX_SHIFT * SUB - 1) as usize;
        }
        let top = v >> shift;
        (EXACT + (shift - 1) * SUB + (top - SUB)) as usize
    }
    fn midpoint(i: usize) -> f64 {
        let i = i as u64;
        if i < EXACT {
            return i as f64;
        }
        let shift = (i - EXACT) / SUB + 1;
        let top = (i - EXACT) % SUB + SUB;
        (top << shift) as f64 + ((1u64 << shift) - 1) as f64 / 2.0
    }
    fn record(&self, mut us: i64) {
        if us < 0 {
            self.negative.fetch_add(1, Ordering::Relaxed);
            us = 0;
        }
        self.buckets[Self::index_of(us as u64)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.max.fetch_max(us, Ordering::Relaxed);
    }
    fn percentile_us(&self, q: f64) -> f64 {
        let n = self.count.load(Ordering::Relaxed);
        if n == 0 {
            return 0.0;
        }
        let rank = ((q * n as f64) as u64).clamp(1, n);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return Self::midpoint(i);
            }
        }
        self.max.load(Ordering::Relaxed) as f64
    }
}

struct Marks {
    first: Option<(Instant, f64)>,
    last: Option<(Instant, f64)>,
}

/// What a run records; shared by the handler clones.
struct Recorder {
    expected: i64,
    seen: Vec<Vec<AtomicU64>>,
    capacity: Vec<i64>,
    latency: Histogram,
    done: AtomicI64,
    duplicates: AtomicI64,
    unexpected: AtomicI64,
    in_flight: AtomicI64,
    max_in_flight: AtomicI64,
    started: AtomicBool,
    marks: Mutex<Marks>,
    finished: Condvar,
}

impl Recorder {
    fn new(expected: i64, capacity: Vec<i64>) -> Self {
        Self {
            expected,
            seen: capacity
                .iter()
                .map(|c| (0..(c + 63) / 64).map(|_| AtomicU64::new(0)).collect())
                .collect(),
            capacity,
            latency: Histogram::new(),
            done: AtomicI64::new(0),
            duplicates: AtomicI64::new(0),
            unexpected: AtomicI64::new(0),
            in_flight: AtomicI64::new(0),
            max_in_flight: AtomicI64::new(0),
            started: AtomicBool::new(false),
            marks: Mutex::new(Marks { first: None, last: None }),
            finished: Condvar::new(),
        }
    }

    fn on_start(&self, partition: i32, offset: i64, ts_ms: i64) -> bool {
        let now = wall_us();
        if !self.started.load(Ordering::Acquire) {
            let mut m = self.marks.lock().unwrap();
            if m.first.is_none() {
                m.first = Some((Instant::now(), cpu_seconds()));
                self.started.store(true, Ordering::Release);
            }
        }
        let p = partition as usize;
        if partition < 0 || p >= self.seen.len() || offset < 0 || offset >= self.capacity[p] {
            self.unexpected.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let bit = 1u64 << (offset % 64);
        if self.seen[p][(offset / 64) as usize].fetch_or(bit, Ordering::Relaxed) & bit != 0 {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.latency.record(now - ts_ms * 1000);
        true
    }

    fn on_done(&self) {
        if self.done.fetch_add(1, Ordering::AcqRel) + 1 == self.expected {
            let mut m = self.marks.lock().unwrap();
            m.last = Some((Instant::now(), cpu_seconds()));
            self.finished.notify_all();
        }
    }

    /// Until all expected records are done, `duration_s` after the first, or
    /// `timeout_s` from now. True when all are done.
    fn wait(&self, duration_s: f64, timeout_s: f64) -> bool {
        let deadline = Instant::now() + Duration::from_secs_f64(timeout_s);
        let mut m = self.marks.lock().unwrap();
        loop {
            if m.last.is_some() {
                return true;
            }
            let mut until = deadline;
            if duration_s > 0.0 {
                if let Some((first, _)) = m.first {
                    until = until.min(first + Duration::from_secs_f64(duration_s));
                }
            }
            let now = Instant::now();
            if now >= until {
                break;
            }
            let step = (until - now).min(Duration::from_millis(100));
            m = self.finished.wait_timeout(m, step).unwrap().0;
        }
        m.last = Some((Instant::now(), cpu_seconds()));
        false
    }

    fn fill(&self, r: &mut serde_json::Map<String, Value>, t0: Instant, cpu0: f64) {
        let m = self.marks.lock().unwrap();
        let done = self.done.load(Ordering::Acquire);
        r.insert("expected".into(), json!(self.expected));
        r.insert("handled".into(), json!(done));
        r.insert("duplicates".into(), json!(self.duplicates.load(Ordering::Relaxed)));
        r.insert("unexpected".into(), json!(self.unexpected.load(Ordering::Relaxed)));
        r.insert("max_in_flight_seen".into(), json!(self.max_in_flight.load(Ordering::Relaxed)));
        if let (Some((f, fc)), Some((l, lc))) = (m.first, m.last) {
            let wall = (l - f).as_secs_f64();
            r.insert("startup_s".into(), json!((f - t0).as_secs_f64()));
            r.insert("wall_s".into(), json!(wall));
            r.insert("records_per_s".into(), json!(if wall > 0.0 { done as f64 / wall } else { 0.0 }));
            r.insert("cpu_s".into(), json!(lc - fc));
            if done > 0 {
                r.insert("cpu_us_per_record".into(), json!((lc - fc) * 1e6 / done as f64));
            }
            r.insert("startup_cpu_s".into(), json!(fc - cpu0));
        }
        let h = &self.latency;
        r.insert(
            "latency_ms".into(),
            json!({
                "p50": h.percentile_us(0.50) / 1000.0,
                "p99": h.percentile_us(0.99) / 1000.0,
                "p999": h.percentile_us(0.999) / 1000.0,
                "max": h.max.load(Ordering::Relaxed) as f64 / 1000.0,
                "samples": h.count.load(Ordering::Relaxed),
                "negative_clamped": h.negative.load(Ordering::Relaxed),
            }),
        );
    }
}

// ----------------------------------------------------------------- handler

#[derive(Clone)]
struct BenchHandler {
    rec: Arc<Recorder>,
    wait: (i64, i64),
}

impl FallibleHandler for BenchHandler {
    type Error = Infallible;
    type Output = ();
    type Payload = Value;

    async fn on_message<C>(
        &self,
        _context: C,
        message: ConsumerMessage<Value>,
        _demand_type: DemandType,
    ) -> Result<(), Infallible>
    where
        C: EventContext<Payload = Value>,
    {
        let (p, off) = (message.partition(), message.offset());
        let first = self.rec.on_start(p, off, message.timestamp().timestamp_millis());
        let now = self.rec.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.rec.max_in_flight.fetch_max(now, Ordering::Relaxed);
        let us = wait_for_record(self.wait, p, off);
        if us > 0 {
            tokio::time::sleep(Duration::from_micros(us as u64)).await;
        }
        self.rec.in_flight.fetch_sub(1, Ordering::Relaxed);
        if first {
            self.rec.on_done();
        }
        Ok(())
    }

    fn on_excise<C>(
        &self,
        _context: C,
        _message: ConsumerMessage<()>,
        _demand_type: DemandType,
    ) -> impl Future<Output = Result<(), Infallible>> + Send
    where
        C: EventContext<Payload = Value>,
    {
        ready(Ok(()))
    }

    fn on_timer<C>(
        &self,
        _context: C,
        _trigger: Trigger,
        _demand_type: DemandType,
    ) -> impl Future<Output = Result<(), Infallible>> + Send
    where
        C: EventContext<Payload = Value>,
    {
        ready(Ok(()))
    }

    async fn shutdown(self) {}
}

// --------------------------------------------------------------------- run

/// High watermarks of every partition of the topic (the topic's size).
fn topic_high_watermarks(bootstrap: &str, topic: &str) -> Result<Vec<i64>, String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench-rust-layout")
        .create()
        .map_err(|e| e.to_string())?;
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    let t = md.topics().first().ok_or("no topic metadata")?;
    if t.partitions().is_empty() {
        return Err(format!("topic {topic} not found"));
    }
    let mut high = Vec::new();
    for p in 0..t.partitions().len() as i32 {
        let (_, h) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        high.push(h);
    }
    Ok(high)
}

fn rss_sampler(period: Duration, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<(f64, f64)>> {
    std::thread::spawn(move || {
        let t0 = Instant::now();
        let mut v = Vec::with_capacity(20_000);
        while !stop.load(Ordering::Relaxed) {
            if v.len() < v.capacity() {
                v.push((t0.elapsed().as_secs_f64(), proc_status_kb("VmRSS") as f64 / 1024.0));
            }
            std::thread::sleep(period);
        }
        v
    })
}

async fn run(o: Options) -> Result<Value, String> {
    let t0 = Instant::now();
    let cpu0 = cpu_seconds();
    let stop_rss = Arc::new(AtomicBool::new(false));
    let sampler = rss_sampler(Duration::from_millis(o.rss_sample_ms), Arc::clone(&stop_rss));
    let high = topic_high_watermarks(&o.bootstrap, &o.topic)?;
    let total: i64 = high.iter().sum();
    let expected = if o.live { o.records } else if o.records > 0 { o.records.min(total) } else { total };
    let capacity: Vec<i64> = high.iter().map(|h| if o.live { h + o.records } else { *h }).collect();
    let rec = Arc::new(Recorder::new(expected, capacity));

    let mut builder = ConsumerConfiguration::builder();
    builder
        .bootstrap_servers(vec![o.bootstrap.clone()])
        .group_id(o.group.clone())
        .subscribed_topics(&[o.topic.clone()])
        .probe_port(None)
        .mock(false);
    if o.max_uncommitted > 0 {
        builder.max_uncommitted(o.max_uncommitted);
    }
    let consumer_config = builder.build().map_err(|e| e.to_string())?;
    let mut scheduler = SchedulerConfigurationBuilder::default();
    if o.concurrency > 0 {
        scheduler.max_concurrency(o.concurrency);
    }
    let common = CommonConfiguration {
        scheduler: scheduler.build().map_err(|e| e.to_string())?,
        timeout: TimeoutConfigurationBuilder::default().build().map_err(|e| e.to_string())?,
        dedup: DeduplicationConfigurationBuilder::default().build().map_err(|e| e.to_string())?,
        keyed_state: KeyedStateConfiguration::builder().build().map_err(|e| e.to_string())?,
    };
    let pipeline = PipelineMiddlewareConfiguration {
        retry: RetryConfigurationBuilder::default().build().map_err(|e| e.to_string())?,
        monopolization: MonopolizationConfigurationBuilder::default().build().map_err(|e| e.to_string())?,
        defer: DeferConfigurationBuilder::default().build().map_err(|e| e.to_string())?,
    };
    let handler = BenchHandler { rec: Arc::clone(&rec), wait: o.wait };
    let setup = ConsumerSetup {
        consumer: &consumer_config,
        trigger_store: &TriggerStoreConfiguration::InMemory,
        common: &common,
    };
    let consumer = if o.mode == "low_latency" {
        // Failed records would go to `bench-failures` (bench/run creates
        // it; none fail here), through a producer with the 1 s send timeout
        // Prosody's own low-latency wiring gives its producer.
        let producer_config = ProducerConfiguration::builder()
            .bootstrap_servers(vec![o.bootstrap.clone()])
            .source_system("bench-consumer")
            .send_timeout(Some(Duration::from_secs(1)))
            .mock(false)
            .build()
            .map_err(|e| e.to_string())?;
        let telemetry = Telemetry::new();
        let producer = ProsodyProducer::<JsonCodec>::new(&producer_config, telemetry.sender())
            .map_err(|e| format!("producer: {e}"))?;
        let low_latency = LowLatencyMiddlewareConfiguration {
            retry: RetryConfigurationBuilder::default().build().map_err(|e| e.to_string())?,
            failure_topic: FailureTopicConfiguration::builder()
                .failure_topic("bench-failures")
                .build()
                .map_err(|e| e.to_string())?,
        };
        ProsodyConsumer::<JsonCodec>::low_latency_consumer(setup, low_latency, producer, telemetry, handler)
            .await
            .map_err(|e| format!("low_latency_consumer: {e}"))?
    } else {
        ProsodyConsumer::<JsonCodec>::pipeline_consumer(setup, pipeline, Telemetry::new(), handler)
            .await
            .map_err(|e| format!("pipeline_consumer: {e}"))?
    };

    let partitions = high.len() as u32;
    while consumer.assigned_partition_count() < partitions && t0.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !o.ready_file.is_empty() {
        let _ = std::fs::write(&o.ready_file, "ready\n");
    }
    let waiter = Arc::clone(&rec);
    let (duration_s, timeout_s) = (o.duration_s, o.timeout_s);
    let done = tokio::task::spawn_blocking(move || waiter.wait(duration_s, timeout_s))
        .await
        .map_err(|e| e.to_string())?;
    let close_t0 = Instant::now();
    consumer.shutdown().await;
    let shutdown_s = close_t0.elapsed().as_secs_f64();

    let mut r = serde_json::Map::new();
    r.insert("kind".into(), json!("consume"));
    r.insert("system".into(), json!("rust"));
    r.insert("mode".into(), json!(o.mode));
    r.insert("topic".into(), json!(o.topic));
    r.insert("bootstrap".into(), json!(o.bootstrap));
    r.insert("group".into(), json!(o.group));
    r.insert("librdkafka_version".into(), json!(rdkafka::util::get_rdkafka_version().1));
    r.insert("prosody_crate_version".into(), json!("0.7.1"));
    r.insert("pid".into(), json!(std::process::id()));
    r.insert("partitions".into(), json!(partitions));
    r.insert("max_concurrency".into(), json!(common.scheduler.max_concurrency));
    r.insert("max_uncommitted".into(), json!(consumer_config.max_uncommitted));
    r.insert("shutdown_s".into(), json!(shutdown_s));
    rec.fill(&mut r, t0, cpu0);
    r.insert("complete".into(), json!(done || o.duration_s > 0.0));
    stop_rss.store(true, Ordering::Relaxed);
    let series = sampler.join().unwrap_or_default();
    r.insert(
        "rss_mb_series".into(),
        json!(series.iter().map(|(t, mb)| json!([(t * 1000.0).round() / 1000.0, (mb * 10.0).round() / 10.0])).collect::<Vec<_>>()),
    );
    r.insert("total_wall_s".into(), json!(t0.elapsed().as_secs_f64()));
    r.insert("total_cpu_s".into(), json!(cpu_seconds() - cpu0));
    r.insert("peak_rss_mb".into(), json!(proc_status_kb("VmHWM") as f64 / 1024.0));
    Ok(Value::Object(r))
}

// ----------------------------------------------------------------- produce

/// The record `prosody-bench produce` writes for index `i`: the same fields
/// and, serialized, the same 100 bytes (serde_json orders the keys
/// differently, which changes no length). The pad is 98 bytes minus the
/// rest: 44 fixed bytes plus the index's digits twice.
fn payload_for(i: i64) -> Value {
    let digits = i.to_string();
    let pad = 54usize.saturating_sub(2 * digits.len());
    json!({"id": digits, "type": "bench.event", "seq": i, "pad": "x".repeat(pad)})
}

/// `records` sends through Prosody's producer, `in_flight` awaiting their
/// delivery at once (each `send` resolves on its delivery report), timed
/// from the first send after one acknowledged warm-up record to the last
/// delivery, like prosody-bench's produce.
async fn produce(o: Options) -> Result<Value, String> {
    let t0 = Instant::now();
    let cpu0 = cpu_seconds();
    let config = ProducerConfiguration::builder()
        .bootstrap_servers(vec![o.bootstrap.clone()])
        .source_system("bench-producer")
        .mock(false)
        .build()
        .map_err(|e| e.to_string())?;
    let telemetry = Telemetry::new();
    // The pipeline producer: no send timeout, a record is retried until it
    // is delivered (prosody-cpp's pipeline producer does the same).
    let producer = Arc::new(
        ProsodyProducer::<JsonCodec>::pipeline_producer(config.clone(), telemetry.sender())
            .map_err(|e| format!("producer: {e}"))?,
    );
    let topic: Topic = o.topic.as_str().into();
    let no_headers = || Vec::<(&'static str, &'static str)>::new();
    producer
        .send(no_headers(), topic, "warmup", json!({"warmup": true}))
        .await
        .map_err(|e| format!("warm-up send: {e}"))?;

    let window = Arc::new(tokio::sync::Semaphore::new(o.in_flight));
    let ok = Arc::new(AtomicI64::new(0));
    let failed = Arc::new(AtomicI64::new(0));
    let s0 = Instant::now();
    let c0 = cpu_seconds();
    for i in 0..o.records {
        let permit = Arc::clone(&window).acquire_owned().await.map_err(|e| e.to_string())?;
        let (producer, ok, failed) = (Arc::clone(&producer), Arc::clone(&ok), Arc::clone(&failed));
        let key = format!("key-{}", i % o.keys);
        let payload = payload_for(i);
        tokio::spawn(async move {
            match producer.send(no_headers(), topic, &key, payload).await {
                Ok(()) => {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    if failed.fetch_add(1, Ordering::Relaxed) < 5 {
                        eprintln!("send failed: {e}");
                    }
                }
            }
            drop(permit);
        });
    }
    // Every permit back means every send has resolved.
    let all = u32::try_from(o.in_flight).map_err(|e| e.to_string())?;
    let _drained = window.acquire_many(all).await.map_err(|e| e.to_string())?;
    let wall = s0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - c0;
    let delivered = ok.load(Ordering::Relaxed);

    let mut r = serde_json::Map::new();
    r.insert("kind".into(), json!("produce"));
    r.insert("system".into(), json!("rust"));
    r.insert("topic".into(), json!(o.topic));
    r.insert("bootstrap".into(), json!(o.bootstrap));
    r.insert("librdkafka_version".into(), json!(rdkafka::util::get_rdkafka_version().1));
    r.insert("prosody_crate_version".into(), json!("0.7.1"));
    r.insert("pid".into(), json!(std::process::id()));
    r.insert("wall_s".into(), json!(wall));
    r.insert("cpu_s".into(), json!(cpu));
    r.insert("records_per_s".into(), json!(o.records as f64 / wall));
    r.insert("cpu_us_per_record".into(), json!(cpu * 1e6 / o.records as f64));
    r.insert("in_flight".into(), json!(o.in_flight));
    r.insert("idempotence_cache_size".into(), json!(config.idempotence_cache_size));
    r.insert("delivered".into(), json!(delivered));
    r.insert("failed".into(), json!(failed.load(Ordering::Relaxed)));
    r.insert("complete".into(), json!(delivered == o.records));
    drop(producer);
    r.insert("total_wall_s".into(), json!(t0.elapsed().as_secs_f64()));
    r.insert("total_cpu_s".into(), json!(cpu_seconds() - cpu0));
    r.insert("peak_rss_mb".into(), json!(proc_status_kb("VmHWM") as f64 / 1024.0));
    Ok(Value::Object(r))
}

fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("prosody-rust-bench: {e}");
            std::process::exit(2);
        }
    };
    // Prosody reads these on construction; the bench wants no probe server
    // and no telemetry topic (the C++ side runs without either too).
    // SAFETY: single-threaded here, before the runtime starts.
    unsafe {
        std::env::set_var("PROSODY_TELEMETRY_ENABLED", "false");
        std::env::set_var("PROSODY_PROBE_PORT", "none");
        if std::env::var_os("PROSODY_LOG").is_none() {
            std::env::set_var("PROSODY_LOG", "warn");
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = if o.command == "produce" { runtime.block_on(produce(o)) } else { runtime.block_on(run(o)) };
    match result {
        Ok(v) => {
            let complete = v.get("complete").and_then(Value::as_bool).unwrap_or(false);
            println!("{v}");
            std::process::exit(if complete { 0 } else { 1 });
        }
        Err(e) => {
            eprintln!("prosody-rust-bench: {e}");
            println!("{}", json!({"system": "rust", "error": e}));
            std::process::exit(2);
        }
    }
}
