// llama.cpp's greedy continuation of a prompt given as token ids, through the
// prebuilt CPU build in the node-llama-cpp npm package: the oracle that files
// written by `volga quantize` are read the same way by both engines.
//
//   node llamacpp_greedy.mjs MODEL.gguf IDS(comma-separated) N [THREADS=2]
// prints {"ids": [...]}: N generated ids (end-of-generation tokens included).
import {getLlama} from "node-llama-cpp";

const [, , modelPath, idsArg, nArg, th = "2"] = process.argv;
if (!modelPath || !idsArg || !nArg) {
  console.error("usage: node llamacpp_greedy.mjs MODEL.gguf IDS N [THREADS]");
  process.exit(2);
}
const prompt = idsArg.split(",").map(Number);
const N = Number(nArg);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath, gpuLayers: 0});
const ctx = await model.createContext({contextSize: Math.max(256, prompt.length + N + 8), threads: Number(th),
                                       sequences: 1});
const seq = ctx.getSequence();
const ids = [];
for await (const t of seq.evaluate(prompt, {temperature: 0})) {
  ids.push(t);
  if (ids.length >= N) break;
}
console.log(JSON.stringify({ids}));
await ctx.dispose();
await model.dispose();
