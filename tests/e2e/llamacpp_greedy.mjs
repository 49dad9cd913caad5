// Oracle: greedy continuation from llama.cpp itself (the prebuilt CPU build
// of the node-llama-cpp npm package, which bench/peer/run.sh installs into
// build/peer).
//   node llamacpp_greedy.mjs NODE_LLAMA_CPP_DIR MODEL.gguf PROMPT_IDS_JSON N
// Prints a JSON array of up to N token ids (fewer when llama.cpp stops at an
// end-of-generation token).
import {join} from "node:path";
import {pathToFileURL} from "node:url";

const [, , packageDir, modelPath, idsJson, count] = process.argv;
const {getLlama} = await import(pathToFileURL(join(packageDir, "dist", "index.js")).href);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath, gpuLayers: 0});
const context = await model.createContext({contextSize: 256, threads: 1});
const sequence = context.getSequence();
const ids = [];
for await (const id of sequence.evaluate(JSON.parse(idsJson), {temperature: 0})) {
  ids.push(id);
  if (ids.length >= Number(count)) break;
}
process.stdout.write(JSON.stringify(ids) + "\n");
