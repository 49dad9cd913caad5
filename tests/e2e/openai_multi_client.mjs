// The official `openai` npm client against a server with several models and a
// document index. argv[2]: JSON {baseURL, apiKey, jobs: [{kind, params}]},
// kind one of "models" (client.models.list), "embed" (embeddings.create),
// "chat" (chat.completions.create) or "chat_stream" (the same, streamed; the
// chunks are gathered). Prints a JSON array of results or {error: {status, message}}.
import OpenAI from "openai";

const spec = JSON.parse(process.argv[2]);
const client = new OpenAI({ baseURL: spec.baseURL, apiKey: spec.apiKey ?? "none", maxRetries: 0, timeout: 600000 });

async function run(job) {
  switch (job.kind) {
    case "models": {
      const ids = [];
      for await (const m of client.models.list()) ids.push({ id: m.id, role: m.volga_role });
      return { models: ids };
    }
    case "embed": {
      const r = await client.embeddings.create(job.params);
      return { data: r.data.map((d) => Array.from(d.embedding)), model: r.model, usage: r.usage };
    }
    case "chat": {
      const r = await client.chat.completions.create(job.params);
      return { content: r.choices[0].message.content, usage: r.usage, volga_sources: r.volga_sources ?? null };
    }
    case "chat_stream": {
      const stream = await client.chat.completions.create({ ...job.params, stream: true });
      let content = "";
      let sources = null;
      let finish = null;
      for await (const chunk of stream) {
        for (const c of chunk.choices) {
          content += c.delta?.content ?? "";
          if (c.finish_reason) finish = c.finish_reason;
        }
        if (chunk.volga_sources) sources = chunk.volga_sources;
      }
      return { content, finish_reason: finish, volga_sources: sources };
    }
  }
  throw new Error("unknown job kind " + job.kind);
}

const out = [];
for (const job of spec.jobs) {
  try {
    out.push(await run(job));
  } catch (e) {
    out.push({ error: { status: e.status ?? null, message: String(e.message) } });
  }
}
process.stdout.write(JSON.stringify(out) + "\n");
