// Adds one job the way the original NestJS API did: queue `notifications`, its job options, its data.
// usage: node produce.js <redisUrl> <prefix> <jobName> <jsonData>  -> prints the job id
const { Queue } = require("bullmq");
const IORedis = require("ioredis");

async function main() {
  const [url, prefix, name, data] = process.argv.slice(2);
  const connection = new IORedis(url, { maxRetriesPerRequest: null });
  const queue = new Queue("notifications", { connection, prefix });
  const job = await queue.add(name, JSON.parse(data), {
    attempts: 5,
    backoff: { type: "exponential", delay: 30000 },
    removeOnComplete: true,
    removeOnFail: false,
  });
  console.log(job.id);
  await queue.close();
  await connection.quit();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
