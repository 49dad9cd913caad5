// Oracle: token ids from llama.cpp itself, through the prebuilt CPU build that
// the node-llama-cpp npm package ships (bench/peer/run.sh installs it into
// build/peer). The GGUF's vocabulary only is loaded.
//   node llamacpp_tokenize.mjs NODE_LLAMA_CPP_DIR MODEL.gguf TEXTS.json
// TEXTS.json holds a JSON array of strings; prints a JSON array of id arrays
// (no special tokens added, control-token texts not parsed).
import {readFileSync} from "node:fs";
import {join} from "node:path";
import {pathToFileURL} from "node:url";

const [, , packageDir, modelPath, textsPath] = process.argv;
const {getLlama} = await import(pathToFileURL(join(packageDir, "dist", "index.js")).href);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath, vocabOnly: true});
const texts = JSON.parse(readFileSync(textsPath, "utf8"));
process.stdout.write(JSON.stringify(texts.map((t) => Array.from(model.tokenize(t, false)))) + "\n");
