// Oracle: greedy continuation from llama.cpp itself, through the prebuilt CPU
// build that the node-llama-cpp npm package ships (bench/peer/run.sh installs
// it into build/peer).
//   node llamacpp_greedy.mjs NODE_LLAMA_CPP_DIR MODEL.gguf IDS N
// IDS: comma-separated prompt token ids. Prints a JSON array of N token ids.
import {join} from "node:path";
import {pathToFileURL} from "node:url";

const [, , packageDir, modelPath, idsText, nText] = process.argv;
const {getLlama} = await import(pathToFileURL(join(packageDir, "dist", "index.js")).href);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath, gpuLayers: 0});
const ids = idsText.split(",").map(Number);
const n = Number(nText);
const ctx = await model.createContext({contextSize: 512, batchSize: 512, threads: 2, sequences: 1});
const seq = ctx.getSequence();
const out = [];
for await (const t of seq.evaluate(ids, {temperature: 0})) {
  out.push(t);
  if (out.length >= n) break;
}
process.stdout.write(JSON.stringify(out) + "\n");
await ctx.dispose();
await model.dispose();
