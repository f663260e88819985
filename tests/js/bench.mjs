// bench.mjs: the js-tiktoken side of bench/bench_tokenizer.sh.
//   node bench.mjs make OUT.txt MB [KINDS]  writes about MB megabytes of text (text_gen.mjs);
//                                           KINDS: comma list of english,code,cjk,other,emoji
//   node bench.mjs encode TEXT IDS          encodes TEXT with js-tiktoken (median of up to 3
//                                           runs within ~20 s), prints MB/s, writes the ids
//                                           (one line, space-separated) for validation
import { readFileSync, writeFileSync } from 'node:fs';
import { getEncoding } from 'js-tiktoken';
import { makeRng, mixedText } from './text_gen.mjs';

const [mode, a, b, c] = process.argv.slice(2);
if (mode === 'make') {
  writeFileSync(a, mixedText(makeRng(42), Number(b ?? 4) * 1e6, c ? c.split(',') : undefined));
} else if (mode === 'encode') {
  const text = readFileSync(a, 'utf8');
  const mb = Buffer.byteLength(text) / 1e6;
  const enc = getEncoding('o200k_base');
  const wall = [];
  const cpu = [];  // process CPU time: steadier than wall time on a busy machine
  let ids;
  const start = performance.now();
  for (let r = 0; r < 3 && (r === 0 || performance.now() - start < 20000); ++r) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    ids = enc.encode(text, [], []);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1e3);
    wall.push(performance.now() - t0);
  }
  const median = (v) => v.sort((x, y) => x - y)[Math.floor(v.length / 2)];
  const w = median(wall), c = median(cpu);
  writeFileSync(b, ids.join(' ') + '\n');
  console.log(`js-tiktoken encode:   ${(mb / w * 1e3).toFixed(2).padStart(8)} MB/s wall, ` +
    `${(mb / c * 1e3).toFixed(2).padStart(8)} MB/s cpu (${w.toFixed(1)} ms wall, ${wall.length} run(s), ` +
    `${ids.length} tokens, node ${process.version})`);
} else {
  console.error('usage: node bench.mjs make OUT.txt MB | node bench.mjs encode TEXT IDS');
  process.exit(2);
}
