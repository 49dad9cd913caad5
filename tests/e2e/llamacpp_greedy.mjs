// Oracle: greedy continuation from llama.cpp itself, through the prebuilt CPU
// build of the node-llama-cpp npm package (scripts/install-deps.sh installs
// it into build/peer).
//   node llamacpp_greedy.mjs NODE_LLAMA_CPP_DIR MODEL.gguf IDS N
// IDS: the prompt's token ids, as a JSON array or comma-separated. Prints a
// JSON array of up to N generated ids (fewer when llama.cpp stops at an
// end-of-generation token, which it does not yield).
import {join} from "node:path";
import {pathToFileURL} from "node:url";

const [, , packageDir, modelPath, idsText, nText] = process.argv;
if (!packageDir || !modelPath || !idsText || !nText) {
  console.error("usage: node llamacpp_greedy.mjs NODE_LLAMA_CPP_DIR MODEL.gguf IDS N");
  process.exit(2);
}
const {getLlama} = await import(pathToFileURL(join(packageDir, "dist", "index.js")).href);
const ids = idsText.trim().startsWith("[") ? JSON.parse(idsText) : idsText.split(",").map(Number);
const n = Number(nText);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath, gpuLayers: 0});
const ctx = await model.createContext({contextSize: Math.max(256, ids.length + n + 8), threads: 2, sequences: 1});
const seq = ctx.getSequence();
const out = [];
for await (const t of seq.evaluate(ids, {temperature: 0})) {
  out.push(t);
  if (out.length >= n) break;
}
process.stdout.write(JSON.stringify(out) + "\n");
await ctx.dispose();
await model.dispose();
