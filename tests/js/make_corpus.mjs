// make_corpus.mjs: writes the js-tiktoken comparison corpus, one JSON line per string:
// {"text": ..., "ids": [...]} with ids from js-tiktoken's o200k_base (an independent
// implementation: V8's regex engine and a JS merge loop). Usage: node make_corpus.mjs OUT.jsonl
// tests/test_tokenizer.cpp ("[js-tiktoken]") encodes each text with ours and compares.
import { writeFileSync } from 'node:fs';
import { getEncoding } from 'js-tiktoken';
import { kSamples, makeRng, mixedString, mixedText, randomCodePoints } from './text_gen.mjs';

const out = process.argv[2];
if (!out) {
  console.error('usage: node make_corpus.mjs OUT.jsonl');
  process.exit(2);
}
const enc = getEncoding('o200k_base');
const rng = makeRng(20250805);
const texts = [];
for (const list of Object.values(kSamples)) texts.push(...list);
for (let i = 0; i < 3000; ++i) texts.push(mixedString(rng));
for (let i = 0; i < 500; ++i) texts.push(randomCodePoints(rng, 1 + rng.int(60)));
for (let i = 0; i < 50; ++i) texts.push(mixedText(rng, 2000));
// Digit runs, contractions, whitespace shapes, long words and long runs of one character.
for (let n = 1; n <= 40; ++n) texts.push('7'.repeat(n), 'x' + '1234567890'.slice(0, 1 + (n % 10)).repeat(n));
texts.push("I'M", "You'Re", "WE'VE", "they'LL", "it'S", "don'T", "CAN'T", "Ma'am", "'s", "''s");
for (const ws of [' ', '  ', '\n', '\r\n', '\t', ' \t ', '\n\n\n', '\u00a0', '\u3000']) {
  for (const pad of ['', 'a', ' a', 'a ', '!', '1']) texts.push(ws + pad, pad + ws, pad + ws + pad, ws.repeat(7) + pad);
}
// js-tiktoken's merge loop re-slices every pair on every step (about cubic in the piece length:
// a 1,000-byte piece takes seconds), so single pieces stay under ~300 bytes here; 10,000-char
// runs that split into many pieces are fine. Python tiktoken's fixture has the long pieces.
texts.push('x'.repeat(300), 'supercalifragilisticexpialidocious'.repeat(8), 'ab'.repeat(150));
for (const ch of ['a', ' ', '=', '\n', 'é', '中', '🙂', '.', '\t']) texts.push(ch.repeat(100));
texts.push('7'.repeat(10000), 'a '.repeat(5000), 'ab1'.repeat(3334), '中文。'.repeat(3333));
texts.push(randomCodePoints(rng, 5000));

const lines = texts.map((text) => JSON.stringify({ text, ids: enc.encode(text, [], []) }));
writeFileSync(out, lines.join('\n') + '\n');
console.log(`make_corpus: ${texts.length} strings, ${lines.reduce((a, l) => a + l.length, 0)} bytes -> ${out}` +
  ` (node ${process.version}, Unicode ${process.versions.unicode})`);
