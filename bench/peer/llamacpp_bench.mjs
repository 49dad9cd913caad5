// Same-machine reference figures from llama.cpp, through the prebuilt CPU
// binaries that the node-llama-cpp npm package ships (it picks the build
// for this CPU, e.g. libggml-cpu-zen4 or -sapphirerapids). Measures what
// `volga bench` measures: a prompt of P tokens evaluated in one batch
// (prefill), then G tokens generated one at a time (greedy), median of R
// repetitions with min..max. Decode here includes node-llama-cpp's per-token
// overhead (sampling in the addon, one JS call per token), so its tg figure
// is a slight underestimate of llama-bench's.
//
//   node llamacpp_bench.mjs MODEL.gguf [P=128] [G=32] [R=3] [THREADS=2]
import {readFileSync} from "node:fs";
import {createRequire} from "node:module";
import {getLlama} from "node-llama-cpp";

const [, , modelPath, p = "128", g = "32", r = "3", th = "2"] = process.argv;
if (!modelPath) {
  console.error("usage: node llamacpp_bench.mjs MODEL.gguf [P] [G] [REPS] [THREADS]");
  process.exit(2);
}
const P = Number(p), G = Number(g), R = Number(r), threads = Number(th);
const llama = await getLlama({gpu: false, build: "never", logLevel: "warn"});
const model = await llama.loadModel({modelPath, gpuLayers: 0});
const ctx = await model.createContext({contextSize: Math.max(512, P + G + 16), batchSize: Math.max(P, 1),
                                       threads, sequences: 1});
const seq = ctx.getSequence();
// Token ids spread over the vocabulary, away from the special tokens.
const nVocab = model.tokens.count ?? 32000;
const prompt = Array.from({length: P}, (_, i) => 100 + (i * 7919) % Math.max(1, Math.min(nVocab - 200, 50000)));
const pp = [], tg = [];
await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, Math.min(P, 8)));  // warm-up: pages the weights in
for (let rep = 0; rep < R; ++rep) {
  await seq.clearHistory();
  let t0 = performance.now();
  await seq.evaluateWithoutGeneratingNewTokens(prompt);
  pp.push(P / ((performance.now() - t0) / 1000));
  let n = 0;
  t0 = performance.now();
  for await (const _ of seq.evaluate([prompt[0]], {temperature: 0})) {
    if (++n >= G) break;
  }
  tg.push(n / ((performance.now() - t0) / 1000));
}
const stats = (a) => {
  const s = a.slice().sort((x, y) => x - y);
  return {median: +s[Math.floor(s.length / 2)].toFixed(1), min: +s[0].toFixed(1), max: +s[s.length - 1].toFixed(1)};
};
const require = createRequire(import.meta.url);
const nlcDir = require.resolve("node-llama-cpp").replace(/dist[/\\].*$/, "");
const version = JSON.parse(readFileSync(nlcDir + "package.json", "utf8")).version;
console.log(JSON.stringify({engine: `llama.cpp (node-llama-cpp ${version})`,
                            model: modelPath, threads, n_prompt: P, n_gen: G,
                            prefill_tokens_per_s: stats(pp), decode_tokens_per_s: stats(tg)}));
await ctx.dispose();
await model.dispose();
