// Oracle: embeddings and reranking scores from llama.cpp itself, through the
// prebuilt CPU build that the node-llama-cpp npm package ships (bench/peer/run.sh
// installs it into build/peer).
//   node llamacpp_embed.mjs NODE_LLAMA_CPP_DIR MODEL.gguf INPUTS.json embed|rank
// INPUTS.json holds a JSON array of token id arrays (each already with its
// [CLS]/[SEP] or <s>/</s>). Prints a JSON array: the pooled vector of each
// input as llama.cpp returns it (not normalised), or for `rank` the first
// output of the classification head as the logit (node-llama-cpp reports
// its sigmoid; it is inverted here).
import {readFileSync} from "node:fs";
import {join} from "node:path";
import {pathToFileURL} from "node:url";

const [, , packageDir, modelPath, inputsPath, mode] = process.argv;
const {getLlama} = await import(pathToFileURL(join(packageDir, "dist", "index.js")).href);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath});
const inputs = JSON.parse(readFileSync(inputsPath, "utf8"));
const out = [];
if (mode === "rank") {
  const ctx = await model.createRankingContext({contextSize: 512});
  for (const ids of inputs) {
    // The full pair as given (the public rank() builds its own pair layout).
    const p = await ctx._evaluateRankingForInput(ids);
    out.push(Math.log(p / (1 - p)));
  }
} else {
  const ctx = await model.createEmbeddingContext({contextSize: 512});
  for (const ids of inputs) out.push(Array.from((await ctx.getEmbeddingFor(ids)).vector));
}
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(0);
