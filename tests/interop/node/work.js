// A Node BullMQ worker that processes one job from queue `notifications` and prints it as JSON.
// usage: node work.js <redisUrl> <prefix>
const { Worker } = require("bullmq");
const IORedis = require("ioredis");

const [url, prefix] = process.argv.slice(2);
const connection = new IORedis(url, { maxRetriesPerRequest: null });
const worker = new Worker(
  "notifications",
  async (job) => {
    console.log(JSON.stringify({ id: job.id, name: job.name, data: job.data, opts: job.opts }));
    setImmediate(async () => {
      await worker.close();
      await connection.quit();
    });
    return "ok";
  },
  { connection, prefix },
);
