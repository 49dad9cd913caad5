// Drives `volga serve` with the official `openai` npm client for the tool-call,
// structured-output, reasoning and Responses API tests (test_tools_api.py).
// Reads one JSON spec from argv[2]: {baseURL, apiKey, jobs: [{kind, params}]}
// runs the jobs concurrently and prints a JSON array with one result per job.
// The results are what the client returned, unchanged, so that the Python side
// makes every assertion; a job that throws gives {error, status, body}.
//
// kinds:
//   chat                  client.chat.completions.create            -> {response}
//   chat_stream           same with stream: true                    -> {chunks}
//   chat_stream_helper    client.beta.chat.completions.stream (the SDK's accumulating
//                         helper; it throws on malformed tool-call deltas) -> {events, final}
//   completion            client.completions.create                 -> {response}
//   completion_stream     same with stream: true                    -> {chunks}
//   responses             client.responses.create (the SDK adds output_text) -> {response}
//   responses_stream      client.responses.create with stream: true -> {events}
//   responses_stream_helper  client.responses.stream (ResponseStream: checks the event
//                         order as it accumulates)                  -> {events, final}
import OpenAI from "openai";

const spec = JSON.parse(process.argv[2]);
const client = new OpenAI({ baseURL: spec.baseURL, apiKey: spec.apiKey ?? "none", maxRetries: 0, timeout: 600000 });

async function collect(stream) {
  const out = [];
  for await (const item of stream) out.push(item);
  return out;
}

async function run(job) {
  const p = job.params;
  try {
    switch (job.kind) {
      case "chat":
        return { response: await client.chat.completions.create(p) };
      case "chat_stream":
        return { chunks: await collect(await client.chat.completions.create({ ...p, stream: true })) };
      case "chat_stream_helper": {
        const stream = client.beta.chat.completions.stream({ ...p, stream: true });
        const events = [];
        stream.on("content.delta", (e) => events.push({ type: "content.delta", delta: e.delta }));
        stream.on("tool_calls.function.arguments.delta", (e) =>
          events.push({ type: "tool_calls.function.arguments.delta", index: e.index, name: e.name }));
        stream.on("tool_calls.function.arguments.done", (e) =>
          events.push({ type: "tool_calls.function.arguments.done", index: e.index, name: e.name,
                        arguments: e.arguments, parsed_arguments: e.parsed_arguments }));
        const final = await stream.finalChatCompletion();
        return { events, final };
      }
      case "completion":
        return { response: await client.completions.create(p) };
      case "completion_stream":
        return { chunks: await collect(await client.completions.create({ ...p, stream: true })) };
      case "responses":
        return { response: await client.responses.create(p) };
      case "responses_stream":
        return { events: await collect(await client.responses.create({ ...p, stream: true })) };
      case "responses_stream_helper": {
        const stream = client.responses.stream(p);
        const events = [];
        for await (const e of stream) events.push({ type: e.type });
        const final = await stream.finalResponse();
        return { events, final };
      }
      default:
        return { error: "unknown job kind " + job.kind };
    }
  } catch (e) {
    return { error: String(e?.message ?? e), status: e?.status ?? null, body: e?.error ?? null };
  }
}

const results = await Promise.all(spec.jobs.map(run));
process.stdout.write(JSON.stringify(results));
