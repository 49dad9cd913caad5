// Oracle: token ids from the JavaScript tokenizer (transformers.js, as the
// @lenml/tokenizers package ships it).
//   node js_tokenize.cjs PACKAGE TEXTS.json          an @lenml/tokenizer-* package
//   node js_tokenize.cjs path/tokenizer.json TEXTS.json   a tokenizer.json file
//                                                    (tokenizer_config.json beside it is read too)
// TEXTS.json holds a JSON array of strings; prints a JSON array of id arrays
// (no special tokens added).
const fs = require("fs");
const path = require("path");
const [source, file] = process.argv.slice(2);

function load(source) {
  if (!source.endsWith(".json")) return require(source).fromPreTrained();
  const { TokenizerLoader } = require("@lenml/tokenizers");
  const config = path.join(path.dirname(source), "tokenizer_config.json");
  return TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(fs.readFileSync(source, "utf8")),
    tokenizerConfig: fs.existsSync(config) ? JSON.parse(fs.readFileSync(config, "utf8")) : {},
  });
}

const tokenizer = load(source);
const texts = JSON.parse(fs.readFileSync(file, "utf8"));
const out = texts.map((t) => Array.from(tokenizer.encode(t, { add_special_tokens: false })));
process.stdout.write(JSON.stringify(out) + "\n");
