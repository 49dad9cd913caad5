// Drives `volga serve` with the official `openai` npm client. Reads one JSON
// job from argv[2]: {baseURL, apiKey, jobs: [{kind: "chat"|"completion", stream, params}]}
// runs the jobs concurrently and prints a JSON array of results:
// {text, finish_reason, usage, chunks, error}.
import OpenAI from "openai";

const spec = JSON.parse(process.argv[2]);
const client = new OpenAI({ baseURL: spec.baseURL, apiKey: spec.apiKey ?? "none", maxRetries: 0, timeout: 600000 });

async function run(job) {
  try {
    if (job.kind === "chat" && !job.stream) {
      const r = await client.chat.completions.create(job.params);
      return { text: r.choices[0].message.content, finish_reason: r.choices[0].finish_reason, usage: r.usage,
               logprobs: r.choices[0].logprobs, model: r.model, id: r.id };
    }
    if (job.kind === "completion" && !job.stream) {
      const r = await client.completions.create(job.params);
      return { text: r.choices[0].text, finish_reason: r.choices[0].finish_reason, usage: r.usage, model: r.model };
    }
    const stream = job.kind === "chat"
      ? await client.chat.completions.create({ ...job.params, stream: true })
      : await client.completions.create({ ...job.params, stream: true });
    let text = "", finish_reason = null, usage = null, chunks = 0;
    for await (const c of stream) {
      chunks++;
      if (c.usage) usage = c.usage;
      if (!c.choices.length) continue;
      const ch = c.choices[0];
      text += job.kind === "chat" ? (ch.delta?.content ?? "") : (ch.text ?? "");
      if (ch.finish_reason) finish_reason = ch.finish_reason;
    }
    return { text, finish_reason, usage, chunks };
  } catch (e) {
    return { error: String(e?.message ?? e), status: e?.status ?? null };
  }
}

const results = await Promise.all(spec.jobs.map(run));
process.stdout.write(JSON.stringify(results));
