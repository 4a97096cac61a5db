// The original NestJS API's producer side, rebuilt from its shapes (klozd: apps/api/src/queue/queue.service.ts,
// apps/api/src/notifications/notifications.service.ts, jobs/notifications.queue.ts): one Queue per name with
// the original's default job options, its four job names, the data each call site builds, and the stable
// `delivery:<org>:<hash>` job id of its WhatsApp confirmation. Nothing here knows envoi.
//
// usage: node original_producer.js <redisUrl> <prefix> <calls.json> [--wait]
//   calls.json: [{"flow": "<name below>", ...its arguments}]
//   prints one JSON line: [{"flow", "name", "id", "data", "opts"[, "state", "returnvalue", "failedReason"]}]
//   --wait: each job's outcome through QueueEvents (up to 30 s), as a Node caller listening for results.
const crypto = require("crypto");
const { Queue, QueueEvents } = require("bullmq");
const IORedis = require("ioredis");

const QUEUE = "notifications";
// The original's QueueService.getQueue(): every job added without options gets these.
const DEFAULT_JOB_OPTIONS = {
  attempts: 5,
  backoff: { type: "exponential", delay: 30000 },
  removeOnComplete: true,
  removeOnFail: false,
};

function day(date) {
  return date.toLocaleDateString("fr-FR", { timeZone: "Europe/Paris" });
}

function time(date) {
  return date.toLocaleTimeString("fr-FR", { hour: "2-digit", minute: "2-digit", timeZone: "Europe/Paris" });
}

// The original's payload hash: keys sorted at every level, undefined left out, sha256 of the JSON.
function canonical(value) {
  if (value === null || value === undefined) return null;
  if (Array.isArray(value)) return value.map(canonical);
  if (typeof value === "object") {
    const out = {};
    for (const key of Object.keys(value).sort()) {
      if (value[key] !== undefined) out[key] = canonical(value[key]);
    }
    return out;
  }
  return value;
}

function deliveryJobId(organizationId, payload) {
  const hash = crypto.createHash("sha256").update(JSON.stringify(canonical(payload))).digest("hex");
  return `delivery:${organizationId ? `${organizationId}:` : ""}${hash.substring(0, 16)}`;
}

// Each flow returns [jobName, data, options?] as the original's call site enqueues them.
const flows = {
  appointmentConfirmation(a) {
    const at = new Date(a.scheduledAt);
    const jobs = [
      [
        "SEND_EMAIL",
        {
          to: a.leadEmail,
          subject: `✅ RDV confirmé le ${day(at)} à ${time(at)}`,
          html: `<h2>✅ Votre rendez-vous est confirmé</h2><p>Bonjour ${a.firstName},</p>`,
          metadata: { userId: a.closerId, notificationId: a.notificationId, appointmentId: a.appointmentId },
        },
      ],
    ];
    if (a.leadPhone) {
      jobs.push([
        "SEND_SMS",
        {
          to: a.leadPhone,
          message: `Rappel RDV KLOZD: ${day(at)} à ${time(at)}. ${a.visioUrl ? `Lien: ${a.visioUrl}` : ""}`,
          metadata: { appointmentId: a.appointmentId },
        },
      ]);
      const whatsapp = {
        to: a.leadPhone,
        message: `✅ RDV confirmé avec ${a.closerName}\n📅 ${day(at)} à ${time(at)}\n`,
        metadata: { appointmentId: a.appointmentId },
      };
      const payload = { type: "WHATSAPP", to: whatsapp.to, message: whatsapp.message, from: a.whatsappFrom };
      jobs.push(["SEND_WHATSAPP", whatsapp, { jobId: deliveryJobId(a.organizationId, payload) }]);
    }
    return jobs;
  },
  verification(a) {
    return [
      [
        "SEND_EMAIL",
        {
          to: a.email,
          subject: "Vérifiez votre adresse email - KLOZD",
          html: `<h2>Bienvenue sur KLOZD, ${a.firstName} !</h2><p>${a.code}</p>`,
          text: `Bienvenue sur KLOZD, ${a.firstName} !\n\n${a.code}\n`,
        },
      ],
    ];
  },
  abandonRecovery(a) {
    return [
      [
        "SEND_EMAIL",
        {
          to: a.email,
          subject: "Vous n'avez pas terminé votre demande",
          html: `<h2>Finalisez votre demande</h2><p><a href="${a.formUrl}">Cliquez ici</a></p>`,
          metadata: { abandonId: a.abandonId, formId: a.formId },
        },
      ],
    ];
  },
  noShowRecovery(a) {
    return [
      [
        "SEND_EMAIL",
        {
          to: a.email,
          subject: "Nous avons raté notre RDV, reprogrammez ici",
          html: "<h2>Nous avons raté notre rendez-vous</h2>",
          metadata: { appointmentId: a.appointmentId, leadId: a.leadId, type: "no_show_recovery", daysAfter: 0 },
        },
      ],
    ];
  },
  // envoi's extension of SEND_EMAIL (the original linked to the .ics instead): a Node caller attaching it.
  emailWithAttachment(a) {
    return [
      [
        "SEND_EMAIL",
        {
          to: a.email,
          subject: a.subject,
          html: "<p>Votre invitation est jointe.</p>",
          text: "Votre invitation est jointe.",
          attachments: [
            { filename: a.filename, contentType: "text/calendar", content: Buffer.from(a.content).toString("base64") },
          ],
          metadata: { appointmentId: a.appointmentId },
        },
      ],
    ];
  },
  sms(a) {
    return [["SEND_SMS", { to: a.to, message: a.message, metadata: { appointmentId: a.appointmentId } }]];
  },
  whatsapp(a) {
    return [["SEND_WHATSAPP", { to: a.to, message: a.message, metadata: { appointmentId: a.appointmentId } }]];
  },
  // The original's createInAppNotification(userId, title, message, metadata?): undefined metadata is dropped.
  inApp(a) {
    return [["CREATE_INAPP_NOTIFICATION", { userId: a.userId, title: a.title, message: a.message, metadata: a.metadata }]];
  },
};

// Outcomes as a Node caller learns them: QueueEvents, listening before the first job is added (the jobs are
// removed on completion, so their outcome is only in the event).
function listen(events) {
  const outcomes = new Map();
  const parse = (value) => {
    try {
      return typeof value === "string" ? JSON.parse(value) : value;
    } catch {
      return value;
    }
  };
  events.on("completed", ({ jobId, returnvalue }) => outcomes.set(jobId, { state: "completed", returnvalue: parse(returnvalue) }));
  events.on("failed", ({ jobId, failedReason }) => outcomes.set(jobId, { state: "failed", failedReason }));
  return outcomes;
}

async function settled(outcomes, ids, deadlineMs) {
  const deadline = Date.now() + deadlineMs;
  while (ids.some((id) => !outcomes.has(id)) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function main() {
  const [url, prefix, callsFile, wait] = process.argv.slice(2);
  const calls = JSON.parse(require("fs").readFileSync(callsFile, "utf8"));
  const connection = new IORedis(url, { maxRetriesPerRequest: null, enableReadyCheck: false });
  const queue = new Queue(QUEUE, { connection, prefix, defaultJobOptions: DEFAULT_JOB_OPTIONS });
  let events = null;
  let outcomes = null;
  let eventsConnection = null;
  if (wait) {
    eventsConnection = new IORedis(url, { maxRetriesPerRequest: null });
    events = new QueueEvents(QUEUE, { connection: eventsConnection, prefix });
    outcomes = listen(events);
    await events.waitUntilReady();
  }
  const added = [];
  for (const call of calls) {
    for (const [name, data, opts] of flows[call.flow](call)) {
      // The original's addJob(): queue.add(name, data, options).
      const job = await queue.add(name, data, opts);
      added.push({ flow: call.flow, name, id: job.id, data: job.data, opts: job.opts });
    }
  }
  if (events) {
    await settled(outcomes, added.map((entry) => entry.id), 30000);
    for (const entry of added) Object.assign(entry, outcomes.get(entry.id) || { state: "pending" });
    await events.close();
    await eventsConnection.quit().catch(() => undefined);
  }
  console.log(JSON.stringify(added));
  await queue.close();
  await connection.quit();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
