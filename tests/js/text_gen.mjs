// text_gen.mjs: deterministic text generators shared by make_corpus.mjs (the js-tiktoken
// comparison corpus) and bench.mjs (the encode-speed text). Seeded PRNG, so every run and
// machine produces the same strings. Keeps out what js-tiktoken's regex treats differently from
// tiktoken's (U+0085, U+FEFF, U+180E in \s; 's folding to U+017F) and code points assigned after
// Unicode 13, whose classes depend on the node/ICU version.

export function makeRng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n) => Math.floor(next() * n);
  const pick = (arr) => arr[int(arr.length)];
  return { next, int, pick };
}

export const kSamples = {
  english: [
    'The quick brown fox jumps over the lazy dog.',
    "It's a truth universally acknowledged that a single man in possession of a good fortune must be in want of a wife.",
    "I'M SURE you'Re right, but WE'VE been here before and they'll say it's fine; she'd agree, wouldn't she?",
    'In 1969, Apollo 11 landed on the Moon; 600 million people watched the broadcast live.',
    'Large language models are trained on trillions of tokens, then fine-tuned with human feedback.',
    'Mr. O\'Neil paid $1,234.56 for 3 tickets (about 411.52 each) on 2024-06-30 at 09:45 a.m.',
  ],
  code: [
    'for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }',
    'def encode(self, text: str) -> list[int]:\n    return [self.ranks[p] for p in self.split(text)]\n',
    '{"model": "gpt-oss-20b", "layers": 24, "experts": 32, "rope_theta": 150000.0}',
    '#include <vector>\n\nint main(int argc, char** argv) {\n\treturn argc > 1 ? 0 : 1;\n}\n',
    'SELECT id, name FROM users WHERE created_at >= \'2024-01-01\' ORDER BY id DESC LIMIT 10;',
    'const url = "https://example.com/path/to/page?q=hello%20world&lang=en#top";',
    '    if x is None:\r\n        raise ValueError("x must not be None")\r\n',
  ],
  cjk: [
    '人工智能正在改变我们的生活方式，也带来了新的挑战。',
    '東京は日本の首都です。ひらがなとカタカナと漢字を使います。',
    '대한민국의 수도는 서울입니다. 한국어는 한글로 씁니다.',
  ],
  other: [
    'مرحبا بالعالم، هذه جملة باللغة العربية مع أرقام ١٢٣٤٥.',
    'नमस्ते दुनिया, यह हिन्दी में एक वाक्य है। संख्या १२३४५।',
    'Привет, мир! Это предложение на русском языке, ЗАГЛАВНЫМИ БУКВАМИ тоже.',
    'Γειά σου Κόσμε! Η ελληνική γλώσσα έχει τόνους: ά, έ, ή.',
    'שלום עולם, זה משפט בעברית.',
    'สวัสดีชาวโลก นี่คือประโยคภาษาไทย',
    'Ça va très bien, merci ! Über die Brücke; naïve café, façade, señor, Smørrebrød.',
  ],
  emoji: [
    '👩‍💻 coding late 🌙✨ and 👨‍👩‍👧‍👦 family, 👍🏽 ok, 🇫🇷🇯🇵 flags, ❤️‍🔥!',
    '🙂🙃😀😃😄😁😆😅🤣😂',
  ],
};

// Code point ranges assigned by Unicode 13 whose classes are settled (letters of each kind,
// marks, numbers, punctuation, symbols, whitespace other than the three excluded ones).
export const kRanges = [
  [0x20, 0x7e], [0x09, 0x0d], [0xa0, 0xff], [0x100, 0x17e], [0x180, 0x24f], [0x1c4, 0x1cc],
  [0x2b0, 0x2c1], [0x300, 0x36f], [0x391, 0x3a1], [0x3b1, 0x3c9], [0x410, 0x44f],
  [0x5d0, 0x5ea], [0x621, 0x64a], [0x64b, 0x652], [0x660, 0x669], [0x904, 0x939],
  [0x93e, 0x94d], [0x966, 0x96f], [0xe01, 0xe30], [0x1f88, 0x1f8f], [0x2000, 0x200a],
  [0x2010, 0x2027], [0x2030, 0x205e], [0x2160, 0x2182], [0x2190, 0x21ff], [0x3000, 0x3005],
  [0x3041, 0x3096], [0x30a1, 0x30fa], [0x4e00, 0x9fa5], [0xac00, 0xd7a3], [0xfe0f, 0xfe0f],
  [0xff10, 0xff19], [0xff21, 0xff3a], [0x1d400, 0x1d44f], [0x1f300, 0x1f5ff],
  [0x1f600, 0x1f64f], [0x1f3fb, 0x1f3ff], [0x200d, 0x200d], [0xb2, 0xb3], [0x2028, 0x2029],
];
export const kExcluded = new Set([0x85, 0xfeff, 0x180e, 0x17f]);

export function randomCodePoints(rng, len) {
  let s = '';
  let range = rng.pick(kRanges);
  for (let i = 0; i < len; ++i) {
    if (rng.int(5) === 0) range = rng.pick(kRanges);
    const cp = range[0] + rng.int(range[1] - range[0] + 1);
    if (!kExcluded.has(cp)) s += String.fromCodePoint(cp);
  }
  return s;
}

const kWhitespace = [' ', '  ', '   ', '\n', '\n\n', '\r\n', '\t', '\t\t', ' \n', '\n ', '  \n\n  ',
  '\u00a0', '\u3000', ' \r\n\r\n', '\n\n\n\n', '        '];
const kContractions = ["'s", "'S", "'t", "'T", "'re", "'RE", "'Re", "'rE", "'ve", "'VE", "'m",
  "'M", "'ll", "'LL", "'lL", "'d", "'D", "'x", "'"];

function word(rng) {
  const kind = rng.int(10);
  if (kind < 4) return rng.pick(rng.pick(rng.pick(Object.values(kSamples))).split(/\s+/));
  if (kind === 4) return String(rng.int(10 ** (1 + rng.int(12))));
  if (kind === 5) return rng.pick(['I', 'You', 'WE', 'they', 'It', 'she']) + rng.pick(kContractions);
  if (kind === 6) return randomCodePoints(rng, 1 + rng.int(8));
  if (kind === 7) return rng.pick(['<|endoftext|>', '<|start|>', '<|message|>', '<|end|>', '<|']);
  if (kind === 8) return rng.pick(['...', '!!', '?!', '//', '://', '/*', '*/', '->', '=>', '{}', '[]', '#']);
  return rng.pick(['camelCaseWord', 'snake_case_word', 'HTTPServer', 'iPhone', 'McDonald', 'ÉCOLE', 'ǅemal']);
}

// One varied string: words joined by whitespace of every kind.
export function mixedString(rng) {
  const n = 1 + rng.int(16);
  let s = '';
  for (let i = 0; i < n; ++i) {
    s += word(rng);
    if (i + 1 < n) s += rng.int(3) === 0 ? rng.pick(kWhitespace) : ' ';
  }
  if (rng.int(6) === 0) s += rng.pick(kWhitespace);
  if (rng.int(8) === 0) s = rng.pick(kWhitespace) + s;
  return s;
}

// Realistic mixed text of about `bytes` UTF-8 bytes (prose, code, several scripts, emoji),
// sentence by sentence with randomized numbers so that it does not repeat exactly.
export function mixedText(rng, bytes,
                          kinds = ['english', 'english', 'english', 'code', 'code', 'cjk', 'other', 'emoji']) {
  const parts = [];
  let size = 0;
  while (size < bytes) {
    let s = rng.pick(kSamples[rng.pick(kinds)]);
    s = s.replace(/[0-9]+/g, () => String(rng.int(100000)));
    if (rng.int(3) === 0) s += ' ' + mixedString(rng);
    s += rng.pick(['\n', ' ', '\n\n', ' ', ' ']);
    parts.push(s);
    size += Buffer.byteLength(s);
  }
  return parts.join('');
}
