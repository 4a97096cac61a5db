// A Node BullMQ worker that processes `count` jobs from queue `notifications`, one at a time, and prints
// each as a JSON line in the order it took them.
// usage: node work_many.js <redisUrl> <prefix> <count>
const { Worker } = require("bullmq");
const IORedis = require("ioredis");

const [url, prefix, count] = process.argv.slice(2);
const connection = new IORedis(url, { maxRetriesPerRequest: null });
let done = 0;
const worker = new Worker(
  "notifications",
  async (job) => {
    console.log(JSON.stringify({ id: job.id, name: job.name, data: job.data, opts: job.opts }));
    return "ok";
  },
  { connection, prefix, concurrency: 1 },
);
worker.on("completed", async () => {
  done += 1;
  if (done === Number(count)) {
    await worker.close();
    await connection.quit();
  }
});
