// The BullMQ side of the jobs comparison (issue #25), driven like the load tool's `jobs`
// scenario: one JSON line per part with the same field names (scenario "jobs", broker "bullmq").
//
//   node bench.mjs --part submit|complete|progress --port 6379 --redis-pid PID [--jobs 100000]
//
// * submit: 64 callers, each awaiting its Queue.add before the next (jobs delayed by an hour, so
//   none runs); Redis's CPU per job, and its used_memory and RSS growth per 100,000 waiting jobs.
//   With appendonly yes and appendfsync always, Redis answers a write only once it is in the
//   fsynced AOF: the job is on disk before add() resolves, as with stompede's RECEIPT.
// * complete: the same callers queue the jobs; then a Worker (concurrency 50) with a processor
//   that returns at once is started, and the clock runs until it has completed them all.
//   CPU: Redis's, plus this process's (where BullMQ's workers run; stompede's run in its server).
// * progress: 4 lanes each add a job of 10 chunks (5 ms sleep each) and wait for it; after each
//   chunk the processor calls job.updateProgress({chunkIndex, workEndedAtNs}); a QueueEvents
//   listener (what a watching client uses) times each "progress" event from workEndedAtNs.
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { Queue, Worker, QueueEvents } from "bullmq";
import IORedis from "ioredis";

const argv = process.argv.slice(2);
const arg = (name, def) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : def;
};
const part = arg("part", "submit");
const port = Number(arg("port", "6379"));
const redisPid = arg("redis-pid", "");
const jobs = Number(arg("jobs", "100000"));
const callers = Number(arg("callers", "64"));
const concurrency = Number(arg("concurrency", "50"));
const progressJobs = Number(arg("progress-jobs", "200"));
const progressChunks = Number(arg("progress-chunks", "10"));
const progressSleepMs = Number(arg("progress-sleep-ms", "5"));
const lanes = Number(arg("progress-lanes", "4"));
const run = Number(arg("run", "1"));
const connection = { host: "127.0.0.1", port, maxRetriesPerRequest: null };

const ticks = 100; // CLK_TCK on Linux
function cpuSeconds(pid) {
  if (!pid) return null;
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / ticks;
}
function rssKib(pid) {
  if (!pid) return null;
  const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/);
  return m ? Number(m[1]) : null;
}
const selfCpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const nowNs = () => Math.round((performance.timeOrigin + performance.now()) * 1e6);
const load1 = () => Number(readFileSync("/proc/loadavg", "utf8").split(" ")[0]);
async function usedMemory(redis) {
  const info = await redis.info("memory");
  return Number(info.match(/used_memory:(\d+)/)[1]);
}
function quantile(sorted, q) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function addAll(queue, opts) {
  const per = Math.floor(jobs / callers);
  const started = performance.now();
  await Promise.all(
    Array.from({ length: callers }, async () => {
      for (let i = 0; i < per; i++) await queue.add("noop", {}, opts);
    }),
  );
  return { secs: (performance.now() - started) / 1000, n: per * callers };
}

const out = {
  scenario: "jobs",
  broker: "bullmq",
  transport: "tcp",
  proto: "redis",
  part,
  run,
  load_1m: load1(),
};
const problems = [];
const name = `bench-${process.pid}-${run}`;

if (part === "submit") {
  const queue = new Queue(name, { connection });
  await queue.waitUntilReady();
  // A connection of its own for INFO (bullmq 6 takes ioredis as a peer dependency).
  const redis = new IORedis(connection);
  const cpu0 = cpuSeconds(redisPid), mem0 = await usedMemory(redis), rss0 = rssKib(redisPid);
  const { secs, n } = await addAll(queue, { delay: 3_600_000 });
  const cpu1 = cpuSeconds(redisPid), mem1 = await usedMemory(redis), rss1 = rssKib(redisPid);
  Object.assign(out, {
    jobs: n, callers, per_s: n / secs, elapsed_s: secs,
    broker_cpu_s: cpu1 - cpu0,
    broker_cpu_s_per_100k: ((cpu1 - cpu0) * 100_000) / n,
    broker_cpu_us_per_job: ((cpu1 - cpu0) * 1e6) / n,
    client_cpu_s: selfCpu(),
    redis_used_memory_mib_per_100k_waiting: ((mem1 - mem0) / 1048576) * (100_000 / n),
    rss_mib_per_100k_waiting: ((rss1 - rss0) / 1024) * (100_000 / n),
    rss_bytes_per_waiting_job: ((rss1 - rss0) * 1024) / n,
    broker_rss_mib_before: rss0 / 1024, broker_rss_mib_after: rss1 / 1024,
  });
  await redis.quit();
  await queue.close();
} else if (part === "complete") {
  const queue = new Queue(name, { connection });
  await queue.waitUntilReady();
  const added = await addAll(queue, {});
  out.submit_per_s = added.n / added.secs;
  const cpu0 = cpuSeconds(redisPid), self0 = selfCpu();
  const started = performance.now();
  let completed = 0;
  const finished = new Promise((resolve) => {
    const worker = new Worker(name, async () => ({ workEndedAtNs: nowNs() }), {
      connection, concurrency,
    });
    worker.on("completed", () => {
      if (++completed === added.n) resolve(worker);
    });
    worker.on("failed", (_job, err) => problems.push(`a job failed: ${err}`));
  });
  const worker = await finished;
  const secs = (performance.now() - started) / 1000;
  const cpu1 = cpuSeconds(redisPid), self1 = selfCpu();
  const counts = await queue.getJobCounts("completed");
  if (counts.completed !== added.n) problems.push(`${counts.completed} of ${added.n} completed`);
  Object.assign(out, {
    jobs: added.n, concurrency, per_s: added.n / secs, elapsed_s: secs, completed: counts.completed,
    broker_cpu_s: cpu1 - cpu0,
    broker_cpu_s_per_100k: ((cpu1 - cpu0) * 100_000) / added.n,
    worker_cpu_s: self1 - self0,
    // Redis and the Node workers together: the work stompede's server does alone.
    broker_cpu_us_per_job: ((cpu1 - cpu0 + self1 - self0) * 1e6) / added.n,
    broker_rss_mib_after: rssKib(redisPid) / 1024,
  });
  await worker.close();
  await queue.close();
} else if (part === "progress") {
  const queue = new Queue(name, { connection });
  const events = new QueueEvents(name, { connection });
  await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);
  const latencies = [];
  events.on("progress", ({ data }) => {
    if (data && typeof data.workEndedAtNs === "number") {
      latencies.push((nowNs() - data.workEndedAtNs) / 1e6);
    }
  });
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const worker = new Worker(
    name,
    async (job) => {
      for (let i = 0; i < progressChunks; i++) {
        await sleep(progressSleepMs);
        await job.updateProgress({ chunkIndex: i, workEndedAtNs: nowNs() });
      }
      return {};
    },
    { connection, concurrency },
  );
  const cpu0 = cpuSeconds(redisPid);
  const started = performance.now();
  const per = Math.floor(progressJobs / lanes);
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      for (let j = 0; j < per; j++) {
        const job = await queue.add("progress", {});
        await job.waitUntilFinished(events);
      }
    }),
  );
  await sleep(50); // the last progress events
  const secs = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const expected = per * lanes * progressChunks;
  if (latencies.length < expected) problems.push(`${expected - latencies.length} progress events not received`);
  Object.assign(out, {
    jobs: per * lanes, chunks_per_job: progressChunks, lanes, samples: latencies.length,
    latency_p50_ms: quantile(latencies, 0.5),
    latency_p99_ms: quantile(latencies, 0.99),
    latency_p999_ms: quantile(latencies, 0.999),
    latency_max_ms: latencies[latencies.length - 1] ?? null,
    elapsed_s: secs,
    broker_cpu_s: cpuSeconds(redisPid) - cpu0,
  });
  await worker.close();
  await events.close();
  await queue.close();
} else {
  problems.push(`unknown part ${part}`);
}
out.ok = problems.length === 0;
out.problems = problems;
console.log(JSON.stringify(out));
process.exit(out.ok ? 0 : 1);
