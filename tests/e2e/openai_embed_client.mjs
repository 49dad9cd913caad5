// Drives /v1/embeddings with the official `openai` npm client (which asks for
// base64 unless told otherwise and decodes it). argv[2]: JSON
// {baseURL, apiKey, jobs: [params of client.embeddings.create]}; prints a JSON
// array of {data: [[floats]...], usage, model} or {error: {status, message}}.
import OpenAI from "openai";

const spec = JSON.parse(process.argv[2]);
const client = new OpenAI({ baseURL: spec.baseURL, apiKey: spec.apiKey ?? "none", maxRetries: 0, timeout: 600000 });
const out = [];
for (const params of spec.jobs) {
  try {
    const r = await client.embeddings.create(params);
    out.push({ data: r.data.map((d) => Array.from(d.embedding)), index: r.data.map((d) => d.index), usage: r.usage,
               model: r.model });
  } catch (e) {
    out.push({ error: { status: e.status ?? null, message: String(e.message) } });
  }
}
process.stdout.write(JSON.stringify(out) + "\n");
