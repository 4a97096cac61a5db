// The trace context as Node BullMQ sees it (opts.telemetry.metadata, which bullmq-otel reads and writes).
// usage: node trace_context.js <redisUrl> <prefix> read <jobId>          -> prints the job's telemetry.metadata
//        node trace_context.js <redisUrl> <prefix> add <jobName> <json> <traceparent> -> prints the job id
const { Queue, Job } = require("bullmq");
const IORedis = require("ioredis");

async function main() {
  const [url, prefix, mode, ...rest] = process.argv.slice(2);
  const connection = new IORedis(url, { maxRetriesPerRequest: null });
  const queue = new Queue("notifications", { connection, prefix });
  if (mode === "read") {
    const job = await Job.fromId(queue, rest[0]);
    console.log(job.opts.telemetry ? job.opts.telemetry.metadata : "");
  } else {
    const [name, data, traceparent] = rest;
    // What bullmq-otel's producer span leaves in the job: the W3C carrier as a JSON string.
    const metadata = JSON.stringify({ traceparent });
    const job = await queue.add(name, JSON.parse(data), { attempts: 1, telemetry: { metadata } });
    console.log(job.id);
  }
  await queue.close();
  await connection.quit();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
